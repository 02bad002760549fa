//! The exit-reason field (SDM Vol. 3, 25.9.1, Table 25-17) and the basic exit reasons
//! (Appendix C).

use super::{error, SEP};
use alloc::{format, string::String, string::ToString, vec};

/// Basic reasons that only VM-entry failures report (SDM 27.8): bit 31 accompanies them.
const ENTRY_FAILURES: [u16; 3] = [33, 34, 41];

/// Bit 16 of the exit reason: always 0.
const ALWAYS_ZERO: u32 = 1 << 16;
/// Bits 26:17 and 30: not defined.
const UNDEFINED: u32 = 0x07fe_0000 | (1 << 30);

/// The flag bits above the basic reason, with what a set bit means (Table 25-17).
const FLAGS: [(u32, &str); 4] = [
    (1 << 27, "incident to enclave mode (bit 27)"),
    (1 << 28, "pending MTF VM exit (bit 28)"),
    (1 << 29, "from VMX root operation: SMM VM exit (bit 29)"),
    (1 << 31, "VM-entry failure (bit 31)"),
];

/// The Appendix C name of basic exit reason `basic`, if it defines one.
pub fn basic_reason_name(basic: u16) -> Option<&'static str> {
    crate::exit_reason::name(basic)
}

/// Decodes an exit-reason field `value`: basic reason in words, then the flags that are set.
pub fn exit_reason(value: u32) -> String {
    let basic = value as u16;
    let mut line = vec![match basic_reason_name(basic) {
        Some(name) => format!("{name} (basic reason {basic})"),
        None => format!("basic reason {basic} (not defined in SDM Appendix C)"),
    }];
    line.extend(
        FLAGS
            .iter()
            .filter(|(bit, _)| value & bit != 0)
            .map(|(_, what)| what.to_string()),
    );
    let mut notes = String::new();
    if value & ALWAYS_ZERO != 0 {
        notes += &error("bit 16 set: the CPU always writes it as 0");
    }
    if value & UNDEFINED != 0 {
        notes += &error(&format!(
            "undefined bits set ({:#x}): bits 26:17 and 30 are not defined",
            value & UNDEFINED
        ));
    }
    let entry_failure = value & (1 << 31) != 0;
    match (entry_failure, ENTRY_FAILURES.contains(&basic)) {
        (false, true) => {
            notes += &error("this reason is a VM-entry failure: bit 31 is set with it")
        }
        (true, false) => {
            notes += &error("bit 31 comes only with basic reasons 33, 34 and 41 (SDM 27.8)")
        }
        _ => {}
    }
    line.join(SEP) + &notes
}
