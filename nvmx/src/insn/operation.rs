//! VMXON and VMXOFF: entering and leaving (virtual) VMX operation (SDM 31.3 VMXON, VMXOFF).

use super::decode::MemOperand;
use super::guest::{GuestMemory, GuestMode, GuestOperands};
use super::outcome::{Fault, Outcome, VmInstructionError};
use super::state::{read_m64, read_revision, NestedVmx};
use shadow_vmcs::{VMCS12_REVISION_ID, VMCS_REGION_SIZE};

/// IA32_FEATURE_CONTROL bit 0 (lock) and bit 2 (VMXON outside SMX operation allowed).
const FEATURE_CONTROL_VMX_LOCKED: u64 = 1 << 0 | 1 << 2;

impl NestedVmx {
    /// Emulates VMXON with the m64 `operand` naming the VMXON region. `feature_control` is the
    /// guest's IA32_FEATURE_CONTROL. Checks, in SDM order: #UD (mode); in VMX operation #GP(0)
    /// at CPL > 0 else VMfail 15; otherwise #GP(0) for CPL > 0, CR0/CR4 outside the fixed bits,
    /// or IA32_FEATURE_CONTROL not locked with VMX enabled; then VMfailInvalid for a pointer
    /// that is unaligned, beyond the physical-address width or not RAM (l1-hv's reading of
    /// "invalid"), or a region whose revision is not vmcs12's or has bit 31 set.
    pub fn vmxon<G: GuestOperands + GuestMemory>(
        &mut self,
        mode: &GuestMode,
        feature_control: u64,
        guest: &mut G,
        operand: &MemOperand,
    ) -> Outcome {
        if mode.vmx_undefined() {
            return Outcome::Fault(Fault::Ud);
        }
        if self.in_vmx_operation() {
            return if mode.cpl > 0 {
                Outcome::Fault(Fault::Gp(0))
            } else {
                self.fail(VmInstructionError::VmxonInRoot)
            };
        }
        if mode.cpl > 0
            || !self.control_registers_allowed(mode)
            || feature_control & FEATURE_CONTROL_VMX_LOCKED != FEATURE_CONTROL_VMX_LOCKED
        {
            return Outcome::Fault(Fault::Gp(0));
        }
        let addr = match read_m64(guest, operand) {
            Ok(addr) => addr,
            Err(fault) => return Outcome::Fault(fault),
        };
        if !self.valid_region_pointer(addr) || !guest.is_ram(addr, VMCS_REGION_SIZE as u64) {
            return Outcome::FailInvalid;
        }
        // Bit 31 must be clear too: a VMXON region is never a shadow VMCS.
        if read_revision(guest, addr) != Some(VMCS12_REVISION_ID) {
            return Outcome::FailInvalid;
        }
        self.vmxon_pointer = Some(addr);
        self.current = None;
        Outcome::Succeed
    }

    /// Emulates VMXOFF: after the common checks, writes the current vmcs12 back (software should
    /// have VMCLEARed it; l1-hv keeps its data rather than losing it) and leaves VMX operation.
    /// No dual-monitor treatment exists, so VMfail 23 never happens.
    pub fn vmxoff(&mut self, mode: &GuestMode, mem: &mut impl GuestMemory) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        self.release_current(mem);
        self.vmxon_pointer = None;
        Outcome::Succeed
    }

    /// CR0 and CR4 honour IA32_VMX_CR{0,4}_FIXED{0,1}: fixed-0 bits set, no bit outside fixed-1.
    fn control_registers_allowed(&self, mode: &GuestMode) -> bool {
        let caps = &self.caps;
        let fits =
            |value: u64, fixed0: u64, fixed1: u64| value & fixed0 == fixed0 && value & !fixed1 == 0;
        fits(mode.cr0, caps.cr0_fixed0, caps.cr0_fixed1)
            && fits(mode.cr4, caps.cr4_fixed0, caps.cr4_fixed1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_guest::*;
    use super::*;
    use shadow_vmcs::{SoftVmcs, Vmcs};
    use x86::vmx::vmcs::{guest as gf, ro};

    fn fresh() -> (NestedVmx, FakeGuest) {
        let mut guest = FakeGuest::new();
        guest.put_operand(VMXON_REGION);
        (NestedVmx::new(guest_caps(), PHYS_ADDR_BITS), guest)
    }

    #[test]
    fn vmxon_enters_vmx_operation() {
        let (mut vmx, mut guest) = fresh();
        assert_eq!(
            vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.vmxon_pointer(), Some(VMXON_REGION));
        assert_eq!(vmx.current_vmcs_pointer(), None);
    }

    #[test]
    fn vmxon_ud_without_vmxe_or_in_compatibility_mode() {
        let (mut vmx, mut guest) = fresh();
        let no_vmxe = GuestMode {
            cr4: 0x20,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmxon(&no_vmxe, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Ud)
        );
        let compat = GuestMode {
            cs_long: false,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmxon(&compat, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Ud)
        );
        assert!(!vmx.in_vmx_operation());
    }

    #[test]
    fn vmxon_gp_for_cpl_feature_control_and_fixed_bits() {
        let (mut vmx, mut guest) = fresh();
        let user = GuestMode {
            cpl: 3,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmxon(&user, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert_eq!(
            vmx.vmxon(&LONG_MODE, 0b001, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert_eq!(
            vmx.vmxon(&LONG_MODE, 0b100, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        let no_ne = GuestMode {
            cr0: LONG_MODE.cr0 & !0x20,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmxon(&no_ne, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
        assert!(!vmx.in_vmx_operation());
    }

    #[test]
    fn vmxon_fail_invalid_for_bad_pointers_and_revisions() {
        for (pointer, revision) in [
            (VMXON_REGION + 8, VMCS12_REVISION_ID),
            (1 << PHYS_ADDR_BITS, VMCS12_REVISION_ID),
            (MMIO, VMCS12_REVISION_ID),
            (VMXON_REGION, VMCS12_REVISION_ID + 1),
            (VMXON_REGION, VMCS12_REVISION_ID | 1 << 31),
        ] {
            let (mut vmx, mut guest) = fresh();
            guest.put_u32(VMXON_REGION, revision);
            guest.put_operand(pointer);
            assert_eq!(
                vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
                Outcome::FailInvalid,
                "{pointer:#x}"
            );
            assert!(!vmx.in_vmx_operation());
        }
    }

    #[test]
    fn vmxon_operand_fault_is_raised() {
        let (mut vmx, mut guest) = fresh();
        guest.regs[3] = MMIO; // RBX: the operand itself is unreachable
        assert!(matches!(
            vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Pf { .. })
        ));
    }

    #[test]
    fn vmxon_in_root_fails_valid_with_a_current_vmcs_and_invalid_without() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        guest.put_operand(VMXON_REGION);
        assert_eq!(
            vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::FailInvalid
        );
        let mut vmx = with_current(&mut guest);
        guest.put_operand(VMXON_REGION);
        assert_eq!(
            vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::FailValid(VmInstructionError::VmxonInRoot)
        );
        assert_eq!(
            vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR),
            15
        );
        let user = GuestMode {
            cpl: 1,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmxon(&user, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Fault(Fault::Gp(0))
        );
    }

    #[test]
    fn vmxoff_leaves_and_writes_the_current_vmcs_back() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        vmx.current_vmcs12_mut().unwrap().write(gf::RIP, 0x4242);
        assert_eq!(vmx.vmxoff(&LONG_MODE, &mut guest), Outcome::Succeed);
        assert!(!vmx.in_vmx_operation());
        let region: &[u8; 4096] = guest.ram.bytes[VMCS_A as usize..VMCS_A as usize + 4096]
            .try_into()
            .unwrap();
        assert_eq!(SoftVmcs::from_region(region).read(gf::RIP), 0x4242);
        assert_eq!(
            vmx.vmxoff(&LONG_MODE, &mut guest),
            Outcome::Fault(Fault::Ud)
        );
    }

    #[test]
    fn vmxoff_gp_at_cpl3() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        assert_eq!(
            vmx.vmxoff(
                &GuestMode {
                    cpl: 3,
                    ..LONG_MODE
                },
                &mut guest
            ),
            Outcome::Fault(Fault::Gp(0))
        );
        assert!(vmx.in_vmx_operation());
    }
}
