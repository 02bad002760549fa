//! `report`: writes `target/matrix/report.md` and a self-contained `target/matrix/report.html`
//! with the model's figures, one outcome grid per control setting, and the agreement of system
//! runs with the model. See docs/matrix.md for the layout and the system-result format.

mod grid;
mod html;
mod markdown;
mod system;
#[cfg(test)]
mod tests;

use crate::matrix::{evaluate, Tally};
use grid::Grid;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use system::ModeRun;

/// Everything the report shows.
pub struct Report {
    /// The model's figures over the whole matrix.
    pub tally: Tally,
    /// One grid per control setting.
    pub grids: Vec<Grid>,
    /// One entry per mode, present or not.
    pub system: Vec<ModeRun>,
}

/// Builds the report, reading system results from `dir`.
pub fn build(dir: &Path) -> Report {
    Report {
        tally: evaluate(),
        grids: grid::grids(),
        system: system::compare(dir),
    }
}

/// The `report` subcommand: `report [--dir DIR]` reads system results from and writes the
/// report to DIR (default `target/matrix/`).
pub fn run(args: &[String]) -> ExitCode {
    let dir = match args {
        [] => crate::runner::workspace_root()
            .join("target")
            .join("matrix"),
        [flag, dir] if flag == "--dir" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: test-matrix report [--dir DIR]   (default target/matrix)");
            return ExitCode::from(2);
        }
    };
    let report = build(&dir);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(dir.join("report.md"), markdown::render(&report))?;
        std::fs::write(dir.join("report.html"), html::render(&report))
    });
    if let Err(e) = written {
        eprintln!("report: cannot write {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "report: {} and {}",
        dir.join("report.md").display(),
        dir.join("report.html").display()
    );
    println!("{}", system_summary(&report.system));
    ExitCode::SUCCESS
}

/// One line per mode: agreement, or that no results exist.
fn system_summary(runs: &[ModeRun]) -> String {
    if runs.iter().all(|r| !r.present) {
        return "system runs: none yet (no system-<mode>.jsonl beside the report): only the model's figures are real"
            .into();
    }
    runs.iter()
        .map(|r| match r.present {
            false => format!("system {}: no results", r.mode),
            true => format!(
                "system {}: {} of {} observed scenarios agree with the model, {} disagree, {} problem line(s)",
                r.mode,
                r.agree,
                r.observed,
                r.disagreements.len(),
                r.problems.len()
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
