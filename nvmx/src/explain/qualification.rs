//! Exit qualifications (SDM Vol. 3, 28.2.1), explained: exception exits (#PF address, #DB
//! conditions, Table 28-1) here; control-register accesses (Table 28-3), MOV DR (Table 28-4),
//! I/O instructions (Table 28-5) and EPT violations (Table 28-7) as [`crate::exit`] decodes them.

use super::exit_reason::basic_reason_name;
use super::interruption::exception_name;
use super::{error, note, SEP};
use crate::ept::Permissions;
use crate::exit::{
    CrAccess, DrDirection, EptViolation, IoDirection, IoInstruction, IoOperand, LinearAddress,
    LmswOperand, MovDr, Qualification,
};
use crate::exit_reason::EXCEPTION_OR_NMI;
use crate::insn::Gpr;
use alloc::{format, string::String, string::ToString, vec, vec::Vec};
use x86::debugregs::Dr6;
use x86::irq::{DEBUG_VECTOR, PAGE_FAULT_VECTOR};

/// Decodes exit qualification `value` of an exit with basic reason `reason`; for exception exits
/// the meaning depends on the vector, which `vector` gives (if unknown, both readings are shown).
pub fn qualification(reason: u16, vector: Option<u8>, value: u64) -> String {
    let exception = reason == EXCEPTION_OR_NMI;
    match (Qualification::decode(reason, value), vector) {
        (Qualification::CrAccess(access), _) => cr_access(access, value),
        (Qualification::MovDr(mov), _) => mov_dr(mov, value),
        (Qualification::Io(exit), _) => io(exit, value),
        (Qualification::EptViolation(violation), _) => ept_violation(violation, value),
        (_, Some(PAGE_FAULT_VECTOR)) if exception => page_fault(value),
        (_, Some(DEBUG_VECTOR)) if exception => debug(value),
        (_, Some(v)) if exception => format!(
            "exception exit for {}: no exit qualification defined (only #PF and #DB have one)",
            exception_name(v)
        ),
        (_, None) if exception => format!(
            "exception or NMI exit: the meaning depends on the vector (give --vector){}{}",
            note(&page_fault(value)),
            note(&debug(value).replace('\n', "\n  ")),
        ),
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

/// A register's name as the 4-bit register fields number it.
fn gpr_name(gpr: Gpr) -> &'static str {
    const NAMES: [&str; 16] = [
        "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12",
        "R13", "R14", "R15",
    ];
    NAMES[gpr as usize]
}

/// Control-register access (Table 28-3).
fn cr_access(access: CrAccess, value: u64) -> String {
    let line = match access {
        CrAccess::MovTo { cr, gpr } => format!("MOV to CR{cr} from {}", gpr_name(gpr)),
        CrAccess::MovFrom { cr, gpr } => format!("MOV from CR{cr} to {}", gpr_name(gpr)),
        CrAccess::Clts => "CLTS".to_string(),
        CrAccess::Lmsw { source, operand } => format!(
            "LMSW with source data {source:#06x} ({} operand)",
            match operand {
                LmswOperand::Memory => "memory",
                LmswOperand::Register => "register",
            }
        ),
    };
    reserved(line, value & !CrAccess::DEFINED, "28-3")
}

/// MOV DR (Table 28-4).
fn mov_dr(mov: MovDr, value: u64) -> String {
    let gpr = gpr_name(mov.gpr);
    let line = match mov.direction {
        DrDirection::ToDr => format!("MOV to DR{} from {gpr}", mov.dr),
        DrDirection::FromDr => format!("MOV from DR{} to {gpr}", mov.dr),
    };
    reserved(line, value & !MovDr::DEFINED, "28-4")
}

/// I/O instruction (Table 28-5).
fn io(exit: Option<IoInstruction>, value: u64) -> String {
    let Some(exit) = exit else {
        return format!("I/O instruction at port {:#06x}", value >> 16 & 0xFFFF)
            + &error(&format!(
                "size field {} is not used: 0, 1 and 3 are the sizes (Table 28-5)",
                value & 7
            ));
    };
    let size = exit.size.bytes();
    let mut line = vec![
        match exit.direction {
            IoDirection::In => "IN",
            IoDirection::Out => "OUT",
        }
        .to_string(),
        format!("port {:#06x}", exit.port),
        format!("{size} byte{}", if size == 1 { "" } else { "s" }),
        match exit.operand {
            IoOperand::Immediate => "immediate operand",
            IoOperand::Dx => "port in DX",
        }
        .to_string(),
    ];
    if exit.string {
        line.push("string instruction".to_string());
    }
    if exit.rep {
        line.push("REP prefix".to_string());
    }
    reserved(line.join(SEP), value & !IoInstruction::DEFINED, "28-5")
}

/// EPT violation (Table 28-7).
fn ept_violation(v: EptViolation, value: u64) -> String {
    let access: Vec<&str> = [
        (v.access.read, "read"),
        (v.access.write, "write"),
        (v.access.execute, "instruction fetch"),
    ]
    .into_iter()
    .filter(|&(on, _)| on)
    .map(|(_, what)| what)
    .collect();
    let permitted: String = [
        (Permissions::READ, 'r'),
        (Permissions::WRITE, 'w'),
        (Permissions::EXECUTE, 'x'),
    ]
    .into_iter()
    .map(|(p, c)| if v.permitted.contains(p) { c } else { '-' })
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
    if v.user_execute {
        line.push("user-mode execute permitted (MBEC)".to_string());
    }
    match v.linear {
        LinearAddress::Invalid => line.push("no guest linear address".to_string()),
        LinearAddress::PagingStructure => {
            line.push("guest linear address valid: paging-structure access".to_string())
        }
        LinearAddress::Translation {
            user,
            writable,
            execute_disable,
        } => {
            line.push("guest linear address valid: translation of it".to_string());
            // Advanced VM-exit information for EPT violations (bits 9-11).
            line.push(
                if user {
                    "user-mode address"
                } else {
                    "supervisor-mode address"
                }
                .to_string(),
            );
            line.push(
                if writable {
                    "read/write page"
                } else {
                    "read-only page"
                }
                .to_string(),
            );
            line.push(
                if execute_disable {
                    "execute-disable page"
                } else {
                    "executable page"
                }
                .to_string(),
            );
        }
    }
    let flags = [
        (v.nmi_unblocking, "NMI unblocking due to IRET"),
        (v.shadow_stack, "shadow-stack access"),
        (v.supervisor_shadow_stack, "supervisor shadow-stack page"),
        (v.guest_paging_verification, "guest-paging verification"),
        (v.asynchronous, "asynchronous to instruction execution"),
    ];
    line.extend(
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| w.to_string()),
    );
    reserved(line.join(SEP), value & !EptViolation::DEFINED, "28-7")
}

/// Appends an error line for reserved bits `set`, citing `table`.
fn reserved(line: String, set: u64, table: &str) -> String {
    if set == 0 {
        line
    } else {
        line + &error(&format!("reserved bits set ({set:#x}), see Table {table}"))
    }
}
