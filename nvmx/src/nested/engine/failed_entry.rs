//! A VM entry of vmcs02 that the processor failed with VMfailValid: when it was the guest
//! hypervisor's VMLAUNCH/VMRESUME, that instruction fails the same way, with the processor's
//! error number (SDM 31.2 conventions; 27.1: nothing else changes), as it would have on the
//! processor itself. VM-entry failures that exit (reason bit 31) are reflected by
//! [`NestedVcpu::l3_exit`] instead.

use super::{NestedHardware, NestedVcpu};
use crate::insn::VmInstructionError;
use shadow_vmcs::{LaunchState, Vmcs};
use x86::vmx::vmcs::ro;

/// Why a failed VM entry of vmcs02 is no failure of the guest hypervisor's: l1-hv made vmcs02
/// invalid, or the processor reported what VM entry does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmcs02EntryBug {
    /// No VMLAUNCH/VMRESUME of the guest hypervisor was in flight: vmcs02 was entered again
    /// after l1-hv handled an exit of L3 itself.
    NoInstruction,
    /// An error number nvmx does not name (SDM 31.4).
    UnknownError(u64),
}

impl NestedVcpu {
    /// The processor failed the VM entry of vmcs02 with VMfailValid and `error` in vmcs02's
    /// VM-instruction error field; vmcs02 is current. When that entry was the guest hypervisor's
    /// VMLAUNCH/VMRESUME, it fails with that error: the number goes into vmcs12's VM-instruction
    /// error field, vmcs12's launch state stays as before (clear after a VMLAUNCH), and vmcs12
    /// is checked and vmcs02 built in full at the next entry. vmcs01 is current on return; the
    /// caller completes the instruction as VMfailValid (RFLAGS, RIP past it) and L2 continues.
    pub fn vmcs02_entry_failed<H: NestedHardware>(
        &mut self,
        hw: &mut H,
        error: u64,
    ) -> Result<VmInstructionError, Vmcs02EntryBug> {
        let launch = self.entering.take().ok_or(Vmcs02EntryBug::NoInstruction)?;
        let error =
            VmInstructionError::from_number(error).ok_or(Vmcs02EntryBug::UnknownError(error))?;
        // The entry had a current vmcs12 and only a VMX instruction can take it away.
        let current = self
            .vmx
            .current
            .as_mut()
            .ok_or(Vmcs02EntryBug::NoInstruction)?;
        current.vmcs12.write(ro::VM_INSTRUCTION_ERROR, error as u64);
        if launch {
            current.vmcs12.set_launch_state(LaunchState::Clear);
        }
        self.built = None;
        hw.vmcs01();
        Ok(error)
    }
}
