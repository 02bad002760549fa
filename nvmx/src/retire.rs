//! Retiring an instruction that a hypervisor executed on its guest's behalf (after an
//! instruction VM exit: CPUID, RDMSR/WRMSR, I/O, HLT, MOV CR, the VMX instructions). A VM exit
//! caused by an instruction happens before it completes, so what completing it would have done
//! to the guest's event state is left to software (SDM 28.1, 28.3.1.5 and the VMM programming
//! considerations of SDM 32.2):
//! - the interrupt shadow of a preceding STI or MOV SS covered this instruction and ends with it
//!   (the exit saves it as still in effect, SDM 28.3.1.5);
//! - with RFLAGS.TF = 1 (and IA32_DEBUGCTL.BTF = 0) the processor single-steps: a trap-class
//!   #DB with DR6.BS follows the instruction (SDM 18.3.1.4). VM entry delivers it when the
//!   pending-debug-exceptions field has BS set (SDM 27.7.3), so the trap is neither lost nor
//!   taken one instruction late.
//!
//! The VM-entry checks require exactly this pairing too: with blocking by STI or MOV SS, or the
//! HLT activity state, BS must be 1 when TF = 1 and BTF = 0 (SDM 27.3.1.5).

use crate::intr::Interruptibility;
use shadow_vmcs::Vmcs;
use x86::bits64::rflags::RFlags;
use x86::debugregs::Dr6;
use x86::vmx::vmcs::{guest, ro};

/// IA32_DEBUGCTL.BTF (bit 1): with TF, single-step on branches only (SDM 18.4.3). An emulated
/// instruction of the list above is never a branch.
const DEBUGCTL_BTF: u64 = 1 << 1;

/// Retires the instruction whose exit is being handled: RIP moves past it (the exit's
/// instruction length), then [`complete`].
pub fn retire(vmcs: &mut impl Vmcs) {
    let rip = vmcs.read(guest::RIP) + vmcs.read(ro::VMEXIT_INSTRUCTION_LEN);
    vmcs.write(guest::RIP, rip);
    complete(vmcs);
}

/// The event-state side of retiring an emulated instruction, for a caller that has already
/// moved RIP: the STI / MOV SS shadow ends, and a single-step trap is made pending.
pub fn complete(vmcs: &mut impl Vmcs) {
    let blocking = Interruptibility::read(vmcs);
    if blocking.intersects(Interruptibility::STI | Interruptibility::MOV_SS) {
        (blocking - (Interruptibility::STI | Interruptibility::MOV_SS)).write(vmcs);
    }
    let stepping = vmcs.read(guest::RFLAGS) & RFlags::FLAGS_TF.bits() != 0
        && vmcs.read(guest::IA32_DEBUGCTL_FULL) & DEBUGCTL_BTF == 0;
    if stepping {
        let pending = vmcs.read(guest::PENDING_DBG_EXCEPTIONS);
        vmcs.write(
            guest::PENDING_DBG_EXCEPTIONS,
            pending | Dr6::BS.bits() as u64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nested::test_support::AnyVmcs;

    const BS: u64 = 1 << 14;

    fn vmcs(rflags: u64, interruptibility: u32) -> AnyVmcs {
        let mut v = AnyVmcs::new();
        v.write(guest::RIP, 0x1000);
        v.write(ro::VMEXIT_INSTRUCTION_LEN, 2);
        v.write(guest::RFLAGS, rflags);
        v.write(guest::INTERRUPTIBILITY_STATE, interruptibility.into());
        v
    }

    #[test]
    fn retiring_moves_rip_past_the_instruction() {
        let mut v = vmcs(0x2, 0);
        retire(&mut v);
        assert_eq!(v.read(guest::RIP), 0x1002);
        assert_eq!(v.read(guest::PENDING_DBG_EXCEPTIONS), 0);
        assert!(
            !v.written(guest::INTERRUPTIBILITY_STATE) || v.read(guest::INTERRUPTIBILITY_STATE) == 0
        );
    }

    #[test]
    fn single_stepping_makes_the_trap_pending_with_bs() {
        let mut v = vmcs(0x102, 0);
        // An enabled breakpoint match already pending (B0) is kept alongside BS.
        v.write(guest::PENDING_DBG_EXCEPTIONS, 1);
        retire(&mut v);
        assert_eq!(v.read(guest::PENDING_DBG_EXCEPTIONS), BS | 1);
    }

    #[test]
    fn branch_trace_flag_stops_single_steps_on_non_branches() {
        let mut v = vmcs(0x102, 0);
        v.write(guest::IA32_DEBUGCTL_FULL, DEBUGCTL_BTF);
        retire(&mut v);
        assert_eq!(v.read(guest::PENDING_DBG_EXCEPTIONS), 0);
    }

    #[test]
    fn the_sti_and_mov_ss_shadows_end_with_the_instruction() {
        // STI; CPUID: the shadow covered CPUID only. NMI blocking is not a shadow and stays.
        let nmi = Interruptibility::NMI.bits();
        for shadow in [Interruptibility::STI, Interruptibility::MOV_SS] {
            let mut v = vmcs(0x202, shadow.bits() | nmi);
            retire(&mut v);
            assert_eq!(v.read(guest::INTERRUPTIBILITY_STATE), u64::from(nmi));
        }
    }

    #[test]
    fn complete_leaves_rip_to_the_caller() {
        let mut v = vmcs(0x102, Interruptibility::STI.bits());
        complete(&mut v);
        assert_eq!(v.read(guest::RIP), 0x1000);
        assert_eq!(v.read(guest::INTERRUPTIBILITY_STATE), 0);
        assert_eq!(v.read(guest::PENDING_DBG_EXCEPTIONS), BS);
    }
}
