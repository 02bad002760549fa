//! System runs: what l1-hv actually did for matrix scenarios, read from
//! `target/matrix/system-<mode>.jsonl` (one JSON object per scenario: `id`, `mode`, and the
//! observed outcome in `decide`'s output format), compared with the model's answer — the
//! scenario's `decide` input line run through `decide` itself: the matrix's line for the id, or
//! the line's own `scenario` member (the system matrix's scenarios, `test-matrix system`).
//! See docs/matrix.md.

use crate::matrix::model::cases;
use crate::matrix::scenario_json::decide_input;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The modes a system run can be made in.
pub const MODES: [&str; 3] = ["bare", "nested", "transparent"];

/// A scenario where system and model differ.
pub struct Disagreement {
    /// Scenario id.
    pub id: String,
    /// The model's outcome (`decide` format, without `id`).
    pub model: String,
    /// The observed outcome (without `id` and `mode`).
    pub observed: String,
}

/// The comparison for one mode.
pub struct ModeRun {
    /// `bare`, `nested` or `transparent`.
    pub mode: &'static str,
    /// The result file.
    pub path: PathBuf,
    /// Whether the file exists.
    pub present: bool,
    /// Scenarios observed (distinct known ids).
    pub observed: u64,
    /// Observed scenarios whose outcome equals the model's.
    pub agree: u64,
    /// Every disagreement.
    pub disagreements: Vec<Disagreement>,
    /// Lines that could not be used, with why (bad JSON, wrong mode, unknown or repeated id).
    pub problems: Vec<String>,
}

/// An outcome object with `id`, `mode` and null members removed: `decide` omits some absent
/// members and writes others as null, and a system runner need not copy that distinction.
fn normalise(mut object: Map<String, Value>) -> Value {
    object.remove("id");
    object.remove("mode");
    object.remove("scenario");
    object.retain(|_, v| !v.is_null());
    Value::Object(object)
}

/// Reads one mode's file into id → observed outcome; problems are collected, not fatal.
/// A line's `scenario` member, if it has one, goes into `inline` (id → `decide` input).
fn read(
    mode: &str,
    text: &str,
    problems: &mut Vec<String>,
    inline: &mut HashMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut observed = BTreeMap::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                problems.push(format!("line {number}: not a JSON object"));
                continue;
            }
            Err(e) => {
                problems.push(format!("line {number}: invalid JSON: {e}"));
                continue;
            }
        };
        let Some(id) = object.get("id").and_then(Value::as_str).map(String::from) else {
            problems.push(format!("line {number}: no string id"));
            continue;
        };
        if object.get("mode").and_then(Value::as_str) != Some(mode) {
            problems.push(format!("line {number} ({id}): mode is not {mode:?}"));
            continue;
        }
        if let Some(scenario) = object.get("scenario").filter(|s| s.is_object()) {
            inline.insert(id.clone(), scenario.clone());
        }
        if observed.insert(id.clone(), normalise(object)).is_some() {
            problems.push(format!(
                "line {number}: {id} appears again (the last line counts)"
            ));
        }
    }
    observed
}

/// The model's outcome, in `decide`'s format, for every matrix case whose id is in `wanted`;
/// also returns the ids of `wanted` that are no matrix case.
fn model_outcomes(
    wanted: &HashSet<&str>,
    inline: &HashMap<String, Value>,
) -> (HashMap<String, Value>, HashSet<String>) {
    let mut input = Vec::new();
    let mut known = HashSet::new();
    for (id, scenario) in inline.iter().filter(|(id, _)| wanted.contains(id.as_str())) {
        let mut line = scenario.clone();
        line["id"] = id.as_str().into();
        serde_json::to_writer(&mut input, &line).expect("serialising to memory");
        input.push(b'\n');
        known.insert(id.clone());
    }
    for case in cases() {
        let id = case.id();
        if wanted.contains(id.as_str()) && !known.contains(&id) {
            serde_json::to_writer(&mut input, &decide_input(&case)).expect("serialising to memory");
            input.push(b'\n');
            known.insert(id);
        }
    }
    let mut output = Vec::new();
    crate::decide::process(&mut BufReader::new(&input[..]), &mut output)
        .expect("decide over memory");
    let outcomes = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| match serde_json::from_slice(l) {
            Ok(Value::Object(o)) => {
                let id = o.get("id")?.as_str()?.to_string();
                Some((id, normalise(o)))
            }
            _ => None,
        })
        .collect();
    let unknown = wanted
        .iter()
        .filter(|id| !known.contains(**id))
        .map(|id| id.to_string())
        .collect();
    (outcomes, unknown)
}

/// Reads every mode's file under `dir` and compares it with the model.
pub fn compare(dir: &Path) -> Vec<ModeRun> {
    let mut files = Vec::new();
    let mut inline = HashMap::new();
    for mode in MODES {
        let path = dir.join(format!("system-{mode}.jsonl"));
        let mut problems = Vec::new();
        let observed = match std::fs::read_to_string(&path) {
            Ok(text) => Some(read(mode, &text, &mut problems, &mut inline)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                problems.push(format!("cannot read: {e}"));
                Some(BTreeMap::new())
            }
        };
        files.push((mode, path, observed, problems));
    }
    let wanted: HashSet<&str> = files
        .iter()
        .filter_map(|(_, _, observed, _)| observed.as_ref())
        .flat_map(|o| o.keys().map(String::as_str))
        .collect();
    let (model, unknown) = if wanted.is_empty() {
        (HashMap::new(), HashSet::new())
    } else {
        model_outcomes(&wanted, &inline)
    };
    files
        .into_iter()
        .map(|(mode, path, observed, mut problems)| {
            let mut run = ModeRun {
                mode,
                path,
                present: observed.is_some(),
                observed: 0,
                agree: 0,
                disagreements: Vec::new(),
                problems: Vec::new(),
            };
            for (id, seen) in observed.into_iter().flatten() {
                if unknown.contains(&id) {
                    problems.push(format!("{id}: not a matrix scenario"));
                    continue;
                }
                // Known Bochs errata: the SDM decides, so the bare reference is not compared
                // with the model there (the report lists them, `crate::system::errata`).
                if mode == "bare" && crate::system::errata::erratum(&id).is_some() {
                    continue;
                }
                let expected = &model[&id];
                run.observed += 1;
                if *expected == seen {
                    run.agree += 1;
                } else {
                    run.disagreements.push(Disagreement {
                        id,
                        model: expected.to_string(),
                        observed: seen.to_string(),
                    });
                }
            }
            run.problems = problems;
            run
        })
        .collect()
}
