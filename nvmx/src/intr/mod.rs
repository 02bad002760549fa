//! Interrupt and NMI forwarding: the half of Xen's event path that `vmx_intr_assist` covers,
//! beside [`crate::inject`], over the [`Vmcs`] trait.
//!
//! NMIs and external interrupts for a vCPU wait in its [`PendingEvents`]. Just before every VM
//! entry, [`assist`] (or [`assist_l3`] while an L2 guest hypervisor runs its L3 guest) injects the
//! highest-priority event the guest can take now, through [`inject_event`], and arms
//! interrupt-window or NMI-window exiting for what has to wait, so that the guest exits as soon
//! as it can take it (SDM 27.7.5, 27.7.6). Every injection it makes passes the VM-entry checks on
//! guest non-register state (SDM 27.3.1.5).

mod queue;
mod state;
#[cfg(test)]
mod tests;

pub use queue::PendingEvents;
pub use state::{ActivityState, Interruptibility};

use crate::event::{Event, InterruptionInfo, InterruptionType};
use crate::inject::{inject_event, InjectHost, InjectOutcome, Running};
use crate::route::{exit_for, intercepts, ExitInfo, InterceptControls};
use shadow_vmcs::Vmcs;
use state::Gate;
use x86::controlregs::Cr0;
use x86::vmx::vmcs::control::{self, PinbasedControls, PrimaryControls};
use x86::vmx::vmcs::guest;

/// The window-exiting controls armed for the next VM entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Windows {
    /// Interrupt-window exiting (primary processor-based control, bit 2).
    pub interrupt: bool,
    /// NMI-window exiting (primary processor-based control, bit 22).
    pub nmi: bool,
}

/// Both window-exiting controls.
const WINDOW_CONTROLS: PrimaryControls =
    PrimaryControls::INTERRUPT_WINDOW_EXITING.union(PrimaryControls::NMI_WINDOW_EXITING);

impl Windows {
    const fn any(self) -> bool {
        self.interrupt || self.nmi
    }

    fn controls(self) -> PrimaryControls {
        let mut controls = PrimaryControls::empty();
        controls.set(PrimaryControls::INTERRUPT_WINDOW_EXITING, self.interrupt);
        controls.set(PrimaryControls::NMI_WINDOW_EXITING, self.nmi);
        controls
    }
}

/// What the assist did before a VM entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssistOutcome {
    /// `event` (an NMI or external interrupt) is in the VM-entry interruption information and
    /// has left the queue; `windows` are armed for what is still pending.
    Injected {
        /// The event injected.
        event: Event,
        /// The windows armed for the rest of the queue.
        windows: Windows,
    },
    /// Nothing could be injected now; these windows are armed.
    WindowRequested(Windows),
    /// Nothing injected and no window armed: the queue is empty, or its NMI can only wait for
    /// the next exit (no "virtual NMIs", and the interrupt window is already open).
    Nothing,
}

/// Delivers pending NMIs and interrupts into l1-hv's own L2 guest; call just before VM entry,
/// after everything else that writes the VM-entry interruption information (an exception being
/// injected takes priority: then only windows are armed). Clears both window controls when
/// nothing needs them.
pub fn assist(
    vmcs: &mut impl Vmcs,
    host: &mut impl InjectHost,
    events: &mut PendingEvents,
) -> AssistOutcome {
    assist_with(
        vmcs,
        host,
        events,
        Running::L2,
        true,
        PrimaryControls::empty(),
    )
}

/// What happens to the vCPU's pending events while it runs an L3 guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L3Outcome {
    /// vmcs12 intercepts the pending event: perform a virtual VM exit to the L2 guest hypervisor
    /// with this information ([`ExitInfo::write_to`] vmcs12, then the nested VM exit). An NMI,
    /// or an interrupt under "acknowledge interrupt on exit", has left the queue and is reported
    /// in the exit's interruption information; an interrupt without it stays queued for L2 to
    /// take when it enables interrupts (SDM 28.2.2). An event vmcs02 was about to inject moved
    /// to the IDT-vectoring information, and vmcs02's VM-entry interruption information is
    /// cleared.
    VmExit(ExitInfo),
    /// Nothing pending is intercepted: what [`assist`] did in vmcs02 for L3.
    Assist(AssistOutcome),
}

/// The assist for a vCPU running an L3 guest: `vmcs02` runs it, `vmcs12` holds the L2 guest
/// hypervisor's controls. Interception is [`intercepts`]' decision on vmcs12's controls; the
/// rest is [`assist`] over vmcs02, keeping the window controls vmcs12 itself sets.
pub fn assist_l3(
    vmcs02: &mut impl Vmcs,
    vmcs12: &impl Vmcs,
    host: &mut impl InjectHost,
    events: &mut PendingEvents,
) -> L3Outcome {
    let controls = InterceptControls::from_vmcs(vmcs12);
    let nmi = Event::nmi();
    let nmi_intercepted = intercepts(&controls, &nmi);
    if events.nmi_pending() && nmi_intercepted && !nmi_exit_blocked(vmcs02, vmcs12) {
        events.take(&nmi);
        return L3Outcome::VmExit(event_exit(vmcs02, &controls, &nmi));
    }
    if let Some(vector) = events.next_interrupt() {
        let interrupt = Event::external_interrupt(vector);
        // With external-interrupt exiting, RFLAGS.IF does not block the exit, and whether STI or
        // MOV SS does is implementation-specific (SDM 26.4.1): l1-hv never defers it.
        if intercepts(&controls, &interrupt) {
            // Acknowledgement takes the vector out of the interrupt controller (SDM 28.2.2).
            if controls.ack_interrupt_on_exit {
                events.take(&interrupt);
            }
            return L3Outcome::VmExit(event_exit(vmcs02, &controls, &interrupt));
        }
    }
    let windows12 = PrimaryControls::from_bits_truncate(
        vmcs12.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32,
    ) & WINDOW_CONTROLS;
    L3Outcome::Assist(assist_with(
        vmcs02,
        host,
        events,
        Running::L3(&controls),
        // An intercepted NMI reaching this point is held back by L3's NMI blocking.
        !nmi_intercepted,
        windows12,
    ))
}

/// Whether a halted vCPU has an event that ends the HLT state now: an NMI without NMI
/// blocking, or an interrupt with RFLAGS.IF = 1 (SDM Vol. 2B, HLT: an enabled interrupt, NMI
/// included, resumes execution). STI and MOV-SS blocking do not count: HLT has retired, so the
/// vCPU is past their one instruction. If `false`, the kernel re-enters the guest with activity
/// state HLT (or waits); if `true`, HLT completes and [`assist`] injects the event. For a
/// halted L3, an event its hypervisor intercepts wakes it regardless: [`assist_l3`] exits.
pub fn wakes_from_hlt(events: &PendingEvents, vmcs: &impl Vmcs) -> bool {
    let gate = Gate::read(vmcs);
    events.nmi_pending() && !gate.blocking.contains(Interruptibility::NMI)
        || events.interrupt_pending() && gate.interrupts_enabled
}

/// Takes back the NMI or interrupt whose delivery the exit in `vmcs` interrupted (valid
/// IDT-vectoring information, SDM 28.2.4) into `events`, for [`assist`] to deliver again. Any
/// other interrupted event is returned for [`crate::inject::redeliver`].
///
/// For an interrupted NMI the NMI-blocking bit is cleared: the blocking belongs to the delivery
/// that did not complete, and VM entry refuses to inject an NMI under virtual-NMI blocking
/// (SDM 27.3.1.5; "Reflecting Exceptions to Guest Software" in the VMM programming
/// considerations tells the VMM to clear it).
pub fn requeue_interrupted(events: &mut PendingEvents, vmcs: &mut impl Vmcs) -> Option<Event> {
    let event = Event::from_idt_vectoring(vmcs)?;
    let rejected = events.requeue(event).err();
    if event.kind == InterruptionType::Nmi {
        (Interruptibility::read(vmcs) - Interruptibility::NMI).write(vmcs);
    }
    rejected
}

/// The assist over one VMCS: inject the first deliverable event, then arm the windows the rest
/// needs. `nmis`: pending NMIs go to this guest (not when its hypervisor intercepts them);
/// `keep`: window controls to leave set whatever the queue.
fn assist_with(
    vmcs: &mut impl Vmcs,
    host: &mut impl InjectHost,
    events: &mut PendingEvents,
    running: Running<'_>,
    nmis: bool,
    keep: PrimaryControls,
) -> AssistOutcome {
    let gate = Gate::read(vmcs);
    let injected = if gate.entry_busy {
        None
    } else {
        deliverable(events, &gate, nmis)
    };
    if let Some(event) = injected {
        events.take(&event);
        let outcome = inject_event(vmcs, host, running, event, None);
        // The entry field was invalid and the event is not intercepted: nothing to displace.
        debug_assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
        if gate.halted {
            // Delivery ends the HLT state; HLT has retired, so the handler returns past it.
            ActivityState::Active.write(vmcs);
        }
    }
    let windows = windows(events, &gate, nmis, injected.is_some());
    write_windows(vmcs, windows.controls() | keep);
    match injected {
        Some(event) => AssistOutcome::Injected { event, windows },
        None if windows.any() => AssistOutcome::WindowRequested(windows),
        None => AssistOutcome::Nothing,
    }
}

/// The event to inject now: an NMI before any interrupt (SDM 6.9, priority among simultaneous
/// events), each only if the VM-entry checks allow it (SDM 27.3.1.5).
fn deliverable(events: &PendingEvents, gate: &Gate, nmis: bool) -> Option<Event> {
    if nmis && events.nmi_pending() && gate.nmi_open() {
        return Some(Event::nmi());
    }
    events
        .next_interrupt()
        .filter(|_| gate.interrupt_open())
        .map(Event::external_interrupt)
}

/// The windows the events still pending need. `injecting`: VM entry injects an event (ours or
/// one already in the entry field); window exits then follow its delivery (SDM 27.7.5, 27.7.6),
/// so the guest makes progress. Otherwise a window is armed only while it is shut, never one
/// that would exit again before the guest executes an instruction.
fn windows(events: &PendingEvents, gate: &Gate, nmis: bool, injected: bool) -> Windows {
    let injecting = injected || gate.entry_busy;
    let nmi = nmis && events.nmi_pending();
    // NMI-window exiting needs "virtual NMIs" (SDM 25.6.2). A vectoring entry leaves no STI
    // blocking behind (SDM 27.7.1), so only a non-vectoring one needs the STI detour.
    let nmi_window = nmi && gate.virtual_nmis && (injecting || !gate.nmi_blocked_only_by_sti());
    // Interrupt window: for pending interrupts, and as the retry point of an NMI that cannot
    // use the NMI window.
    let interrupt_window =
        events.interrupt_pending() || nmi && !nmi_window && (injecting || !gate.interrupt_open());
    Windows {
        interrupt: interrupt_window,
        nmi: nmi_window,
    }
}

/// Sets exactly the `wanted` window controls in the primary processor-based controls, leaving
/// the other bits (default1 bits included) as they are; writes only on a change.
fn write_windows(vmcs: &mut impl Vmcs, wanted: PrimaryControls) {
    let old = vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
    let new = old & !u64::from(WINDOW_CONTROLS.bits()) | u64::from(wanted.bits());
    if new != old {
        vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, new);
    }
}

/// With "NMI exiting" and without "virtual NMIs", NMI blocking in L3 holds NMIs back as long as
/// it runs (SDM 27.7.1): the NMI waits for L3's next exit. With "virtual NMIs" only ordinary
/// blocking applies; whether STI or MOV SS blocks an NMI exit is implementation-specific
/// (SDM 26.4.1), and l1-hv takes the choice that never defers it.
fn nmi_exit_blocked(vmcs02: &impl Vmcs, vmcs12: &impl Vmcs) -> bool {
    let pin12 =
        PinbasedControls::from_bits_truncate(vmcs12.read(control::PINBASED_EXEC_CONTROLS) as u32);
    !pin12.contains(PinbasedControls::VIRTUAL_NMIS)
        && Interruptibility::read(vmcs02).contains(Interruptibility::NMI)
}

/// The exit information of an exit caused by `event` while L3 runs. An event vmcs02 was about
/// to inject is reported as interrupted (IDT-vectoring information) and leaves the entry field,
/// so that the guest hypervisor, which re-injects it, is the only one to deliver it.
fn event_exit(vmcs02: &mut impl Vmcs, controls: &InterceptControls, event: &Event) -> ExitInfo {
    let protected_mode = vmcs02.read(guest::CR0) & Cr0::CR0_PROTECTED_MODE.bits() as u64 != 0;
    let pending = Event::from_entry(vmcs02);
    vmcs02.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        InterruptionInfo::INVALID.bits().into(),
    );
    exit_for(event, pending.as_ref(), controls, protected_mode)
}
