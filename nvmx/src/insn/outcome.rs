//! What an emulated VMX instruction did, and its effect on RFLAGS (SDM 31.2 conventions).

/// A fault an emulated VMX instruction raises in the guest hypervisor instead of completing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// #UD: outside VMX operation, CR4.VMXE = 0, real/virtual-8086/compatibility mode, or an
    /// instruction the advertised capabilities do not include.
    Ud,
    /// #GP with this error code (0 for every check nvmx makes: CPL > 0, VMXON preconditions).
    Gp(u32),
    /// #SS with this error code: raised by a [`super::GuestOperands`] memory access.
    Ss(u32),
    /// #PF at `linear` with `error_code`: raised by a [`super::GuestOperands`] memory access.
    Pf {
        /// The faulting linear address (CR2).
        linear: u64,
        /// The page-fault error code.
        error_code: u32,
    },
}

/// VM-instruction error numbers (SDM 31.4), stored in the VM-instruction error field on VMfailValid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VmInstructionError {
    /// VMCALL executed in VMX root operation.
    VmcallInRoot = 1,
    /// VMCLEAR with invalid physical address.
    VmclearInvalidAddress = 2,
    /// VMCLEAR with VMXON pointer.
    VmclearVmxonPointer = 3,
    /// VMLAUNCH with non-clear VMCS.
    VmlaunchNonClear = 4,
    /// VMRESUME with non-launched VMCS.
    VmresumeNonLaunched = 5,
    /// VMRESUME after VMXOFF.
    VmresumeAfterVmxoff = 6,
    /// VM entry with invalid control field(s).
    EntryInvalidControls = 7,
    /// VM entry with invalid host-state field(s).
    EntryInvalidHostState = 8,
    /// VMPTRLD with invalid physical address.
    VmptrldInvalidAddress = 9,
    /// VMPTRLD with VMXON pointer.
    VmptrldVmxonPointer = 10,
    /// VMPTRLD with incorrect VMCS revision identifier.
    VmptrldBadRevision = 11,
    /// VMREAD/VMWRITE from/to unsupported VMCS component.
    UnsupportedComponent = 12,
    /// VMWRITE to read-only VMCS component.
    VmwriteReadOnly = 13,
    /// VMXON executed in VMX root operation.
    VmxonInRoot = 15,
    /// VM entry with events blocked by MOV SS.
    EntryBlockedByMovSs = 26,
    /// Invalid operand to INVEPT/INVVPID.
    InvalidInveptInvvpidOperand = 28,
}

impl VmInstructionError {
    /// The error numbered `number`, as a processor reports it in the VM-instruction error
    /// field; `None` for a number nvmx does not name.
    pub fn from_number(number: u64) -> Option<Self> {
        use VmInstructionError::*;
        [
            VmcallInRoot,
            VmclearInvalidAddress,
            VmclearVmxonPointer,
            VmlaunchNonClear,
            VmresumeNonLaunched,
            VmresumeAfterVmxoff,
            EntryInvalidControls,
            EntryInvalidHostState,
            VmptrldInvalidAddress,
            VmptrldVmxonPointer,
            VmptrldBadRevision,
            UnsupportedComponent,
            VmwriteReadOnly,
            VmxonInRoot,
            EntryBlockedByMovSs,
            InvalidInveptInvvpidOperand,
        ]
        .into_iter()
        .find(|&error| error as u64 == number)
    }
}

/// A TLB invalidation an emulated INVEPT/INVVPID asks the kernel to carry out before it
/// completes the instruction with VMsucceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// INVEPT type 1: mappings derived from this EPTP (as written by the guest hypervisor).
    EptSingleContext(u64),
    /// INVEPT type 2: all EPT-derived mappings.
    EptAllContext,
    /// INVVPID type 0: one linear address of one VPID.
    VpidAddress {
        /// The VPID (never 0).
        vpid: u16,
        /// The canonical linear address.
        linear: u64,
    },
    /// INVVPID type 1: all mappings of one VPID.
    VpidSingleContext(u16),
    /// INVVPID type 2: all mappings of all VPIDs but 0.
    VpidAllContext,
    /// INVVPID type 3: one VPID's mappings except global translations.
    VpidSingleContextRetainingGlobals(u16),
}

/// How an emulated VMX instruction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Inject this fault; RIP and RFLAGS stay.
    Fault(Fault),
    /// VMsucceed.
    Succeed,
    /// VMfailInvalid: there was no current VMCS to record an error in.
    FailInvalid,
    /// VMfailValid: the error number is already in the current vmcs12's VM-instruction error
    /// field.
    FailValid(VmInstructionError),
    /// VMLAUNCH (`launch`) or VMRESUME passed the instruction-level checks: the nested VM entry
    /// proper (control/host/guest checks, vmcs02) comes next.
    Enter {
        /// True for VMLAUNCH, false for VMRESUME.
        launch: bool,
    },
    /// INVEPT/INVVPID passed its checks: perform this invalidation, then VMsucceed.
    Invalidate(Invalidation),
}

const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;
const ARITHMETIC: u64 = CF | PF | AF | ZF | SF | OF;

impl Outcome {
    /// The guest's RFLAGS after the instruction completes, or `None` when it does not complete
    /// here (a fault is injected, or a nested entry follows). VMsucceed clears CF, PF, AF, ZF,
    /// SF and OF; VMfailInvalid sets CF and VMfailValid sets ZF, clearing the other five.
    pub fn rflags(&self, rflags: u64) -> Option<u64> {
        let cleared = rflags & !ARITHMETIC;
        match self {
            Outcome::Succeed | Outcome::Invalidate(_) => Some(cleared),
            Outcome::FailInvalid => Some(cleared | CF),
            Outcome::FailValid(_) => Some(cleared | ZF),
            Outcome::Fault(_) | Outcome::Enter { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED_AND_IF: u64 = 0x202;

    #[test]
    fn succeed_clears_the_arithmetic_flags() {
        let r = Outcome::Succeed.rflags(FIXED_AND_IF | ARITHMETIC);
        assert_eq!(r, Some(FIXED_AND_IF));
        assert_eq!(
            Outcome::Invalidate(Invalidation::EptAllContext).rflags(FIXED_AND_IF | CF),
            Some(FIXED_AND_IF)
        );
    }

    #[test]
    fn failures_set_cf_or_zf_only() {
        assert_eq!(
            Outcome::FailInvalid.rflags(FIXED_AND_IF | ZF | OF),
            Some(FIXED_AND_IF | CF)
        );
        let valid = Outcome::FailValid(VmInstructionError::VmxonInRoot);
        assert_eq!(
            valid.rflags(FIXED_AND_IF | CF | SF),
            Some(FIXED_AND_IF | ZF)
        );
    }

    #[test]
    fn faults_and_entries_leave_rflags_to_others() {
        assert_eq!(Outcome::Fault(Fault::Ud).rflags(FIXED_AND_IF), None);
        assert_eq!(Outcome::Enter { launch: true }.rflags(FIXED_AND_IF), None);
        assert_eq!(VmInstructionError::InvalidInveptInvvpidOperand as u32, 28);
    }
}
