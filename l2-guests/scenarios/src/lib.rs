//! The system matrix's scenario table, shared by the guests that run it (`matrix-ghv` as L3
//! under a guest hypervisor, `matrix-l2` as a plain L2 guest of l1-hv) and by `test-matrix
//! system`, which turns each scenario into a `decide` input. No asm and no allocation: it
//! builds for the guests' `x86_64-unknown-none` and for the host. See docs/matrix.md.
//!
//! A scenario is an [`Action`] (what the payload executes, and so the event the CPU raises
//! first), an [`Env`] (how the payload's IDT, TSS and stacks are broken, and so which event a
//! delivery raises) and the [`Controls`] of the hypervisor governing the payload. Scenarios are
//! produced by [`scenarios`] in a fixed order; a guest reports results by position in it.
#![no_std]

mod action;
mod env;
mod settings;

pub use action::{Action, Kind, Raised, ACTIONS};
pub use env::{Env, DF_IST, ENV_CASES, PF_IST, TRIPLE_FAULT_CASES};
pub use settings::{Controls, L1HV_SETTINGS};

/// Linear address of the payload's fault window (PDPT entry 1): pages with fixed addresses, so
/// that CR2 and #PF exit qualifications are the same in every image and mode.
pub const WINDOW: u64 = 0x4000_0000;
/// Window page 0: not present.
pub const NOT_PRESENT: u64 = WINDOW;
/// Window page 1: present, read-only, supervisor.
pub const READ_ONLY: u64 = WINDOW + 0x1000;
/// Window page 2: present, writable, supervisor.
pub const SUPERVISOR: u64 = WINDOW + 0x2000;
/// Window page 3: present, user, writable, with reserved bit 51 set in its PTE.
pub const RESERVED: u64 = WINDOW + 0x3000;
/// Window page 4: present, user, writable, execute-disable (EFER.NXE = 1).
pub const NO_EXECUTE: u64 = WINDOW + 0x4000;
/// A stack pointer at the top of the not-present page: the first push faults at this - 8.
pub const UNMAPPED_STACK_TOP: u64 = NOT_PRESENT + 0x1000;

/// The payload's GDT selectors (the guests build the GDT to match).
pub mod selectors {
    /// 64-bit code, DPL 0.
    pub const CODE: u16 = 0x08;
    /// Data, DPL 0.
    pub const DATA: u16 = 0x10;
    /// 64-bit TSS (two slots).
    pub const TSS: u16 = 0x18;
    /// 64-bit code, DPL 3 (RPL 3).
    pub const USER_CODE: u16 = 0x28 | 3;
    /// Data, DPL 3 (RPL 3).
    pub const USER_DATA: u16 = 0x30 | 3;
    /// A data descriptor with P = 0.
    pub const NOT_PRESENT_DATA: u16 = 0x38;
    /// A selector beyond the GDT's limit.
    pub const BEYOND_GDT: u16 = 0xfff8;
}

/// The IDT vector whose DPL 3 gate ends a payload that raised nothing ("completed").
pub const COMPLETED_VECTOR: u8 = 0x81;

/// One scenario of the system matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// What the payload does.
    pub action: Action,
    /// How its world is broken.
    pub env: Env,
    /// The governing hypervisor's interception controls (ghv's, for L3).
    pub controls: Controls,
}

/// Every scenario of the nested matrix (`bare` and `nested` modes), in run order: each
/// action in the intact world and each [`ENV_CASES`] entry, under each of its control settings.
pub fn scenarios() -> impl Iterator<Item = Scenario> {
    cases().flat_map(|(action, env)| {
        settings::for_case(action, env).map(move |controls| Scenario {
            action,
            env,
            controls,
        })
    })
}

/// Every (action, world) pair, in run order: the transparency mode runs each once per l1-hv
/// setting, with nothing intercepted by the payload's own (absent) hypervisor.
pub fn cases() -> impl Iterator<Item = (Action, Env)> {
    ACTIONS
        .iter()
        .map(|&a| (a, Env::INTACT))
        .chain(ENV_CASES.iter().copied())
        .chain(TRIPLE_FAULT_CASES.iter().copied())
}

/// Whether `case` is one of [`TRIPLE_FAULT_CASES`].
pub fn is_triple_fault_case(case: (Action, Env)) -> bool {
    TRIPLE_FAULT_CASES.contains(&case)
}

impl Scenario {
    /// Writes the stable id: `ACTION[+ENV]/bm-BITMAP/pfec-MASK-MATCH`.
    pub fn write_id(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        write_case_id(self.action, self.env, out)?;
        write!(
            out,
            "/bm-{:x}/pfec-{:x}-{:x}",
            self.controls.exception_bitmap, self.controls.pfec_mask, self.controls.pfec_match
        )
    }
}

/// Writes `ACTION[+ENV]`, the part of an id the world decides.
pub fn write_case_id(
    action: Action,
    env: Env,
    out: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    out.write_str(action.name())?;
    if env != Env::INTACT {
        out.write_char('+')?;
        env.write_name(out)?;
    }
    Ok(())
}
