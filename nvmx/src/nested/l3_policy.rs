//! Who takes an exit of L3, in the order KVM's `nested_vmx_reflect_vmexit` asks (there "L0
//! wants" before "L1 wants"; here, in l1-hv's levels, l1-hv before the guest hypervisor):
//!
//! 1. exits that are l1-hv's whatever vmcs12 says — the machine's events (external
//!    interrupts, NMIs, machine checks, INIT, SIPI, SMIs), l1-hv's own EPT (EPT02 composed from
//!    the guest hypervisor's EPT, or EPT01 when vmcs12 has none) and a preemption-timer exit
//!    on l1-hv's count (also when the guest hypervisor's ran out at the same time);
//! 2. then exits vmcs12's controls would have caused on hardware ([`super::reflect`]): to the
//!    guest hypervisor as a virtual VM exit;
//! 3. the rest vmcs02 caused for l1-hv's controls alone: l1-hv's, by kind.

use super::controls::Controls;
use super::reflect::{l2_wants_exit, ExitFacts};
use crate::event::InterruptionType;
use crate::exit_reason::{self as reason, ExitReason};
use crate::insn::GuestMemory;
use shadow_vmcs::Vmcs;
use x86::irq::MACHINE_CHECK_VECTOR;

/// Who handles an exit of L3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// vmcs12 asked for it: perform a virtual VM exit to the guest hypervisor
    /// ([`super::NestedVcpu::l3_exit`]), with the exit information as vmcs02 reports it — a
    /// VM-entry failure of vmcs02 (reason bit 31) included, as the processor reported it.
    ReflectToL2,
    /// l1-hv's own exit: handle it (L3 resumes unless the handler reflects after all).
    L1Handles(L1Exit),
}

/// The kinds of exits of L3 l1-hv handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L1Exit {
    /// An exception vmcs12 does not intercept (l1-hv intercepted it for itself), or the
    /// machine's NMI or machine check: deliver it as the hardware would have, through
    /// [`crate::inject::inject_event`] with `Running::L3` (which may still reflect it).
    Exception,
    /// An external interrupt of the machine (acknowledged on exit).
    ExternalInterrupt,
    /// An EPT violation in EPT02 (vmcs12 enables EPT): walk the guest hypervisor's EPT
    /// ([`crate::ept::walk`]); fill EPT02 or reflect its violation or misconfiguration.
    Ept02Violation,
    /// An EPT violation while vmcs12 does not enable EPT: L3 ran on l1-hv's EPT for L2, so
    /// the address is an L2-physical one outside what l1-hv maps for L2.
    L2EptViolation,
    /// Port I/O vmcs12 lets through (vmcs02 exits on every port l1-hv intercepts).
    PortIo,
    /// RDMSR/WRMSR vmcs12 lets through (vmcs02 uses no MSR bitmap): performed for L3 where
    /// [`super::l3_msr`] says, a fault injected into L3.
    Msr,
    /// An interrupt- or NMI-window exit vmcs12 does not ask for: [`crate::intr::assist_l3`]
    /// armed the window in vmcs02 for an event of the machine that L3 could not take yet (or left
    /// it armed when the event went elsewhere). The window is open now (SDM 27.7.5, 27.7.6): run
    /// the assist again, which injects the event into L3, re-arms, or clears l1-hv's window.
    Window,
    /// l1-hv's own VMX-preemption timer ran out (`L1Needs::preemption_timer_value`): its
    /// runaway guard. The guest hypervisor's count keeps what it has left.
    PreemptionTimer,
    /// Anything else only l1-hv's controls or the machine caused: INIT, SIPI, SMIs, an EPT
    /// misconfiguration (in tables l1-hv wrote), a VM-entry failure
    /// due to a machine check, an instruction exit vmcs12 does not ask for.
    Other,
}

/// Decides who handles this exit of L3: l1-hv first, then the guest hypervisor (`vmcs12`, its
/// bitmaps in `mem`), then l1-hv again for what only its controls caused.
pub fn decide_l3_exit(exit: &ExitFacts, vmcs12: &impl Vmcs, mem: &impl GuestMemory) -> Decision {
    if let Some(own) = l1_wants_exit(exit, vmcs12) {
        return Decision::L1Handles(own);
    }
    if l2_wants_exit(exit, vmcs12, mem) {
        return Decision::ReflectToL2;
    }
    Decision::L1Handles(match exit.reason as u16 {
        reason::EXCEPTION_OR_NMI => L1Exit::Exception,
        reason::IO_INSTRUCTION => L1Exit::PortIo,
        reason::RDMSR | reason::WRMSR => L1Exit::Msr,
        reason::INTERRUPT_WINDOW | reason::NMI_WINDOW => L1Exit::Window,
        _ => L1Exit::Other,
    })
}

/// The exits that are l1-hv's whatever vmcs12's controls say.
fn l1_wants_exit(exit: &ExitFacts, vmcs12: &impl Vmcs) -> Option<L1Exit> {
    let reason = ExitReason(exit.reason);
    if reason.is_entry_failure() {
        // A machine check during VM entry is the machine's (SDM 27.8); a failed guest-state
        // or MSR-loading check is vmcs12's state, the guest hypervisor's.
        return (reason.basic() == reason::ENTRY_FAILURE_MACHINE_CHECK).then_some(L1Exit::Other);
    }
    match reason.basic() {
        reason::EXTERNAL_INTERRUPT => Some(L1Exit::ExternalInterrupt),
        // NMIs reach l1-hv only through its own NMI exiting (they are physical NMIs), and
        // machine checks are the machine's.
        reason::EXCEPTION_OR_NMI => {
            let info = exit.interruption_info;
            let machine = match info.interruption_type().filter(|_| info.valid()) {
                Some(InterruptionType::Nmi) => true,
                Some(InterruptionType::HardwareException) => info.vector() == MACHINE_CHECK_VECTOR,
                _ => false,
            };
            machine.then_some(L1Exit::Exception)
        }
        reason::EPT_VIOLATION => Some(if Controls::read(vmcs12).ept() {
            L1Exit::Ept02Violation
        } else {
            L1Exit::L2EptViolation
        }),
        // vmcs02's timer ran out on l1-hv's count, not (or not only) the guest hypervisor's
        // (super::timer).
        reason::PREEMPTION_TIMER if !exit.timer12_expired => Some(L1Exit::PreemptionTimer),
        // Every EPT structure the processor walks for L3 is l1-hv's.
        reason::INIT
        | reason::SIPI
        | reason::IO_SMI
        | reason::OTHER_SMI
        | reason::EPT_MISCONFIGURATION => Some(L1Exit::Other),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
