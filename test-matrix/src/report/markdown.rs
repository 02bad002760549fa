//! The report as Markdown.

use super::grid::code;
use super::Report;
use crate::matrix::invariants::INVARIANTS;
use crate::matrix::model::Delivering;
use crate::matrix::OutcomeClass;

/// Legend for the grid codes.
pub const LEGEND: &str = "D deliver the new event · DF deliver the #DF both events became · \
X0 VM exit, reason 0 (exception or NMI) · X1 VM exit, reason 1 (external interrupt) · \
X2 VM exit, reason 2 (triple fault) · blank: no such scenario";

/// Renders `report`.
pub fn render(report: &Report) -> String {
    let t = &report.tally;
    let mut out = String::from("# Event-routing matrix report\n\n");
    out += "Written by `cargo run --release -p test-matrix -- report`; the matrix, the invariants \
            and the system-result format are described in docs/matrix.md.\n\n## Model\n\n";
    out += &format!(
        "{} scenarios routed by `nvmx::route::route` and checked in {:.2} s.\n\n",
        t.total,
        t.elapsed.as_secs_f64()
    );
    out += "| outcome | scenarios |\n| --- | ---: |\n";
    for (class, n) in &t.by_outcome {
        out += &format!("| {} | {n} |\n", class.label());
    }
    let classes: Vec<OutcomeClass> = t.by_outcome.keys().copied().collect();
    out += "\n| event being delivered |";
    for class in &classes {
        out += &format!(" {} |", class.label());
    }
    out += &format!("\n| --- |{}\n", " ---: |".repeat(classes.len()));
    for (row, delivering) in Delivering::ALL.iter().enumerate() {
        out += &format!("| {} |", delivering.label());
        for class in &classes {
            out += &format!(
                " {} |",
                t.by_delivering.get(&(row, *class)).copied().unwrap_or(0)
            );
        }
        out += "\n";
    }
    out += "\n| invariant | result |\n| --- | --- |\n";
    for (i, invariant) in INVARIANTS.iter().enumerate() {
        let result = match t.violations[i] {
            0 => "holds".to_string(),
            n => format!("**violated in {n} scenarios**"),
        };
        out += &format!("| `{}` — {} | {result} |\n", invariant.name, invariant.rule);
    }

    out += &format!(
        "\n## Grids\n\nRows: event being delivered · new event type; columns: new vector. \
         PFEC mask = match = 0, #PF error code 0x2, protected mode, nothing injected.\n\n{LEGEND}\n"
    );
    for grid in &report.grids {
        out += &format!("\n### {}\n\n| |", grid.setting.name);
        for v in 0..32 {
            out += &format!(" {v} |");
        }
        out += &format!("\n| --- |{}\n", " :-: |".repeat(32));
        for row in &grid.rows {
            out += &format!("| {} |", row.label);
            for cell in &row.cells {
                out += &format!(
                    " {} |",
                    cell.as_ref().map_or(String::new(), |c| code(c.class))
                );
            }
            out += "\n";
        }
    }

    out += "\n## System runs\n\n";
    if report.system.iter().all(|r| !r.present) {
        let paths: Vec<String> = report
            .system
            .iter()
            .map(|r| format!("`{}`", r.path.display()))
            .collect();
        out += &format!(
            "No system results: none of {} exists. Only the model's figures above are real; \
             nothing has been compared with l1-hv yet.\n",
            paths.join(", ")
        );
        return out;
    }
    out += "| mode | observed | agree | disagree | agreement | problem lines |\n\
            | --- | ---: | ---: | ---: | ---: | ---: |\n";
    for r in &report.system {
        if r.present {
            out += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.mode,
                r.observed,
                r.agree,
                r.disagreements.len(),
                percent(r.agree, r.observed),
                r.problems.len()
            );
        } else {
            out += &format!(
                "| {} | no results (`{}` not found) | | | | |\n",
                r.mode,
                r.path.display()
            );
        }
    }
    out += "\nKnown Bochs errata (bare results not compared with the model; the SDM decides):";
    if crate::system::errata::KNOWN_ERRATA.is_empty() {
        out += " none.\n";
    } else {
        out += "\n\n";
        for e in crate::system::errata::KNOWN_ERRATA {
            out += &format!("* `{}`: {}\n", e.id, e.sdm);
        }
    }
    for r in report.system.iter().filter(|r| r.present) {
        if !r.disagreements.is_empty() {
            out += &format!("\n### Disagreements, {}\n\n", r.mode);
            for d in &r.disagreements {
                out += &format!(
                    "* `{}`\n  * model: `{}`\n  * {}: `{}`\n",
                    d.id, d.model, r.mode, d.observed
                );
            }
        }
        if !r.problems.is_empty() {
            out += &format!("\n### Unusable lines, {}\n\n", r.mode);
            for p in &r.problems {
                out += &format!("* {p}\n");
            }
        }
    }
    out
}

/// `agree` of `observed` as a percentage, or a dash when nothing was observed.
pub fn percent(agree: u64, observed: u64) -> String {
    if observed == 0 {
        "–".into()
    } else {
        format!("{:.2} %", 100.0 * agree as f64 / observed as f64)
    }
}
