//! Target `route`: arbitrary routing scenarios (every field of [`Scenario`]; events are the
//! well-formed ones hardware produces) through [`route`], and the same event through
//! [`inject_event`] against a software vmcs12 that passes the entry checks.
//!
//! Properties of [`route`] (the SDM invariants of test-matrix's `invariants.rs`, restated over
//! [`Scenario`] because those are written over the matrix's own case type):
//! - exactly one outcome accounts for both events: a delivery is the new event when Table 6-5
//!   says serial and nothing intercepts it, or the #DF both became; an exit is for the new event
//!   (carrying the delivering one in IDT-vectoring information), the #DF, or a triple fault;
//!   interception follows SDM 25.2 (exception bitmap, PFEC rule, NMI/external-interrupt exiting);
//! - a #PF exit reports the address as exit qualification, a #DB exit its DR6 bits, others 0; a
//!   delivered #PF carries its CR2 (SDM 28.2.1);
//! - #DF and triple-fault exits have no IDT-vectoring information (SDM 28.2.4);
//! - an event injected by VM entry is never intercepted, and an exception during its delivery is
//!   routed as if nothing were injected (SDM 27.6.1);
//! - PFEC: flipping bitmap bit 14 flips exit/no exit of a lone #PF; mask/match matter only for
//!   #PF (SDM 25.6.3);
//! - error codes only where pushed, bit 11 agreeing (SDM 6.13, 28.2.2, 28.2.4);
//! - software-type exits carry the instruction length 1–15, no others (SDM 28.2.5);
//! - interruption-information fields are well-formed (no reserved type or bits, NMI vector 2,
//!   exception vectors below 32; SDM 25.9.2).
//!
//! Properties of [`inject_event`]: an injection writes VM-entry fields that pass the VM-entry
//! event-injection checks of [`check_vmcs12`] (SDM 27.2.1.3) and sets CR2 only for a delivered
//! #PF; a reflection clears the VM-entry field and never sets CR2; a triple fault only for L2,
//! a reflection only for L3; the debugger pause only for #BP/INT3.

use crate::config::{
    entry_ram, good_vmcs12, host_caps_with_cet, real_mode_vmcs12, GUEST_PHYS_ADDR_BITS,
};
use crate::memory::Ram;
use arbitrary::Arbitrary;
use nvmx::event::{vector_has_error_code, Event, InterruptionInfo, InterruptionType};
use nvmx::inject::{inject_event, InjectHost, InjectOutcome, Running, TraceRecord, TraceSink};
use nvmx::nested::{check_vmcs12, EntryContext};
use nvmx::route::{
    combine, route, Combination, ExitInfo, ExitReason, InterceptControls, Outcome, Scenario,
};
use shadow_vmcs::{SoftVmcs, Vmcs};
use std::sync::OnceLock;
use x86::vmx::vmcs::{control, guest};

/// The whole input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Exception bitmap.
    pub exception_bitmap: u32,
    /// PFEC mask.
    pub pfec_mask: u32,
    /// PFEC match.
    pub pfec_match: u32,
    /// Bit 0 NMI exiting, 1 external-interrupt exiting, 2 acknowledge interrupt on exit,
    /// 3 protected mode, 4 injected, 5 CET offered, 6 L3 (else L2) for `inject_event`, 7 the
    /// delivering event already sits in the VM-entry fields (else it is `during`), 8 real-mode
    /// vmcs12, 9 RFLAGS.TF, 10 debugger attached.
    pub flags: u16,
    /// The event being delivered.
    pub delivering: Option<EventInput>,
    /// The new event.
    pub event: EventInput,
}

/// A well-formed event.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventInput {
    /// Hardware exception `vector % 32`.
    Hardware {
        /// Vector.
        vector: u8,
        /// Error code (bits 31:16 dropped as hardware never sets them).
        error_code: u32,
    },
    /// #PF.
    PageFault {
        /// Error code.
        error_code: u32,
        /// Faulting address.
        cr2: u64,
    },
    /// Hardware #DB with pending-debug bits.
    Debug(u64),
    /// NMI.
    Nmi,
    /// External interrupt.
    External(u8),
    /// `kind % 3`: INT n (`vector`), INT1, INT3/INTO (by `vector` bit 0); length 1 + `len % 15`.
    Software {
        /// Which instruction.
        kind: u8,
        /// Vector of INT n.
        vector: u8,
        /// Instruction length.
        len: u8,
    },
}

impl EventInput {
    /// The event.
    pub fn event(self) -> Event {
        match self {
            EventInput::Hardware { vector, error_code } => {
                Event::hardware_exception(vector % 32, error_code)
            }
            EventInput::PageFault { error_code, cr2 } => Event::page_fault(error_code, cr2),
            EventInput::Debug(dr6) => Event::debug(dr6),
            EventInput::Nmi => Event::nmi(),
            EventInput::External(vector) => Event::external_interrupt(vector),
            EventInput::Software { kind, vector, len } => {
                let len = 1 + len % 15;
                match kind % 3 {
                    0 => Event::software(InterruptionType::SoftwareInterrupt, vector, len),
                    1 => Event::software(InterruptionType::PrivilegedSoftwareException, 1, len),
                    _ => {
                        Event::software(InterruptionType::SoftwareException, 3 + (vector & 1), len)
                    }
                }
            }
        }
    }
}

impl Input {
    fn flag(&self, bit: u32) -> bool {
        self.flags & 1 << bit != 0
    }

    /// The scenario this input describes.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            controls: InterceptControls {
                exception_bitmap: self.exception_bitmap,
                pfec_mask: self.pfec_mask,
                pfec_match: self.pfec_match,
                nmi_exiting: self.flag(0),
                external_interrupt_exiting: self.flag(1),
                ack_interrupt_on_exit: self.flag(2),
            },
            protected_mode: self.flag(3),
            injected: self.flag(4),
            // A #DF arises only from Table 6-5 (SDM 6.15), never on its own while another
            // event is being delivered: a new #DF comes without a delivering event.
            delivering: self
                .delivering
                .map(EventInput::event)
                .filter(|_| !self.event.event().is_hardware(8)),
            event: self.event.event(),
        }
    }
}

/// Routes and injects, checking every property.
pub fn check(input: &Input) {
    let s = input.scenario();
    let outcome = route(&s);
    check_route(&s, &outcome);
    check_inject(input);
}

/// The routing outcome class, for the `seeds` classes.
pub fn classify(input: &Input) -> String {
    let s = input.scenario();
    let delivering = s
        .delivering
        .map_or("none".to_string(), |d| format!("{:?}", d.class()));
    let outcome = match route(&s) {
        Outcome::Deliver { event, .. } => format!("deliver-{:?}-{}", event.kind, event.vector),
        Outcome::VmExit(x) => format!("exit-{:?}-{:#x}", x.reason, x.interruption_info.0),
    };
    format!("{delivering}-{outcome}")
}

/// SDM 25.2: whether `event`, arising in the guest, causes a VM exit under `c`.
fn wants_exit(c: &InterceptControls, event: &Event) -> bool {
    let bit = |v: u8| v < 32 && c.exception_bitmap & 1 << v != 0;
    match event.kind {
        InterruptionType::ExternalInterrupt => c.external_interrupt_exiting,
        InterruptionType::Nmi => c.nmi_exiting,
        InterruptionType::HardwareException if event.vector == 14 => {
            let matched = u32::from(event.error_code) & c.pfec_mask == c.pfec_match;
            if bit(14) {
                matched
            } else {
                !matched
            }
        }
        InterruptionType::HardwareException
        | InterruptionType::PrivilegedSoftwareException
        | InterruptionType::SoftwareException => bit(event.vector),
        InterruptionType::SoftwareInterrupt | InterruptionType::OtherEvent => false,
    }
}

fn is_hardware(info: InterruptionInfo, vector: u8) -> bool {
    info.valid()
        && info.interruption_type() == Some(InterruptionType::HardwareException)
        && info.vector() == vector
}

fn check_route(s: &Scenario, outcome: &Outcome) {
    accounts_for_both_events(s, outcome);
    let new = s.event;
    match outcome {
        Outcome::Deliver { event, error_code } => {
            if event.is_hardware(14) {
                assert_eq!(event.payload, new.payload, "delivered #PF lost its CR2");
            }
            let expected = s.protected_mode
                && event.kind == InterruptionType::HardwareException
                && vector_has_error_code(event.vector);
            assert_eq!(
                error_code.is_some(),
                expected,
                "error code of delivered {event:?}"
            );
            assert!(
                error_code.is_none_or(|ec| ec == event.error_code),
                "delivered error code"
            );
            well_formed(event.info(s.protected_mode));
        }
        Outcome::VmExit(x) => check_exit(s, x),
    }
    // Injected events are exempt from interception; what arises during their delivery is not.
    if s.injected {
        if s.delivering.is_none() {
            assert!(
                matches!(outcome, Outcome::Deliver { event, .. } if *event == new),
                "injected event not delivered as is: {outcome:?}"
            );
        } else {
            assert_eq!(
                route(&Scenario {
                    injected: false,
                    ..*s
                }),
                *outcome,
                "injected changed it"
            );
        }
    }
    let mut flipped = *s;
    flipped.controls.exception_bitmap ^= 1 << 14;
    if s.delivering.is_none() && !s.injected && new.is_hardware(14) {
        let exits = |o: &Outcome| matches!(o, Outcome::VmExit(_));
        assert_ne!(
            exits(outcome),
            exits(&route(&flipped)),
            "bit 14 did not flip the #PF exit"
        );
    }
    if !new.is_hardware(14) {
        let mut zero = *s;
        zero.controls.pfec_mask = 0;
        zero.controls.pfec_match = 0;
        assert_eq!(
            route(&zero),
            *outcome,
            "PFEC mask/match changed a non-#PF outcome"
        );
    }
}

fn accounts_for_both_events(s: &Scenario, outcome: &Outcome) {
    let (new, pm, c) = (s.event, s.protected_mode, &s.controls);
    let df = Event::double_fault();
    let Some(first) = s.delivering else {
        match outcome {
            Outcome::Deliver { event, .. } => {
                assert_eq!(*event, new, "delivered another event");
                assert!(
                    s.injected || !wants_exit(c, &new),
                    "an intercepted event was delivered"
                );
            }
            Outcome::VmExit(x) => {
                assert!(
                    !s.injected && wants_exit(c, &new),
                    "exit for an event nothing intercepts"
                );
                assert!(
                    !x.idt_vectoring_info.valid(),
                    "IDT-vectoring without a delivering event"
                );
                let unacknowledged = new.kind == InterruptionType::ExternalInterrupt
                    && !c.ack_interrupt_on_exit
                    && !x.interruption_info.valid();
                assert!(
                    unacknowledged || x.interruption_info == new.info(pm),
                    "exit info"
                );
            }
        }
        return;
    };
    let combination = combine(first.class(), new.class());
    match outcome {
        Outcome::Deliver { event, .. } if *event == new => {
            assert_eq!(
                combination,
                Combination::Serial,
                "serial delivery against Table 6-5"
            );
            assert!(
                !wants_exit(c, &new),
                "an intercepted exception was delivered"
            );
        }
        Outcome::Deliver { event, .. } => {
            assert!(
                event.is_hardware(8) && combination == Combination::DoubleFault,
                "{event:?}"
            );
            assert!(
                !wants_exit(c, &new) && !wants_exit(c, &df),
                "an intercepted #DF delivered"
            );
        }
        Outcome::VmExit(x) => match x.reason {
            ExitReason::TripleFault => {
                assert_eq!(combination, Combination::TripleFault, "triple fault");
                assert!(
                    !wants_exit(c, &new),
                    "triple fault although the exception exits"
                );
            }
            _ if x.interruption_info == new.info(pm)
                || (new.kind == InterruptionType::ExternalInterrupt
                    && !x.interruption_info.valid()) =>
            {
                assert!(
                    wants_exit(c, &new),
                    "exit for an exception nothing intercepts"
                );
                assert_eq!(
                    x.idt_vectoring_info,
                    first.info(pm),
                    "exit lost the delivering event"
                );
            }
            _ => {
                assert_eq!(
                    x.interruption_info,
                    df.info(pm),
                    "exit for neither event nor #DF"
                );
                assert_eq!(
                    combination,
                    Combination::DoubleFault,
                    "#DF exit against Table 6-5"
                );
                assert!(!wants_exit(c, &new) && wants_exit(c, &df), "#DF exit");
            }
        },
    }
}

fn check_exit(s: &Scenario, x: &ExitInfo) {
    let new = s.event;
    // The exit is for the new event or a #DF: only a #PF or #DB exit reports its payload.
    let reports_payload =
        is_hardware(x.interruption_info, 14) || is_hardware(x.interruption_info, 1);
    let expected_qualification = if reports_payload { new.payload } else { 0 };
    assert_eq!(
        x.qualification, expected_qualification,
        "exit qualification"
    );
    let df_or_triple = x.reason == ExitReason::TripleFault || is_hardware(x.interruption_info, 8);
    if df_or_triple {
        assert!(
            !x.idt_vectoring_info.valid() && x.idt_vectoring_error_code.is_none(),
            "#DF/TF IDT-vectoring"
        );
    }
    for (info, code) in [
        (x.interruption_info, x.interruption_error_code),
        (x.idt_vectoring_info, x.idt_vectoring_error_code),
    ] {
        assert_eq!(
            code.is_some(),
            info.deliver_error_code(),
            "bit 11 and error code disagree"
        );
        let pushes = info.valid()
            && s.protected_mode
            && info.interruption_type() == Some(InterruptionType::HardwareException)
            && vector_has_error_code(info.vector());
        assert_eq!(
            info.deliver_error_code(),
            pushes,
            "error code where none is pushed, or none"
        );
        if info.valid() {
            well_formed(info);
        }
    }
    let software =
        |i: InterruptionInfo| i.valid() && i.interruption_type().is_some_and(|t| t.is_software());
    let length = if software(x.interruption_info) {
        Some(new.insn_len)
    } else if software(x.idt_vectoring_info) {
        s.delivering.map(|d| d.insn_len)
    } else {
        None
    };
    assert_eq!(x.instruction_length, length, "instruction length");
    assert!(
        length.is_none_or(|l| (1..=15).contains(&l)),
        "instruction length outside 1-15"
    );
    match x.reason {
        ExitReason::TripleFault => assert!(!x.interruption_info.valid(), "triple-fault exit info"),
        ExitReason::ExternalInterrupt => assert!(
            !x.interruption_info.valid()
                || x.interruption_info.interruption_type()
                    == Some(InterruptionType::ExternalInterrupt),
            "external-interrupt exit reports another type"
        ),
        ExitReason::ExceptionOrNmi => assert!(
            x.interruption_info.valid()
                && !matches!(
                    x.interruption_info.interruption_type(),
                    Some(
                        InterruptionType::ExternalInterrupt
                            | InterruptionType::SoftwareInterrupt
                            | InterruptionType::OtherEvent
                    )
                ),
            "exception-or-NMI exit reports {:#x}",
            x.interruption_info.0
        ),
    }
}

/// SDM 25.9.2 / 27.2.1.3: type not reserved, NMI vector 2, exceptions below 32, bits 30:12 clear.
fn well_formed(info: InterruptionInfo) {
    let kind = info
        .interruption_type()
        .unwrap_or_else(|| panic!("reserved type: {:#x}", info.0));
    let vector_ok = match kind {
        InterruptionType::Nmi => info.vector() == 2,
        InterruptionType::HardwareException => info.vector() < 32,
        _ => true,
    };
    assert!(
        vector_ok && info.0 & 0x7FFF_F000 == 0,
        "malformed interruption information {:#x}",
        info.0
    );
}

/// l1-hv's side of an injection: CR2, DR6, the debugger.
#[derive(Default)]
pub(crate) struct Host {
    cr2: Option<u64>,
    debugger: bool,
    paused: bool,
    cet: bool,
}

impl TraceSink for Host {
    fn record(&mut self, _: TraceRecord) {}
}

impl InjectHost for Host {
    fn set_cr2(&mut self, cr2: u64) {
        self.cr2 = Some(cr2);
    }
    fn merge_dr6(&mut self, _: u64) {}
    fn debugger_attached(&self) -> bool {
        self.debugger
    }
    fn pause_for_debugger(&mut self) {
        self.paused = true;
    }
    fn cet_supported(&self) -> bool {
        self.cet
    }
}

pub(crate) fn ram() -> &'static Ram {
    static RAM: OnceLock<Ram> = OnceLock::new();
    RAM.get_or_init(entry_ram)
}

fn check_inject(input: &Input) {
    let s = input.scenario();
    let mut vmcs: SoftVmcs = if input.flag(8) {
        real_mode_vmcs12()
    } else {
        good_vmcs12()
    };
    // IF = 1: l1-hv injects an external interrupt only into an interruptible guest (an
    // interrupt window otherwise), and VM entry checks exactly that (SDM 27.3.1.4).
    vmcs.write(guest::RFLAGS, 0x202 | u64::from(input.flag(9)) << 8);
    let caps = host_caps_with_cet(input.flag(5)).for_guest(true);
    let ctx = EntryContext {
        caps: &caps,
        phys_addr_bits: GUEST_PHYS_ADDR_BITS,
        ia32e_mode: true,
        l2_debugctl: 0,
    };
    let protected = vmcs.read(guest::CR0) & 1 != 0;
    let mut during = s.delivering;
    if input.flag(7) {
        if let Some(pending) = during.take() {
            let info = pending.info(protected);
            vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info.0.into());
            vmcs.write(
                control::VMENTRY_EXCEPTION_ERR_CODE,
                pending.error_code.into(),
            );
            vmcs.write(control::VMENTRY_INSTRUCTION_LEN, pending.insn_len.into());
        }
    }
    // Only a vmcs12 that VM entry accepts before the injection says anything about it.
    let valid_before = check_vmcs12(&vmcs, ram(), &ctx).is_ok();
    let before = vmcs.clone();
    let mut host = Host {
        debugger: input.flag(10),
        cet: input.flag(5),
        ..Host::default()
    };
    let l3 = input.flag(6);
    let running = if l3 {
        Running::L3(&s.controls)
    } else {
        Running::L2
    };
    let entry_info =
        |v: &SoftVmcs| InterruptionInfo(v.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32);
    match inject_event(&mut vmcs, &mut host, running, s.event, during) {
        InjectOutcome::Injected { requeue } => {
            let info = entry_info(&vmcs);
            assert!(info.valid(), "injected without a valid VM-entry field");
            if valid_before {
                assert_eq!(
                    check_vmcs12(&vmcs, ram(), &ctx),
                    Ok(()),
                    "VM entry rejects the injection {:#x}",
                    info.0
                );
            }
            let pf = is_hardware(info, 14);
            assert_eq!(host.cr2.is_some(), pf, "CR2 set iff a #PF is delivered");
            if let Some(pending) = requeue {
                assert!(
                    matches!(
                        pending.kind,
                        InterruptionType::Nmi
                            | InterruptionType::ExternalInterrupt
                            | InterruptionType::OtherEvent
                    ),
                    "requeued {pending:?}"
                );
            }
        }
        InjectOutcome::Reflected(x) => {
            assert!(l3, "a reflection for L2, which nothing governs but l1-hv");
            assert!(
                !entry_info(&vmcs).valid(),
                "VM-entry field left valid after a reflection"
            );
            assert_eq!(host.cr2, None, "a reflected #PF set CR2");
            if x.reason != ExitReason::TripleFault {
                assert!(
                    x.interruption_info.valid() || x.reason == ExitReason::ExternalInterrupt,
                    "{x:?}"
                );
            }
        }
        InjectOutcome::TripleFault => {
            assert!(!l3, "triple fault returned for L3 instead of an exit")
        }
        InjectOutcome::PausedForDebugger => {
            assert!(
                host.debugger && host.paused && s.event.vector == 3,
                "paused for {:?}",
                s.event
            );
            assert_eq!(vmcs, before, "pausing changed the VMCS");
        }
    }
}
