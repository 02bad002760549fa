//! SDM invariants every routed case must satisfy. Each is a named check over a case and its
//! outcome; the matrix command runs all of them and each has a unit test over the full matrix.
//! They restate SDM rules at the level of the outcome, not the routing code, and state the tables
//! they need themselves (Table 6-4's classes, Table 6-5, Table 6-1's error-code vectors): an
//! invariant that took them from nvmx would agree with nvmx by construction.

use super::model::{Case, Delivering, Pfec, NEW_DB_DR6, NEW_PF_ADDRESS};
use nvmx::event::{Event, InterruptionInfo, InterruptionType};
use nvmx::explain::{interruption_info, InfoFormat};
use nvmx::route::{route, ExitInfo, ExitReason, Outcome};
use x86::irq::{
    ALIGNMENT_CHECK_VECTOR, DEBUG_VECTOR, DIVIDE_ERROR_VECTOR, DOUBLE_FAULT_VECTOR,
    GENERAL_PROTECTION_FAULT_VECTOR, INVALID_TSS_VECTOR, PAGE_FAULT_VECTOR,
    SEGMENT_NOT_PRESENT_VECTOR, STACK_SEGEMENT_FAULT_VECTOR, VIRTUALIZATION_VECTOR,
};

/// #CP, which the `x86` crate does not name (SDM Table 6-1).
const CONTROL_PROTECTION_VECTOR: u8 = 21;

/// An event's class for Table 6-5 (SDM Table 6-4). Only hardware exceptions have a class other
/// than benign: an NMI, an external interrupt or a software interrupt with vector 13 is not a
/// #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

fn class(event: &Event) -> Class {
    if event.kind != InterruptionType::HardwareException {
        return Class::Benign;
    }
    match event.vector {
        DIVIDE_ERROR_VECTOR
        | INVALID_TSS_VECTOR
        | SEGMENT_NOT_PRESENT_VECTOR
        | STACK_SEGEMENT_FAULT_VECTOR
        | GENERAL_PROTECTION_FAULT_VECTOR
        | CONTROL_PROTECTION_VECTOR => Class::Contributory,
        // #VE has the page-fault class (Table 6-4).
        PAGE_FAULT_VECTOR | VIRTUALIZATION_VECTOR => Class::PageFault,
        DOUBLE_FAULT_VECTOR => Class::DoubleFault,
        _ => Class::Benign,
    }
}

/// What a second event arising while the first is delivered leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combination {
    /// The second is handled serially (delivered; the first is lost).
    Serial,
    /// A #DF is generated.
    DoubleFault,
    /// Shutdown: a triple-fault VM exit.
    TripleFault,
}

/// SDM Table 6-5, with its #DF row from SDM 6.15 ("Interrupt 8": a contributory exception or a
/// page fault while delivering #DF shuts the processor down). A #DF arising as the second event
/// is counted as contributory, the most severe class the table has for a second event.
fn table_6_5(first: Class, second: Class) -> Combination {
    let second = if second == Class::DoubleFault {
        Class::Contributory
    } else {
        second
    };
    match (first, second) {
        (Class::Contributory, Class::Contributory)
        | (Class::PageFault, Class::Contributory | Class::PageFault) => Combination::DoubleFault,
        (Class::DoubleFault, Class::Contributory | Class::PageFault) => Combination::TripleFault,
        _ => Combination::Serial,
    }
}

/// Whether exception `vector` pushes an error code in protected mode (SDM Table 6-1, "Error
/// Code" column).
fn vector_pushes_error_code(vector: u8) -> bool {
    matches!(
        vector,
        DOUBLE_FAULT_VECTOR
            | INVALID_TSS_VECTOR
            | SEGMENT_NOT_PRESENT_VECTOR
            | STACK_SEGEMENT_FAULT_VECTOR
            | GENERAL_PROTECTION_FAULT_VECTOR
            | PAGE_FAULT_VECTOR
            | ALIGNMENT_CHECK_VECTOR
            | CONTROL_PROTECTION_VECTOR
    )
}

/// One named invariant.
pub struct Invariant {
    /// Name, as in the unit tests and the matrix output.
    pub name: &'static str,
    /// The SDM rule it checks.
    pub rule: &'static str,
    /// `Err` says what is wrong with `outcome` for `case`.
    pub check: fn(&Case, &Outcome) -> Result<(), String>,
}

/// All invariants, in the order the matrix prints them.
pub const INVARIANTS: [Invariant; 9] = [
    Invariant {
        name: "accounts_for_both_events",
        rule:
            "exactly one outcome accounts for the new event and the one being delivered: an exit \
               carries the delivering event in IDT-vectoring information unless it is a #DF or \
               triple-fault exit; a delivery is the new event (serial, Table 6-5) or the #DF both \
               became (SDM 6.15, 25.9.3)",
        check: accounts_for_both_events,
    },
    Invariant {
        name: "pf_exit_reports_address_not_cr2",
        rule: "a #PF VM exit reports the faulting address as exit qualification and writes no CR2 \
               (a #DB exit its DR6-format bits, other exits 0); only a delivered #PF sets CR2 \
               (SDM 28.2.1, 28.1)",
        check: pf_exit_reports_address_not_cr2,
    },
    Invariant {
        name: "df_and_triple_fault_exits_have_no_idt_vectoring",
        rule: "a #DF or triple-fault VM exit is not during event delivery: IDT-vectoring \
               information invalid (SDM 25.9.3)",
        check: df_and_triple_fault_exits_have_no_idt_vectoring,
    },
    Invariant {
        name: "injected_event_is_never_intercepted",
        rule: "an event injected by VM entry is delivered, never intercepted; an exception during \
               its delivery is routed as if nothing were injected (SDM 27.6.1)",
        check: injected_event_is_never_intercepted,
    },
    Invariant {
        name: "pfec_rule_is_symmetric_in_bit_14",
        rule:
            "for a #PF with nothing being delivered, flipping exception-bitmap bit 14 flips exit \
               and no exit (SDM 25.6.3)",
        check: pfec_rule_is_symmetric_in_bit_14,
    },
    Invariant {
        name: "pfec_only_affects_page_faults",
        rule: "PFEC mask and match are consulted for #PF only (SDM 25.6.3)",
        check: pfec_only_affects_page_faults,
    },
    Invariant {
        name: "error_code_only_where_pushed",
        rule: "an error code is delivered or reported only for hardware exceptions that push one, \
               only in protected mode, and bit 11 says so (SDM 6.13, 25.9.2, 25.9.3)",
        check: error_code_only_where_pushed,
    },
    Invariant {
        name: "software_types_carry_instruction_length",
        rule: "an exit caused by, or during delivery of, INT n / INT1 / INT3 / INTO reports the \
               instruction length, and no other exit does (SDM 28.2.5)",
        check: software_types_carry_instruction_length,
    },
    Invariant {
        name: "info_fields_are_well_formed",
        rule: "every interruption-information field the outcome implies passes `explain`'s \
               format checks (SDM 25.8.3, 25.9.2, 25.9.3, 27.2.1.3)",
        check: info_fields_are_well_formed,
    },
];

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn exit_of(outcome: &Outcome) -> Option<&ExitInfo> {
    match outcome {
        Outcome::VmExit(exit) => Some(exit),
        Outcome::Deliver { .. } => None,
    }
}

fn df_info(protected_mode: bool) -> InterruptionInfo {
    Event::double_fault().info(protected_mode)
}

fn accounts_for_both_events(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let new = case.event();
    let pm = case.protected_mode;
    let Some(first) = case.delivering.event() else {
        return match outcome {
            Outcome::Deliver { event, .. } => ensure(*event == new, || {
                format!("delivered {event:?} instead of {new:?}")
            }),
            Outcome::VmExit(x) => {
                ensure(!x.idt_vectoring_info.valid(), || {
                    "IDT-vectoring information describes an event although none was being delivered"
                        .into()
                })?;
                let unacknowledged = new.kind == InterruptionType::ExternalInterrupt
                    && x.reason == ExitReason::ExternalInterrupt
                    && !x.interruption_info.valid()
                    && !case.controls().ack_interrupt_on_exit;
                ensure(
                    unacknowledged || x.interruption_info == new.info(pm),
                    || {
                        format!(
                            "exit reports {:#x}, not the new event",
                            x.interruption_info.0
                        )
                    },
                )
            }
        };
    };
    let combination = table_6_5(class(&first), class(&new));
    match outcome {
        Outcome::Deliver { event, .. } if *event == new => {
            ensure(combination == Combination::Serial, || {
                format!("new event delivered serially although Table 6-5 says {combination:?}")
            })
        }
        Outcome::Deliver { event, .. } => ensure(
            event.is_hardware(DOUBLE_FAULT_VECTOR) && combination == Combination::DoubleFault,
            || format!("delivered {event:?}, neither the new event nor a Table 6-5 #DF"),
        ),
        Outcome::VmExit(x) => match x.reason {
            ExitReason::TripleFault => ensure(combination == Combination::TripleFault, || {
                format!("triple fault although Table 6-5 says {combination:?}")
            }),
            ExitReason::ExceptionOrNmi if x.interruption_info == new.info(pm) => {
                ensure(x.idt_vectoring_info == first.info(pm), || {
                    format!(
                        "exit for the new event lost the delivering event: IDT-vectoring {:#x}",
                        x.idt_vectoring_info.0
                    )
                })
            }
            ExitReason::ExceptionOrNmi => ensure(
                x.interruption_info == df_info(pm) && combination == Combination::DoubleFault,
                || {
                    format!(
                        "exit reports {:#x}, neither event nor their #DF",
                        x.interruption_info.0
                    )
                },
            ),
            ExitReason::ExternalInterrupt => {
                Err("external-interrupt exit for an exception arising during delivery".into())
            }
        },
    }
}

fn pf_exit_reports_address_not_cr2(_: &Case, outcome: &Outcome) -> Result<(), String> {
    let hardware = |info: InterruptionInfo, vector| {
        info.valid()
            && info.interruption_type() == Some(InterruptionType::HardwareException)
            && info.vector() == vector
    };
    match outcome {
        // ExitInfo has no CR2 at all; what would reach CR2 is checked where it goes instead.
        Outcome::VmExit(x) => {
            let expected = if hardware(x.interruption_info, PAGE_FAULT_VECTOR) {
                NEW_PF_ADDRESS
            } else if hardware(x.interruption_info, DEBUG_VECTOR) {
                NEW_DB_DR6
            } else {
                0
            };
            ensure(x.qualification == expected, || {
                format!(
                    "exit qualification {:#x}, expected {expected:#x}",
                    x.qualification
                )
            })
        }
        Outcome::Deliver { event, .. } if event.is_hardware(PAGE_FAULT_VECTOR) => {
            ensure(event.payload == NEW_PF_ADDRESS, || {
                format!(
                    "delivered #PF sets CR2 {:#x}, not the address",
                    event.payload
                )
            })
        }
        Outcome::Deliver { .. } => Ok(()),
    }
}

fn df_and_triple_fault_exits_have_no_idt_vectoring(
    case: &Case,
    outcome: &Outcome,
) -> Result<(), String> {
    let Some(x) = exit_of(outcome) else {
        return Ok(());
    };
    let df_or_triple =
        x.reason == ExitReason::TripleFault || x.interruption_info == df_info(case.protected_mode);
    ensure(
        !df_or_triple || (!x.idt_vectoring_info.valid() && x.idt_vectoring_error_code.is_none()),
        || {
            format!(
                "IDT-vectoring {:#x} on a #DF/triple-fault exit",
                x.idt_vectoring_info.0
            )
        },
    )
}

fn injected_event_is_never_intercepted(case: &Case, outcome: &Outcome) -> Result<(), String> {
    if !case.injected {
        return Ok(());
    }
    if case.delivering == Delivering::Nothing {
        return ensure(
            matches!(outcome, Outcome::Deliver { event, .. } if *event == case.event()),
            || format!("injected event not delivered as is: {outcome:?}"),
        );
    }
    let raised = route(
        &Case {
            injected: false,
            ..*case
        }
        .scenario(),
    );
    ensure(raised == *outcome, || {
        "an exception during an injected event's delivery is routed differently".into()
    })
}

fn pfec_rule_is_symmetric_in_bit_14(case: &Case, outcome: &Outcome) -> Result<(), String> {
    if case.delivering != Delivering::Nothing
        || case.injected
        || !case.event().is_hardware(PAGE_FAULT_VECTOR)
    {
        return Ok(());
    }
    let flipped = route(
        &Case {
            own: !case.own,
            ..*case
        }
        .scenario(),
    );
    ensure(
        exit_of(outcome).is_some() != exit_of(&flipped).is_some(),
        || "flipping bit 14 did not flip exit/no exit".into(),
    )
}

fn pfec_only_affects_page_faults(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let zero = Pfec { mask: 0, match_: 0 };
    if case.event().is_hardware(PAGE_FAULT_VECTOR) || case.pfec == zero {
        return Ok(());
    }
    let without = route(
        &Case {
            pfec: zero,
            ..*case
        }
        .scenario(),
    );
    ensure(without == *outcome, || {
        "PFEC mask/match changed a non-#PF outcome".into()
    })
}

/// Whether `event` pushes an error code, from the SDM's list, in the case's mode.
fn expects_error_code(event: &Event, protected_mode: bool) -> bool {
    protected_mode
        && event.kind == InterruptionType::HardwareException
        && vector_pushes_error_code(event.vector)
}

fn error_code_only_where_pushed(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let pm = case.protected_mode;
    match outcome {
        Outcome::Deliver { event, error_code } => {
            ensure(
                error_code.is_some() == expects_error_code(event, pm),
                || format!("delivery of {event:?} with error code {error_code:?}"),
            )?;
            ensure(error_code.is_none_or(|ec| ec == event.error_code), || {
                "delivered error code differs from the event's".into()
            })
        }
        Outcome::VmExit(x) => {
            let fields = [
                (x.interruption_info, x.interruption_error_code, "exit"),
                (
                    x.idt_vectoring_info,
                    x.idt_vectoring_error_code,
                    "IDT-vectoring",
                ),
            ];
            for (info, code, name) in fields {
                ensure(code.is_some() == info.deliver_error_code(), || {
                    format!("{name} bit 11 and error code {code:?} disagree")
                })?;
                let described = Event::from_info(info, 0, 1, 0);
                let expected = described.is_some_and(|e| expects_error_code(&e, pm));
                ensure(info.deliver_error_code() == expected, || {
                    format!("{name} information {:#x}: error code where none is pushed, or none where one is", info.0)
                })?;
            }
            Ok(())
        }
    }
}

fn software_types_carry_instruction_length(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let Some(x) = exit_of(outcome) else {
        return Ok(());
    };
    let software = |info: InterruptionInfo| {
        info.valid() && info.interruption_type().is_some_and(|t| t.is_software())
    };
    let expected = if software(x.interruption_info) {
        Some(case.event().insn_len)
    } else if software(x.idt_vectoring_info) {
        case.delivering.event().map(|d| d.insn_len)
    } else {
        None
    };
    ensure(x.instruction_length == expected, || {
        format!(
            "instruction length {:?}, expected {expected:?}",
            x.instruction_length
        )
    })?;
    ensure(expected.is_none_or(|len| (1..=15).contains(&len)), || {
        "instruction length outside 1-15".into()
    })
}

fn info_fields_are_well_formed(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let fields = match outcome {
        // Delivery is what VM-entry injection of the same event would request.
        Outcome::Deliver { event, .. } => {
            vec![(InfoFormat::Entry, event.info(case.protected_mode))]
        }
        Outcome::VmExit(x) => vec![
            (InfoFormat::Exit, x.interruption_info),
            (InfoFormat::IdtVectoring, x.idt_vectoring_info),
        ],
    };
    for (format, info) in fields {
        let decoded = interruption_info(format, info.0);
        ensure(!decoded.contains("error:"), || {
            format!("{format:?} {:#x}: {decoded}", info.0)
        })?;
    }
    Ok(())
}
