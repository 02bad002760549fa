//! VMCLEAR, VMPTRLD and VMPTRST: the current-VMCS pointer and launch states (SDM 31.3).

use super::caps::allows;
use super::decode::MemOperand;
use super::guest::{GuestMemory, GuestMode, GuestOperands};
use super::outcome::{Outcome, VmInstructionError};
use super::state::{read_m64, read_revision, Current, NestedVmx};
use crate::nested::Dirty;
use shadow_vmcs::{SoftVmcs, SHADOW_INDICATOR, VMCS12_REVISION_ID, VMCS_REGION_SIZE};
use x86::vmx::vmcs::control::SecondaryControls;

/// Offset of the launch-state word in a vmcs12 region (see shadow-vmcs's `SoftVmcs`).
const LAUNCH_STATE_OFFSET: u64 = 8;

impl NestedVmx {
    /// Emulates VMCLEAR of the VMCS whose address is in the m64 `operand`. After the common
    /// checks: VMfail 2 for an unaligned or too-wide address, VMfail 3 for the VMXON pointer.
    /// The VMCS's data is then in memory and its launch state clear; if it was current, the
    /// current-VMCS pointer becomes invalid. A region outside RAM is left alone and the
    /// instruction succeeds, as a write to absent memory would.
    pub fn vmclear<G: GuestOperands + GuestMemory>(
        &mut self,
        mode: &GuestMode,
        guest: &mut G,
        operand: &MemOperand,
    ) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let addr = match read_m64(guest, operand) {
            Ok(addr) => addr,
            Err(fault) => return Outcome::Fault(fault),
        };
        if !self.valid_region_pointer(addr) {
            return self.fail(VmInstructionError::VmclearInvalidAddress);
        }
        if Some(addr) == self.vmxon_pointer {
            return self.fail(VmInstructionError::VmclearVmxonPointer);
        }
        if let Some(current) = self.current.as_mut().filter(|c| c.gpa == addr) {
            current
                .vmcs12
                .set_launch_state(shadow_vmcs::LaunchState::Clear);
            self.release_current(guest);
        } else {
            let _ = guest.write(addr + LAUNCH_STATE_OFFSET, &0u32.to_le_bytes());
        }
        Outcome::Succeed
    }

    /// Emulates VMPTRLD of the VMCS whose address is in the m64 `operand`. After the common
    /// checks: VMfail 9 for an unaligned, too-wide or non-RAM address, VMfail 10 for the VMXON
    /// pointer, VMfail 11 if the region's revision is not vmcs12's or it is a shadow VMCS while
    /// VMCS shadowing is not offered. The previous current vmcs12 is written back first.
    pub fn vmptrld<G: GuestOperands + GuestMemory>(
        &mut self,
        mode: &GuestMode,
        guest: &mut G,
        operand: &MemOperand,
    ) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let addr = match read_m64(guest, operand) {
            Ok(addr) => addr,
            Err(fault) => return Outcome::Fault(fault),
        };
        if !self.valid_region_pointer(addr) || !guest.is_ram(addr, VMCS_REGION_SIZE as u64) {
            return self.fail(VmInstructionError::VmptrldInvalidAddress);
        }
        if Some(addr) == self.vmxon_pointer {
            return self.fail(VmInstructionError::VmptrldVmxonPointer);
        }
        if self.current_vmcs_pointer() == Some(addr) {
            // Already current: reloading would drop writes not yet in memory.
            return Outcome::Succeed;
        }
        let revision = read_revision(guest, addr).unwrap_or(0);
        let shadowing = allows(
            self.caps.procbased2,
            SecondaryControls::VMCS_SHADOWING.bits(),
        );
        if revision & !SHADOW_INDICATOR != VMCS12_REVISION_ID
            || (revision & SHADOW_INDICATOR != 0 && !shadowing)
        {
            return self.fail(VmInstructionError::VmptrldBadRevision);
        }
        self.release_current(guest);
        let mut region = [0u8; VMCS_REGION_SIZE];
        if guest.read(addr, &mut region).is_err() {
            // Checked as RAM above; memory vanishing in between reads as an invalid address.
            return self.fail(VmInstructionError::VmptrldInvalidAddress);
        }
        self.current = Some(Current {
            gpa: addr,
            vmcs12: SoftVmcs::from_region(&region),
            dirty: Dirty::all(),
        });
        Outcome::Succeed
    }

    /// Emulates VMPTRST: stores the current-VMCS pointer (all ones if invalid) to `operand`.
    pub fn vmptrst(
        &mut self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operand: &MemOperand,
    ) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let pointer = self.current_vmcs_pointer().unwrap_or(u64::MAX);
        match guest.write_memory(operand, &pointer.to_le_bytes()) {
            Ok(()) => Outcome::Succeed,
            Err(fault) => Outcome::Fault(fault),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::Fault;
    use super::super::test_guest::*;
    use super::*;
    use shadow_vmcs::{LaunchState, Vmcs};
    use x86::vmx::vmcs::{guest as gf, ro};

    fn error_field(vmx: &NestedVmx) -> u64 {
        vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR)
    }

    #[test]
    fn vmptrld_makes_the_vmcs_current_and_vmptrst_reports_it() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        assert_eq!(vmx.current_vmcs_pointer(), Some(VMCS_A));
        assert_eq!(
            vmx.vmptrst(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(guest.operand(), VMCS_A);
    }

    #[test]
    fn vmptrst_without_current_vmcs_stores_all_ones() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        assert_eq!(
            vmx.vmptrst(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(guest.operand(), u64::MAX);
    }

    #[test]
    fn vmptrld_bad_addresses_fail_with_9_or_10() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        guest.put_operand(VMCS_A + 0x10);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::FailInvalid,
            "no current VMCS yet"
        );
        let mut vmx = with_current(&mut guest);
        for (pointer, error) in [
            (VMCS_B + 0x10, VmInstructionError::VmptrldInvalidAddress),
            (
                1 << PHYS_ADDR_BITS,
                VmInstructionError::VmptrldInvalidAddress,
            ),
            (MMIO, VmInstructionError::VmptrldInvalidAddress),
            (VMXON_REGION, VmInstructionError::VmptrldVmxonPointer),
        ] {
            guest.put_operand(pointer);
            assert_eq!(
                vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
                Outcome::FailValid(error),
                "{pointer:#x}"
            );
            assert_eq!(error_field(&vmx), error as u64);
            assert_eq!(vmx.current_vmcs_pointer(), Some(VMCS_A));
        }
    }

    #[test]
    fn vmptrld_wrong_revision_fails_with_11() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        guest.put_u32(VMCS_B, 0x1234);
        guest.put_operand(VMCS_B);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::FailValid(VmInstructionError::VmptrldBadRevision)
        );
        assert_eq!(error_field(&vmx), 11);
    }

    #[test]
    fn shadow_vmcs_loads_only_if_shadowing_is_offered() {
        let mut guest = FakeGuest::new();
        guest.put_u32(VMCS_B, VMCS12_REVISION_ID | SHADOW_INDICATOR);
        let mut vmx = in_vmx_operation(&mut guest);
        guest.put_operand(VMCS_B);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert!(vmx.current_vmcs12().unwrap().is_shadow());

        let caps = guest_caps();
        let mut plain = NestedVmx::new(
            super::super::VmxCapabilities {
                procbased2: 0,
                ..caps
            },
            PHYS_ADDR_BITS,
        );
        guest.put_operand(VMXON_REGION);
        assert_eq!(
            plain.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        guest.put_operand(VMCS_B);
        assert_eq!(
            plain.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::FailInvalid
        );
    }

    #[test]
    fn switching_vmcs_writes_the_old_one_back_with_its_launch_state() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        let vmcs12 = vmx.current_vmcs12_mut().unwrap();
        vmcs12.write(gf::RSP, 0x7000);
        vmcs12.set_launch_state(LaunchState::Launched);
        guest.put_operand(VMCS_B);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.current_vmcs12().unwrap().read(gf::RSP), 0);
        guest.put_operand(VMCS_A);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.current_vmcs12().unwrap().read(gf::RSP), 0x7000);
        assert_eq!(
            vmx.current_vmcs12().unwrap().launch_state(),
            LaunchState::Launched
        );
    }

    #[test]
    fn vmptrld_of_the_current_vmcs_keeps_unsaved_writes() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        vmx.current_vmcs12_mut().unwrap().write(gf::RIP, 0x99);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.current_vmcs12().unwrap().read(gf::RIP), 0x99);
    }

    #[test]
    fn vmclear_of_the_current_vmcs_clears_it_and_invalidates_the_pointer() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        vmx.current_vmcs12_mut()
            .unwrap()
            .set_launch_state(LaunchState::Launched);
        vmx.current_vmcs12_mut().unwrap().write(gf::RIP, 0x1234);
        assert_eq!(
            vmx.vmclear(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.current_vmcs_pointer(), None);
        assert_eq!(guest.u32_at(VMCS_A + LAUNCH_STATE_OFFSET), 0);
        let region: &[u8; 4096] = guest.ram.bytes[VMCS_A as usize..VMCS_A as usize + 4096]
            .try_into()
            .unwrap();
        assert_eq!(SoftVmcs::from_region(region).read(gf::RIP), 0x1234);
    }

    #[test]
    fn vmclear_of_another_vmcs_clears_its_region_only() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        guest.put_u32(VMCS_B + LAUNCH_STATE_OFFSET, 1);
        guest.put_operand(VMCS_B);
        assert_eq!(
            vmx.vmclear(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(guest.u32_at(VMCS_B + LAUNCH_STATE_OFFSET), 0);
        assert_eq!(vmx.current_vmcs_pointer(), Some(VMCS_A));
    }

    #[test]
    fn vmclear_bad_addresses_fail_with_2_or_3() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        guest.put_operand(VMCS_B | 0x800);
        assert_eq!(
            vmx.vmclear(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::FailValid(VmInstructionError::VmclearInvalidAddress)
        );
        assert_eq!(error_field(&vmx), 2);
        guest.put_operand(VMXON_REGION);
        assert_eq!(
            vmx.vmclear(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::FailValid(VmInstructionError::VmclearVmxonPointer)
        );
        assert_eq!(error_field(&vmx), 3);
    }

    #[test]
    fn pointer_instructions_fault_outside_vmx_operation_and_at_cpl3() {
        let mut guest = FakeGuest::new();
        let mut outside = NestedVmx::new(guest_caps(), PHYS_ADDR_BITS);
        guest.put_operand(VMCS_A);
        assert_eq!(
            outside.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Ud)
        );
        assert_eq!(
            outside.vmclear(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Ud)
        );
        assert_eq!(
            outside.vmptrst(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Ud)
        );
        let mut vmx = in_vmx_operation(&mut guest);
        let user = GuestMode {
            cpl: 3,
            ..LONG_MODE
        };
        guest.put_operand(VMCS_A);
        assert_eq!(
            vmx.vmptrld(&user, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert_eq!(
            vmx.vmclear(&user, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert_eq!(
            vmx.vmptrst(&user, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert_eq!(vmx.current_vmcs_pointer(), None);
    }
}
