use super::input::{kind_from_name, parse, Malformed};
use super::output::kind_name;
use super::*;
use nvmx::event::{Event, InterruptionType};
use nvmx::route::InterceptControls;

fn run_lines(text: &str) -> (Vec<serde_json::Value>, Summary) {
    let mut out = Vec::new();
    let summary = process(&mut BufReader::new(text.as_bytes()), &mut out).unwrap();
    let lines = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (lines, summary)
}

fn malformed(line: &str) -> Malformed {
    match parse(line.as_bytes()) {
        Err((_, m)) => m,
        Ok(_) => panic!("accepted {line}"),
    }
}

#[test]
fn absent_fields_take_defaults() {
    let parsed = parse(br#"{"id":"a","event":{"type":"hardware_exception","vector":13}}"#)
        .ok()
        .unwrap();
    let s = parsed.scenario;
    assert_eq!(parsed.id.get(), r#""a""#);
    assert_eq!(s.controls, InterceptControls::default());
    assert!(s.protected_mode && !s.injected && s.delivering.is_none());
    assert_eq!(s.event, Event::hardware_exception(13, 0));
}

#[test]
fn inapplicable_fields_are_ignored_and_lengths_default() {
    let s = parse(br#"{"id":1,"event":{"type":"hardware_exception","vector":6,"error_code":5,"cr2":9,"dr6":1,"insn_len":99}}"#).ok().unwrap().scenario;
    assert_eq!(s.event, Event::hardware_exception(6, 5));
    assert!(!s.event.pushes_error_code(true));
    let s = parse(br#"{"id":1,"event":{"type":"software_interrupt","vector":128}}"#)
        .ok()
        .unwrap()
        .scenario;
    assert_eq!(s.event.insn_len, 2);
    let s = parse(br#"{"id":1,"event":{"type":"software_exception","vector":3}}"#)
        .ok()
        .unwrap()
        .scenario;
    assert_eq!(s.event.insn_len, 1);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#"{"id":1,"event":{"type":"hardware_exception","vector":"x"}}"#,
            "event.vector",
        ),
        (
            r#"{"id":1,"event":{"type":"hardware_exception","vector":40}}"#,
            "event.vector",
        ),
        (
            r#"{"id":1,"event":{"type":"nmi","vector":3}}"#,
            "event.vector",
        ),
        (
            r#"{"id":1,"event":{"type":"interrupt","vector":3}}"#,
            "event.type",
        ),
        (r#"{"id":1,"event":{"vector":3}}"#, "event.type"),
        (r#"{"id":1,"event":{"type":"nmi"}}"#, "event.vector"),
        (r#"{"id":1}"#, "event"),
        (r#"{"event":{"type":"nmi","vector":2}}"#, "id"),
        (
            r#"{"id":1,"controls":{"exception_bitmap":4294967296},"event":{"type":"nmi","vector":2}}"#,
            "controls.exception_bitmap",
        ),
        (
            r#"{"id":1,"controls":{"nmi_exiting":1},"event":{"type":"nmi","vector":2}}"#,
            "controls.nmi_exiting",
        ),
        (
            r#"{"id":1,"controls":[],"event":{"type":"nmi","vector":2}}"#,
            "controls",
        ),
        (
            r#"{"id":1,"protected_mode":"yes","event":{"type":"nmi","vector":2}}"#,
            "protected_mode",
        ),
        (
            r#"{"id":1,"delivering":5,"event":{"type":"nmi","vector":2}}"#,
            "delivering",
        ),
        (
            r#"{"id":1,"delivering":{"type":"nmi","vector":2},"event":{"type":"nmi","vector":2}}"#,
            "event.type",
        ),
        (
            r#"{"id":1,"delivering":{"type":"nmi","vector":2},"event":{"type":"hardware_exception","vector":8}}"#,
            "event.vector",
        ),
        (
            r#"{"id":1,"event":{"type":"software_interrupt","vector":3,"insn_len":0}}"#,
            "event.insn_len",
        ),
        (
            r#"{"id":1,"event":{"type":"hardware_exception","vector":13,"error_code":1.5}}"#,
            "event.error_code",
        ),
    ];
    for (line, field) in cases {
        assert_eq!(malformed(line).field.as_deref(), Some(field), "{line}");
    }
    assert_eq!(malformed("{oops").field, None);
}

#[test]
fn type_names_round_trip() {
    for kind in [
        InterruptionType::ExternalInterrupt,
        InterruptionType::Nmi,
        InterruptionType::HardwareException,
        InterruptionType::SoftwareInterrupt,
        InterruptionType::PrivilegedSoftwareException,
        InterruptionType::SoftwareException,
    ] {
        assert_eq!(kind_from_name(kind_name(kind)), Some(kind));
    }
}

#[test]
fn escaped_strings_are_accepted() {
    let s = parse(br#"{"id":"a\"b","event":{"type":"hardware\u005fexception","vector":13}}"#)
        .ok()
        .unwrap();
    assert_eq!(s.scenario.event.kind, InterruptionType::HardwareException);
}

#[test]
fn stream_keeps_order_skips_blank_lines_and_numbers_lines() {
    let (out, summary) = run_lines(
        "{\"id\":\"a\",\"event\":{\"type\":\"nmi\",\"vector\":2}}\n\n  \r\n{\"id\":\"b\"}\r\n{\"id\":\"c\",\"event\":{\"type\":\"external_interrupt\",\"vector\":32}}",
    );
    assert_eq!(
        summary,
        Summary {
            routed: 2,
            malformed: 1
        }
    );
    assert_eq!(out.len(), 3);
    assert_eq!(
        (out[0]["id"].as_str(), out[0]["outcome"].as_str()),
        (Some("a"), Some("deliver"))
    );
    assert_eq!(
        (
            out[1]["line"].as_u64(),
            out[1]["field"].as_str(),
            out[1]["id"].as_str()
        ),
        (Some(4), Some("event"), Some("b"))
    );
    assert_eq!(
        (out[2]["id"].as_str(), out[2]["vector"].as_u64()),
        (Some("c"), Some(32))
    );
}
