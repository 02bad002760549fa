//! End-to-end: the system matrix (docs/matrix.md, "System matrix") in all three modes on
//! Bochs' VT-x — matrix-ghv bare (the hardware reference), matrix-ghv under l1-hv (nested
//! forwarding), matrix-l2 under l1-hv intercepting and re-injecting (transparency) — must agree
//! with the model and with the bare reference in every scenario, with at least 300 per mode;
//! `report` must then count the same agreement from the files `system` wrote.

use std::process::Command;

/// The least scenarios per mode CI runs.
const MIN_SCENARIOS: u64 = 300;

fn test_matrix(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .args(args)
        .output()
        .expect("test-matrix starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), stdout)
}

/// `system MODE: A of N agree with the model...`: (A, N).
fn agreement(stdout: &str, mode: &str) -> (u64, u64) {
    let prefix = format!("system {mode}: ");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix) && l.contains(" agree with the model"))
        .unwrap_or_else(|| panic!("no agreement line for {mode}"));
    let words: Vec<&str> = line[prefix.len()..].split_whitespace().collect();
    (
        words[0].parse().expect("a count"),
        words[2].parse().expect("a count"),
    )
}

#[test]
fn every_mode_agrees_with_the_model_and_the_bare_reference() {
    let (status, stdout) = test_matrix(&["system"]);
    assert!(!stdout.contains("DIFF "), "differences (printed above)");
    for mode in ["bare", "nested", "transparent"] {
        let (agree, total) = agreement(&stdout, mode);
        assert!(total >= MIN_SCENARIOS, "{mode}: only {total} scenarios");
        assert_eq!(
            agree, total,
            "{mode}: {agree} of {total} agree with the model"
        );
    }
    for mode in ["nested", "transparent"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("system {mode}: "))
                    && l.contains(" with the bare reference")),
            "{mode} compared with the bare reference"
        );
    }
    assert_eq!(status, Some(0));

    let (status, stdout) = test_matrix(&["report"]);
    assert_eq!(status, Some(0));
    for mode in ["bare", "nested", "transparent"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("system {mode}: ")))
            .expect("a summary line per mode");
        assert!(line.contains(" 0 disagree, 0 problem line(s)"), "{line}");
    }
}
