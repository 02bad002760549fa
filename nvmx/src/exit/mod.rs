//! VM exits at the hardware boundary (SDM Vol. 3, 28.2.1): the exit qualifications of the exits
//! l1-hv and nvmx look into, decoded once into types. Each decoder takes the raw qualification
//! (`from_qualification`, for explanations and tests) or reads it from any [`Vmcs`] (`read`).
//! The reasons themselves are [`crate::exit_reason`]'s.

mod cr;
mod dr;
mod ept;
mod io;
#[cfg(test)]
mod tests;

pub use cr::{CrAccess, LmswOperand};
pub use dr::{DrDirection, MovDr};
pub use ept::{EptViolation, LinearAddress};
pub use io::{IoDirection, IoInstruction, IoOperand, IoSize};

use crate::exit_reason;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::ro;

/// An exit qualification, decoded by the basic exit reason it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualification {
    /// Control-register access (Table 28-3).
    CrAccess(CrAccess),
    /// MOV DR (Table 28-4).
    MovDr(MovDr),
    /// I/O instruction (Table 28-5); `None`: the size field holds a value the SDM does not use.
    Io(Option<IoInstruction>),
    /// EPT violation (Table 28-7).
    EptViolation(EptViolation),
    /// Any other reason: the raw value (exception exits, whose meaning depends on the vector,
    /// included).
    Raw(u64),
}

impl Qualification {
    /// Decodes `value`, the qualification of an exit with basic reason `basic`.
    pub fn decode(basic: u16, value: u64) -> Self {
        match basic {
            exit_reason::CR_ACCESS => Self::CrAccess(CrAccess::from_qualification(value)),
            exit_reason::MOV_DR => Self::MovDr(MovDr::from_qualification(value)),
            exit_reason::IO_INSTRUCTION => Self::Io(IoInstruction::from_qualification(value)),
            exit_reason::EPT_VIOLATION => {
                Self::EptViolation(EptViolation::from_qualification(value))
            }
            _ => Self::Raw(value),
        }
    }
}

/// The exit qualification of the exit `vmcs` last recorded.
fn qualification(vmcs: &impl Vmcs) -> u64 {
    vmcs.read(ro::EXIT_QUALIFICATION)
}
