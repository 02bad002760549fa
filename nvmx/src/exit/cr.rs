//! Control-register accesses (SDM 28.2.1, Table 28-3).

use crate::insn::Gpr;
use shadow_vmcs::Vmcs;

/// Where LMSW's source operand is (bit 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LmswOperand {
    /// A register.
    Register,
    /// Memory (its linear address is in the guest-linear-address field).
    Memory,
}

/// The control-register access that caused the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccess {
    /// MOV to CR`cr` from `gpr`.
    MovTo {
        /// The control register (0, 3, 4 or 8).
        cr: u8,
        /// The source register.
        gpr: Gpr,
    },
    /// MOV from CR`cr` to `gpr` (only CR3 and CR8 exit).
    MovFrom {
        /// The control register.
        cr: u8,
        /// The destination register.
        gpr: Gpr,
    },
    /// CLTS.
    Clts,
    /// LMSW with source data `source` (bits 15:0 of its operand; only bits 3:0 act).
    Lmsw {
        /// The LMSW source data.
        source: u16,
        /// Register or memory operand.
        operand: LmswOperand,
    },
}

impl CrAccess {
    /// The bits Table 28-3 defines: 3:0 CR number, 5:4 access type, 6 LMSW operand type,
    /// 11:8 GPR, 31:16 LMSW source data.
    pub const DEFINED: u64 = 0xFFFF_0F7F;

    /// Decodes qualification `q`.
    pub const fn from_qualification(q: u64) -> Self {
        let cr = (q & 0xF) as u8;
        let gpr = Gpr::from_number((q >> 8 & 0xF) as u32);
        match q >> 4 & 3 {
            0 => CrAccess::MovTo { cr, gpr },
            1 => CrAccess::MovFrom { cr, gpr },
            2 => CrAccess::Clts,
            _ => CrAccess::Lmsw {
                source: (q >> 16) as u16,
                operand: if q & 1 << 6 != 0 {
                    LmswOperand::Memory
                } else {
                    LmswOperand::Register
                },
            },
        }
    }

    /// The access of the exit `vmcs` last recorded (a control-register access exit).
    pub fn read(vmcs: &impl Vmcs) -> Self {
        Self::from_qualification(super::qualification(vmcs))
    }
}
