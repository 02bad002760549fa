//! Exit qualifications (SDM Vol. 3, 28.2.1): for exception exits (#PF address, #DB conditions,
//! Table 28-1), control-register accesses (Table 28-3), I/O instructions (Table 28-5) and EPT
//! violations (Table 28-7).

use super::exit_reason::basic_reason_name;
use super::interruption::exception_name;
use super::{error, note, SEP};
use alloc::{format, string::String, string::ToString, vec, vec::Vec};
use x86::debugregs::Dr6;
use x86::irq::{DEBUG_VECTOR, PAGE_FAULT_VECTOR};

/// Basic reason of exception and NMI exits.
const EXCEPTION_OR_NMI: u16 = 0;
/// Basic reason of control-register accesses.
const CR_ACCESS: u16 = 28;
/// Basic reason of I/O instructions.
const IO_INSTRUCTION: u16 = 30;
/// Basic reason of EPT violations.
const EPT_VIOLATION: u16 = 48;

/// Decodes exit qualification `value` of an exit with basic reason `reason`; for exception exits
/// the meaning depends on the vector, which `vector` gives (if unknown, both readings are shown).
pub fn qualification(reason: u16, vector: Option<u8>, value: u64) -> String {
    match (reason, vector) {
        (EXCEPTION_OR_NMI, Some(PAGE_FAULT_VECTOR)) => page_fault(value),
        (EXCEPTION_OR_NMI, Some(DEBUG_VECTOR)) => debug(value),
        (EXCEPTION_OR_NMI, Some(v)) => format!(
            "exception exit for {}: no exit qualification defined (only #PF and #DB have one)",
            exception_name(v)
        ),
        (EXCEPTION_OR_NMI, None) => format!(
            "exception or NMI exit: the meaning depends on the vector (give --vector){}{}",
            note(&page_fault(value)),
            note(&debug(value).replace('\n', "\n  ")),
        ),
        (CR_ACCESS, _) => cr_access(value),
        (IO_INSTRUCTION, _) => io(value),
        (EPT_VIOLATION, _) => ept_violation(value),
        _ => format!(
            "no exit qualification decoded for basic reason {reason} ({})",
            basic_reason_name(reason).unwrap_or("not defined in SDM Appendix C")
        ),
    }
}

/// #PF: the faulting linear address, which the exit reports instead of writing guest CR2.
fn page_fault(value: u64) -> String {
    format!("#PF linear address {value:#x} (guest CR2 is not written by the VM exit)")
}

/// #DB: DR6-format conditions (Table 28-1); RTM (bit 16) reads 1 inside an RTM region, the
/// opposite sense of DR6.RTM.
fn debug(value: u64) -> String {
    let bits: [(usize, &str); 7] = [
        (Dr6::B0.bits(), "B0: breakpoint 0 met"),
        (Dr6::B1.bits(), "B1: breakpoint 1 met"),
        (Dr6::B2.bits(), "B2: breakpoint 2 met"),
        (Dr6::B3.bits(), "B3: breakpoint 3 met"),
        (Dr6::BD.bits(), "BD: debug-register access detected"),
        (Dr6::BS.bits(), "BS: single step"),
        (Dr6::RTM.bits(), "RTM: in an RTM region"),
    ];
    let defined = bits.iter().fold(0u64, |all, (bit, _)| all | *bit as u64);
    let set: Vec<&str> = bits
        .iter()
        .filter(|(bit, _)| value & *bit as u64 != 0)
        .map(|(_, what)| *what)
        .collect();
    let mut out = if set.is_empty() {
        "#DB: no debug condition bits set".to_string()
    } else {
        format!("#DB: {}", set.join(SEP))
    };
    if value & !defined != 0 {
        out += &error(&format!(
            "reserved bits set ({:#x}): only 3:0, 13, 14 and 16 are defined (Table 28-1)",
            value & !defined
        ));
    }
    out
}

/// The 16 general-purpose registers in the order of the 4-bit register fields.
const GPRS: [&str; 16] = [
    "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13",
    "R14", "R15",
];

/// Control-register access (Table 28-3).
fn cr_access(value: u64) -> String {
    let cr = value & 0xf;
    let gpr = GPRS[((value >> 8) & 0xf) as usize];
    let line = match (value >> 4) & 3 {
        0 => format!("MOV to CR{cr} from {gpr}"),
        1 => format!("MOV from CR{cr} to {gpr}"),
        2 => "CLTS".to_string(),
        _ => format!(
            "LMSW with source data {:#06x} ({} operand)",
            (value >> 16) & 0xffff,
            if value & (1 << 6) != 0 {
                "memory"
            } else {
                "register"
            }
        ),
    };
    let defined: u64 = 0xffff_0f7f;
    reserved(line, value & !defined, "28-3")
}

/// I/O instruction (Table 28-5).
fn io(value: u64) -> String {
    let size = match value & 7 {
        0 => "1 byte".to_string(),
        1 => "2 bytes".to_string(),
        3 => "4 bytes".to_string(),
        other => format!("size field {other} (not used)"),
    };
    let mut line = vec![
        if value & 8 != 0 { "IN" } else { "OUT" }.to_string(),
        format!("port {:#06x}", (value >> 16) & 0xffff),
        size,
        if value & (1 << 6) != 0 {
            "immediate operand"
        } else {
            "port in DX"
        }
        .to_string(),
    ];
    if value & (1 << 4) != 0 {
        line.push("string instruction".to_string());
    }
    if value & (1 << 5) != 0 {
        line.push("REP prefix".to_string());
    }
    let defined: u64 = 0xffff_007f;
    reserved(line.join(SEP), value & !defined, "28-5")
}

/// EPT violation (Table 28-7).
fn ept_violation(value: u64) -> String {
    let bit = |n: u32| value & (1 << n) != 0;
    let access: Vec<&str> = [(0, "read"), (1, "write"), (2, "instruction fetch")]
        .into_iter()
        .filter(|&(n, _)| bit(n))
        .map(|(_, what)| what)
        .collect();
    let permitted: String = [(3, 'r'), (4, 'w'), (5, 'x')]
        .into_iter()
        .map(|(n, c)| if bit(n) { c } else { '-' })
        .collect();
    let mut line = vec![
        format!(
            "EPT violation on {}",
            if access.is_empty() {
                "no access type".to_string()
            } else {
                access.join("+")
            }
        ),
        format!("EPT permits {permitted}"),
    ];
    if bit(6) {
        line.push("user-mode execute permitted (MBEC)".to_string());
    }
    line.push(match (bit(7), bit(8)) {
        (false, _) => "no guest linear address".to_string(),
        (true, true) => "guest linear address valid: translation of it".to_string(),
        (true, false) => "guest linear address valid: paging-structure access".to_string(),
    });
    if bit(7) && bit(8) {
        // Advanced VM-exit information for EPT violations (bits 9-11).
        line.push(
            if bit(9) {
                "user-mode address"
            } else {
                "supervisor-mode address"
            }
            .to_string(),
        );
        line.push(
            if bit(10) {
                "read/write page"
            } else {
                "read-only page"
            }
            .to_string(),
        );
        line.push(
            if bit(11) {
                "execute-disable page"
            } else {
                "executable page"
            }
            .to_string(),
        );
    }
    let flags = [
        (12, "NMI unblocking due to IRET"),
        (13, "shadow-stack access"),
        (14, "supervisor shadow-stack page"),
        (15, "guest-paging verification"),
        (16, "asynchronous to instruction execution"),
    ];
    line.extend(
        flags
            .iter()
            .filter(|(n, _)| bit(*n))
            .map(|(_, w)| w.to_string()),
    );
    reserved(line.join(SEP), value >> 17 << 17, "28-7")
}

/// Appends an error line for reserved bits `set`, citing `table`.
fn reserved(line: String, set: u64, table: &str) -> String {
    if set == 0 {
        line
    } else {
        line + &error(&format!("reserved bits set ({set:#x}), see Table {table}"))
    }
}
