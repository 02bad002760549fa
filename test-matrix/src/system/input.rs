//! A system scenario as a `decide` input: the event the payload raises first, walked through
//! the world's broken deliveries (matrix-scenarios' `Env::delivery_fault`) with the routing
//! decision itself, up to the decision whose outcome the machine shows first. A wrong model
//! step therefore shows as a disagreement with the bare reference, never as a silent skip.

use matrix_scenarios::{Action, Controls, Env, Kind, Raised};
use nvmx::event::{Event, InterruptionType};
use nvmx::route::{route, InterceptControls, Outcome, Scenario};
use serde_json::{json, Value};

/// Enough for the longest chain a world builds (#PF, #PF, #DF, #NP).
const MAX_STEPS: usize = 6;

fn event(raised: Raised) -> Event {
    let kind = match raised.kind {
        Kind::Hardware => InterruptionType::HardwareException,
        Kind::SoftwareInterrupt => InterruptionType::SoftwareInterrupt,
        Kind::PrivilegedSoftware => InterruptionType::PrivilegedSoftwareException,
        Kind::SoftwareException => InterruptionType::SoftwareException,
    };
    Event {
        kind,
        vector: raised.vector,
        error_code: raised.error_code,
        insn_len: raised.insn_len,
        payload: raised.payload,
    }
}

fn raised(event: Event) -> Raised {
    let kind = match event.kind {
        InterruptionType::SoftwareInterrupt => Kind::SoftwareInterrupt,
        InterruptionType::PrivilegedSoftwareException => Kind::PrivilegedSoftware,
        InterruptionType::SoftwareException => Kind::SoftwareException,
        _ => Kind::Hardware,
    };
    Raised {
        kind,
        vector: event.vector,
        error_code: event.error_code,
        payload: event.payload,
        insn_len: event.insn_len,
    }
}

/// The routing scenario whose outcome the machine shows first for `action` in `env` under
/// `controls`: 64-bit mode (protected), nothing injected.
pub fn scenario(action: Action, env: Env, controls: Controls) -> Scenario {
    let mut s = Scenario {
        controls: InterceptControls {
            exception_bitmap: controls.exception_bitmap,
            pfec_mask: controls.pfec_mask,
            pfec_match: controls.pfec_match,
            ..InterceptControls::default()
        },
        protected_mode: true,
        injected: false,
        delivering: None,
        event: event(action.raised()),
    };
    for _ in 0..MAX_STEPS {
        let Outcome::Deliver {
            event: delivered, ..
        } = route(&s)
        else {
            break;
        };
        let Some(fault) = env.delivery_fault(raised(delivered), action.user()) else {
            break;
        };
        s.delivering = Some(delivered);
        s.event = event(fault);
    }
    s
}

/// `decide`'s name of an interruption type.
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

fn event_json(e: &Event) -> Value {
    let mut v = json!({"type": kind_name(e.kind), "vector": e.vector, "error_code": e.error_code});
    if e.is_hardware(14) {
        v["cr2"] = e.payload.into();
    }
    if e.is_hardware(1) {
        v["dr6"] = e.payload.into();
    }
    if e.kind.is_software() {
        v["insn_len"] = e.insn_len.into();
    }
    v
}

/// `s` as a `decide` input object with `id`.
pub fn decide_input(id: &str, s: &Scenario) -> Value {
    let c = &s.controls;
    json!({
        "id": id,
        "protected_mode": s.protected_mode,
        "injected": s.injected,
        "controls": {
            "exception_bitmap": c.exception_bitmap, "pfec_mask": c.pfec_mask, "pfec_match": c.pfec_match,
            "nmi_exiting": c.nmi_exiting, "external_interrupt_exiting": c.external_interrupt_exiting,
            "ack_interrupt_on_exit": c.ack_interrupt_on_exit,
        },
        "delivering": s.delivering.as_ref().map(event_json),
        "event": event_json(&s.event),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matrix_scenarios::{cases, is_triple_fault_case, scenarios};

    const NOTHING: Controls = Controls {
        exception_bitmap: 0,
        pfec_mask: 0,
        pfec_match: 0,
    };

    /// The transparency mode runs exactly the pairs that end in a triple fault with nothing
    /// intercepted in runs of their own: the list must match what the model walks to.
    #[test]
    fn triple_fault_cases_are_the_pairs_that_shut_down() {
        for (action, env) in cases() {
            let s = scenario(action, env, NOTHING);
            let shuts_down = matches!(route(&s), Outcome::VmExit(exit) if exit.reason as u16 == 2);
            assert_eq!(
                shuts_down,
                is_triple_fault_case((action, env)),
                "{}",
                action.name()
            );
        }
    }

    /// Ids are unique, and every pair has the "nothing intercepted" scenario the transparency
    /// mode is compared with.
    #[test]
    fn ids_are_unique_and_every_pair_has_a_bare_reference() {
        let mut ids = std::collections::HashSet::new();
        for s in scenarios() {
            let mut id = String::new();
            s.write_id(&mut id).unwrap();
            assert!(ids.insert(id.clone()), "{id} twice");
        }
        for (action, env) in cases() {
            let mut id = String::new();
            matrix_scenarios::write_case_id(action, env, &mut id).unwrap();
            assert!(ids.contains(&format!("{id}/bm-0/pfec-0-0")), "{id}");
        }
        assert!(ids.len() >= 300);
    }

    /// A delivery fault becomes the new event with the delivered one in `delivering`.
    #[test]
    fn walks_into_the_fault_that_breaks_a_delivery() {
        let env = matrix_scenarios::ENV_CASES
            .iter()
            .find(|(a, _)| *a == Action::DivideByZero)
            .unwrap()
            .1;
        let s = scenario(Action::DivideByZero, env, NOTHING);
        assert_eq!(s.delivering.map(|e| e.vector), Some(0));
        assert_eq!(s.event.vector, 14);
        assert_eq!(s.event.error_code, 2);
    }
}
