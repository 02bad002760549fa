use super::invariants::INVARIANTS;
use super::model::{cases, Case, Delivering, Pfec};
use super::scenario_json::decide_input;
use super::*;
use nvmx::event::{Event, InterruptionInfo, InterruptionType};
use nvmx::route::{triple_fault_exit, ExitInfo, ExitReason};
use std::collections::HashSet;
use std::io::BufReader;

/// Runs invariant `name` over the full matrix and asserts it never fails.
fn holds(name: &str) {
    let (index, invariant) = INVARIANTS
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == name)
        .expect("invariant exists");
    let mut checked = 0;
    let failures: Vec<String> = cases()
        .filter_map(|case| {
            checked += 1;
            (invariant.check)(&case, &route(&case.scenario()))
                .err()
                .map(|what| format!("{}: {what}", case.id()))
        })
        .take(5)
        .collect();
    assert!(
        failures.is_empty(),
        "invariant {index} {name}: {failures:#?}"
    );
    assert_eq!(checked, MATRIX_SIZE);
}

/// The matrix's size; docs/matrix.md explains the product.
const MATRIX_SIZE: usize = 425_920;

#[test]
fn accounts_for_both_events() {
    holds("accounts_for_both_events");
}

#[test]
fn pf_exit_reports_address_not_cr2() {
    holds("pf_exit_reports_address_not_cr2");
}

#[test]
fn df_and_triple_fault_exits_have_no_idt_vectoring() {
    holds("df_and_triple_fault_exits_have_no_idt_vectoring");
}

#[test]
fn injected_event_is_never_intercepted() {
    holds("injected_event_is_never_intercepted");
}

#[test]
fn pfec_rule_is_symmetric_in_bit_14() {
    holds("pfec_rule_is_symmetric_in_bit_14");
}

#[test]
fn pfec_only_affects_page_faults() {
    holds("pfec_only_affects_page_faults");
}

#[test]
fn error_code_only_where_pushed() {
    holds("error_code_only_where_pushed");
}

#[test]
fn software_types_carry_instruction_length() {
    holds("software_types_carry_instruction_length");
}

#[test]
fn info_fields_are_well_formed() {
    holds("info_fields_are_well_formed");
}

#[test]
fn every_invariant_has_a_test_of_the_same_name() {
    let source = include_str!("tests.rs");
    for invariant in &INVARIANTS {
        assert!(
            source.contains(&format!("fn {}()", invariant.name)),
            "{}",
            invariant.name
        );
    }
}

fn check(name: &str, case: &Case, outcome: &Outcome) -> Result<(), String> {
    let invariant = INVARIANTS.iter().find(|i| i.name == name).expect("exists");
    (invariant.check)(case, outcome)
}

fn gp_during_pf() -> Case {
    Case {
        delivering: Delivering::PageFault,
        kind: InterruptionType::HardwareException,
        vector: 13,
        error_code: 0x18,
        own: false,
        rest: true,
        pfec: Pfec { mask: 0, match_: 0 },
        protected_mode: true,
        injected: false,
    }
}

#[test]
fn invariants_reject_wrong_outcomes() {
    let case = gp_during_pf();
    let right = route(&case.scenario());
    // #GP during #PF with #DF intercepted: a #DF exit without IDT-vectoring information.
    let Outcome::VmExit(exit) = right else {
        panic!("expected a #DF exit, got {right:?}")
    };
    assert_eq!(exit.interruption_info.vector(), 8);
    let with_idt = Outcome::VmExit(ExitInfo {
        idt_vectoring_info: case.delivering.event().unwrap().info(true),
        idt_vectoring_error_code: Some(6),
        ..exit
    });
    assert!(check(
        "df_and_triple_fault_exits_have_no_idt_vectoring",
        &case,
        &with_idt
    )
    .is_err());
    // Delivering the new #GP instead of the #DF loses the #PF.
    let serial = Outcome::Deliver {
        event: case.event(),
        error_code: Some(0x18),
    };
    assert!(check("accounts_for_both_events", &case, &serial).is_err());
    // A triple fault where Table 6-5 says #DF.
    assert!(check(
        "accounts_for_both_events",
        &case,
        &Outcome::VmExit(triple_fault_exit())
    )
    .is_err());
    // An error code in real mode.
    let real = Case {
        protected_mode: false,
        delivering: Delivering::Nothing,
        own: false,
        rest: false,
        ..case
    };
    let pushed = Outcome::Deliver {
        event: real.event(),
        error_code: Some(0x18),
    };
    assert!(check("error_code_only_where_pushed", &real, &pushed).is_err());
    // An injected event that exits.
    let injected = Case {
        injected: true,
        own: true,
        ..real
    };
    assert!(matches!(
        route(&injected.scenario()),
        Outcome::Deliver { .. }
    ));
    let intercepted = Outcome::VmExit(ExitInfo {
        reason: ExitReason::ExceptionOrNmi,
        interruption_info: injected.event().info(false),
        interruption_error_code: None,
        qualification: 0,
        idt_vectoring_info: InterruptionInfo::INVALID,
        idt_vectoring_error_code: None,
        instruction_length: None,
    });
    assert!(check(
        "injected_event_is_never_intercepted",
        &injected,
        &intercepted
    )
    .is_err());
    // A #PF exit whose qualification is not the address, and an INT3 exit without its length.
    let pf = Case {
        vector: 14,
        error_code: 2,
        own: true,
        rest: false,
        delivering: Delivering::Nothing,
        ..case
    };
    let Outcome::VmExit(pf_exit) = route(&pf.scenario()) else {
        panic!("#PF must exit")
    };
    let wrong_address = Outcome::VmExit(ExitInfo {
        qualification: 0,
        ..pf_exit
    });
    assert!(check("pf_exit_reports_address_not_cr2", &pf, &wrong_address).is_err());
    let int3 = Case {
        kind: InterruptionType::SoftwareException,
        vector: 3,
        error_code: 0,
        ..pf
    };
    let Outcome::VmExit(int3_exit) = route(&int3.scenario()) else {
        panic!("INT3 must exit")
    };
    assert_eq!(int3_exit.instruction_length, Some(1));
    let no_length = Outcome::VmExit(ExitInfo {
        instruction_length: None,
        ..int3_exit
    });
    assert!(check("software_types_carry_instruction_length", &int3, &no_length).is_err());
    // An exit reporting bit 11 for #UD is malformed.
    let ud = Outcome::VmExit(ExitInfo {
        interruption_info: InterruptionInfo(0x8000_0b06),
        interruption_error_code: Some(0),
        ..int3_exit
    });
    assert!(check("info_fields_are_well_formed", &int3, &ud).is_err());
}

#[test]
fn matrix_size_and_unique_ids() {
    let mut ids = HashSet::new();
    let mut n = 0;
    for case in cases() {
        n += 1;
        assert!(ids.insert(case.id()), "duplicate id {}", case.id());
    }
    assert_eq!(n, MATRIX_SIZE);
}

#[test]
fn ids_and_descriptions_are_stable() {
    let case = Case {
        vector: 14,
        error_code: 0x3,
        pfec: Pfec { mask: 2, match_: 2 },
        own: true,
        rest: false,
        ..gp_during_pf()
    };
    assert_eq!(case.id(), "pf/hw14/ec0x3/pfec-W-W/own1/rest0/prot/direct");
    assert_eq!(
        case.description(),
        "hardware exception #PF (vector 14), error code 0x3, arising while delivering page fault #PF; \
         exception-bitmap bit 14 set, other controls clear; PFEC mask 0x2 match 0x2; protected mode; \
         raised in the guest"
    );
}

#[test]
fn every_pf_error_code_pattern_and_pfec_class_is_enumerated() {
    let pf: HashSet<(u16, Pfec)> = cases()
        .filter(|c| {
            c.delivering == Delivering::Nothing
                && c.vector == 14
                && c.kind == InterruptionType::HardwareException
        })
        .map(|c| (c.error_code, c.pfec))
        .collect();
    assert_eq!(pf.len(), 128 * 20);
    assert!(pf.contains(&(
        0x7f,
        Pfec {
            mask: 0x8000,
            match_: 0x8000
        }
    )));
}

#[test]
fn all_outcome_classes_occur() {
    let classes: HashSet<OutcomeClass> = cases()
        .map(|c| OutcomeClass::of(&c, &route(&c.scenario())))
        .collect();
    for class in [
        OutcomeClass::Deliver,
        OutcomeClass::DeliverDoubleFault,
        OutcomeClass::Exit(0),
        OutcomeClass::Exit(1),
        OutcomeClass::Exit(2),
    ] {
        assert!(classes.contains(&class), "{class:?} never occurs");
    }
}

/// The `decide` lines of the matrix mean what the cases mean: `decide`'s answer for each equals
/// `route`'s outcome, field by field, and no VM exit carries a `cr2`.
#[test]
fn decide_answers_the_scenario_lines_like_route() {
    let mut input = Vec::new();
    let all: Vec<Case> = cases().step_by(3).collect();
    for case in &all {
        serde_json::to_writer(&mut input, &decide_input(case)).unwrap();
        input.push(b'\n');
    }
    let mut output = Vec::new();
    let summary = crate::decide::process(&mut BufReader::new(&input[..]), &mut output).unwrap();
    assert_eq!(summary.malformed, 0);
    let answers: Vec<serde_json::Value> = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(answers.len(), all.len());
    for (case, answer) in all.iter().zip(&answers) {
        assert_eq!(answer["id"], case.id());
        match route(&case.scenario()) {
            Outcome::Deliver { event, error_code } => {
                assert_eq!(answer["outcome"], "deliver", "{}", case.id());
                assert_eq!(answer["vector"], event.vector);
                assert_eq!(answer["error_code"], serde_json::json!(error_code));
                let expected = Event::from_info(event.info(true), 0, 1, 0).map(|e| e.kind);
                assert_eq!(expected, Some(event.kind));
            }
            Outcome::VmExit(x) => {
                assert_eq!(answer["outcome"], "vmexit", "{}", case.id());
                assert!(
                    answer.get("cr2").is_none(),
                    "a VM exit writes no CR2: {answer}"
                );
                assert_eq!(answer["exit_reason"], x.reason as u16);
                assert_eq!(answer["exit_interruption_info"], x.interruption_info.0);
                assert_eq!(answer["exit_qualification"], x.qualification);
                assert_eq!(answer["idt_vectoring_info"], x.idt_vectoring_info.0);
                assert_eq!(
                    answer["idt_vectoring_error_code"],
                    serde_json::json!(x.idt_vectoring_error_code)
                );
            }
        }
    }
}

#[test]
fn summary_names_every_invariant_and_outcome() {
    let mut tally = Tally {
        total: 2,
        ..Tally::default()
    };
    tally.by_outcome.insert(OutcomeClass::Exit(2), 2);
    tally.violations[1] = 1;
    tally.examples.push((1, "some/id".into(), "wrong".into()));
    let text = summary(&tally);
    assert!(text.contains("exit 2 (triple fault)"));
    assert!(
        text.contains("pf_exit_reports_address_not_cr2                  VIOLATED in 1 scenarios"),
        "{text}"
    );
    assert!(text.contains("    some/id: wrong"));
    for invariant in &INVARIANTS {
        assert!(text.contains(invariant.name));
    }
}
