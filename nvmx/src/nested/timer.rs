//! The guest hypervisor's VMX-preemption timer (SDM 26.5.1), emulated on vmcs02's hardware
//! timer, which may also carry l1-hv's own.
//!
//! The guest hypervisor is offered the processor's rate (IA32_VMX_MISC bits 4:0,
//! [`crate::insn::VmxCapabilities::for_guest`]), so its counts are the hardware's units. A
//! nested entry starts vmcs02's timer with the smaller of vmcs12's value and l1-hv's; vmcs02
//! saves the value left at every exit ("save VMX-preemption timer value", SDM 28.3), so the
//! difference is the time spent in L3 (the timer counts only in VMX non-root operation of
//! vmcs02: time in l1-hv and in L2 does not count). That time comes off the guest hypervisor's
//! count at every exit; exit 52 is the guest hypervisor's only when its count ran out and
//! l1-hv's did not ("l1-hv wants" first, as in [`super::decide_l3_exit`]). When both ran out,
//! l1-hv handles its own, and the re-entry starts vmcs02's timer at 0: the processor exits
//! again before L3's first instruction, after any injected event (SDM 27.7.4), and that exit
//! is the guest hypervisor's.

use super::controls::Controls;
use super::vmcs02::L1Needs;
use crate::exit_reason;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::control::PinbasedControls;
use x86::vmx::vmcs::guest::VMX_PREEMPTION_TIMER_VALUE;

/// l1-hv's own timer value for vmcs02, if it activates the timer.
fn l1_value(l1: &L1Needs) -> Option<u32> {
    l1.pin
        .contains(PinbasedControls::VMX_PREEMPTION_TIMER)
        .then_some(l1.preemption_timer_value)
}

/// The value vmcs02's timer starts with while the guest hypervisor's runs: its count left
/// (`left12`) or l1-hv's value, whichever is smaller.
fn start(left12: u32, l1: Option<u32>) -> u32 {
    left12.min(l1.unwrap_or(u32::MAX))
}

/// The value vmcs02's timer starts with at a nested entry from `vmcs12` (controls `c12`):
/// every VM entry starts the guest hypervisor's timer from vmcs12's field (SDM 27.7.4).
pub(crate) fn vmcs02_timer(vmcs12: &impl Vmcs, c12: &Controls, l1: &L1Needs) -> Option<u32> {
    let l1 = l1_value(l1);
    if c12.pin.contains(PinbasedControls::VMX_PREEMPTION_TIMER) {
        Some(start(vmcs12.read(VMX_PREEMPTION_TIMER_VALUE) as u32, l1))
    } else {
        l1
    }
}

/// The guest hypervisor's timer while its L3 runs (from a nested entry with vmcs12's timer
/// active to the next virtual VM exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct L3Timer {
    /// The guest hypervisor's count left.
    left12: u32,
    /// l1-hv's value for each entry of vmcs02 (it restarts at every entry, as for L2).
    l1: Option<u32>,
    /// The value vmcs02's timer started with at the last entry.
    started: u32,
}

impl L3Timer {
    /// At a nested entry: vmcs12's value `left12`, l1-hv's needs `l1`.
    pub(crate) fn new(left12: u32, l1: &L1Needs) -> Self {
        let l1 = l1_value(l1);
        L3Timer {
            left12,
            l1,
            started: start(left12, l1),
        }
    }

    /// The guest hypervisor's count left (what a virtual VM exit saves).
    pub(crate) fn left(&self) -> u32 {
        self.left12
    }

    /// Writes vmcs02's timer value for the next entry of L3.
    pub(crate) fn arm(&self, vmcs02: &mut impl Vmcs) {
        vmcs02.write(VMX_PREEMPTION_TIMER_VALUE, self.started.into());
    }

    /// L3 exited with `reason` (vmcs02 current, its timer value saved by the exit): the time
    /// L3 ran comes off the guest hypervisor's count, and vmcs02 is armed for a re-entry after
    /// an exit l1-hv handles. Returns whether this is a preemption-timer exit of the guest
    /// hypervisor's timer alone.
    pub(crate) fn exited(&mut self, vmcs02: &mut impl Vmcs, reason: u32) -> bool {
        // A VM-entry failure saves no guest state (SDM 27.8): the field still holds `started`.
        let left02 = vmcs02.read(VMX_PREEMPTION_TIMER_VALUE) as u32;
        self.left12 -= self.started.saturating_sub(left02).min(self.left12);
        let timer_exit = reason == u32::from(exit_reason::PREEMPTION_TIMER);
        let l1s = timer_exit && self.l1 == Some(self.started);
        self.started = start(self.left12, self.l1);
        self.arm(vmcs02);
        timer_exit && !l1s
    }
}
