//! MOV DR (SDM 28.2.1, Table 28-4).

use crate::insn::Gpr;
use shadow_vmcs::Vmcs;

/// Which way a MOV DR moves (bit 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrDirection {
    /// MOV to DR (a write of the debug register).
    ToDr,
    /// MOV from DR (a read of it).
    FromDr,
}

/// The MOV DR that caused the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovDr {
    /// The debug register as encoded (0–7; 4 and 5 alias 6 and 7 unless CR4.DE).
    pub dr: u8,
    /// Read or write.
    pub direction: DrDirection,
    /// The general-purpose register operand.
    pub gpr: Gpr,
}

impl MovDr {
    /// The bits Table 28-4 defines: 2:0 DR number, 4 direction, 11:8 GPR.
    pub const DEFINED: u64 = 0xF17;

    /// Decodes qualification `q`.
    pub const fn from_qualification(q: u64) -> Self {
        MovDr {
            dr: (q & 7) as u8,
            direction: if q & 1 << 4 != 0 {
                DrDirection::FromDr
            } else {
                DrDirection::ToDr
            },
            gpr: Gpr::from_number((q >> 8 & 0xF) as u32),
        }
    }

    /// The MOV DR of the exit `vmcs` last recorded.
    pub fn read(vmcs: &impl Vmcs) -> Self {
        Self::from_qualification(super::qualification(vmcs))
    }
}
