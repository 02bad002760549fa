//! Target `intr`: arbitrary sequences of raised NMIs and interrupts, VM entries under arbitrary
//! (entry-valid) guest interruptibility, RFLAGS.IF and activity state, exceptions that displace
//! what the assist injected and exits that interrupt its delivery, through
//! [`PendingEvents`] and [`assist`] over a vmcs12 that passes the entry checks.
//!
//! Properties:
//! - every NMI and interrupt raised (and not merged with a pending instance, SDM 6.7.1 and the
//!   IRR's one bit per vector) is injected exactly once: one displaced by an exception or by an
//!   exit during its delivery (SDM 28.2.4) is injected again, never twice, and once the guest
//!   opens up the queue drains;
//! - an NMI goes before any interrupt when the guest can take it (SDM 6.9);
//! - VM entry accepts the VMCS the assist leaves ([`check_vmcs12`]: SDM 27.3.1.5 on the
//!   injected event, and NMI-window exiting only with "virtual NMIs", SDM 27.2.1.1);
//! - an event already in the VM-entry interruption information is left alone, nothing else is
//!   injected and the queue is untouched;
//! - no window is armed that is open already while nothing is injected (the guest would exit
//!   before executing an instruction, forever; SDM 27.7.5, 27.7.6).

use crate::config::{good_vmcs12, host_caps, GUEST_PHYS_ADDR_BITS};
use crate::route::{ram, Host};
use arbitrary::Arbitrary;
use nvmx::event::{Event, InterruptionInfo, InterruptionType};
use nvmx::inject::{inject_event, InjectOutcome, Running};
use nvmx::intr::{
    assist, requeue_interrupted, ActivityState, AssistOutcome, Interruptibility, PendingEvents,
};
use nvmx::nested::{check_vmcs12, EntryContext};
use shadow_vmcs::{SoftVmcs, Vmcs};
use x86::vmx::vmcs::control::{self, PinbasedControls, PrimaryControls};
use x86::vmx::vmcs::{guest, ro};

/// The whole input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Pin-based "virtual NMIs" in the VMCS.
    pub virtual_nmis: bool,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

/// One thing that happens to the vCPU.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An external interrupt with this vector is raised.
    Interrupt(u8),
    /// An NMI is raised.
    Nmi,
    /// A VM entry with this guest state (see [`GuestState`]), after the assist.
    Entry(GuestState),
    /// An exit interrupted the delivery of what the last entry injected.
    Interrupted,
}

/// The guest state of one VM entry.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestState {
    /// RFLAGS.IF (forced to 1 under STI blocking, which VM entry requires).
    pub interrupts_enabled: bool,
    /// 0 none, 1 STI, 2 MOV SS, 3 NMI blocking (STI and MOV SS dropped when halted).
    pub blocking: u8,
    /// Activity state HLT.
    pub halted: bool,
    /// l1-hv injects a #GP before the assist runs (not into a halted guest: VM entry refuses it).
    pub exception_first: bool,
    /// l1-hv injects a #GP after the assist, displacing what it injected.
    pub exception_after: bool,
}

/// Counts of what was raised and what was injected (and not displaced again).
struct Ledger {
    raised_nmis: u32,
    injected_nmis: u32,
    raised: [u32; 256],
    injected: [u32; 256],
}

impl Ledger {
    fn inject(&mut self, event: &Event) {
        match event.kind {
            InterruptionType::Nmi => {
                self.injected_nmis += 1;
                assert!(
                    self.injected_nmis <= self.raised_nmis,
                    "an NMI injected twice"
                );
            }
            _ => {
                let v = usize::from(event.vector);
                self.injected[v] += 1;
                assert!(
                    self.injected[v] <= self.raised[v],
                    "vector {v} injected twice"
                );
            }
        }
    }

    fn take_back(&mut self, event: &Event) {
        match event.kind {
            InterruptionType::Nmi => self.injected_nmis -= 1,
            _ => self.injected[usize::from(event.vector)] -= 1,
        }
    }
}

const GP: Event = Event::hardware_exception(13, 0);

/// Runs the sequence, checking every property.
pub fn check(input: &Input) {
    let mut vmcs = good_vmcs12();
    if input.virtual_nmis {
        let pin = vmcs.read(control::PINBASED_EXEC_CONTROLS);
        let vnmi = u64::from(PinbasedControls::VIRTUAL_NMIS.bits());
        vmcs.write(control::PINBASED_EXEC_CONTROLS, pin | vnmi);
    }
    let mut events = PendingEvents::new();
    let mut ledger = Ledger {
        raised_nmis: 0,
        injected_nmis: 0,
        raised: [0; 256],
        injected: [0; 256],
    };
    let mut in_flight = None;
    for step in &input.steps {
        match *step {
            Step::Interrupt(vector) => {
                ledger.raised[usize::from(vector)] += u32::from(events.raise_interrupt(vector));
            }
            Step::Nmi => ledger.raised_nmis += u32::from(events.raise_nmi()),
            Step::Entry(state) => in_flight = entry(&mut vmcs, &mut events, &mut ledger, state),
            Step::Interrupted => {
                if let Some(event) = in_flight.take() {
                    interrupted(&mut vmcs, &mut events, &mut ledger, &event);
                }
            }
        }
    }
    drain(&mut vmcs, &mut events, &mut ledger);
}

/// The behaviour class, for the `seeds` classes: which outcomes and windows the sequence saw.
pub fn classify(input: &Input) -> String {
    let mut vmcs = good_vmcs12();
    let mut events = PendingEvents::new();
    let mut seen = std::collections::BTreeSet::new();
    for step in &input.steps {
        match *step {
            Step::Interrupt(vector) => {
                events.raise_interrupt(vector);
            }
            Step::Nmi => {
                events.raise_nmi();
            }
            Step::Entry(state) => {
                set_state(&mut vmcs, &state);
                let outcome = match assist(&mut vmcs, &mut Host::default(), &mut events) {
                    AssistOutcome::Injected { event, windows } => {
                        format!("inj-{:?}-{windows:?}", event.kind)
                    }
                    other => format!("{other:?}"),
                };
                seen.insert(outcome);
                vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
            }
            Step::Interrupted => {}
        }
    }
    format!("{}-{seen:?}", input.virtual_nmis)
}

fn entry_context() -> EntryContext<'static> {
    static CAPS: std::sync::OnceLock<nvmx::insn::VmxCapabilities> = std::sync::OnceLock::new();
    EntryContext {
        caps: CAPS.get_or_init(|| host_caps().for_guest(true)),
        phys_addr_bits: GUEST_PHYS_ADDR_BITS,
        ia32e_mode: true,
        l2_debugctl: 0,
    }
}

/// Writes an entry-valid guest state; returns whether l1-hv injects an exception first.
fn set_state(vmcs: &mut SoftVmcs, state: &GuestState) -> bool {
    let mut blocking = [
        Interruptibility::empty(),
        Interruptibility::STI,
        Interruptibility::MOV_SS,
        Interruptibility::NMI,
    ][usize::from(state.blocking % 4)];
    if state.halted {
        blocking -= Interruptibility::STI | Interruptibility::MOV_SS;
    }
    let interrupts_enabled = state.interrupts_enabled || blocking.contains(Interruptibility::STI);
    vmcs.write(guest::RFLAGS, 0x2 | u64::from(interrupts_enabled) << 9);
    blocking.write(vmcs);
    let activity = if state.halted {
        ActivityState::Hlt
    } else {
        ActivityState::Active
    };
    activity.write(vmcs);
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
    let exception_first = state.exception_first && !state.halted;
    if exception_first {
        vmcs.write(
            control::VMENTRY_INTERRUPTION_INFO_FIELD,
            GP.info(true).0.into(),
        );
    }
    exception_first
}

/// One VM entry: the assist, its checks, and possibly an exception displacing its injection.
/// Returns the NMI or interrupt the entry delivers, if any.
fn entry(
    vmcs: &mut SoftVmcs,
    events: &mut PendingEvents,
    ledger: &mut Ledger,
    state: GuestState,
) -> Option<Event> {
    let exception_first = set_state(vmcs, &state);
    let ctx = entry_context();
    assert_eq!(check_vmcs12(vmcs, ram(), &ctx), Ok(()), "harness state");
    let before = *events;
    let nmi_first = events.nmi_pending() && nmi_injectable(vmcs);
    let outcome = assist(vmcs, &mut Host::default(), events);
    assert_eq!(
        check_vmcs12(vmcs, ram(), &ctx),
        Ok(()),
        "VM entry rejects {outcome:?}"
    );
    no_spinning_window(vmcs, &outcome);
    if exception_first {
        assert!(!matches!(outcome, AssistOutcome::Injected { .. }));
        assert_eq!(*events, before, "queue changed under a pending exception");
        assert_eq!(
            entry_info(vmcs),
            GP.info(true),
            "pending exception replaced"
        );
        return None;
    }
    let AssistOutcome::Injected { event, .. } = outcome else {
        return None;
    };
    assert!(
        !nmi_first || event.kind == InterruptionType::Nmi,
        "interrupt before a deliverable NMI"
    );
    assert_eq!(entry_info(vmcs), event.info(true));
    ledger.inject(&event);
    if !state.exception_after {
        return Some(event);
    }
    match inject_event(vmcs, &mut Host::default(), Running::L2, GP, None) {
        InjectOutcome::Injected {
            requeue: Some(displaced),
        } => {
            assert_eq!(displaced, event);
            assert_eq!(events.requeue(displaced), Ok(()));
            ledger.take_back(&displaced);
            None
        }
        other => panic!("the #GP did not displace {event:?}: {other:?}"),
    }
}

/// The exit that interrupted `event`'s delivery: IDT-vectoring information, and the NMI
/// blocking an NMI's delivery had begun.
fn interrupted(
    vmcs: &mut SoftVmcs,
    events: &mut PendingEvents,
    ledger: &mut Ledger,
    event: &Event,
) {
    vmcs.write(ro::IDT_VECTORING_INFO, event.info(true).0.into());
    if event.kind == InterruptionType::Nmi {
        (Interruptibility::read(vmcs) | Interruptibility::NMI).write(vmcs);
    }
    assert_eq!(requeue_interrupted(events, vmcs), None);
    if event.kind == InterruptionType::Nmi {
        assert!(
            !Interruptibility::read(vmcs).contains(Interruptibility::NMI),
            "NMI blocking left after an interrupted NMI"
        );
    }
    vmcs.write(ro::IDT_VECTORING_INFO, 0);
    ledger.take_back(event);
}

/// The guest opens up: everything queued is injected, each exactly once.
fn drain(vmcs: &mut SoftVmcs, events: &mut PendingEvents, ledger: &mut Ledger) {
    let open = GuestState {
        interrupts_enabled: true,
        blocking: 0,
        halted: false,
        exception_first: false,
        exception_after: false,
    };
    // At most 257 interrupts (the IRR and a displaced one) and 2 NMIs, then nothing.
    for _ in 0..=260 {
        if entry(vmcs, events, ledger, open).is_none() {
            break;
        }
    }
    assert!(events.is_empty(), "left over: {events:?}");
    assert_eq!(ledger.raised_nmis, ledger.injected_nmis, "NMIs");
    assert_eq!(ledger.raised, ledger.injected, "interrupts");
}

fn entry_info(vmcs: &SoftVmcs) -> InterruptionInfo {
    InterruptionInfo(vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32)
}

/// SDM 27.3.1.5 and NMI handling: no STI, MOV-SS or NMI blocking, no event being injected.
fn nmi_injectable(vmcs: &SoftVmcs) -> bool {
    !entry_info(vmcs).valid()
        && !Interruptibility::read(vmcs)
            .intersects(Interruptibility::STI | Interruptibility::MOV_SS | Interruptibility::NMI)
}

/// Without an injection, a window armed must be shut now: the interrupt window needs IF = 1
/// and no STI/MOV-SS blocking (SDM 27.7.5); the NMI window no virtual-NMI or MOV-SS blocking,
/// and some processors ignore STI blocking there (SDM 27.7.6).
fn no_spinning_window(vmcs: &SoftVmcs, outcome: &AssistOutcome) {
    if matches!(outcome, AssistOutcome::Injected { .. }) || entry_info(vmcs).valid() {
        return;
    }
    let primary = PrimaryControls::from_bits_truncate(
        vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32,
    );
    let blocking = Interruptibility::read(vmcs);
    let interrupts_enabled = vmcs.read(guest::RFLAGS) & 1 << 9 != 0;
    if primary.contains(PrimaryControls::INTERRUPT_WINDOW_EXITING) {
        assert!(
            !interrupts_enabled
                || blocking.intersects(Interruptibility::STI | Interruptibility::MOV_SS),
            "interrupt window open already"
        );
    }
    if primary.contains(PrimaryControls::NMI_WINDOW_EXITING) {
        assert!(
            blocking.intersects(Interruptibility::MOV_SS | Interruptibility::NMI),
            "NMI window open already"
        );
    }
}
