#!/usr/bin/env bash
# Bounded fuzz run of every target (nvmx's, devices' and the loader's) (docs/fuzzing.md): replays each saved finding under
# regressions/<target>/, then fuzzes each target from its seed corpus for FUZZ_SECONDS (15) and
# at most FUZZ_RUNS (2,000,000) executions. Exits non-zero on any finding (a panic, i.e. a
# violated property, or a sanitizer report); the crashing input is under artifacts/<target>/.
# Needs the nightly toolchain (cargo-fuzz builds with -Zsanitizer); installs cargo-fuzz if absent.
set -uo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-15}
runs=${FUZZ_RUNS:-2000000}
targets=(insn intr nested_engine nested_entry nested_ept route devices loader)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: FAILED: 'cargo +nightly' does not work, and cargo-fuzz needs the nightly" \
        "toolchain (install it with 'rustup toolchain install nightly')" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || {
        echo "fuzz/smoke.sh: FAILED: could not install cargo-fuzz" >&2
        exit 1
    }
fi

cargo +nightly fuzz build || { echo "fuzz/smoke.sh: FAILED: build" >&2; exit 1; }

failed=()
for target in "${targets[@]}"; do
    regressions=(regressions/"$target"/*)
    if [ -e "${regressions[0]}" ]; then
        echo "== $target: replaying ${#regressions[@]} saved finding(s)"
        cargo +nightly fuzz run "$target" "${regressions[@]}" || failed+=("$target (regressions)")
    fi
    # New inputs go to a scratch directory: the checked-in corpus stays as the seeds wrote it.
    work=$(mktemp -d)
    echo "== $target: fuzzing ${seconds}s / ${runs} runs"
    cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1 \
        2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|Done|INFO: (Seed|Loaded))|panicked|ERROR|SUMMARY|Test unit|^  (left|right)|assertion"
    # The fuzzer's status, not grep's.
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("$target")
    rm -rf "$work"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/smoke.sh: FAILED: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/smoke.sh: ${#targets[@]} targets, no findings"
