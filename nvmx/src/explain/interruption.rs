//! The three interruption-information formats (SDM Vol. 3, 25.8.3 VM-entry interruption
//! information, 25.9.2 VM-exit interruption information, 25.9.3 IDT-vectoring information): one
//! layout — vector 7:0, type 10:8, error-code bit 11, valid bit 31 — with per-format rules for
//! bit 12, the types that may appear, and what VM entry checks (SDM 27.2.1.3).

use super::{error, note, SEP};
use crate::event::{
    vector_has_error_code, InfoFlags, InterruptionInfo, InterruptionType, CONTROL_PROTECTION_VECTOR,
};
use alloc::{format, string::String, string::ToString, vec};
use x86::irq::{
    BREAKPOINT_VECTOR, DEBUG_VECTOR, EXCEPTIONS, NONMASKABLE_INTERRUPT_VECTOR, OVERFLOW_VECTOR,
};

/// Which of the three fields a value comes from: they share the layout, not the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoFormat {
    /// VM-entry interruption information: what VM entry injects (SDM 25.8.3).
    Entry,
    /// VM-exit interruption information: the event that caused the exit (SDM 25.9.2).
    Exit,
    /// IDT-vectoring information: the event whose delivery the exit interrupted (SDM 25.9.3).
    IdtVectoring,
}

impl InfoFormat {
    /// The SDM section that defines the format, for notes.
    const fn section(self) -> &'static str {
        match self {
            Self::Entry => "SDM 25.8.3",
            Self::Exit => "SDM 25.9.2",
            Self::IdtVectoring => "SDM 25.9.3",
        }
    }

    /// Whether a processor can put `kind` in this field. VM entry accepts every type but the
    /// reserved 1; a VM exit never reports `INT n` (the exception bitmap does not apply to it) or
    /// the MTF "other event" as its cause, and never vectors through the MTF pseudo-event.
    const fn allows(self, kind: InterruptionType) -> bool {
        match self {
            Self::Entry => true,
            Self::Exit => !matches!(
                kind,
                InterruptionType::SoftwareInterrupt | InterruptionType::OtherEvent
            ),
            Self::IdtVectoring => !matches!(kind, InterruptionType::OtherEvent),
        }
    }
}

/// Bits no format defines: 30:13 (bit 12 differs per format).
const UNDEFINED_30_13: u32 = 0x7fff_e000;

/// The SDM's name of an interruption type.
pub fn type_name(kind: InterruptionType) -> &'static str {
    match kind {
        InterruptionType::ExternalInterrupt => "external interrupt",
        InterruptionType::Nmi => "NMI",
        InterruptionType::HardwareException => "hardware exception",
        InterruptionType::SoftwareInterrupt => "software interrupt (INT n)",
        InterruptionType::PrivilegedSoftwareException => "privileged software exception (INT1)",
        InterruptionType::SoftwareException => "software exception (INT3/INTO)",
        InterruptionType::OtherEvent => "other event (pending MTF VM exit)",
    }
}

/// An exception vector in words: `#PF (vector 14)`, or `vector 22 (reserved)` for vectors the
/// SDM gives no exception; the mnemonics come from `x86::irq::EXCEPTIONS`, which lacks #CP.
pub fn exception_name(vector: u8) -> String {
    let mnemonic = match EXCEPTIONS.get(usize::from(vector)) {
        _ if vector == CONTROL_PROTECTION_VECTOR => "#CP",
        Some(e) => e.mnemonic,
        None => return format!("vector {vector} (not an exception vector)"),
    };
    if mnemonic.is_empty() {
        format!("vector {vector} (reserved)")
    } else {
        format!("{mnemonic} (vector {vector})")
    }
}

/// The vector as the type gives it meaning: exceptions by mnemonic, interrupts by number.
fn vector_phrase(kind: InterruptionType, vector: u8) -> String {
    match kind {
        InterruptionType::HardwareException
        | InterruptionType::PrivilegedSoftwareException
        | InterruptionType::SoftwareException => exception_name(vector),
        _ => format!("vector {vector} ({vector:#04x})"),
    }
}

/// Decodes an interruption-information `value` of `format`: one line, then one line per
/// problem (`error:` — VM entry fails or the CPU never reports it; `note:` — legal but unusual).
pub fn interruption_info(format: InfoFormat, value: u32) -> String {
    let info = InterruptionInfo(value);
    if !info.valid() {
        let mut out = String::from("not valid (bit 31 clear): no event");
        if value != 0 {
            out += &note(&format!(
                "bits 30:0 = {value:#x} are ignored while bit 31 is clear"
            ));
        }
        return out;
    }
    let mut line = vec!["valid".to_string()];
    let mut notes = String::new();
    let kind = info.interruption_type();
    match kind {
        Some(kind) => {
            line.push(type_name(kind).to_string());
            line.push(vector_phrase(kind, info.vector()));
            if !format.allows(kind) {
                notes += &error(&format!(
                    "type {} is never reported in this field ({})",
                    kind as u8,
                    format.section()
                ));
            }
            notes += &pairing(format, kind, info.vector());
            if kind.is_software() {
                notes += &note(match format {
                    InfoFormat::Entry => {
                        "needs VM-entry instruction length 1-15 (0 only if IA32_VMX_MISC[30] = 1)"
                    }
                    _ => "VM-exit instruction length holds the instruction's length",
                });
            }
        }
        None => {
            line.push("reserved type 1".to_string());
            line.push(format!("vector {}", info.vector()));
            notes += &error(&format!("type 1 is reserved ({})", format.section()));
        }
    }
    if info.deliver_error_code() {
        line.push(
            match format {
                InfoFormat::Entry => "error code to deliver",
                _ => "error code valid",
            }
            .to_string(),
        );
    }
    notes += &error_code_bit(format, kind, info);
    let nmi_unblocking = value & InfoFlags::NMI_UNBLOCKING_DUE_TO_IRET.bits() != 0;
    match format {
        InfoFormat::Entry => {
            let reserved = value & (UNDEFINED_30_13 | InfoFlags::NMI_UNBLOCKING_DUE_TO_IRET.bits());
            if reserved != 0 {
                notes += &error(&format!(
                    "reserved bits 30:12 set ({reserved:#x}): VM entry fails (SDM 27.2.1.3)"
                ));
            }
        }
        InfoFormat::Exit => {
            if nmi_unblocking {
                line.push("NMI unblocking due to IRET".to_string());
            }
        }
        InfoFormat::IdtVectoring => {
            if nmi_unblocking {
                notes += &note(
                    "bit 12 is undefined in IDT-vectoring information (NMI unblocking due to IRET \
                     is reported in VM-exit interruption information)",
                );
            }
        }
    }
    if format != InfoFormat::Entry && value & UNDEFINED_30_13 != 0 {
        notes += &error(&format!(
            "bits 30:13 set ({:#x}): the CPU writes them as 0 ({})",
            value & UNDEFINED_30_13,
            format.section()
        ));
    }
    line.join(SEP) + &notes
}

/// Type/vector pairings: VM entry checks NMI = 2, hardware exception ≤ 31, other event = 0; the
/// CPU itself reports INT1 only as vector 1 and INT3/INTO only as 3/4.
fn pairing(format: InfoFormat, kind: InterruptionType, vector: u8) -> String {
    let consequence = match format {
        InfoFormat::Entry => "VM entry fails (SDM 27.2.1.3)",
        _ => "the CPU never reports this",
    };
    let fails = |what: &str| error(&format!("{what}: {consequence}"));
    match kind {
        InterruptionType::Nmi if vector != NONMASKABLE_INTERRUPT_VECTOR => {
            fails("an NMI has vector 2")
        }
        InterruptionType::HardwareException if vector > 31 => {
            fails("a hardware exception has a vector of at most 31")
        }
        InterruptionType::OtherEvent if vector != 0 => fails("other event has vector 0"),
        InterruptionType::HardwareException if vector == NONMASKABLE_INTERRUPT_VECTOR => {
            unusual(format, "vector 2 is the NMI, which has type 2")
        }
        InterruptionType::PrivilegedSoftwareException if vector != DEBUG_VECTOR => {
            unusual(format, "INT1 raises vector 1")
        }
        InterruptionType::SoftwareException
            if vector != BREAKPOINT_VECTOR && vector != OVERFLOW_VECTOR =>
        {
            unusual(format, "INT3 raises vector 3 and INTO vector 4")
        }
        _ => String::new(),
    }
}

/// A pairing VM entry accepts (it checks only NMI, hardware-exception and other-event vectors)
/// but no instruction produces.
fn unusual(format: InfoFormat, what: &str) -> String {
    match format {
        InfoFormat::Entry => note(&format!("{what}; VM entry injects this pairing as given")),
        _ => error(&format!("{what}: the CPU never reports this")),
    }
}

/// The deliver-error-code rule (SDM 27.2.1.3 for entry; 25.9.2/25.9.3 report what was pushed):
/// only hardware exceptions of the error-code vectors, only with CR0.PE = 1.
fn error_code_bit(
    format: InfoFormat,
    kind: Option<InterruptionType>,
    info: InterruptionInfo,
) -> String {
    let hardware = kind == Some(InterruptionType::HardwareException);
    let pushes = hardware && vector_has_error_code(info.vector());
    match (info.deliver_error_code(), pushes, format) {
        (true, false, InfoFormat::Entry) if hardware => error(
            "bit 11 set for a vector that pushes no error code: VM entry fails unless \
             IA32_VMX_BASIC[56] = 1 (SDM 27.2.1.3)",
        ),
        (true, false, InfoFormat::Entry) => error(
            "bit 11 set for a type other than hardware exception: VM entry fails (SDM 27.2.1.3)",
        ),
        (true, false, _) => {
            error("bit 11 set for an event that pushes no error code: the CPU never reports this")
        }
        (false, true, InfoFormat::Entry) => note(
            "bit 11 clear for a vector that pushes an error code: VM entry fails unless guest \
             CR0.PE = 0 (unrestricted guest) or IA32_VMX_BASIC[56] = 1",
        ),
        (false, true, _) => note("no error code: the guest was in real mode (CR0.PE = 0)"),
        _ => String::new(),
    }
}
