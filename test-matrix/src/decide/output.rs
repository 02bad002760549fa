//! Serialising `decide`'s answers: one JSON object per input line.

use super::input::Malformed;
use nvmx::event::InterruptionType;
use nvmx::route::Outcome;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

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
struct Error<'a> {
    id: Option<&'a Value>,
    outcome: &'static str,
    line: u64,
    field: Option<&'a str>,
    error: &'a str,
}

/// Appends the answer for a routed line, newline-terminated.
///
/// By hand rather than through serde: serde_json escapes every member name at run time and went
/// through `fmt` machinery per member, which was about a sixth of `decide`'s time; here the names
/// are constants copied as they are and numbers go through itoa. The member order and the
/// number/null spelling are those serde_json wrote (tests/decide_cli.rs pins the shapes).
pub fn write_outcome(out: &mut Vec<u8>, id: &RawValue, outcome: &Outcome) {
    match outcome {
        Outcome::Deliver { event, error_code } => {
            let mut object = Object::start(out, id, "deliver");
            object.identifier("type", kind_name(event.kind));
            object.number("vector", event.vector);
            object.number_or_null("error_code", *error_code);
            object.number_or_null("cr2", event.is_hardware(14).then_some(event.payload));
            object.end();
        }
        Outcome::VmExit(exit) => {
            let mut object = Object::start(out, id, "vmexit");
            object.number("exit_reason", exit.reason as u16);
            object.number("exit_interruption_info", exit.interruption_info.bits());
            object.number_or_null("exit_interruption_error_code", exit.interruption_error_code);
            object.number("exit_qualification", exit.qualification);
            object.number("idt_vectoring_info", exit.idt_vectoring_info.bits());
            object.number_or_null("idt_vectoring_error_code", exit.idt_vectoring_error_code);
            // Present only for exits that report an instruction length (software events).
            if let Some(length) = exit.instruction_length {
                object.number("exit_instruction_length", length);
            }
            object.end();
        }
    }
}

/// One answer object being appended, members after `id` and `outcome`. Names and string values
/// are this module's constants (plain ASCII identifiers), so they need no escaping.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    digits: itoa::Buffer,
}

impl<'a> Object<'a> {
    /// `{"id":ID,"outcome":"OUTCOME"`, `id` verbatim as the input spelled it.
    fn start(out: &'a mut Vec<u8>, id: &RawValue, outcome: &str) -> Self {
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(id.get().as_bytes());
        let mut object = Self {
            out,
            digits: itoa::Buffer::new(),
        };
        object.identifier("outcome", outcome);
        object
    }

    // Inlined, so that each constant name is copied with fixed-size moves, not a memcpy call.
    #[inline(always)]
    fn name(&mut self, name: &str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string member whose value is a constant identifier.
    #[inline(always)]
    fn identifier(&mut self, name: &str, value: &str) {
        self.name(name);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    #[inline(always)]
    fn number(&mut self, name: &str, value: impl itoa::Integer) {
        self.name(name);
        self.out
            .extend_from_slice(self.digits.format(value).as_bytes());
    }

    /// A number, or `null` when absent (the member is always written).
    #[inline(always)]
    fn number_or_null(&mut self, name: &str, value: Option<impl itoa::Integer>) {
        match value {
            Some(value) => self.number(name, value),
            None => {
                self.name(name);
                self.out.extend_from_slice(b"null");
            }
        }
    }

    fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }
}

/// Appends the error object for malformed line `line` (1-based), newline-terminated. Through
/// serde, which escapes the message and the id's strings; errors are rare.
pub fn write_error(out: &mut Vec<u8>, line: u64, id: Option<&Value>, malformed: &Malformed) {
    let error = Error {
        id,
        outcome: "error",
        line,
        field: malformed.field.as_deref(),
        error: &malformed.message,
    };
    serde_json::to_writer(&mut *out, &error).expect("an error object serialises into memory");
    out.push(b'\n');
}
