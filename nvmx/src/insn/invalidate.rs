//! INVEPT and INVVPID (SDM 31.3): checks against the capabilities the guest hypervisor was
//! given; the invalidation itself is the kernel's, reported as [`Outcome::Invalidate`].

use super::caps::allows;
use super::decode::InvalidationOperands;
use super::guest::{GuestMode, GuestOperands};
use super::outcome::{Fault, Invalidation, Outcome, VmInstructionError};
use super::state::NestedVmx;
use x86::vmx::vmcs::control::SecondaryControls;

/// IA32_VMX_EPT_VPID_CAP bits (SDM A.10).
const CAP_WALK_4: u64 = 1 << 6;
const CAP_UC: u64 = 1 << 8;
const CAP_WB: u64 = 1 << 14;
const CAP_INVEPT: u64 = 1 << 20;
const CAP_AD: u64 = 1 << 21;
/// INVEPT type t (1 or 2) is supported if bit 24 + t is set.
const CAP_INVEPT_TYPE_BASE: u32 = 24;
const CAP_INVVPID: u64 = 1 << 32;
/// INVVPID type t (0..=3) is supported if bit 40 + t is set.
const CAP_INVVPID_TYPE_BASE: u32 = 40;

/// Whether `eptp` would pass VM entry's EPTP checks (SDM 26.2.1.1) for a processor with EPT
/// capabilities `cap` and physical-address width `phys_addr_bits`: a supported memory type
/// (UC or WB), a 4-level walk, A/D flags only if supported, reserved bits 11:7 and those beyond
/// the address width clear.
pub fn eptp_valid(eptp: u64, cap: u64, phys_addr_bits: u8) -> bool {
    let memory_type_ok = match eptp & 7 {
        0 => cap & CAP_UC != 0,
        6 => cap & CAP_WB != 0,
        _ => false,
    };
    let walk_ok = (eptp >> 3) & 7 == 3 && cap & CAP_WALK_4 != 0;
    let ad_ok = eptp & 1 << 6 == 0 || cap & CAP_AD != 0;
    memory_type_ok && walk_ok && ad_ok && eptp & 0xF80 == 0 && eptp >> phys_addr_bits == 0
}

/// Whether `addr` is canonical for 48-bit linear addresses.
fn canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

impl NestedVmx {
    /// Emulates INVEPT. #UD if EPT or INVEPT is not offered, then the common checks; VMfail 28 for
    /// an unsupported type or, for single-context, an EPTP VM entry would reject.
    pub fn invept(
        &mut self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operands: &InvalidationOperands,
    ) -> Outcome {
        let cap = self.caps.ept_vpid_cap;
        if !allows(self.caps.procbased2, SecondaryControls::ENABLE_EPT.bits())
            || cap & CAP_INVEPT == 0
        {
            return Outcome::Fault(Fault::Ud);
        }
        let (kind, descriptor) = match self.invalidation_operands(mode, guest, operands) {
            Ok(read) => read,
            Err(stop) => return stop,
        };
        let supported =
            matches!(kind, 1 | 2) && cap & 1 << (CAP_INVEPT_TYPE_BASE + kind as u32) != 0;
        if !supported {
            return self.fail(VmInstructionError::InvalidInveptInvvpidOperand);
        }
        let eptp = descriptor as u64;
        if kind == 1 {
            if !eptp_valid(eptp, cap, self.phys_addr_bits) {
                return self.fail(VmInstructionError::InvalidInveptInvvpidOperand);
            }
            return Outcome::Invalidate(Invalidation::EptSingleContext(eptp));
        }
        Outcome::Invalidate(Invalidation::EptAllContext)
    }

    /// Emulates INVVPID. #UD if VPID or INVVPID is not offered, then the common checks; VMfail 28
    /// for an unsupported type, descriptor bits 63:16 set, VPID 0 (except all-context), or a
    /// non-canonical address for the individual-address type.
    pub fn invvpid(
        &mut self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operands: &InvalidationOperands,
    ) -> Outcome {
        let cap = self.caps.ept_vpid_cap;
        if !allows(self.caps.procbased2, SecondaryControls::ENABLE_VPID.bits())
            || cap & CAP_INVVPID == 0
        {
            return Outcome::Fault(Fault::Ud);
        }
        let (kind, descriptor) = match self.invalidation_operands(mode, guest, operands) {
            Ok(read) => read,
            Err(stop) => return stop,
        };
        let supported = kind <= 3 && cap & 1 << (CAP_INVVPID_TYPE_BASE + kind as u32) != 0;
        let low = descriptor as u64;
        let (vpid, linear) = (low as u16, (descriptor >> 64) as u64);
        let invalidation = match kind {
            _ if !supported || low >> 16 != 0 => None,
            0 if vpid != 0 && canonical(linear) => Some(Invalidation::VpidAddress { vpid, linear }),
            1 if vpid != 0 => Some(Invalidation::VpidSingleContext(vpid)),
            2 => Some(Invalidation::VpidAllContext),
            3 if vpid != 0 => Some(Invalidation::VpidSingleContextRetainingGlobals(vpid)),
            _ => None,
        };
        match invalidation {
            Some(invalidation) => Outcome::Invalidate(invalidation),
            None => self.fail(VmInstructionError::InvalidInveptInvvpidOperand),
        }
    }

    /// The common checks, then the type register (operand size) and the 128-bit descriptor.
    fn invalidation_operands(
        &self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operands: &InvalidationOperands,
    ) -> Result<(u64, u128), Outcome> {
        if let Some(stop) = self.root_check(mode) {
            return Err(stop);
        }
        let kind = guest.register(operands.kind);
        let kind = if mode.is_64bit() {
            kind
        } else {
            kind & 0xFFFF_FFFF
        };
        let mut bytes = [0u8; 16];
        guest
            .read_memory(&operands.descriptor, &mut bytes)
            .map_err(Outcome::Fault)?;
        Ok((kind, u128::from_le_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::Gpr;
    use super::super::test_guest::*;
    use super::super::VmxCapabilities;
    use super::*;
    use shadow_vmcs::Vmcs;
    use x86::vmx::vmcs::ro;

    /// Type in RAX, descriptor at [rbx].
    const OPS: InvalidationOperands = InvalidationOperands {
        kind: Gpr::Rax,
        descriptor: AT_RBX,
    };
    const GOOD_EPTP: u64 = 0x5000 | 3 << 3 | 6;

    fn put_descriptor(guest: &mut FakeGuest, low: u64, high: u64) {
        let at = SCRATCH as usize;
        guest.ram.bytes[at..at + 8].copy_from_slice(&low.to_le_bytes());
        guest.ram.bytes[at + 8..at + 16].copy_from_slice(&high.to_le_bytes());
    }

    fn run(kind: u64, low: u64, high: u64, ept: bool) -> (Outcome, u64) {
        let mut guest = FakeGuest::new();
        let mut vmx = with_current(&mut guest);
        guest.regs[0] = kind;
        put_descriptor(&mut guest, low, high);
        let outcome = if ept {
            vmx.invept(&LONG_MODE, &mut guest, &OPS)
        } else {
            vmx.invvpid(&LONG_MODE, &mut guest, &OPS)
        };
        (
            outcome,
            vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR),
        )
    }

    #[test]
    fn invept_single_and_all_context() {
        assert_eq!(
            run(1, GOOD_EPTP, 0, true).0,
            Outcome::Invalidate(Invalidation::EptSingleContext(GOOD_EPTP))
        );
        assert_eq!(
            run(2, 0, 0, true).0,
            Outcome::Invalidate(Invalidation::EptAllContext)
        );
    }

    #[test]
    fn invept_bad_type_or_eptp_fails_with_28() {
        let bad = Outcome::FailValid(VmInstructionError::InvalidInveptInvvpidOperand);
        assert_eq!(run(0, GOOD_EPTP, 0, true), (bad, 28));
        assert_eq!(run(3, GOOD_EPTP, 0, true), (bad, 28));
        assert_eq!(run(1, GOOD_EPTP & !7 | 1, 0, true).0, bad, "WC memory type");
        assert_eq!(
            run(1, GOOD_EPTP | 1 << 6, 0, true).0,
            bad,
            "A/D not offered"
        );
        assert_eq!(
            run(1, GOOD_EPTP | 1 << PHYS_ADDR_BITS, 0, true).0,
            bad,
            "beyond MAXPHYADDR"
        );
    }

    #[test]
    fn invvpid_types() {
        assert_eq!(
            run(0, 5, 0xFFFF_8000_0000_0000, false).0,
            Outcome::Invalidate(Invalidation::VpidAddress {
                vpid: 5,
                linear: 0xFFFF_8000_0000_0000
            })
        );
        assert_eq!(
            run(1, 5, 0, false).0,
            Outcome::Invalidate(Invalidation::VpidSingleContext(5))
        );
        assert_eq!(
            run(2, 0, 0, false).0,
            Outcome::Invalidate(Invalidation::VpidAllContext)
        );
        assert_eq!(
            run(3, 7, 0, false).0,
            Outcome::Invalidate(Invalidation::VpidSingleContextRetainingGlobals(7))
        );
    }

    #[test]
    fn invvpid_bad_operands_fail_with_28() {
        let bad = Outcome::FailValid(VmInstructionError::InvalidInveptInvvpidOperand);
        assert_eq!(
            run(0, 5, 0x0000_8000_0000_0000, false),
            (bad, 28),
            "non-canonical"
        );
        assert_eq!(run(1, 0, 0, false).0, bad, "VPID 0");
        assert_eq!(run(2, 1 << 16, 0, false).0, bad, "reserved descriptor bits");
        assert_eq!(run(4, 1, 0, false).0, bad, "no such type");
    }

    #[test]
    fn not_offered_means_ud() {
        let mut guest = FakeGuest::new();
        let mut vmx = NestedVmx::new(
            VmxCapabilities {
                procbased2: 0,
                ..guest_caps()
            },
            PHYS_ADDR_BITS,
        );
        guest.regs[0] = 2;
        assert_eq!(
            vmx.invept(&LONG_MODE, &mut guest, &OPS),
            Outcome::Fault(Fault::Ud)
        );
        assert_eq!(
            vmx.invvpid(&LONG_MODE, &mut guest, &OPS),
            Outcome::Fault(Fault::Ud)
        );
        let mut unsupported_type = with_current(&mut guest);
        unsupported_type.caps.ept_vpid_cap &= !(1 << 42);
        assert_eq!(
            unsupported_type.invvpid(&LONG_MODE, &mut guest, &OPS),
            Outcome::FailValid(VmInstructionError::InvalidInveptInvvpidOperand)
        );
    }

    #[test]
    fn common_checks_apply() {
        let mut guest = FakeGuest::new();
        let mut outside = NestedVmx::new(guest_caps(), PHYS_ADDR_BITS);
        assert_eq!(
            outside.invept(&LONG_MODE, &mut guest, &OPS),
            Outcome::Fault(Fault::Ud)
        );
        let mut vmx = in_vmx_operation(&mut guest);
        guest.regs[0] = 2;
        assert_eq!(
            vmx.invept(
                &GuestMode {
                    cpl: 3,
                    ..LONG_MODE
                },
                &mut guest,
                &OPS
            ),
            Outcome::Fault(Fault::Gp(0))
        );
        // No current VMCS: the failure is VMfailInvalid.
        guest.regs[0] = 9;
        assert_eq!(
            vmx.invvpid(&LONG_MODE, &mut guest, &OPS),
            Outcome::FailInvalid
        );
    }
}
