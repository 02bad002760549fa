//! Cases as `decide` input lines (docs/event-routing.md): `matrix --scenarios` prints them for
//! system runners, and the report pipes them through `decide` to get the model's outcome in the
//! format system results use.

use super::model::Case;
use nvmx::event::{Event, InterruptionType};
use serde::Serialize;
use serde_json::{Map, Value};

/// `decide`'s name of an interruption type (checked against `decide` by a round-trip test).
fn type_name(kind: InterruptionType) -> &'static str {
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

fn event(e: &Event) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), type_name(e.kind).into());
    object.insert("vector".into(), e.vector.into());
    object.insert("error_code".into(), e.error_code.into());
    if e.is_hardware(14) {
        object.insert("cr2".into(), e.payload.into());
    }
    if e.is_hardware(1) {
        object.insert("dr6".into(), e.payload.into());
    }
    if e.kind.is_software() {
        object.insert("insn_len".into(), e.insn_len.into());
    }
    Value::Object(object)
}

/// The `controls` member.
#[derive(Serialize)]
struct Controls {
    exception_bitmap: u32,
    pfec_mask: u32,
    pfec_match: u32,
    nmi_exiting: bool,
    external_interrupt_exiting: bool,
    ack_interrupt_on_exit: bool,
}

/// One input line, members in the order a reader wants them (id first).
#[derive(Serialize)]
struct Line {
    id: String,
    description: String,
    protected_mode: bool,
    injected: bool,
    controls: Controls,
    delivering: Option<Value>,
    event: Value,
}

/// The case as one `decide` input object, with its id and (ignored by `decide`) description.
pub fn decide_input(case: &Case) -> impl Serialize {
    let s = case.scenario();
    let c = s.controls;
    Line {
        id: case.id(),
        description: case.description(),
        protected_mode: s.protected_mode,
        injected: s.injected,
        controls: Controls {
            exception_bitmap: c.exception_bitmap,
            pfec_mask: c.pfec_mask,
            pfec_match: c.pfec_match,
            nmi_exiting: c.nmi_exiting,
            external_interrupt_exiting: c.external_interrupt_exiting,
            ack_interrupt_on_exit: c.ack_interrupt_on_exit,
        },
        delivering: s.delivering.as_ref().map(event),
        event: event(&s.event),
    }
}
