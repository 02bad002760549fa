//! The guest hypervisor's virtual VMX state: what a logical processor remembers between VMX
//! instructions.

use super::caps::VmxCapabilities;
use super::decode::MemOperand;
use super::guest::{GuestMemory, GuestMode, GuestOperands};
use super::outcome::{Fault, Outcome, VmInstructionError};
use crate::nested::Dirty;
use shadow_vmcs::{SoftVmcs, Vmcs, VMCS_REGION_SIZE};
use x86::vmx::vmcs::ro;

/// The current VMCS: its guest-physical address and l1-hv's cached copy of its vmcs12.
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub(crate) gpa: u64,
    pub(crate) vmcs12: SoftVmcs,
    /// Field groups changed since the last successful nested entry (all after VMPTRLD).
    pub(crate) dirty: Dirty,
}

/// Per-vCPU nested-VMX state of a guest hypervisor.
///
/// The current vmcs12 is cached here from VMPTRLD until VMCLEAR, a VMPTRLD of another VMCS, or
/// VMXOFF writes it back to its region in guest memory. The launch state travels with it, in the
/// vmcs12 header, so a VMCS that is switched away from and loaded again keeps it, as on hardware.
#[derive(Clone, Debug)]
pub struct NestedVmx {
    pub(super) caps: VmxCapabilities,
    pub(super) phys_addr_bits: u8,
    pub(super) vmxon_pointer: Option<u64>,
    pub(crate) current: Option<Current>,
}

impl NestedVmx {
    /// A vCPU outside VMX operation whose guest hypervisor sees `caps` (see
    /// [`VmxCapabilities::for_guest`]) and a physical-address width of `phys_addr_bits`
    /// (its CPUID.80000008H:EAX bits 7:0).
    pub fn new(caps: VmxCapabilities, phys_addr_bits: u8) -> Self {
        NestedVmx {
            caps,
            phys_addr_bits,
            vmxon_pointer: None,
            current: None,
        }
    }

    /// The capability MSR values the guest hypervisor sees.
    pub fn capabilities(&self) -> &VmxCapabilities {
        &self.caps
    }

    /// Whether the guest hypervisor is in (virtual) VMX operation.
    pub fn in_vmx_operation(&self) -> bool {
        self.vmxon_pointer.is_some()
    }

    /// The VMXON pointer, while in VMX operation.
    pub fn vmxon_pointer(&self) -> Option<u64> {
        self.vmxon_pointer
    }

    /// The current-VMCS pointer, if valid (VMPTRST stores all ones otherwise).
    pub fn current_vmcs_pointer(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.gpa)
    }

    /// The current vmcs12.
    pub fn current_vmcs12(&self) -> Option<&SoftVmcs> {
        self.current.as_ref().map(|c| &c.vmcs12)
    }

    /// The current vmcs12, for shadow sync, nested VM entry (which sets the launch state once
    /// VMLAUNCH's entry succeeds) and nested VM exit.
    pub fn current_vmcs12_mut(&mut self) -> Option<&mut SoftVmcs> {
        self.current.as_mut().map(|c| &mut c.vmcs12)
    }

    /// The checks shared by every VMX instruction but VMXON, in SDM order: #UD outside VMX
    /// operation or in a mode without VMX instructions, then #GP(0) at CPL > 0. (A VM exit for
    /// VMX non-root operation does not apply: l1-hv emulates the guest hypervisor's root mode.)
    pub(super) fn root_check(&self, mode: &GuestMode) -> Option<Outcome> {
        if !self.in_vmx_operation() || mode.vmx_undefined() {
            Some(Outcome::Fault(Fault::Ud))
        } else if mode.cpl > 0 {
            Some(Outcome::Fault(Fault::Gp(0)))
        } else {
            None
        }
    }

    /// VMfail(error): VMfailValid with the error recorded in the current VMCS if there is one,
    /// VMfailInvalid otherwise (SDM 31.2).
    pub(super) fn fail(&mut self, error: VmInstructionError) -> Outcome {
        match &mut self.current {
            Some(current) => {
                current.vmcs12.write(ro::VM_INSTRUCTION_ERROR, error as u64);
                Outcome::FailValid(error)
            }
            None => Outcome::FailInvalid,
        }
    }

    /// Whether `addr` may point at a VMXON or VMCS region: 4 KiB-aligned and within the
    /// physical-address width.
    pub(super) fn valid_region_pointer(&self, addr: u64) -> bool {
        addr & 0xFFF == 0 && addr >> self.phys_addr_bits == 0
    }

    /// Writes the current vmcs12 back to its region and makes the current-VMCS pointer invalid.
    /// A region that stopped being RAM loses the data, as a write to absent memory would.
    pub(super) fn release_current(&mut self, mem: &mut impl GuestMemory) {
        if let Some(current) = self.current.take() {
            let mut region = [0u8; VMCS_REGION_SIZE];
            current.vmcs12.to_region(&mut region);
            let _ = mem.write(current.gpa, &region);
        }
    }
}

/// Reads an m64 operand (the VMXON/VMCLEAR/VMPTRLD physical-address operand).
pub(super) fn read_m64(guest: &mut impl GuestOperands, operand: &MemOperand) -> Result<u64, Fault> {
    let mut bytes = [0u8; 8];
    guest.read_memory(operand, &mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Reads the first dword of a region: revision identifier and shadow-VMCS indicator.
pub(super) fn read_revision(mem: &impl GuestMemory, gpa: u64) -> Option<u32> {
    let mut bytes = [0u8; 4];
    mem.read(gpa, &mut bytes).ok()?;
    Some(u32::from_le_bytes(bytes))
}
