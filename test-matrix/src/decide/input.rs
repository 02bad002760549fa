//! Parsing one input line of `decide` into an [`nvmx::route::Scenario`].
//!
//! Fast path: a typed, borrowing serde parse, then semantic checks that name the offending field.
//! Only when the typed parse fails does a second, slower pass over a `serde_json::Value` find which
//! field had the wrong JSON type, so that every error names its field.

use nvmx::event::{Event, InterruptionType};
use nvmx::route::{InterceptControls, Scenario};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// Why a line was rejected: the field (dotted path, `None` for the line as a whole) and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    /// Dotted path of the offending field, e.g. `event.vector`.
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl Malformed {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// A parsed line: its `id`, echoed verbatim, and the scenario.
pub struct Parsed<'a> {
    /// The input's `id`, exactly as written.
    pub id: &'a RawValue,
    /// What to route.
    pub scenario: Scenario,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    protected_mode: Option<bool>,
    injected: Option<bool>,
    controls: Option<ControlsIn>,
    #[serde(borrow)]
    delivering: Option<EventIn<'a>>,
    #[serde(borrow)]
    event: Option<EventIn<'a>>,
}

#[derive(Deserialize)]
struct ControlsIn {
    exception_bitmap: Option<u64>,
    pfec_mask: Option<u64>,
    pfec_match: Option<u64>,
    nmi_exiting: Option<bool>,
    external_interrupt_exiting: Option<bool>,
    ack_interrupt_on_exit: Option<bool>,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Name<'a>>,
    vector: Option<u64>,
    error_code: Option<u64>,
    cr2: Option<u64>,
    dr6: Option<u64>,
    insn_len: Option<u64>,
}

/// A string member, borrowed from the line unless it has escapes. (serde's own borrowing of a
/// `Cow` does not reach through an `Option`: that allocated for every event's type.)
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// Parses one line (without its newline).
pub fn parse(line: &[u8]) -> Result<Parsed<'_>, (Option<Value>, Malformed)> {
    let input = typed(line).map_err(|e| diagnose(line, &e))?;
    let id_value = || input.id.and_then(|id| serde_json::from_str(id.get()).ok());
    let Some(id) = input.id else {
        return Err((
            None,
            Malformed::at("id", "missing (or null): every line needs an id"),
        ));
    };
    scenario(&input)
        .map(|scenario| Parsed { id, scenario })
        .map_err(|m| (id_value(), m))
}

/// The typed parse. A line that is valid UTF-8 as a whole (all but broken ones) is parsed as a
/// `str`, which spares serde_json checking every key and string again, one by one.
fn typed(line: &[u8]) -> serde_json::Result<LineIn<'_>> {
    match std::str::from_utf8(line) {
        Ok(text) => serde_json::from_str(text),
        // serde_json's own error, naming where the bad bytes are.
        Err(_) => serde_json::from_slice(line),
    }
}

fn scenario(input: &LineIn<'_>) -> Result<Scenario, Malformed> {
    let event_in = input
        .event
        .as_ref()
        .ok_or_else(|| Malformed::at("event", "missing"))?;
    let event = parse_event("event", event_in)?;
    let delivering = input
        .delivering
        .as_ref()
        .map(|d| parse_event("delivering", d))
        .transpose()?;
    if delivering.is_some() {
        // Only the processor raises exceptions while it delivers an event; interrupts and
        // instruction-raised events wait for an instruction boundary.
        if event.kind != InterruptionType::HardwareException {
            return Err(Malformed::at(
                "event.type",
                "only a hardware_exception can arise while another event is delivered",
            ));
        }
        if event.vector == 8 {
            return Err(Malformed::at(
                "event.vector",
                "#DF does not arise during delivery; it is the result of combining",
            ));
        }
    }
    Ok(Scenario {
        controls: input
            .controls
            .as_ref()
            .map_or(Ok(InterceptControls::default()), controls)?,
        protected_mode: input.protected_mode.unwrap_or(true),
        injected: input.injected.unwrap_or(false),
        delivering,
        event,
    })
}

fn controls(c: &ControlsIn) -> Result<InterceptControls, Malformed> {
    Ok(InterceptControls {
        exception_bitmap: u32_field("controls.exception_bitmap", c.exception_bitmap)?,
        pfec_mask: u32_field("controls.pfec_mask", c.pfec_mask)?,
        pfec_match: u32_field("controls.pfec_match", c.pfec_match)?,
        nmi_exiting: c.nmi_exiting.unwrap_or(false),
        external_interrupt_exiting: c.external_interrupt_exiting.unwrap_or(false),
        ack_interrupt_on_exit: c.ack_interrupt_on_exit.unwrap_or(false),
    })
}

fn u32_field(field: &str, value: Option<u64>) -> Result<u32, Malformed> {
    u32::try_from(value.unwrap_or(0)).map_err(|_| Malformed::at(field, "must fit in 32 bits"))
}

/// The interruption type named `name` in the input format.
pub fn kind_from_name(name: &str) -> Option<InterruptionType> {
    Some(match name {
        "external_interrupt" => InterruptionType::ExternalInterrupt,
        "nmi" => InterruptionType::Nmi,
        "hardware_exception" => InterruptionType::HardwareException,
        "software_interrupt" => InterruptionType::SoftwareInterrupt,
        "privileged_software_exception" => InterruptionType::PrivilegedSoftwareException,
        "software_exception" => InterruptionType::SoftwareException,
        _ => return None,
    })
}

fn parse_event(path: &str, e: &EventIn<'_>) -> Result<Event, Malformed> {
    let field = |name: &str| format!("{path}.{name}");
    let name = e
        .kind
        .as_ref()
        .map(|name| &*name.0)
        .ok_or_else(|| Malformed::at(field("type"), "missing"))?;
    let kind = kind_from_name(name)
        .ok_or_else(|| Malformed::at(field("type"), format!("unknown event type {name:?}")))?;
    let vector = e
        .vector
        .ok_or_else(|| Malformed::at(field("vector"), "missing"))?;
    let vector =
        u8::try_from(vector).map_err(|_| Malformed::at(field("vector"), "must be 0..=255"))?;
    let error_code = u32::try_from(e.error_code.unwrap_or(0))
        .map_err(|_| Malformed::at(field("error_code"), "must fit in 32 bits"))?;
    let bad_vector = |why: &str| Err(Malformed::at(field("vector"), format!("{vector} {why}")));
    match kind {
        InterruptionType::Nmi if vector != 2 => return bad_vector("is not the NMI vector 2"),
        InterruptionType::HardwareException if vector > 31 => {
            return bad_vector("is not an exception vector (0..=31)")
        }
        InterruptionType::HardwareException if vector == 2 => {
            return bad_vector("is the NMI: use type \"nmi\"")
        }
        InterruptionType::PrivilegedSoftwareException if vector != 1 => {
            return bad_vector("is not INT1's vector 1")
        }
        InterruptionType::SoftwareException if vector != 3 && vector != 4 => {
            return bad_vector("is neither INT3's 3 nor INTO's 4")
        }
        _ => {}
    }
    Ok(match kind {
        InterruptionType::HardwareException => match vector {
            14 => Event::page_fault(error_code, e.cr2.unwrap_or(0)),
            1 => Event::debug(e.dr6.unwrap_or(0)),
            _ => Event::hardware_exception(vector, error_code),
        },
        InterruptionType::Nmi => Event::nmi(),
        InterruptionType::ExternalInterrupt => Event::external_interrupt(vector),
        software => {
            // Absent, the length of the instruction's shortest encoding: CD ib, or F1 / CC / CE.
            let natural = if software == InterruptionType::SoftwareInterrupt {
                2
            } else {
                1
            };
            let len = e.insn_len.unwrap_or(natural);
            if !(1..=15).contains(&len) {
                return Err(Malformed::at(field("insn_len"), "must be 1..=15"));
            }
            Event::software(software, vector, len as u8)
        }
    })
}

/// Finds the field the typed parse choked on. Slow; runs only for malformed lines.
fn diagnose(line: &[u8], typed_error: &serde_json::Error) -> (Option<Value>, Malformed) {
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            return (
                None,
                Malformed {
                    field: None,
                    message: format!("invalid JSON: {e}"),
                },
            )
        }
    };
    let Value::Object(top) = &value else {
        return (
            None,
            Malformed {
                field: None,
                message: "expected a JSON object".into(),
            },
        );
    };
    let id = top.get("id").cloned();
    let found = check(
        top,
        "",
        &[
            ("protected_mode", Kind::Bool),
            ("injected", Kind::Bool),
            ("controls", Kind::Object),
        ],
    )
    .or_else(|| {
        let controls = top.get("controls").and_then(Value::as_object)?;
        check(
            controls,
            "controls.",
            &[
                ("exception_bitmap", Kind::Unsigned),
                ("pfec_mask", Kind::Unsigned),
                ("pfec_match", Kind::Unsigned),
                ("nmi_exiting", Kind::Bool),
                ("external_interrupt_exiting", Kind::Bool),
                ("ack_interrupt_on_exit", Kind::Bool),
            ],
        )
    })
    .or_else(|| {
        ["delivering", "event"].into_iter().find_map(|name| {
            let field = top.get(name).filter(|v| !v.is_null())?;
            let Value::Object(members) = field else {
                return Some(Malformed::at(name, "expected an object"));
            };
            let prefix = format!("{name}.");
            check(
                members,
                &prefix,
                &[
                    ("type", Kind::String),
                    ("vector", Kind::Unsigned),
                    ("error_code", Kind::Unsigned),
                    ("cr2", Kind::Unsigned),
                    ("dr6", Kind::Unsigned),
                    ("insn_len", Kind::Unsigned),
                ],
            )
        })
    });
    (
        id,
        found.unwrap_or_else(|| Malformed {
            field: None,
            message: typed_error.to_string(),
        }),
    )
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Unsigned,
    String,
    Object,
}

/// The first member of `object` (named in `schema`) whose JSON type is wrong; null means absent.
fn check(
    object: &serde_json::Map<String, Value>,
    prefix: &str,
    schema: &[(&str, Kind)],
) -> Option<Malformed> {
    schema.iter().find_map(|&(name, kind)| {
        let value = object.get(name).filter(|v| !v.is_null())?;
        let (ok, expected) = match kind {
            Kind::Bool => (value.is_boolean(), "true or false"),
            Kind::Unsigned => (value.is_u64(), "a non-negative integer below 2^64"),
            Kind::String => (value.is_string(), "a string"),
            Kind::Object => (value.is_object(), "an object"),
        };
        (!ok).then(|| {
            Malformed::at(
                format!("{prefix}{name}"),
                format!("expected {expected}, got {value}"),
            )
        })
    })
}
