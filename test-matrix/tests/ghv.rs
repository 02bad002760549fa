//! End-to-end: the guest hypervisor `ghv` booted bare on Bochs' emulated VT-x, where its log is
//! what the (emulated) hardware does, and under l1-hv, whose nested VT-x must reproduce that log
//! line for line. See docs/ghv.md for the scenarios and the log format.

mod common;

use common::{demo, Run};

/// ghv's own lines, `ghv: ...`. Under l1-hv each line ghv writes arrives behind l1-hv's prefix
/// for the guest (`... ghv: ghv: ...`): the text from the second `ghv: ` on is ghv's line.
fn ghv_lines(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|line| {
            if line.starts_with("ghv: ") {
                Some(line)
            } else {
                line.find("ghv: ghv: ")
                    .map(|at| &line[at + "ghv: ".len()..])
            }
        })
        .collect()
}

fn bare() -> Run {
    demo(&["--bare", "ghv", "--timeout", "60"])
}

fn unmapped_page(lines: &[&str]) -> u64 {
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("ghv: l3 unmapped page=0x"))
        .expect("ghv names its unmapped page");
    u64::from_str_radix(line, 16).expect("hex address")
}

#[test]
fn ghv_bare_on_bochs_passes_its_scenarios() {
    let run = bare();
    let lines = ghv_lines(&run.console);
    let page = unmapped_page(&lines);
    let has = |line: &str| lines.contains(&line);
    let expected = [
        // #UD left to L3: delivered, no exit.
        "ghv: ud-delivered delivered vector=6 error_code=none cr2=0x0".to_string(),
        // #UD intercepted: exit reason 0, interruption info valid | hardware exception (3) |
        // vector 6 (SDM 25.9.2); the instruction length is undefined for it, logged as 0.
        // ghv re-injects it and L3 sees the same #UD.
        "ghv: ud-intercepted exit reason=0 intr_info=0x80000306 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=0".into(),
        "ghv: ud-intercepted delivered vector=6 error_code=none cr2=0x0".into(),
        "ghv: de-intercepted exit reason=0 intr_info=0x80000300 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=0".into(),
        // INT3: a software exception (type 6) with instruction length 1 (SDM 28.2.5).
        "ghv: bp-intercepted exit reason=0 intr_info=0x80000603 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=1".into(),
        "ghv: bp-intercepted delivered vector=3 error_code=none cr2=0x0".into(),
        // INTO is #UD in 64-bit mode: no #OF exit although #OF is intercepted.
        "ghv: into-is-ud-in-64-bit-mode delivered vector=6 error_code=none cr2=0x0".into(),
        // #GP(0) for a non-canonical address, with its error code (bit 11).
        "ghv: gp-intercepted exit reason=0 intr_info=0x80000b0d intr_error=0x0 qual=0x0 idt_info=0x0 idt_error=none insn_len=0".into(),
        "ghv: gp-intercepted delivered vector=13 error_code=0x0 cr2=0x0".into(),
        // #PF, bit 14 = 1, mask = match = 0: exit, qualification = the faulting address; ghv
        // loads CR2 before re-injecting, so L3 reads the same address.
        format!("ghv: pf-bit14-mask0-match0 exit reason=0 intr_info=0x80000b0e intr_error=0x0 qual={page:#x} idt_info=0x0 idt_error=none insn_len=0"),
        format!("ghv: pf-bit14-mask0-match0 delivered vector=14 error_code=0x0 cr2={page:#x}"),
        // ((0 & 1) == 1) is false, bit 14 = 1: no exit, the CPU delivers the fault itself.
        format!("ghv: pf-bit14-mask1-match1 delivered vector=14 error_code=0x0 cr2={page:#x}"),
        // ((0 & 1) == 0) is true, bit 14 = 0: no exit.
        format!("ghv: pf-nobit14-mask1-match0 delivered vector=14 error_code=0x0 cr2={page:#x}"),
        // ((0 & 1) == 1) is false, bit 14 = 0: exit.
        format!("ghv: pf-nobit14-mask1-match1 exit reason=0 intr_info=0x80000b0e intr_error=0x0 qual={page:#x} idt_info=0x0 idt_error=none insn_len=0"),
        // #PF (write, not present: 0x2) while pushing the #UD frame: IDT-vectoring information
        // valid, describing the #UD.
        format!("ghv: pf-during-ud-delivery exit reason=0 intr_info=0x80000b0e intr_error=0x2 qual={:#x} idt_info=0x80000306 idt_error=none insn_len=0", page + 0xff8),
        format!("ghv: pf-during-ud-delivery delivered vector=14 error_code=0x2 cr2={:#x}", page + 0xff8),
        // The same during INT3: the interrupted event is a software exception, so the
        // instruction length is defined.
        format!("ghv: pf-during-bp-delivery exit reason=0 intr_info=0x80000b0e intr_error=0x2 qual={:#x} idt_info=0x80000603 idt_error=none insn_len=1", page + 0xff8),
        // #DE through a not-present gate: #NP, contributory during contributory → #DF(0).
        "ghv: df-delivered delivered vector=8 error_code=0x0 cr2=0x0".into(),
        // An intercepted #DF: the original events are not reported, because a VM exit caused
        // directly by the resulting #DF does not count as "during event delivery" (SDM 28.2.4).
        "ghv: df-intercepted exit reason=0 intr_info=0x80000b08 intr_error=0x0 qual=0x0 idt_info=0x0 idt_error=none insn_len=0".into(),
        // #NP intercepted: error code 0x3 (vector 0, IDT, EXT), #DE in the IDT-vectoring
        // information; ghv combines them into the #DF the CPU would have raised.
        "ghv: np-during-de-intercepted exit reason=0 intr_info=0x80000b0b intr_error=0x3 qual=0x0 idt_info=0x80000300 idt_error=none insn_len=0".into(),
        "ghv: np-during-de-intercepted delivered vector=8 error_code=0x0 cr2=0x0".into(),
        // Instruction exits: CPUID (10), HLT (12), OUT 0x80, AL (30: port 0x80, 1 byte, out,
        // immediate operand), VMCALL (18), each with its instruction length.
        "ghv: cpuid exit reason=10 intr_info=0x0 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=2".into(),
        "ghv: hlt exit reason=12 intr_info=0x0 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=1".into(),
        "ghv: out exit reason=30 intr_info=0x0 intr_error=none qual=0x800040 idt_info=0x0 idt_error=none insn_len=2".into(),
        "ghv: vmcall-other exit reason=18 intr_info=0x0 intr_error=none qual=0x0 idt_info=0x0 idt_error=none insn_len=3".into(),
        "ghv: vmcall-other completed without exception".into(),
    ];
    let missing: Vec<&String> = expected.iter().filter(|line| !has(line)).collect();
    assert!(
        missing.is_empty(),
        "lines missing from ghv's log: {missing:#?}"
    );
    // Scenarios that must not exit do not: the only line of ud-delivered is its delivery.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("ghv: ud-delivered "))
            .count(),
        1
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("ghv: pf-bit14-mask1-match1 "))
            .count(),
        1
    );
    assert!(!run.console.contains("UNEXPECTED"));
    assert_eq!(lines.last(), Some(&"ghv: verdict PASS (22 scenarios)"));
    assert_eq!(run.status, Some(0));
}

/// The `nested ...` counter line l1-hv prints for guest run `index`.
fn nested_counters(console: &str, index: u32) -> &str {
    let prefix = format!("l1-hv: guest {index} ghv: nested ");
    console
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("l1-hv prints nested counters")
}

/// ghv under l1-hv, with VMCS shadowing (run 1) and without (run 2): both logs equal the bare
/// one line for line; with shadowing every reflected exception costs l1-hv exactly two exits
/// (L3's exception, ghv's VMRESUME) and ghv's VMREADs none; without, they exit.
#[test]
fn ghv_under_l1hv_matches_bare_with_and_without_shadowing() {
    let reference = bare();
    let nested = demo(&[
        "--guest",
        "ghv",
        "--guest",
        "ghv shadowing=off",
        "--timeout",
        "120",
    ]);
    let bare_lines = ghv_lines(&reference.console);
    assert!(
        bare_lines.contains(&"ghv: verdict PASS (22 scenarios)"),
        "the bare reference run must pass"
    );
    let second = nested
        .console
        .find("l1-hv: guest 2 ghv: start")
        .expect("two ghv runs");
    let (with_shadowing, without_shadowing) = nested.console.split_at(second);
    assert_eq!(ghv_lines(with_shadowing), bare_lines, "shadowing on");
    assert_eq!(ghv_lines(without_shadowing), bare_lines, "shadowing off");

    let on = nested_counters(&nested.console, 1);
    assert!(on.contains("shadowing=on"), "{on}");
    assert!(on.contains(" exception-reflections=10 "), "{on}");
    assert!(on.contains(" exits-per-reflected-exception=2 "), "{on}");
    assert!(on.contains(" vmread-exits=0 "), "{on}");
    let off = nested_counters(&nested.console, 2);
    assert!(off.contains("shadowing=off"), "{off}");
    assert!(!off.contains(" exits-per-reflected-exception=2 "), "{off}");
    assert!(!off.contains(" vmread-exits=0 "), "{off}");
    assert_eq!(nested.status, Some(0));
}
