//! The report's grids: for one control setting, rows of (event being delivered, new-event type)
//! against columns of new vector 0–31, each cell the outcome of that matrix case.

use crate::matrix::model::{new_events, representative_error_code, Case, Delivering, Pfec};
use crate::matrix::OutcomeClass;
use nvmx::event::InterruptionType;
use nvmx::explain::{interruption_info, InfoFormat};
use nvmx::route::{route, Outcome};

/// A control setting in the terms of [`Case::own`] and [`Case::rest`]; every grid cell uses
/// PFEC mask = match = 0 (every #PF error code matches), protected mode, nothing injected.
pub struct Setting {
    /// Heading.
    pub name: &'static str,
    /// The new event's own control (bitmap bit of its vector, NMI or external-interrupt exiting).
    pub own: bool,
    /// Every other control.
    pub rest: bool,
}

/// The settings the report draws, one grid each.
pub const SETTINGS: [Setting; 4] = [
    Setting {
        name: "nothing intercepted",
        own: false,
        rest: false,
    },
    Setting {
        name: "everything intercepted",
        own: true,
        rest: true,
    },
    Setting {
        name: "only the new event intercepted (e.g. column 14: #PF only)",
        own: true,
        rest: false,
    },
    Setting {
        name: "everything but the new event intercepted (e.g. #DF intercepted, the new vector not)",
        own: false,
        rest: true,
    },
];

/// One cell: the case's outcome.
pub struct Cell {
    /// Outcome class, which picks the colour.
    pub class: OutcomeClass,
    /// The case's id.
    pub id: String,
    /// The outcome in words.
    pub detail: String,
}

/// One row: a label and a cell per vector 0–31 (`None` where the matrix has no such case).
pub struct Row {
    /// E.g. `contributory #GP · hardware exception`.
    pub label: String,
    /// Indexed by new vector.
    pub cells: Vec<Option<Cell>>,
}

/// One grid.
pub struct Grid {
    /// Its setting.
    pub setting: &'static Setting,
    /// Its rows.
    pub rows: Vec<Row>,
}

/// Row definitions: the event being delivered, the new-event types shown, the label.
fn row_kinds() -> Vec<(Delivering, Vec<InterruptionType>, &'static str)> {
    use InterruptionType::*;
    let mut rows = vec![
        (
            Delivering::Nothing,
            vec![HardwareException],
            "hardware exception",
        ),
        (Delivering::Nothing, vec![Nmi], "NMI"),
        (
            Delivering::Nothing,
            vec![PrivilegedSoftwareException, SoftwareException],
            "INT1 / INT3 / INTO",
        ),
        (Delivering::Nothing, vec![SoftwareInterrupt], "INT n"),
        (
            Delivering::Nothing,
            vec![ExternalInterrupt],
            "external interrupt",
        ),
    ];
    rows.extend(
        Delivering::ALL[1..]
            .iter()
            .map(|&d| (d, vec![HardwareException], "hardware exception")),
    );
    rows
}

/// The outcome in words, reusing `explain`'s wording for the information fields.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Deliver { event, error_code } => format!(
            "deliver {}{}",
            interruption_info(InfoFormat::Entry, event.info(true).0),
            error_code.map_or(String::new(), |ec| format!(", error code {ec:#x}"))
        ),
        Outcome::VmExit(x) => format!(
            "VM exit, reason {}: exit-intr-info {}; IDT-vectoring {}",
            x.reason as u16,
            interruption_info(InfoFormat::Exit, x.interruption_info.0),
            interruption_info(InfoFormat::IdtVectoring, x.idt_vectoring_info.0)
        ),
    }
}

/// The cell for `vector` in a row, if the matrix has such a case.
fn cell(
    setting: &Setting,
    delivering: Delivering,
    kinds: &[InterruptionType],
    vector: u8,
) -> Option<Cell> {
    let (kind, _) = new_events(delivering).find(|&(k, v)| v == vector && kinds.contains(&k))?;
    let case = Case {
        delivering,
        kind,
        vector,
        error_code: representative_error_code(kind, vector),
        own: setting.own,
        rest: setting.rest,
        pfec: Pfec { mask: 0, match_: 0 },
        protected_mode: true,
        injected: false,
    };
    let outcome = route(&case.scenario());
    Some(Cell {
        class: OutcomeClass::of(&case, &outcome),
        id: case.id(),
        detail: describe(&outcome),
    })
}

/// One grid per [`SETTINGS`] entry.
pub fn grids() -> Vec<Grid> {
    SETTINGS
        .iter()
        .map(|setting| Grid {
            setting,
            rows: row_kinds()
                .into_iter()
                .map(|(delivering, kinds, what)| Row {
                    label: format!("{} · {what}", delivering.label()),
                    cells: (0..32)
                        .map(|v| cell(setting, delivering, &kinds, v))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Short cell text: `D`, `DF`, `X0`, `X1`, `X2`.
pub fn code(class: OutcomeClass) -> String {
    match class {
        OutcomeClass::Deliver => "D".into(),
        OutcomeClass::DeliverDoubleFault => "DF".into(),
        OutcomeClass::Exit(reason) => format!("X{reason}"),
    }
}
