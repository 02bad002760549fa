//! What a matrix guest observed for one scenario, in the line format test-matrix parses
//! (`test-matrix/src/system/observed.rs`): `d VECTOR ERROR CR2` when the payload's handler
//! ran, `x REASON INFO ERROR QUAL IDT IDT_ERROR LEN` for a VM exit (all hex, `-` for "none").

use core::fmt;

/// The first thing that happened.
pub enum Observed {
    /// The payload's handler received `vector` (`u64::MAX`: the payload completed).
    Delivered {
        vector: u64,
        error_code: u64,
        cr2: u64,
    },
    /// A VM exit to the governing hypervisor, with its exit-information fields as read.
    Exit {
        reason: u32,
        info: u32,
        error_code: u32,
        qualification: u64,
        idt_info: u32,
        idt_error_code: u32,
        insn_len: u32,
    },
}

/// `-` for the payload's "none" (`u64::MAX`), else hex.
struct Hex(u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            u64::MAX => f.write_str("-"),
            value => write!(f, "{value:x}"),
        }
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::Delivered { vector, error_code, cr2 } => {
                write!(f, "d {} {} {cr2:x}", Hex(vector), Hex(error_code))
            }
            Self::Exit { reason, info, error_code, qualification, idt_info, idt_error_code, insn_len } => write!(
                f,
                "x {reason:x} {info:x} {error_code:x} {qualification:x} {idt_info:x} {idt_error_code:x} {insn_len:x}"
            ),
        }
    }
}
