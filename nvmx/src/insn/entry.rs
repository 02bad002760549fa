//! VMLAUNCH and VMRESUME: the instruction-level checks before a nested VM entry (SDM 26.1,
//! "Basic VM-Entry Checks"). Control, host-state and guest-state checks belong to the entry.

use super::guest::GuestMode;
use super::outcome::{Outcome, VmInstructionError};
use super::state::NestedVmx;
use shadow_vmcs::LaunchState;

impl NestedVmx {
    /// Emulates VMLAUNCH; see [`NestedVmx::vmresume`] for the checks.
    pub fn vmlaunch(&mut self, mode: &GuestMode, blocked_by_mov_ss: bool) -> Outcome {
        self.vm_entry(mode, blocked_by_mov_ss, true)
    }

    /// Emulates VMRESUME. After the common checks: VMfailInvalid without a current VMCS or when
    /// it is a shadow VMCS; VMfail 26 when events are blocked by MOV SS (`blocked_by_mov_ss`, the
    /// guest's interruptibility state); VMfail 4 for VMLAUNCH of a VMCS that is not clear, 5 for
    /// VMRESUME of one that is not launched. Success is [`Outcome::Enter`]: the entry code sets
    /// the launch state once a VMLAUNCH entry has succeeded.
    pub fn vmresume(&mut self, mode: &GuestMode, blocked_by_mov_ss: bool) -> Outcome {
        self.vm_entry(mode, blocked_by_mov_ss, false)
    }

    fn vm_entry(&mut self, mode: &GuestMode, blocked_by_mov_ss: bool, launch: bool) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let Some(current) = &self.current else {
            return Outcome::FailInvalid;
        };
        // SDM 24.10: a shadow VMCS cannot be entered; no error number is recorded.
        if current.vmcs12.is_shadow() {
            return Outcome::FailInvalid;
        }
        let state = current.vmcs12.launch_state();
        if blocked_by_mov_ss {
            return self.fail(VmInstructionError::EntryBlockedByMovSs);
        }
        match (launch, state) {
            (true, LaunchState::Launched) => self.fail(VmInstructionError::VmlaunchNonClear),
            (false, LaunchState::Clear) => self.fail(VmInstructionError::VmresumeNonLaunched),
            _ => Outcome::Enter { launch },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::Fault;
    use super::super::test_guest::*;
    use super::*;
    use shadow_vmcs::{Vmcs, VMCS12_REVISION_ID};
    use x86::vmx::vmcs::ro;

    fn error(vmx: &NestedVmx) -> u64 {
        vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR)
    }

    #[test]
    fn launch_of_a_clear_vmcs_and_resume_of_a_launched_one_enter() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        assert_eq!(
            vmx.vmlaunch(&LONG_MODE, false),
            Outcome::Enter { launch: true }
        );
        vmx.current_vmcs12_mut()
            .unwrap()
            .set_launch_state(LaunchState::Launched);
        assert_eq!(
            vmx.vmresume(&LONG_MODE, false),
            Outcome::Enter { launch: false }
        );
    }

    #[test]
    fn wrong_launch_state_fails_with_4_or_5() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        assert_eq!(
            vmx.vmresume(&LONG_MODE, false),
            Outcome::FailValid(VmInstructionError::VmresumeNonLaunched)
        );
        assert_eq!(error(&vmx), 5);
        vmx.current_vmcs12_mut()
            .unwrap()
            .set_launch_state(LaunchState::Launched);
        assert_eq!(
            vmx.vmlaunch(&LONG_MODE, false),
            Outcome::FailValid(VmInstructionError::VmlaunchNonClear)
        );
        assert_eq!(error(&vmx), 4);
    }

    #[test]
    fn mov_ss_blocking_is_checked_before_launch_state() {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        assert_eq!(
            vmx.vmresume(&LONG_MODE, true),
            Outcome::FailValid(VmInstructionError::EntryBlockedByMovSs)
        );
        assert_eq!(error(&vmx), 26);
    }

    #[test]
    fn no_current_or_shadow_vmcs_fails_invalid() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        assert_eq!(vmx.vmlaunch(&LONG_MODE, true), Outcome::FailInvalid);
        guest.put_u32(VMCS_B, VMCS12_REVISION_ID | 1 << 31);
        guest.put_operand(VMCS_B);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        assert_eq!(vmx.vmlaunch(&LONG_MODE, false), Outcome::FailInvalid);
        assert_eq!(error(&vmx), 0);
    }

    #[test]
    fn entry_faults_outside_vmx_operation_and_at_cpl3() {
        let mut guest = FakeGuest::new();
        let mut outside = NestedVmx::new(guest_caps(), PHYS_ADDR_BITS);
        assert_eq!(
            outside.vmlaunch(&LONG_MODE, false),
            Outcome::Fault(Fault::Ud)
        );
        let mut vmx = with_current(&mut guest);
        assert_eq!(
            vmx.vmresume(
                &GuestMode {
                    cpl: 3,
                    ..LONG_MODE
                },
                false
            ),
            Outcome::Fault(Fault::Gp(0))
        );
    }
}
