#!/usr/bin/env bash
# Long fuzz run of one target: long-run.sh TARGET SECONDS (docs/fuzzing.md). One libFuzzer job
# in fork mode, so that a finding is recorded under artifacts/TARGET/ and the run goes on;
# the grown corpus is kept in work/TARGET for the next run. Exits non-zero if it found anything.
set -uo pipefail
cd "$(dirname "$0")"
target=${1:?usage: long-run.sh TARGET SECONDS}
seconds=${2:?usage: long-run.sh TARGET SECONDS}

mkdir -p "work/$target" "artifacts/$target"
before=$(find "artifacts/$target" -type f | wc -l)
cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -fork=1 -ignore_crashes=1 \
    -ignore_timeouts=1 -ignore_ooms=1 -print_final_stats=1
after=$(find "artifacts/$target" -type f | wc -l)
echo "long-run.sh: $target: $((after - before)) new finding(s) under fuzz/artifacts/$target"
[ "$after" -eq "$before" ]
