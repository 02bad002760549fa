//! Runs the built `test-matrix decide` binary the way the matrix and reviewers do.

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn decide(input: &str) -> (Vec<Value>, Output) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("decide")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn test-matrix");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let lines = String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    (lines, output)
}

fn one(scenario: Value) -> Value {
    let (mut lines, output) = decide(&format!("{scenario}\n"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lines.len(), 1);
    lines.remove(0)
}

#[test]
fn intercepted_pf_during_gp_delivery_exits_with_idt_vectoring() {
    let out = one(
        json!({"id": "pf-gp", "controls": {"exception_bitmap": 1 << 14},
        "delivering": {"type": "hardware_exception", "vector": 13, "error_code": 0x28},
        "event": {"type": "hardware_exception", "vector": 14, "error_code": 6, "cr2": 0xdead_0000u64}}),
    );
    assert_eq!(
        out,
        json!({"id": "pf-gp", "outcome": "vmexit", "exit_reason": 0,
        "exit_interruption_info": 0x8000_0b0eu32, "exit_interruption_error_code": 6,
        "exit_qualification": 0xdead_0000u64, "idt_vectoring_info": 0x8000_0b0du32,
        "idt_vectoring_error_code": 0x28})
    );
}

#[test]
fn intercepted_gp_during_pf_delivery_exits_before_double_fault() {
    let out = one(
        json!({"id": 7, "controls": {"exception_bitmap": (1 << 13) | (1 << 8)},
        "delivering": {"type": "hardware_exception", "vector": 14, "error_code": 2},
        "event": {"type": "hardware_exception", "vector": 13, "error_code": 0}}),
    );
    assert_eq!(
        (out["id"].clone(), out["exit_interruption_info"].as_u64()),
        (json!(7), Some(0x8000_0b0d))
    );
    assert_eq!(out["idt_vectoring_info"].as_u64(), Some(0x8000_0b0e));
}

#[test]
fn double_fault_delivery_and_double_fault_exit() {
    let scenario = |bitmap: u32| {
        json!({"id": "df", "controls": {"exception_bitmap": bitmap},
        "delivering": {"type": "hardware_exception", "vector": 14, "error_code": 2},
        "event": {"type": "hardware_exception", "vector": 14, "error_code": 2, "cr2": 5}})
    };
    assert_eq!(
        one(scenario(0)),
        json!({"id": "df", "outcome": "deliver", "type": "hardware_exception",
        "vector": 8, "error_code": 0, "cr2": null})
    );
    let exit = one(scenario(1 << 8));
    assert_eq!(
        (
            exit["exit_interruption_info"].as_u64(),
            exit["idt_vectoring_info"].as_u64()
        ),
        (Some(0x8000_0b08), Some(0))
    );
    assert_eq!(exit["idt_vectoring_error_code"], Value::Null);
}

#[test]
fn triple_fault() {
    let out = one(json!({"id": "tf", "controls": {"exception_bitmap": 0},
        "delivering": {"type": "hardware_exception", "vector": 8},
        "event": {"type": "hardware_exception", "vector": 13, "error_code": 0}}));
    assert_eq!(
        (
            out["exit_reason"].as_u64(),
            out["idt_vectoring_info"].as_u64(),
            out["exit_interruption_info"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
}

#[test]
fn delivered_pf_carries_cr2_and_real_mode_pushes_no_error_code() {
    let out = one(
        json!({"id": "pf", "event": {"type": "hardware_exception", "vector": 14, "error_code": 4, "cr2": 4096}}),
    );
    assert_eq!(
        (out["error_code"].as_u64(), out["cr2"].as_u64()),
        (Some(4), Some(4096))
    );
    let out = one(
        json!({"id": "rm", "protected_mode": false, "event": {"type": "hardware_exception", "vector": 13, "error_code": 4}}),
    );
    assert_eq!(
        (out["error_code"].clone(), out["cr2"].clone()),
        (Value::Null, Value::Null)
    );
}

#[test]
fn software_exits_report_instruction_length_others_do_not() {
    let out = one(
        json!({"id": "bp", "controls": {"exception_bitmap": 8}, "event": {"type": "software_exception", "vector": 3, "insn_len": 1}}),
    );
    assert_eq!(
        (
            out["exit_interruption_info"].as_u64(),
            out["exit_instruction_length"].as_u64()
        ),
        (Some(0x8000_0603), Some(1))
    );
    let out = one(
        json!({"id": "of", "controls": {"exception_bitmap": 16}, "event": {"type": "software_exception", "vector": 4}}),
    );
    assert_eq!(out["exit_interruption_info"].as_u64(), Some(0x8000_0604));
    let out = one(
        json!({"id": "gp", "controls": {"exception_bitmap": 1 << 13}, "event": {"type": "hardware_exception", "vector": 13}}),
    );
    assert!(out.get("exit_instruction_length").is_none());
    let out = one(
        json!({"id": "intn", "controls": {"exception_bitmap": u32::MAX}, "event": {"type": "software_interrupt", "vector": 3}}),
    );
    assert_eq!(
        (out["outcome"].as_str(), out["type"].as_str()),
        (Some("deliver"), Some("software_interrupt"))
    );
}

#[test]
fn injected_events_are_exempt_and_ack_controls_interrupt_info() {
    let out = one(
        json!({"id": "inj", "injected": true, "controls": {"exception_bitmap": u32::MAX},
        "event": {"type": "hardware_exception", "vector": 13, "error_code": 0}}),
    );
    assert_eq!(out["outcome"], "deliver");
    let out = one(
        json!({"id": "ack", "controls": {"external_interrupt_exiting": true, "ack_interrupt_on_exit": true},
        "event": {"type": "external_interrupt", "vector": 0x41}}),
    );
    assert_eq!(
        (
            out["exit_reason"].as_u64(),
            out["exit_interruption_info"].as_u64()
        ),
        (Some(1), Some(0x8000_0041))
    );
}

#[test]
fn error_code_bits_31_16_are_dropped() {
    let out = one(
        json!({"id": "ec", "controls": {"exception_bitmap": 1 << 13},
        "event": {"type": "hardware_exception", "vector": 13, "error_code": 0xffff_0018u32}}),
    );
    assert_eq!(out["exit_interruption_error_code"].as_u64(), Some(0x18));
}

#[test]
fn malformed_lines_are_reported_and_the_stream_continues() {
    let (lines, output) = decide(concat!(
        "{\"id\":\"a\",\"event\":{\"type\":\"nmi\",\"vector\":2}}\n",
        "{\"id\":\"b\",\"event\":{\"type\":\"hardware_exception\",\"vector\":true}}\n",
        "garbage\n",
        "{\"id\":\"c\",\"event\":{\"type\":\"nmi\",\"vector\":2}}\n",
    ));
    assert!(!output.status.success());
    let ids: Vec<_> = lines.iter().map(|l| l["id"].clone()).collect();
    assert_eq!(ids, [json!("a"), json!("b"), Value::Null, json!("c")]);
    assert_eq!(
        (
            lines[1]["outcome"].as_str(),
            lines[1]["line"].as_u64(),
            lines[1]["field"].as_str()
        ),
        (Some("error"), Some(2), Some("event.vector"))
    );
    assert_eq!(
        (lines[2]["line"].as_u64(), lines[2]["field"].clone()),
        (Some(3), Value::Null)
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown subcommand") && stderr.contains("decide"),
        "{stderr}"
    );
}
