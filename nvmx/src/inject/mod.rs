//! Event injection, shaped like Xen's `vmx_inject_event` with the nested branches as first-class
//! code, over the [`Vmcs`] trait so that the same routine runs on the host against a software
//! VMCS and in l1-hv against the current hardware VMCS.
//!
//! l1-hv calls it when it puts an event into a guest: into its own L2 guest ([`Running::L2`]),
//! or into the L3 guest of an L2 guest hypervisor ([`Running::L3`]), where the guest
//! hypervisor's controls (from vmcs12) may turn the event into a virtual VM exit instead.
//! Both cases take the one decision of [`crate::route::route`].

#[cfg(test)]
pub(crate) mod tests;

use crate::event::{
    vector_is_fault, Event, InfoFlags, InterruptionInfo, InterruptionType,
    CONTROL_PROTECTION_VECTOR,
};
use crate::route::{self, route, ExitInfo, ExitReason, InterceptControls, Outcome, Scenario};
use shadow_vmcs::Vmcs;
use x86::bits64::rflags::RFlags;
use x86::controlregs::Cr0;
use x86::debugregs::{Dr6, Dr7};
use x86::irq::{BREAKPOINT_VECTOR, DEBUG_VECTOR, DOUBLE_FAULT_VECTOR, PAGE_FAULT_VECTOR};
use x86::vmx::vmcs::{control, guest, ro};

/// IA32_DEBUGCTL.LBR (bit 0), cleared when #DB is delivered (SDM 18.4.1); the `x86` crate has
/// no bit set for IA32_DEBUGCTL.
const DEBUGCTL_LBR: u64 = 1 << 0;

/// A fixed-size trace record (no allocation, no formatting), named after Xen's HVM trace events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceRecord {
    /// A #PF was set up for delivery; `cr2` is the address the guest's CR2 receives.
    PfInject {
        /// Error code pushed (0 if none).
        error_code: u16,
        /// Faulting linear address.
        cr2: u64,
    },
    /// Any other event was set up for delivery.
    InjExc {
        /// Vector.
        vector: u8,
        /// Error code pushed (0 if none).
        error_code: u16,
    },
    /// An external interrupt was set up for delivery (Xen's `INJ_VIRQ`).
    InjVirq {
        /// Vector.
        vector: u8,
    },
    /// The pending exception `first` and the new exception `second` became #DF (Table 6-5).
    DoubleFault {
        /// Vector of the exception being delivered.
        first: u8,
        /// Vector of the new exception.
        second: u8,
    },
    /// The new exception `second` arose while #DF (`first` = 8) was delivered: triple fault.
    TripleFault {
        /// Vector of the exception being delivered.
        first: u8,
        /// Vector of the new exception.
        second: u8,
    },
    /// The event became a VM exit to the L2 guest hypervisor.
    Reflect {
        /// Basic exit reason.
        exit_reason: u16,
        /// Vector in the exit's interruption information (0 if invalid).
        vector: u8,
    },
    /// Injection was replaced by pausing the guest for the attached debugger.
    DebuggerPause {
        /// Vector of the event not injected.
        vector: u8,
    },
    /// A pending NMI or interrupt was displaced by the new event and handed back to the caller.
    Requeue {
        /// Vector of the displaced event.
        vector: u8,
    },
}

/// Where the caller's trace records go.
pub trait TraceSink {
    /// Records one trace record.
    fn record(&mut self, record: TraceRecord);
}

/// What the injection routine needs from l1-hv besides the VMCS: guest state that is not in the
/// VMCS, the debugger hook and the trace sink.
pub trait InjectHost: TraceSink {
    /// Loads the guest's CR2 (not a VMCS field) before the next VM entry; called only when a
    /// #PF is set up for delivery, never when one is reflected.
    fn set_cr2(&mut self, cr2: u64);
    /// Applies a delivered #DB's `bits` (DR6 format) to the guest's DR6 (not a VMCS field)
    /// before the next VM entry, as [`crate::event::dr6_after_delivery`] says.
    fn merge_dr6(&mut self, bits: u64);
    /// Whether l1-hv's debugger is attached to this guest.
    fn debugger_attached(&self) -> bool;
    /// Pauses the guest for the debugger (called instead of injecting a #BP).
    fn pause_for_debugger(&mut self);
    /// Whether the processor the guest runs on supports CET: only then does #CP push an error
    /// code, and only then may VM entry deliver one with it (SDM 6.15 "Interrupt 21", 27.2.1.3).
    fn cet_supported(&self) -> bool;
}

/// Which guest the vCPU runs, and so which hypervisor governs the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Running<'a> {
    /// An L2 guest governed by l1-hv: l1-hv has decided to inject, nothing intercepts.
    L2,
    /// An L3 guest governed by an L2 guest hypervisor with these controls (from its vmcs12).
    L3(&'a InterceptControls),
}

/// What the caller must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectOutcome {
    /// The VM-entry interruption fields are written. `requeue` is a pending NMI or external
    /// interrupt the new event displaced: re-execution does not regenerate it, so the caller must
    /// queue it again (e.g. behind an NMI/interrupt window) instead of losing it.
    Injected {
        /// The displaced NMI or interrupt, if any.
        requeue: Option<Event>,
    },
    /// (L3 only) The event causes a VM exit to the L2 guest hypervisor: perform a virtual VM
    /// exit with this information (see [`ExitInfo::write_to`]). A pending event it interrupted is
    /// in the IDT-vectoring fields, and the VM-entry interruption field is cleared.
    Reflected(ExitInfo),
    /// (L2 only) The guest triple-faulted: stop it with that reason.
    TripleFault,
    /// The guest was paused for the debugger; nothing was injected.
    PausedForDebugger,
}

/// Injects `event` into the guest the vCPU runs.
///
/// `during` is the event whose delivery was interrupted when `event` arose (the still-valid
/// IDT-vectoring information of the exit being handled); if `None`, an event already set up in
/// the VM-entry interruption fields of `vmcs` is the one `event` combines with (SDM Table 6-5).
/// The routine consults guest CR0.PE (error codes), RFLAGS.TF, DR7 and IA32_DEBUGCTL in `vmcs`.
pub fn inject_event(
    vmcs: &mut impl Vmcs,
    host: &mut impl InjectHost,
    running: Running<'_>,
    mut event: Event,
    during: Option<Event>,
) -> InjectOutcome {
    // #BP is a hardware or software exception; `INT 3` (`INT n`) and an external interrupt that
    // happens to use vector 3 are not breakpoints.
    if event.vector == BREAKPOINT_VECTOR
        && matches!(
            event.kind,
            InterruptionType::HardwareException | InterruptionType::SoftwareException
        )
        && host.debugger_attached()
    {
        host.record(TraceRecord::DebuggerPause {
            vector: event.vector,
        });
        host.pause_for_debugger();
        return InjectOutcome::PausedForDebugger;
    }
    if event.is_hardware(DEBUG_VECTOR) && guest_flag(vmcs, guest::RFLAGS, RFlags::FLAGS_TF.bits()) {
        // A #DB injected while the guest single-steps reports the step (DR6.BS).
        event.payload |= Dr6::BS.bits() as u64;
    }
    let pending = during.or_else(|| Event::from_entry(vmcs));
    let protected_mode = guest_flag(vmcs, guest::CR0, Cr0::CR0_PROTECTED_MODE.bits() as u64);
    let outcome = match (running, pending) {
        // Nothing intercepts l1-hv's own guest's events, and with no delivery to combine with
        // the event is delivered as it is: `route`'s first rule, taken without its scenario on
        // the path every intercepted exception of an L2 guest takes.
        (Running::L2, None) => route::deliver(event, protected_mode),
        (Running::L2, _) => route(&Scenario {
            controls: InterceptControls::default(),
            protected_mode,
            injected: false,
            delivering: pending,
            event,
        }),
        (Running::L3(controls), _) => route(&Scenario {
            controls: *controls,
            protected_mode,
            injected: false,
            delivering: pending,
            event,
        }),
    };

    match outcome {
        Outcome::Deliver {
            event: delivered,
            error_code,
        } => {
            trace_promotion(
                host,
                pending,
                &event,
                delivered.is_hardware(DOUBLE_FAULT_VECTOR),
            );
            write_entry(vmcs, host, &delivered, error_code);
            let requeue = pending.filter(|p| {
                matches!(
                    p.kind,
                    InterruptionType::Nmi
                        | InterruptionType::ExternalInterrupt
                        | InterruptionType::OtherEvent
                )
            });
            if let Some(displaced) = requeue {
                host.record(TraceRecord::Requeue {
                    vector: displaced.vector,
                });
            }
            InjectOutcome::Injected { requeue }
        }
        Outcome::VmExit(exit) => {
            // The pending event is now reported by the exit (or lost to #DF / triple fault, as
            // on hardware); leaving it valid would deliver it a second time.
            vmcs.write(
                control::VMENTRY_INTERRUPTION_INFO_FIELD,
                InterruptionInfo::INVALID.bits().into(),
            );
            let df_exit = exit.interruption_info.interruption_type()
                == Some(InterruptionType::HardwareException)
                && exit.interruption_info.vector() == DOUBLE_FAULT_VECTOR;
            trace_promotion(host, pending, &event, df_exit);
            if exit.reason == ExitReason::TripleFault {
                let first = pending.map_or(DOUBLE_FAULT_VECTOR, |p| p.vector);
                host.record(TraceRecord::TripleFault {
                    first,
                    second: event.vector,
                });
            }
            match running {
                // With no controls set, the only exit route() can choose is the triple fault.
                Running::L2 => InjectOutcome::TripleFault,
                Running::L3(_) => {
                    host.record(TraceRecord::Reflect {
                        exit_reason: exit.reason as u16,
                        vector: exit.interruption_info.vector(),
                    });
                    InjectOutcome::Reflected(exit)
                }
            }
        }
    }
}

/// Re-injects the exception of the exit in `vmcs` into the guest that caused it (l1-hv's own
/// L2 guest, no debugger attached) in the common case, without [`inject_event`]'s decisions:
/// a hardware exception other than #DB, #BP and #CP (whose delivery depends on more than the
/// exit: DR6 and the debug controls, the debugger, CET) that interrupted no other delivery (invalid
/// IDT-vectoring information) and left no NMI blocking to restore (bit 12 clear) is delivered
/// exactly as the exit reports it. Table 6-5 has nothing to combine it with; the processor chose
/// its error code for the guest's mode (SDM 28.2.2); CR2 and the trace record are as
/// `inject_event` writes them. Returns false, having changed nothing, for any other exit; the
/// caller then takes `inject_event`. The tests hold the two equal on every exit this takes.
pub fn reinject_intercepted(vmcs: &mut impl Vmcs, host: &mut impl InjectHost) -> bool {
    let info = InterruptionInfo(vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32);
    let vector = info.vector();
    let plain = info.valid()
        && info.interruption_type() == Some(InterruptionType::HardwareException)
        && !matches!(
            vector,
            DEBUG_VECTOR | BREAKPOINT_VECTOR | CONTROL_PROTECTION_VECTOR
        )
        && info.0 & InfoFlags::NMI_UNBLOCKING_DUE_TO_IRET.bits() == 0
        && !InterruptionInfo(vmcs.read(ro::IDT_VECTORING_INFO) as u32).valid();
    if !plain {
        return false;
    }
    let with_error_code = info.deliver_error_code();
    let entry = InterruptionInfo::new(InterruptionType::HardwareException, vector, with_error_code);
    vmcs.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        entry.bits().into(),
    );
    let mut error_code = 0;
    if with_error_code {
        // The error code the exception pushed (SDM 28.2.2): bits 31:16 are reserved and 0.
        error_code = vmcs.read(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u16;
        vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, error_code.into());
    }
    if vector_is_fault(vector) {
        set_resume_flag(vmcs);
    }
    if vector == PAGE_FAULT_VECTOR {
        let cr2 = vmcs.read(ro::EXIT_QUALIFICATION);
        host.set_cr2(cr2);
        host.record(TraceRecord::PfInject { error_code, cr2 });
    } else {
        host.record(TraceRecord::InjExc { vector, error_code });
    }
    true
}

/// Sets the guest's RFLAGS.RF for a fault about to be delivered by injection: injection pushes
/// the guest-state RF unchanged whatever the event (SDM 27.6.1.1), and an instruction exit saved
/// RF = 0 (SDM 28.3.1.4), so a fault raised for an instruction l1-hv emulated must be given the
/// RF = 1 a processor pushes for every fault (SDM 18.3.1.1). An intercepted fault's exit already
/// saved RF = 1: then nothing is written.
fn set_resume_flag(vmcs: &mut impl Vmcs) {
    let rflags = vmcs.read(guest::RFLAGS);
    if rflags & RFlags::FLAGS_RF.bits() == 0 {
        vmcs.write(guest::RFLAGS, rflags | RFlags::FLAGS_RF.bits());
    }
}

/// Re-arms delivery of `event`, whose delivery an exit that l1-hv handled itself interrupted
/// (the exit's valid IDT-vectoring information, e.g. an EPT violation while pushing the frame):
/// VM entry delivers it again, as if the exit had not happened (SDM 28.2.4, "software should
/// re-inject the event"). Its payload is not applied again: CR2 or DR6 already hold it.
pub fn redeliver(vmcs: &mut impl Vmcs, event: &Event) {
    let protected_mode = guest_flag(vmcs, guest::CR0, Cr0::CR0_PROTECTED_MODE.bits() as u64);
    vmcs.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        event.info(protected_mode).bits().into(),
    );
    if let Some(error_code) = event.pushed_error_code(protected_mode) {
        vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, error_code.into());
    }
    if event.kind.is_software() {
        vmcs.write(control::VMENTRY_INSTRUCTION_LEN, event.insn_len.into());
    }
}

/// Sets up VM entry to deliver `event`, and applies the side effects of its delivery that VM-entry
/// injection leaves to software (SDM 26.6.1.2: injection does not update CR2, DR6, DR7 or
/// IA32_DEBUGCTL).
fn write_entry(
    vmcs: &mut impl Vmcs,
    host: &mut impl InjectHost,
    event: &Event,
    error_code: Option<u16>,
) {
    let error_code = error_code
        .filter(|_| !event.is_hardware(CONTROL_PROTECTION_VECTOR) || host.cet_supported());
    let info = InterruptionInfo::new(event.kind, event.vector, error_code.is_some());
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info.bits().into());
    if let Some(ec) = error_code {
        vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, ec.into());
    }
    if event.kind.is_software() {
        vmcs.write(control::VMENTRY_INSTRUCTION_LEN, event.insn_len.into());
    }
    if event.kind == InterruptionType::HardwareException && vector_is_fault(event.vector) {
        set_resume_flag(vmcs);
    }
    if event.is_hardware(PAGE_FAULT_VECTOR) {
        host.set_cr2(event.payload);
        host.record(TraceRecord::PfInject {
            error_code: error_code.unwrap_or(0),
            cr2: event.payload,
        });
        return;
    }
    if event.is_hardware(DEBUG_VECTOR) {
        // Delivery of #DB clears DR7.GD (SDM 18.2.4) and IA32_DEBUGCTL.LBR (SDM 18.4.1).
        host.merge_dr6(event.payload);
        let dr7 = vmcs.read(guest::DR7);
        vmcs.write(guest::DR7, dr7 & !(1 << Dr7::GD_BIT));
        let debugctl = vmcs.read(guest::IA32_DEBUGCTL_FULL);
        vmcs.write(guest::IA32_DEBUGCTL_FULL, debugctl & !DEBUGCTL_LBR);
    }
    if event.kind == InterruptionType::ExternalInterrupt {
        host.record(TraceRecord::InjVirq {
            vector: event.vector,
        });
        return;
    }
    host.record(TraceRecord::InjExc {
        vector: event.vector,
        error_code: error_code.unwrap_or(0),
    });
}

/// Records a #DF promotion: the outcome is #DF although the new event was not.
fn trace_promotion(
    host: &mut impl InjectHost,
    pending: Option<Event>,
    event: &Event,
    outcome_is_df: bool,
) {
    if let Some(first) = pending {
        if outcome_is_df && !event.is_hardware(DOUBLE_FAULT_VECTOR) {
            host.record(TraceRecord::DoubleFault {
                first: first.vector,
                second: event.vector,
            });
        }
    }
}

fn guest_flag(vmcs: &impl Vmcs, field: u32, bit: u64) -> bool {
    vmcs.read(field) & bit != 0
}
