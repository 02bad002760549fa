//! Operands of VMX instructions, decoded from the VM-exit instruction-information field and the
//! exit qualification (SDM 27.2.5, tables "Format of the VM-Exit Instruction-Information Field as
//! Used for VMCLEAR, VMPTRLD, VMPTRST, VMXON, XRSTORS, and XSAVES", "... for VMREAD and VMWRITE",
//! "... for INVEPT, INVPCID, and INVVPID"). For a memory operand the exit qualification holds
//! the displacement, already sign-extended to 64 bits (SDM 27.2.1).

/// A general-purpose register, numbered as in the instruction-information field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gpr {
    /// RAX (0).
    Rax,
    /// RCX (1).
    Rcx,
    /// RDX (2).
    Rdx,
    /// RBX (3).
    Rbx,
    /// RSP (4).
    Rsp,
    /// RBP (5).
    Rbp,
    /// RSI (6).
    Rsi,
    /// RDI (7).
    Rdi,
    /// R8.
    R8,
    /// R9.
    R9,
    /// R10.
    R10,
    /// R11.
    R11,
    /// R12.
    R12,
    /// R13.
    R13,
    /// R14.
    R14,
    /// R15.
    R15,
}

impl Gpr {
    /// The register with number `bits & 0xF`.
    pub const fn from_number(bits: u32) -> Gpr {
        const ALL: [Gpr; 16] = [
            Gpr::Rax,
            Gpr::Rcx,
            Gpr::Rdx,
            Gpr::Rbx,
            Gpr::Rsp,
            Gpr::Rbp,
            Gpr::Rsi,
            Gpr::Rdi,
            Gpr::R8,
            Gpr::R9,
            Gpr::R10,
            Gpr::R11,
            Gpr::R12,
            Gpr::R13,
            Gpr::R14,
            Gpr::R15,
        ];
        ALL[(bits & 0xF) as usize]
    }
}

/// The segment register of a memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// ES (0).
    Es,
    /// CS (1).
    Cs,
    /// SS (2).
    Ss,
    /// DS (3).
    Ds,
    /// FS (4).
    Fs,
    /// GS (5).
    Gs,
}

/// The address size of a memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSize {
    /// 16-bit addressing.
    Bits16,
    /// 32-bit addressing.
    Bits32,
    /// 64-bit addressing.
    Bits64,
}

/// A memory operand: `segment:[base + index * scale + displacement]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemOperand {
    /// Segment register.
    pub segment: Segment,
    /// Base register, if any.
    pub base: Option<Gpr>,
    /// Index register and its scale factor (1, 2, 4 or 8), if any.
    pub index: Option<(Gpr, u8)>,
    /// Displacement, sign-extended to 64 bits.
    pub displacement: u64,
    /// Address size, which truncates the computed offset.
    pub address_size: AddressSize,
}

impl MemOperand {
    /// The offset within the segment (the effective address), computed from the guest's
    /// registers and truncated to the address size.
    pub fn offset(&self, register: impl Fn(Gpr) -> u64) -> u64 {
        let base = self.base.map_or(0, &register);
        let index = self
            .index
            .map_or(0, |(r, scale)| register(r).wrapping_mul(u64::from(scale)));
        let sum = base.wrapping_add(index).wrapping_add(self.displacement);
        match self.address_size {
            AddressSize::Bits16 => sum & 0xFFFF,
            AddressSize::Bits32 => sum & 0xFFFF_FFFF,
            AddressSize::Bits64 => sum,
        }
    }
}

/// A register-or-memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A general-purpose register.
    Register(Gpr),
    /// A memory location.
    Memory(MemOperand),
}

/// The operands of VMREAD (`rm` is the destination) or VMWRITE (`rm` is the source); `field` is
/// the register holding the field encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldAccessOperands {
    /// The register-or-memory operand.
    pub rm: Operand,
    /// The register holding the VMCS field encoding (Reg2, bits 31:28).
    pub field: Gpr,
}

/// The operands of INVEPT/INVVPID: the invalidation type in a register, a 128-bit descriptor in
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidationOperands {
    /// The register holding the invalidation type (Reg2, bits 31:28).
    pub kind: Gpr,
    /// The descriptor.
    pub descriptor: MemOperand,
}

/// Why an instruction-information value could not be decoded (a value the SDM leaves
/// undefined; hardware never reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndefinedEncoding;

const fn bits(value: u32, low: u32, count: u32) -> u32 {
    (value >> low) & ((1 << count) - 1)
}

/// Decodes the memory operand described by `info` (bits 1:0 scaling, 9:7 address size, 17:15
/// segment, 21:18 index, 22 index invalid, 26:23 base, 27 base invalid; same positions in all
/// three formats) with the displacement from `qualification`.
fn memory_operand(info: u32, qualification: u64) -> Result<MemOperand, UndefinedEncoding> {
    let address_size = match bits(info, 7, 3) {
        0 => AddressSize::Bits16,
        1 => AddressSize::Bits32,
        2 => AddressSize::Bits64,
        _ => return Err(UndefinedEncoding),
    };
    let segment = match bits(info, 15, 3) {
        0 => Segment::Es,
        1 => Segment::Cs,
        2 => Segment::Ss,
        3 => Segment::Ds,
        4 => Segment::Fs,
        5 => Segment::Gs,
        _ => return Err(UndefinedEncoding),
    };
    let index = (bits(info, 22, 1) == 0)
        .then(|| (Gpr::from_number(bits(info, 18, 4)), 1u8 << bits(info, 0, 2)));
    let base = (bits(info, 27, 1) == 0).then(|| Gpr::from_number(bits(info, 23, 4)));
    Ok(MemOperand {
        segment,
        base,
        index,
        displacement: qualification,
        address_size,
    })
}

/// Decodes the m64 operand of VMCLEAR, VMPTRLD, VMPTRST or VMXON.
pub fn decode_pointer_operand(
    info: u32,
    qualification: u64,
) -> Result<MemOperand, UndefinedEncoding> {
    memory_operand(info, qualification)
}

/// Decodes the operands of VMREAD or VMWRITE: bit 10 says register (1, Reg1 in bits 6:3) or
/// memory (0); Reg2 in bits 31:28 holds the field encoding.
pub fn decode_field_access(
    info: u32,
    qualification: u64,
) -> Result<FieldAccessOperands, UndefinedEncoding> {
    let rm = if bits(info, 10, 1) == 1 {
        Operand::Register(Gpr::from_number(bits(info, 3, 4)))
    } else {
        Operand::Memory(memory_operand(info, qualification)?)
    };
    Ok(FieldAccessOperands {
        rm,
        field: Gpr::from_number(bits(info, 28, 4)),
    })
}

/// Decodes the operands of INVEPT or INVVPID: Reg2 in bits 31:28 holds the type.
pub fn decode_invalidation(
    info: u32,
    qualification: u64,
) -> Result<InvalidationOperands, UndefinedEncoding> {
    Ok(InvalidationOperands {
        kind: Gpr::from_number(bits(info, 28, 4)),
        descriptor: memory_operand(info, qualification)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an instruction-information value for a memory operand.
    fn mem_info(scale: u32, addr: u32, seg: u32, index: Option<u32>, base: Option<u32>) -> u32 {
        scale
            | addr << 7
            | seg << 15
            | index.map_or(1 << 22, |r| r << 18)
            | base.map_or(1 << 27, |r| r << 23)
    }

    #[test]
    fn vmptrld_with_base_index_scale_and_displacement() {
        // vmptrld [rbx + r12*8 - 0x10] in 64-bit mode, DS.
        let op = decode_pointer_operand(mem_info(3, 2, 3, Some(12), Some(3)), (-0x10i64) as u64)
            .unwrap();
        assert_eq!(op.segment, Segment::Ds);
        assert_eq!(op.base, Some(Gpr::Rbx));
        assert_eq!(op.index, Some((Gpr::R12, 8)));
        assert_eq!(op.address_size, AddressSize::Bits64);
        let regs = |r| match r {
            Gpr::Rbx => 0x1000,
            Gpr::R12 => 3,
            _ => panic!("unexpected register"),
        };
        assert_eq!(op.offset(regs), 0x1000 + 24 - 0x10);
    }

    #[test]
    fn absent_base_and_index_and_address_size_truncation() {
        // vmclear [disp32] with 32-bit addressing, GS.
        let op =
            decode_pointer_operand(mem_info(0, 1, 5, None, None), 0xFFFF_FFFF_FFFF_FFF0).unwrap();
        assert_eq!((op.base, op.index, op.segment), (None, None, Segment::Gs));
        assert_eq!(op.offset(|_| panic!("no register is used")), 0xFFFF_FFF0);
        let op16 = decode_pointer_operand(mem_info(0, 0, 2, None, Some(5)), 0x10).unwrap();
        assert_eq!(op16.offset(|_| 0xFFFF), 0xF);
    }

    #[test]
    fn vmread_register_destination_and_field_register() {
        // vmread rcx, rax: Reg1 = RCX (destination), Reg2 = RAX (field).
        let info = 1 << 10 | 1 << 3 | 2 << 7;
        let ops = decode_field_access(info, 0).unwrap();
        assert_eq!(ops.rm, Operand::Register(Gpr::Rcx));
        assert_eq!(ops.field, Gpr::Rax);
        let high = decode_field_access(1 << 10 | 15 << 3 | 9 << 28, 0).unwrap();
        assert_eq!(
            (high.rm, high.field),
            (Operand::Register(Gpr::R15), Gpr::R9)
        );
    }

    #[test]
    fn vmwrite_memory_source() {
        let info = mem_info(1, 2, 2, Some(6), Some(4)) | 10 << 28;
        let ops = decode_field_access(info, 8).unwrap();
        assert_eq!(ops.field, Gpr::R10);
        let Operand::Memory(m) = ops.rm else {
            panic!("expected a memory operand")
        };
        assert_eq!(
            (m.segment, m.base, m.index, m.displacement),
            (Segment::Ss, Some(Gpr::Rsp), Some((Gpr::Rsi, 2)), 8)
        );
    }

    #[test]
    fn invept_type_register_and_descriptor() {
        let ops = decode_invalidation(mem_info(0, 2, 3, None, Some(0)) | 11 << 28, 0).unwrap();
        assert_eq!(ops.kind, Gpr::R11);
        assert_eq!(ops.descriptor.base, Some(Gpr::Rax));
    }

    #[test]
    fn undefined_segment_or_address_size_is_rejected() {
        assert_eq!(
            decode_pointer_operand(mem_info(0, 3, 0, None, None), 0),
            Err(UndefinedEncoding)
        );
        assert_eq!(
            decode_invalidation(mem_info(0, 2, 6, None, None), 0),
            Err(UndefinedEncoding)
        );
    }
}
