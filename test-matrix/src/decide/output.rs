//! Serialising `decide`'s answers: one JSON object per input line.

use super::input::Malformed;
use nvmx::event::InterruptionType;
use nvmx::route::Outcome;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::io::{self, Write};

/// The input format's name of an interruption type.
pub fn kind_name(kind: InterruptionType) -> &'static str {
    match kind {
        InterruptionType::ExternalInterrupt => "external_interrupt",
        InterruptionType::Nmi => "nmi",
        InterruptionType::HardwareException => "hardware_exception",
        InterruptionType::SoftwareInterrupt => "software_interrupt",
        InterruptionType::PrivilegedSoftwareException => "privileged_software_exception",
        InterruptionType::SoftwareException => "software_exception",
        InterruptionType::OtherEvent => "other_event",
    }
}

#[derive(Serialize)]
struct Deliver<'a> {
    id: &'a RawValue,
    outcome: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    vector: u8,
    error_code: Option<u16>,
    cr2: Option<u64>,
}

#[derive(Serialize)]
struct VmExit<'a> {
    id: &'a RawValue,
    outcome: &'static str,
    exit_reason: u16,
    exit_interruption_info: u32,
    exit_interruption_error_code: Option<u16>,
    exit_qualification: u64,
    idt_vectoring_info: u32,
    idt_vectoring_error_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_instruction_length: Option<u8>,
}

#[derive(Serialize)]
struct Error<'a> {
    id: Option<&'a Value>,
    outcome: &'static str,
    line: u64,
    field: Option<&'a str>,
    error: &'a str,
}

/// Writes the answer for a routed line, newline-terminated.
pub fn write_outcome(out: &mut impl Write, id: &RawValue, outcome: &Outcome) -> io::Result<()> {
    match outcome {
        Outcome::Deliver { event, error_code } => serde_json::to_writer(
            &mut *out,
            &Deliver {
                id,
                outcome: "deliver",
                kind: kind_name(event.kind),
                vector: event.vector,
                error_code: *error_code,
                cr2: event.is_hardware(14).then_some(event.payload),
            },
        ),
        Outcome::VmExit(exit) => serde_json::to_writer(
            &mut *out,
            &VmExit {
                id,
                outcome: "vmexit",
                exit_reason: exit.reason as u16,
                exit_interruption_info: exit.interruption_info.bits(),
                exit_interruption_error_code: exit.interruption_error_code,
                exit_qualification: exit.qualification,
                idt_vectoring_info: exit.idt_vectoring_info.bits(),
                idt_vectoring_error_code: exit.idt_vectoring_error_code,
                exit_instruction_length: exit.instruction_length,
            },
        ),
    }?;
    out.write_all(b"\n")
}

/// Writes the error object for malformed line `line` (1-based), newline-terminated.
pub fn write_error(
    out: &mut impl Write,
    line: u64,
    id: Option<&Value>,
    malformed: &Malformed,
) -> io::Result<()> {
    let error = Error {
        id,
        outcome: "error",
        line,
        field: malformed.field.as_deref(),
        error: &malformed.message,
    };
    serde_json::to_writer(&mut *out, &error)?;
    out.write_all(b"\n")
}
