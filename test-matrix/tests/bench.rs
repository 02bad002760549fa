//! Smoke test of `test-matrix bench`: it boots the benchmark payloads in Bochs, completes, and
//! reports every L2 path with plausible figures. A behaviour check, not a timing assertion: the
//! figures themselves are tracked in target/bench/bench.json (docs/benchmarks.md).

use serde_json::Value;
use std::process::Command;

const L2_PATHS: [&str; 5] = ["floor", "vmcall", "cpuid", "pf-hardware", "pf-intercepted"];

/// The `figures` of L2 path `key`.
fn figures<'a>(l2: &'a [Value], key: &str) -> &'a Value {
    let row = l2
        .iter()
        .find(|row| row["path"] == key)
        .unwrap_or_else(|| panic!("no L2 row {key}"));
    &row["figures"]
}

#[test]
fn bench_reports_every_l2_path_with_plausible_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .args(["bench", "--json"])
        .output()
        .expect("runner starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench failed");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/bench.json");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("bench.json written"))
            .expect("JSON");
    let l2 = json["l2"].as_array().expect("l2 rows");

    for key in L2_PATHS {
        let f = figures(l2, key);
        let (n, median, min, max) = (
            f["n"].as_u64().unwrap(),
            f["median"].as_u64().unwrap(),
            f["min"].as_u64().unwrap(),
            f["max"].as_u64().unwrap(),
        );
        assert!(n >= 1000, "{key}: n = {n}");
        assert!(
            min <= median && median <= max,
            "{key}: min {min} median {median} max {max}"
        );
    }
    assert!(
        stdout.lines().any(|l| l.contains("l1-hv exits/event")),
        "the table is printed"
    );
    // Every event of an exiting path is one exit to l1-hv; a #PF left to the hardware is none.
    for (key, exits) in [
        ("vmcall", 1.0),
        ("cpuid", 1.0),
        ("pf-intercepted", 1.0),
        ("pf-hardware", 0.0),
    ] {
        let row = l2.iter().find(|row| row["path"] == key).unwrap();
        assert_eq!(
            row["l1hv_exits_per_event"].as_f64(),
            Some(exits),
            "{key}: exits per event"
        );
    }
    // Intercepting #PF adds l1-hv's exit handling to the same guest work.
    let median = |key| figures(l2, key)["median"].as_u64().unwrap();
    assert!(median("pf-intercepted") > median("pf-hardware"));
    // Exiting paths cost more than the empty region they are timed in.
    assert!(median("vmcall") > 0 && median("cpuid") > 0);
}
