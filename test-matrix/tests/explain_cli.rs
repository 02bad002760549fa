//! Runs `test-matrix explain` as a user would: outputs, and the usage-error path (exit status 2).

use std::process::{Command, Output};

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("explain")
        .args(args)
        .output()
        .expect("spawn test-matrix")
}

fn stdout_of(args: &[&str]) -> String {
    let out = explain(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn usage_error(args: &[&str]) -> String {
    let out = explain(args);
    assert_eq!(out.status.code(), Some(2), "{args:?} must be a usage error");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn decodes_each_field() {
    assert_eq!(
        stdout_of(&["exit-intr-info", "0x80000b0e"]),
        "valid · hardware exception · #PF (vector 14) · error code valid\n"
    );
    assert_eq!(
        stdout_of(&["idt-vectoring-info", "2147486477"]),
        "valid · hardware exception · #GP (vector 13) · error code valid\n"
    );
    assert!(stdout_of(&["entry-intr-info", "0x80001b06"])
        .contains("\n  error: reserved bits 30:12 set (0x1000)"));
    assert_eq!(
        stdout_of(&["exit-reason", "0x30"]),
        "EPT violation (basic reason 48)\n"
    );
    assert_eq!(
        stdout_of(&["pfec", "7"]),
        "protection violation (P) · write (W/R) · user mode (U/S)\n"
    );
    assert_eq!(
        stdout_of(&["error-code", "0x18"]),
        "GDT index 3 (selector 0x0018)\n"
    );
    assert_eq!(
        stdout_of(&[
            "qualification",
            "--reason",
            "0",
            "--vector",
            "14",
            "0xdeadb000"
        ]),
        "#PF linear address 0xdeadb000 (guest CR2 is not written by the VM exit)\n"
    );
    assert_eq!(
        stdout_of(&["qualification", "--reason", "30", "0x3f80008"]),
        "IN · port 0x03f8 · 1 byte · port in DX\n"
    );
}

#[test]
fn malformed_input_is_a_usage_error() {
    assert!(usage_error(&[]).contains("missing field"));
    assert!(usage_error(&["nonsense", "1"]).contains("unknown field \"nonsense\""));
    assert!(usage_error(&["pfec"]).contains("pfec: missing value"));
    assert!(usage_error(&["pfec", "0xzz"])
        .contains("\"0xzz\" is not a decimal or 0x-hexadecimal number"));
    assert!(usage_error(&["exit-intr-info", "0x100000000"]).contains("does not fit in 32 bits"));
    assert!(usage_error(&["qualification", "5"]).contains("--reason N is required"));
    assert!(
        usage_error(&["qualification", "--reason", "0", "--vector", "256", "5"])
            .contains("256 does not fit in 8 bits")
    );
    let usage = usage_error(&["pfec", "-1"]);
    assert!(
        usage.contains("usage: test-matrix explain <field> <value>"),
        "{usage}"
    );
}
