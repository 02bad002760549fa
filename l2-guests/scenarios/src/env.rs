//! How a scenario breaks the payload's world so that delivering an event raises another one
//! (SDM 6.15 and Table 6-5): an absent IDT gate (#NP), a stack on the not-present page (#PF).
//!
//! The payload's IDT gives #DF interrupt-stack-table entry 1 and #PF entry 2; every other gate
//! uses the current stack (CPL 0) or TSS.RSP0 (from CPL 3).

use crate::action::{Action, Kind, Raised};
use crate::{COMPLETED_VECTOR, UNMAPPED_STACK_TOP};

/// The payload's world: which parts are broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// IDT gates with P = 0: bit n for vector n (0..64; INT 0x20 is bit 32).
    pub absent_gates: u64,
    /// The initial RSP (CPL 0) is the top of the not-present page.
    pub stack_unmapped: bool,
    /// TSS.RSP0, the stack of deliveries from CPL 3, is the top of the not-present page.
    pub rsp0_unmapped: bool,
    /// IST2 (the #PF gate's stack) is the top of the not-present page.
    pub pf_ist_unmapped: bool,
    /// IST1 (the #DF gate's stack) is the top of the not-present page.
    pub df_ist_unmapped: bool,
}

/// The IST entry of the #DF gate and of the #PF gate.
pub const DF_IST: u8 = 1;
/// See [`DF_IST`].
pub const PF_IST: u8 = 2;

const fn gates(vectors: &[u8]) -> u64 {
    let mut bits = 0;
    let mut i = 0;
    while i < vectors.len() {
        bits |= 1 << vectors[i];
        i += 1;
    }
    bits
}

const fn absent(vectors: &[u8]) -> Env {
    Env {
        absent_gates: gates(vectors),
        ..Env::INTACT
    }
}

const STACK: Env = Env {
    stack_unmapped: true,
    ..Env::INTACT
};
const RSP0: Env = Env {
    rsp0_unmapped: true,
    ..Env::INTACT
};
const PF_IST_UNMAPPED: Env = Env {
    pf_ist_unmapped: true,
    ..Env::INTACT
};

/// The actions run in a broken world, with what the breakage makes of them.
pub const ENV_CASES: &[(Action, Env)] = &[
    // Benign, software or contributory event, then #PF pushing its frame: serial, #PF(W).
    (Action::Ud2, STACK),
    (Action::Int3, STACK),
    (Action::Int1, STACK),
    (Action::IntN32, STACK),
    (Action::DivideByZero, STACK),
    (Action::ReadNonCanonical, STACK),
    (Action::UserUd2, RSP0),
    (Action::UserDivideByZero, RSP0),
    // #PF, then #PF pushing its frame on IST2: #DF.
    (Action::ReadNotPresent, PF_IST_UNMAPPED),
    // #UD, #PF pushing its frame, #PF again on IST2: #DF.
    (
        Action::Ud2,
        Env {
            stack_unmapped: true,
            pf_ist_unmapped: true,
            ..Env::INTACT
        },
    ),
    // Contributory or #PF, then #NP for the absent gate: #DF.
    (Action::DivideByZero, absent(&[0])),
    (Action::ReadNonCanonical, absent(&[13])),
    (Action::StackNonCanonical, absent(&[12])),
    (Action::LoadNotPresent, absent(&[11])),
    (Action::ReadNotPresent, absent(&[14])),
    // Benign or software event, then #NP: serial.
    (Action::Ud2, absent(&[6])),
    (Action::SingleStep, absent(&[1])),
    (Action::X87DivideByZero, absent(&[16])),
    (Action::Int3, absent(&[3])),
    (Action::Int1, absent(&[1])),
    (Action::IntN32, absent(&[32])),
];

/// The broken worlds whose payload shuts down when nothing is intercepted: #DF, then a
/// contributory exception or #PF: triple fault (SDM 6.15, Interrupt 8). A plain L2 guest
/// cannot go on after one, so the transparency mode runs each in a guest run of its own.
pub const TRIPLE_FAULT_CASES: &[(Action, Env)] = &[
    (Action::DivideByZero, absent(&[0, 8])),
    (
        Action::ReadNotPresent,
        Env {
            pf_ist_unmapped: true,
            absent_gates: gates(&[8]),
            ..Env::INTACT
        },
    ),
    (
        Action::DivideByZero,
        Env {
            df_ist_unmapped: true,
            absent_gates: gates(&[0]),
            ..Env::INTACT
        },
    ),
];

impl Env {
    /// Nothing broken.
    pub const INTACT: Env = Env {
        absent_gates: 0,
        stack_unmapped: false,
        rsp0_unmapped: false,
        pf_ist_unmapped: false,
        df_ist_unmapped: false,
    };

    /// Writes the name used in scenario ids, e.g. `gates-0x101` or `stack+pf-ist`.
    pub fn write_name(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        let mut sep = "";
        if self.absent_gates != 0 {
            write!(out, "gates-{:#x}", self.absent_gates)?;
            sep = "+";
        }
        for (set, name) in [
            (self.stack_unmapped, "stack"),
            (self.rsp0_unmapped, "rsp0"),
            (self.pf_ist_unmapped, "pf-ist"),
            (self.df_ist_unmapped, "df-ist"),
        ] {
            if set {
                write!(out, "{sep}{name}")?;
                sep = "+";
            }
        }
        Ok(())
    }

    /// Whether the gate for `vector` is present.
    pub const fn gate_present(&self, vector: u8) -> bool {
        vector >= 64 || self.absent_gates & (1 << vector) == 0
    }

    /// The event that delivering `event` raises in this world, if any (`from_user`: the
    /// payload is at CPL 3, so a gate without IST switches to TSS.RSP0).
    ///
    /// * `INT n`, `INT3` or `INTO` from CPL 3: every gate but the completion gate has DPL 0,
    ///   so #GP(vector × 8 + 2) (SDM 6.12.1.1; `INT1` is exempt from the check).
    /// * Absent gate: #NP(vector × 8 + 2 + EXT); EXT is clear only during the delivery of
    ///   `INT n`, `INT3` or `INTO` (SDM 6.13).
    /// * The frame's first push (SS, at the new stack top − 8) on the not-present page:
    ///   #PF, error code W (a supervisor write, even from CPL 3: SDM 4.6.1 implicit accesses).
    pub const fn delivery_fault(&self, event: Raised, from_user: bool) -> Option<Raised> {
        let software = matches!(
            event.kind,
            Kind::SoftwareInterrupt | Kind::SoftwareException
        );
        if software && from_user && event.vector != COMPLETED_VECTOR {
            return Some(Raised::hardware(13, event.vector as u16 * 8 + 2));
        }
        if !self.gate_present(event.vector) {
            let ext = if software { 0 } else { 1 };
            return Some(Raised::hardware(11, event.vector as u16 * 8 + 2 + ext));
        }
        let unmapped = match event.vector {
            8 => self.df_ist_unmapped,
            14 => self.pf_ist_unmapped,
            _ if from_user => self.rsp0_unmapped,
            _ => self.stack_unmapped,
        };
        if unmapped {
            Some(Raised::page_fault(1 << 1, UNMAPPED_STACK_TOP - 8))
        } else {
            None
        }
    }
}
