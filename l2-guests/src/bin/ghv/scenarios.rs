//! The scenario table: what L3 does, how ghv configures exception interception for it, and
//! what the SDM says ghv must then see. ghv's verdict is PASS only if every scenario went as
//! stated here; the exact exit information is in the log for the tests to check.
//!
//! #PF interception (SDM 26.2 "Other causes of VM exits", exceptions): a #PF with error code
//! `ec` exits iff `((ec & mask) == match) == bitmap bit 14`. The #PF scenarios read a
//! not-present page, so `ec` = 0 (not present, read, supervisor).

use crate::l3::Action;

/// Basic exit reasons the table names (SDM Appendix C).
const EXCEPTION: u16 = 0;
const CPUID: u16 = 10;
const HLT: u16 = 12;
const VMCALL: u16 = 18;
const IO: u16 = 30;

/// Exception vectors the table names (SDM Table 6-1).
const DE: u8 = 0;
const BP: u8 = 3;
const OF: u8 = 4;
const UD: u8 = 6;
const DF: u8 = 8;
const NP: u8 = 11;
const GP: u8 = 13;
const PF: u8 = 14;

/// One run of L3 from its initial state.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Name in every log line of the run.
    pub name: &'static str,
    /// What L3 does.
    pub action: Action,
    /// The exception bitmap (bit n: vector n exits).
    pub exception_bitmap: u32,
    /// Page-fault error-code mask.
    pub pfec_mask: u32,
    /// Page-fault error-code match.
    pub pfec_match: u32,
    /// The basic exit reasons ghv must see, in order (L3's final VMCALL not included).
    pub exits: &'static [u16],
    /// The vector L3's handler must receive; `None`: L3 completes without an exception.
    pub delivered: Option<u8>,
}

const fn scenario(
    name: &'static str,
    action: Action,
    exception_bitmap: u32,
    (pfec_mask, pfec_match): (u32, u32),
    exits: &'static [u16],
    delivered: Option<u8>,
) -> Scenario {
    Scenario {
        name,
        action,
        exception_bitmap,
        pfec_mask,
        pfec_match,
        exits,
        delivered,
    }
}

const fn bit(vector: u8) -> u32 {
    1 << vector
}

/// Every scenario, in run order.
pub const SCENARIOS: &[Scenario] = &[
    scenario("ud-delivered", Action::Ud2, 0, (0, 0), &[], Some(UD)),
    // Exit, then ghv re-injects the #UD with the exit's interruption information.
    scenario(
        "ud-intercepted",
        Action::Ud2,
        bit(UD),
        (0, 0),
        &[EXCEPTION],
        Some(UD),
    ),
    scenario(
        "de-delivered",
        Action::DivideByZero,
        0,
        (0, 0),
        &[],
        Some(DE),
    ),
    scenario(
        "de-intercepted",
        Action::DivideByZero,
        bit(DE),
        (0, 0),
        &[EXCEPTION],
        Some(DE),
    ),
    scenario("bp-delivered", Action::Int3, 0, (0, 0), &[], Some(BP)),
    // A software exception: type 6, instruction length 1, re-injected with that length.
    scenario(
        "bp-intercepted",
        Action::Int3,
        bit(BP),
        (0, 0),
        &[EXCEPTION],
        Some(BP),
    ),
    // INTO is #UD in 64-bit mode: intercepting #OF sees nothing.
    scenario(
        "into-is-ud-in-64-bit-mode",
        Action::Into,
        bit(OF),
        (0, 0),
        &[],
        Some(UD),
    ),
    scenario(
        "gp-delivered",
        Action::ReadNonCanonical,
        0,
        (0, 0),
        &[],
        Some(GP),
    ),
    scenario(
        "gp-intercepted",
        Action::ReadNonCanonical,
        bit(GP),
        (0, 0),
        &[EXCEPTION],
        Some(GP),
    ),
    // (0 & 0) == 0 is true, bit 14 = 1: exit; the qualification is the faulting address.
    scenario(
        "pf-bit14-mask0-match0",
        Action::ReadUnmapped,
        bit(PF),
        (0, 0),
        &[EXCEPTION],
        Some(PF),
    ),
    // (0 & 1) == 1 is false, bit 14 = 1: no exit; L3 sees the fault and CR2.
    scenario(
        "pf-bit14-mask1-match1",
        Action::ReadUnmapped,
        bit(PF),
        (1, 1),
        &[],
        Some(PF),
    ),
    // (0 & 1) == 0 is true, bit 14 = 0: no exit.
    scenario(
        "pf-nobit14-mask1-match0",
        Action::ReadUnmapped,
        0,
        (1, 0),
        &[],
        Some(PF),
    ),
    // (0 & 1) == 1 is false, bit 14 = 0: exit.
    scenario(
        "pf-nobit14-mask1-match1",
        Action::ReadUnmapped,
        0,
        (1, 1),
        &[EXCEPTION],
        Some(PF),
    ),
    // #PF while pushing the #UD frame: exit with valid IDT-vectoring information (#UD, a
    // benign exception: the #PF is delivered serially, SDM Table 6-5).
    scenario(
        "pf-during-ud-delivery",
        Action::Ud2OnUnmappedStack,
        bit(PF),
        (0, 0),
        &[EXCEPTION],
        Some(PF),
    ),
    // The same during a software exception: the IDT-vectoring information is type 6 and the
    // instruction length is defined (SDM 28.2.5).
    scenario(
        "pf-during-bp-delivery",
        Action::Int3OnUnmappedStack,
        bit(PF),
        (0, 0),
        &[EXCEPTION],
        Some(PF),
    ),
    // #DE → #NP (contributory during contributory) → #DF, all by hardware.
    scenario(
        "df-delivered",
        Action::DivideByZeroAbsentGate,
        0,
        (0, 0),
        &[],
        Some(DF),
    ),
    scenario(
        "df-intercepted",
        Action::DivideByZeroAbsentGate,
        bit(DF),
        (0, 0),
        &[EXCEPTION],
        Some(DF),
    ),
    // #NP exits with #DE in the IDT-vectoring information: ghv itself must turn the pair into
    // #DF, as the CPU would have.
    scenario(
        "np-during-de-intercepted",
        Action::DivideByZeroAbsentGate,
        bit(NP),
        (0, 0),
        &[EXCEPTION],
        Some(DF),
    ),
    scenario("cpuid", Action::Cpuid, 0, (0, 0), &[CPUID], None),
    scenario("hlt", Action::Hlt, 0, (0, 0), &[HLT], None),
    scenario("out", Action::Out, 0, (0, 0), &[IO], None),
    scenario(
        "vmcall-other",
        Action::VmcallOther,
        0,
        (0, 0),
        &[VMCALL],
        None,
    ),
];
