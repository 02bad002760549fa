//! Error codes: the page-fault error code (SDM Vol. 3, 4.7) and the selector error code the
//! other error-code exceptions push (SDM 6.13).

use super::interruption::exception_name;
use super::{error, SEP};
use alloc::{format, string::String, string::ToString, vec, vec::Vec};
use x86::irq::PageFaultError;

/// #PF error-code bit 6: the access was a shadow-stack access (not in `x86`'s `PageFaultError`).
pub const PFEC_SS: u32 = 1 << 6;
/// #PF error-code bit 7: the fault occurred during HLAT paging (not in `PageFaultError`).
pub const PFEC_HLAT: u32 = 1 << 7;
/// #PF error-code bit 15: the fault was an SGX access-control violation (not in `PageFaultError`).
pub const PFEC_SGX: u32 = 1 << 15;

/// The #PF error-code bits the SDM defines, with their short names: the matrix enumerates them
/// and `pfec` decodes them.
pub const PFEC_BITS: [(u32, &str); 9] = [
    (PageFaultError::P.bits(), "P"),
    (PageFaultError::WR.bits(), "W"),
    (PageFaultError::US.bits(), "U"),
    (PageFaultError::RSVD.bits(), "RSVD"),
    (PageFaultError::ID.bits(), "I"),
    (PageFaultError::PK.bits(), "PK"),
    (PFEC_SS, "SS"),
    (PFEC_HLAT, "HLAT"),
    (PFEC_SGX, "SGX"),
];

/// What each flag bit of [`PFEC_BITS`] beyond P, W/R and U/S means when set.
const PFEC_FLAGS: [(u32, &str); 6] = [
    (
        PageFaultError::RSVD.bits(),
        "reserved bit set in a paging entry (RSVD)",
    ),
    (PageFaultError::ID.bits(), "instruction fetch (I/D)"),
    (PageFaultError::PK.bits(), "protection-key violation (PK)"),
    (PFEC_SS, "shadow-stack access (SS)"),
    (PFEC_HLAT, "during HLAT paging (HLAT)"),
    (PFEC_SGX, "SGX access-control violation (SGX)"),
];

/// Decodes a page-fault error code: P, W/R and U/S both ways, the other bits when set.
pub fn pfec(value: u32) -> String {
    let fetch = value & PageFaultError::ID.bits() != 0;
    let mut line = vec![if value & PageFaultError::P.bits() != 0 {
        "protection violation (P)"
    } else {
        "not-present page"
    }];
    match (value & PageFaultError::WR.bits() != 0, fetch) {
        (true, _) => line.push("write (W/R)"),
        // A fetch has W/R clear; calling it a read would hide that the I/D phrase says fetch.
        (false, true) => {}
        (false, false) => line.push("read"),
    }
    line.push(if value & PageFaultError::US.bits() != 0 {
        "user mode (U/S)"
    } else {
        "supervisor mode"
    });
    line.extend(
        PFEC_FLAGS
            .iter()
            .filter(|(bit, _)| value & bit != 0)
            .map(|(_, what)| *what),
    );
    let defined = PFEC_BITS.iter().fold(0, |all, (bit, _)| all | bit);
    let reserved = value & !defined;
    let mut out = line.join(SEP);
    if reserved != 0 {
        out += &error(&format!(
            "reserved bits set ({reserved:#x}): the SDM defines bits 7:0 and 15"
        ));
    }
    out
}

/// Decodes a selector error code (#TS, #NP, #SS, #GP; SDM 6.13): EXT, IDT, TI and the index.
pub fn selector_error_code(value: u32) -> String {
    let index = (value >> 3) & 0x1fff;
    let mut line = Vec::new();
    if value & 0xffff == 0 {
        line.push("0: not related to a particular segment selector".to_string());
    } else if value & 2 != 0 {
        // With IDT set the index is a vector and TI is ignored.
        let named = if index < 32 {
            format!(" = {}", exception_name(index as u8))
        } else {
            String::new()
        };
        line.push(format!("IDT vector {index} ({index:#04x}){named}"));
    } else {
        let table = if value & 4 != 0 { "LDT" } else { "GDT" };
        line.push(format!(
            "{table} index {index} (selector {:#06x})",
            value & 0xfffc
        ));
    }
    if value & 1 != 0 {
        line.push("external event (EXT)".to_string());
    }
    let mut out = line.join(SEP);
    if value >> 16 != 0 {
        out += &error(&format!(
            "bits 31:16 set ({:#x}): error codes are 16 bits; VM entry rejects these (SDM 27.2.1.3)",
            value & 0xffff_0000
        ));
    }
    out
}
