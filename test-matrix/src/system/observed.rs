//! The matrix guests' result lines (l2-guests' `matrix/report.rs`) as `decide` outcomes.

use nvmx::event::Event;
use nvmx::route::Scenario;
use serde_json::{json, Value};

/// Interruption-information bits (SDM 25.9.2): valid, error code delivered, type.
const VALID: u32 = 1 << 31;
const ERROR_CODE_VALID: u32 = 1 << 11;

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word, 16).ok()
}

/// `-` or hex.
fn optional(word: &str) -> Option<Option<u64>> {
    if word == "-" {
        Some(None)
    } else {
        hex(word).map(Some)
    }
}

/// Whether an information field describes a software-type event (types 4–6), the exits that
/// report an instruction length (SDM 28.2.5).
fn software(info: u32) -> bool {
    info & VALID != 0 && matches!((info >> 8) & 7, 4..=6)
}

/// The outcome in `decide`'s format for the words after `mx I` (`d ...` or `x ...`), given
/// the scenario the model routes. A delivery carries no type on the machine: the payload's
/// handler sees a vector, so the type is the type of the scenario's event of that vector (a
/// software event's vector is its own), and a hardware exception otherwise (#DF, a serial #PF).
pub fn outcome(words: &[&str], scenario: &Scenario) -> Result<Value, String> {
    match words {
        ["d", vector, error_code, cr2] => {
            let (Some(vector), Some(error_code), Some(cr2)) =
                (optional(vector), optional(error_code), hex(cr2))
            else {
                return Err(format!("bad delivery words {words:?}"));
            };
            let Some(vector) = vector else {
                return Ok(json!({"outcome": "completed"}));
            };
            let same = |e: &Event| u64::from(e.vector) == vector;
            let kind = [Some(scenario.event), scenario.delivering]
                .into_iter()
                .flatten()
                .find(|e| same(e) && e.kind.is_software())
                .map_or("hardware_exception", |e| super::input::kind_name(e.kind));
            let cr2 = (vector == 14 && kind == "hardware_exception").then_some(cr2);
            Ok(
                json!({"outcome": "deliver", "type": kind, "vector": vector, "error_code": error_code, "cr2": cr2}),
            )
        }
        ["x", reason, info, error_code, qualification, idt, idt_error_code, length] => {
            let fields: Option<Vec<u64>> = [
                reason,
                info,
                error_code,
                qualification,
                idt,
                idt_error_code,
                length,
            ]
            .iter()
            .map(|w| hex(w))
            .collect();
            let Some([reason, info, error_code, qualification, idt, idt_error_code, length]) =
                fields.and_then(|f| <[u64; 7]>::try_from(f).ok())
            else {
                return Err(format!("bad exit words {words:?}"));
            };
            let (info, idt) = (info as u32, idt as u32);
            let mut v = json!({
                "outcome": "vmexit",
                "exit_reason": reason,
                "exit_interruption_info": info,
                "exit_interruption_error_code": (info & ERROR_CODE_VALID != 0).then_some(error_code),
                "exit_qualification": qualification,
                "idt_vectoring_info": idt,
                "idt_vectoring_error_code": (idt & ERROR_CODE_VALID != 0).then_some(idt_error_code),
            });
            if software(info) || software(idt) {
                v["exit_instruction_length"] = length.into();
            }
            Ok(v)
        }
        _ => Err(format!("unreadable result {words:?}")),
    }
}

/// A guest run of matrix-l2 that l1-hv ended with a triple fault: the machine's "VM exit with
/// reason 2" to l1-hv, which reports no exit information (SDM 28.2.4).
pub fn triple_fault() -> Value {
    json!({"outcome": "vmexit", "exit_reason": 2, "exit_interruption_info": 0, "exit_qualification": 0, "idt_vectoring_info": 0})
}
