//! VM-entry checks on vmcs12 before a nested entry, in the SDM's order (SDM 27.2, 27.3):
//! VM-execution, VM-exit and VM-entry control fields (VMfailValid 7), host-state area
//! (VMfailValid 8), then guest-state area (a VM-entry failure exit, reason 33).
//!
//! The checks are made against the capabilities the guest hypervisor was given, and wherever a
//! rule depends on the processor they are at least as strict as any VT-x CPU l1-hv runs on: a
//! vmcs12 that passes must give (through [`super::prepare_vmcs02`]) a vmcs02 that the real CPU
//! accepts. What nvmx does not emulate is refused with the architectural failure, e.g. the
//! shutdown and wait-for-SIPI activity states, which the guest's IA32_VMX_MISC does not offer.

mod controls;
mod guest;
mod host;
mod segments;
#[cfg(test)]
mod tests;

use super::controls::Controls;
use super::msr_area::FailedEntry;
use crate::exit_reason;
use crate::insn::{GuestMemory, VmInstructionError, VmxCapabilities};
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::ro;

/// What the checks consult besides vmcs12.
#[derive(Clone, Copy, Debug)]
pub struct EntryContext<'a> {
    /// The capability MSRs the guest hypervisor sees ([`crate::insn::NestedVmx::capabilities`]).
    pub caps: &'a VmxCapabilities,
    /// The guest hypervisor's physical-address width (its CPUID.80000008H:EAX bits 7:0).
    pub phys_addr_bits: u8,
    /// Whether the guest hypervisor executed VMLAUNCH/VMRESUME in IA-32e mode (its EFER.LMA):
    /// the host address-space size must match (SDM 27.2.4).
    pub ia32e_mode: bool,
    /// The guest hypervisor's current IA32_DEBUGCTL, which L3 inherits when vmcs12 does not load
    /// debug controls (see [`super::L2Inherited`]). Its BTF bit must agree with the pending
    /// debug exceptions too, so that vmcs02 passes the real CPU's check (SDM 27.3.1.5).
    pub l2_debugctl: u64,
}

/// Why a nested VM entry did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFailure {
    /// VMfailValid: invalid control fields (7) or host-state fields (8). The guest hypervisor
    /// continues after its VMLAUNCH/VMRESUME with the error number in vmcs12.
    VmFailValid(VmInstructionError),
    /// The guest state failed: a VM exit to the guest hypervisor with `reason` (33 with bit 31
    /// set) and `qualification` (0; 2 for PDPTEs; 4 for the VMCS link pointer), no guest state
    /// saved, host state loaded (SDM 27.8); or MSR loading failed
    /// ([`EntryFailure::msr_loading`]).
    Exit {
        /// Exit-reason field value, bit 31 set.
        reason: u32,
        /// Exit qualification.
        qualification: u64,
    },
}

/// Exit qualification of an entry failure caused by a guest-state check (SDM 27.8).
pub(crate) const QUALIFICATION_DEFAULT: u64 = 0;
/// Exit qualification: the PDPTEs could not be loaded.
pub(crate) const QUALIFICATION_PDPTE: u64 = 2;
/// Exit qualification: the VMCS link pointer is invalid.
pub(crate) const QUALIFICATION_LINK_POINTER: u64 = 4;

impl EntryFailure {
    fn guest_state(qualification: u64) -> Self {
        EntryFailure::Exit {
            reason: u32::from(exit_reason::ENTRY_FAILURE_GUEST_STATE) | exit_reason::ENTRY_FAILURE,
            qualification,
        }
    }

    /// VM-entry MSR loading failed at `entry` (SDM 27.4): exit reason 34, the entry's number
    /// as the qualification (SDM 27.8).
    pub fn msr_loading(entry: FailedEntry) -> Self {
        EntryFailure::Exit {
            reason: u32::from(exit_reason::ENTRY_FAILURE_MSR_LOADING) | exit_reason::ENTRY_FAILURE,
            qualification: entry.0.into(),
        }
    }

    /// Records the failure in vmcs12: the VM-instruction error field for VMfailValid, the exit
    /// reason and qualification for a failure exit. Nothing else in vmcs12 changes (in
    /// particular the VM-entry interruption information stays valid, and no guest state is
    /// saved); the caller then sets RFLAGS ([`crate::insn::Outcome::rflags`]) or loads the
    /// guest hypervisor's host state ([`super::load_l2_host_state`]).
    pub fn write_to(&self, vmcs12: &mut impl Vmcs) {
        match *self {
            EntryFailure::VmFailValid(error) => {
                vmcs12.write(ro::VM_INSTRUCTION_ERROR, error as u64);
            }
            EntryFailure::Exit {
                reason,
                qualification,
            } => {
                vmcs12.write(ro::EXIT_REASON, reason.into());
                vmcs12.write(ro::EXIT_QUALIFICATION, qualification);
            }
        }
    }
}

/// Runs every VM-entry check on `vmcs12` in the SDM's order; `mem` is the guest hypervisor's
/// memory (virtual-APIC page, PDPTEs without EPT, the VMCS link pointer's region).
pub fn check_vmcs12(
    vmcs12: &impl Vmcs,
    mem: &impl GuestMemory,
    ctx: &EntryContext<'_>,
) -> Result<(), EntryFailure> {
    if !controls::controls_valid(vmcs12, mem, ctx) {
        return Err(EntryFailure::VmFailValid(
            VmInstructionError::EntryInvalidControls,
        ));
    }
    if !host::host_state_valid(vmcs12, ctx) {
        return Err(EntryFailure::VmFailValid(
            VmInstructionError::EntryInvalidHostState,
        ));
    }
    guest::check_guest_state(vmcs12, mem, ctx).map_err(EntryFailure::guest_state)
}

/// The checks of an entry where only the VM-entry event-injection fields (SDM 25.8.3) changed
/// since vmcs12 last passed [`check_vmcs12`] under the same context: the injection rules
/// (VMfailValid 7) and the guest-state rules that read the injected event (failure exit,
/// qualification 0). Every other rule reads no injection field and passed before (guest state
/// an exit saved since is vmcs02's, which the processor checks), so the result equals
/// [`check_vmcs12`]'s; the caller must not use this for a vmcs12 whose checks read memory
/// ([`reads_memory`]), which can change behind any field. `c`: vmcs12's controls.
pub(crate) fn check_injection(
    vmcs12: &impl Vmcs,
    ctx: &EntryContext<'_>,
    c: &Controls,
) -> Result<(), EntryFailure> {
    if !controls::injection_controls_valid(vmcs12, ctx, c) {
        return Err(EntryFailure::VmFailValid(
            VmInstructionError::EntryInvalidControls,
        ));
    }
    if !guest::injection_state_valid(vmcs12, c) {
        return Err(EntryFailure::guest_state(QUALIFICATION_DEFAULT));
    }
    Ok(())
}

/// Whether [`check_vmcs12`] reads the guest hypervisor's memory for `vmcs12`: VTPR in the
/// virtual-APIC page (TPR shadow without APIC virtualization), the VMCS link pointer's region,
/// PAE PDPTEs without EPT. Memory changes without a VMWRITE, so such a vmcs12 is checked in full
/// at every entry. `c`: its controls.
pub(crate) fn reads_memory(vmcs12: &impl Vmcs, c: &Controls) -> bool {
    controls::reads_vtpr(c) || guest::reads_memory(vmcs12, c)
}
