//! VMREAD and VMWRITE of the current vmcs12 (SDM 31.3). They reach l1-hv only for fields the
//! VMREAD/VMWRITE bitmaps do not shadow (see shadow-vmcs's `ShadowPolicy`).

use super::decode::{FieldAccessOperands, Operand};
use super::guest::{GuestMode, GuestOperands};
use super::outcome::{Fault, Outcome, VmInstructionError};
use super::state::NestedVmx;
use crate::nested::Dirty;
use shadow_vmcs::Field;

/// IA32_VMX_MISC bit 29: VMWRITE may write VM-exit information fields.
const MISC_VMWRITE_ANY_FIELD: u64 = 1 << 29;

/// Zero-extends the low `bytes` bytes of `value`.
fn truncate(value: u64, bytes: usize) -> u64 {
    if bytes == 8 {
        value
    } else {
        value & ((1 << (bytes * 8)) - 1)
    }
}

impl NestedVmx {
    /// Emulates VMREAD. After the common checks: VMfailInvalid without a current VMCS, VMfail 12
    /// for a field encoding vmcs12 lacks (including any with bits 63:15 set); then the field is
    /// stored to the destination with the operand size (8 bytes in 64-bit mode, else 4), the
    /// field zero-extended or its high bits dropped to fit.
    pub fn vmread(
        &mut self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operands: &FieldAccessOperands,
    ) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let bytes = mode.operand_bytes();
        let encoding = truncate(guest.register(operands.field), bytes);
        let Some(current) = &self.current else {
            return Outcome::FailInvalid;
        };
        let Some(value) = Field::new(encoding).and_then(|f| current.vmcs12.get(f).ok()) else {
            return self.fail(VmInstructionError::UnsupportedComponent);
        };
        let value = truncate(value, bytes);
        let stored = match &operands.rm {
            Operand::Register(reg) => {
                guest.set_register(*reg, value);
                Ok(())
            }
            Operand::Memory(mem) => guest.write_memory(mem, &value.to_le_bytes()[..bytes]),
        };
        match stored {
            Ok(()) => Outcome::Succeed,
            Err(fault) => Outcome::Fault(fault),
        }
    }

    /// Emulates VMWRITE. After the common checks: VMfailInvalid without a current VMCS, VMfail 12
    /// for a field vmcs12 lacks, VMfail 13 for a read-only field unless the guest's IA32_VMX_MISC
    /// bit 29 allows it; then the source (operand size) is read and written, truncated to the
    /// field's width, high field bits cleared when the field is wider than the operand.
    pub fn vmwrite(
        &mut self,
        mode: &GuestMode,
        guest: &mut impl GuestOperands,
        operands: &FieldAccessOperands,
    ) -> Outcome {
        if let Some(stop) = self.root_check(mode) {
            return stop;
        }
        let bytes = mode.operand_bytes();
        let encoding = truncate(guest.register(operands.field), bytes);
        if self.current.is_none() {
            return Outcome::FailInvalid;
        }
        let Some(field) =
            Field::new(encoding).filter(|&f| shadow_vmcs::is_supported(u64::from(f.encoding())))
        else {
            return self.fail(VmInstructionError::UnsupportedComponent);
        };
        if field.is_read_only() && self.caps.misc & MISC_VMWRITE_ANY_FIELD == 0 {
            return self.fail(VmInstructionError::VmwriteReadOnly);
        }
        let value = match read_source(guest, &operands.rm, bytes) {
            Ok(value) => value,
            Err(fault) => return Outcome::Fault(fault),
        };
        if let Some(current) = &mut self.current {
            // Supported fields always take the write; the check above guarantees it.
            let _ = current.vmcs12.set(field, value);
            current.dirty |= Dirty::of(field);
        }
        Outcome::Succeed
    }
}

fn read_source(guest: &mut impl GuestOperands, rm: &Operand, bytes: usize) -> Result<u64, Fault> {
    match rm {
        Operand::Register(reg) => Ok(truncate(guest.register(*reg), bytes)),
        Operand::Memory(mem) => {
            let mut buf = [0u8; 8];
            guest.read_memory(mem, &mut buf[..bytes])?;
            Ok(u64::from_le_bytes(buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::Gpr;
    use super::super::test_guest::*;
    use super::super::VmxCapabilities;
    use super::*;
    use shadow_vmcs::Vmcs;
    use x86::vmx::vmcs::{control, guest as gf, ro};

    /// `vmread rcx, rax` / `vmwrite rax, rcx`: field in RAX, value in RCX.
    const REG: FieldAccessOperands = FieldAccessOperands {
        rm: Operand::Register(Gpr::Rcx),
        field: Gpr::Rax,
    };
    const MEM: FieldAccessOperands = FieldAccessOperands {
        rm: Operand::Memory(AT_RBX),
        field: Gpr::Rax,
    };
    const PROTECTED: GuestMode = GuestMode {
        long_mode_active: false,
        cs_long: false,
        ..LONG_MODE
    };

    fn setup() -> (NestedVmx, FakeGuest) {
        let mut guest = FakeGuest::new();
        let vmx = with_current(&mut guest);
        (vmx, guest)
    }

    #[test]
    fn vmwrite_then_vmread_round_trips_through_registers() {
        let (mut vmx, mut guest) = setup();
        guest.regs[0] = u64::from(gf::RIP);
        guest.regs[1] = 0xFFFF_8000_1234_5678;
        assert_eq!(vmx.vmwrite(&LONG_MODE, &mut guest, &REG), Outcome::Succeed);
        guest.regs[1] = 0;
        assert_eq!(vmx.vmread(&LONG_MODE, &mut guest, &REG), Outcome::Succeed);
        assert_eq!(guest.regs[1], 0xFFFF_8000_1234_5678);
    }

    #[test]
    fn vmwrite_truncates_to_the_field_width() {
        let (mut vmx, mut guest) = setup();
        guest.regs[0] = u64::from(gf::CS_SELECTOR);
        guest.regs[1] = 0xABCD_0010;
        assert_eq!(vmx.vmwrite(&LONG_MODE, &mut guest, &REG), Outcome::Succeed);
        assert_eq!(vmx.current_vmcs12().unwrap().read(gf::CS_SELECTOR), 0x10);
    }

    #[test]
    fn memory_operands_use_the_operand_size() {
        let (mut vmx, mut guest) = setup();
        vmx.current_vmcs12_mut()
            .unwrap()
            .write(control::TSC_OFFSET_FULL, 0x1111_2222_3333_4444);
        guest.regs[0] = u64::from(control::TSC_OFFSET_FULL);
        guest.put_operand(u64::MAX);
        assert_eq!(vmx.vmread(&PROTECTED, &mut guest, &MEM), Outcome::Succeed);
        // Outside 64-bit mode only the low 32 bits are stored; the rest of memory is untouched.
        assert_eq!(guest.operand(), 0xFFFF_FFFF_3333_4444);
        guest.put_operand(0x5555_6666_7777_8888);
        assert_eq!(vmx.vmwrite(&PROTECTED, &mut guest, &MEM), Outcome::Succeed);
        // A 32-bit source clears the high half of a 64-bit field.
        assert_eq!(
            vmx.current_vmcs12().unwrap().read(control::TSC_OFFSET_FULL),
            0x7777_8888
        );
    }

    #[test]
    fn high_access_encoding_reads_the_upper_half() {
        let (mut vmx, mut guest) = setup();
        vmx.current_vmcs12_mut()
            .unwrap()
            .write(control::EPTP_FULL, 0xAAAA_0000_0000_501E);
        guest.regs[0] = u64::from(control::EPTP_HIGH);
        assert_eq!(vmx.vmread(&LONG_MODE, &mut guest, &REG), Outcome::Succeed);
        assert_eq!(guest.regs[1], 0xAAAA_0000);
    }

    #[test]
    fn unsupported_fields_fail_with_12() {
        let (mut vmx, mut guest) = setup();
        for encoding in [
            u64::from(control::PML_ADDR_FULL),
            1 << 32 | u64::from(gf::RIP),
            0x1000,
        ] {
            guest.regs[0] = encoding;
            assert_eq!(
                vmx.vmread(&LONG_MODE, &mut guest, &REG),
                Outcome::FailValid(VmInstructionError::UnsupportedComponent)
            );
            assert_eq!(
                vmx.vmwrite(&LONG_MODE, &mut guest, &REG),
                Outcome::FailValid(VmInstructionError::UnsupportedComponent)
            );
            assert_eq!(
                vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR),
                12
            );
        }
    }

    #[test]
    fn read_only_fields_need_misc_bit_29() {
        let mut guest = FakeGuest::new();
        let mut vmx = NestedVmx::new(
            VmxCapabilities {
                misc: 0,
                ..guest_caps()
            },
            PHYS_ADDR_BITS,
        );
        guest.put_operand(VMXON_REGION);
        assert_eq!(
            vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        guest.put_operand(VMCS_A);
        assert_eq!(
            vmx.vmptrld(&LONG_MODE, &mut guest, &AT_RBX),
            Outcome::Succeed
        );
        guest.regs[0] = u64::from(ro::EXIT_QUALIFICATION);
        guest.regs[1] = 5;
        assert_eq!(
            vmx.vmwrite(&LONG_MODE, &mut guest, &REG),
            Outcome::FailValid(VmInstructionError::VmwriteReadOnly)
        );
        assert_eq!(
            vmx.current_vmcs12().unwrap().read(ro::EXIT_QUALIFICATION),
            0
        );
        assert_eq!(
            vmx.current_vmcs12().unwrap().read(ro::VM_INSTRUCTION_ERROR),
            13
        );

        let (mut permissive, mut guest) = setup();
        guest.regs[0] = u64::from(ro::EXIT_QUALIFICATION);
        guest.regs[1] = 5;
        assert_eq!(
            permissive.vmwrite(&LONG_MODE, &mut guest, &REG),
            Outcome::Succeed
        );
        assert_eq!(
            permissive
                .current_vmcs12()
                .unwrap()
                .read(ro::EXIT_QUALIFICATION),
            5
        );
    }

    #[test]
    fn no_current_vmcs_fails_invalid() {
        let mut guest = FakeGuest::new();
        let mut vmx = in_vmx_operation(&mut guest);
        guest.regs[0] = u64::from(gf::RIP);
        assert_eq!(
            vmx.vmread(&LONG_MODE, &mut guest, &REG),
            Outcome::FailInvalid
        );
        assert_eq!(
            vmx.vmwrite(&LONG_MODE, &mut guest, &REG),
            Outcome::FailInvalid
        );
    }

    #[test]
    fn faults_come_first_and_operand_faults_are_raised() {
        let (mut vmx, mut guest) = setup();
        guest.regs[0] = u64::from(gf::RIP);
        let user = GuestMode {
            cpl: 3,
            ..LONG_MODE
        };
        assert_eq!(
            vmx.vmread(&user, &mut guest, &REG),
            Outcome::Fault(Fault::Gp(0))
        );
        let v86 = GuestMode {
            rflags: 1 << 17 | 2,
            ..PROTECTED
        };
        assert_eq!(
            vmx.vmwrite(&v86, &mut guest, &REG),
            Outcome::Fault(Fault::Ud)
        );
        guest.regs[3] = MMIO;
        assert!(matches!(
            vmx.vmread(&LONG_MODE, &mut guest, &MEM),
            Outcome::Fault(Fault::Pf { .. })
        ));
        assert!(matches!(
            vmx.vmwrite(&LONG_MODE, &mut guest, &MEM),
            Outcome::Fault(Fault::Pf { .. })
        ));
    }
}
