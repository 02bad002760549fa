use super::*;
use crate::matrix::model::cases;
use crate::matrix::scenario_json::decide_input;
use std::io::BufReader;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("test-matrix-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The model's `decide` answers for the first `n` cases, as system lines of `mode`.
fn model_lines(n: usize, mode: &str) -> Vec<serde_json::Value> {
    let mut input = Vec::new();
    for case in cases().take(n) {
        serde_json::to_writer(&mut input, &decide_input(&case)).unwrap();
        input.push(b'\n');
    }
    let mut output = Vec::new();
    crate::decide::process(&mut BufReader::new(&input[..]), &mut output).unwrap();
    output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_slice(l).unwrap();
            v["mode"] = mode.into();
            v
        })
        .collect()
}

#[test]
fn no_system_results_is_said_plainly() {
    let dir = scratch("none");
    let runs = system::compare(&dir);
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| !r.present));
    assert!(system_summary(&runs).starts_with("system runs: none yet"));
}

#[test]
fn system_results_are_compared_and_disagreements_named() {
    let dir = scratch("some");
    let mut lines = model_lines(40, "nested");
    // One wrong outcome, one unknown id, one line of another mode, one non-JSON line; nulls and
    // member order do not matter.
    let wrong = lines[7]["id"].as_str().unwrap().to_string();
    let model_answer = lines[7].clone();
    lines[7]["outcome"] = "triple_fault".into();
    lines[8]["id"] = "no/such/scenario".into();
    lines[9]["mode"] = "bare".into();
    lines[10]["exit_instruction_length"] = serde_json::Value::Null;
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text += "not json\n";
    std::fs::write(dir.join("system-nested.jsonl"), text).unwrap();
    let runs = system::compare(&dir);
    let nested = runs.iter().find(|r| r.mode == "nested").unwrap();
    assert!(nested.present);
    assert_eq!(nested.observed, 38);
    assert_eq!(nested.agree, 37);
    assert_eq!(nested.disagreements.len(), 1);
    assert_eq!(nested.disagreements[0].id, wrong);
    assert!(nested.disagreements[0]
        .observed
        .contains("\"outcome\":\"triple_fault\""));
    let outcome = format!("\"outcome\":{}", model_answer["outcome"]);
    assert!(nested.disagreements[0].model.contains(&outcome));
    assert_eq!(nested.problems.len(), 3, "{:?}", nested.problems);
    assert!(nested
        .problems
        .iter()
        .any(|p| p.contains("no/such/scenario: not a matrix scenario")));
    assert!(runs
        .iter()
        .filter(|r| r.mode != "nested")
        .all(|r| !r.present));

    let report = Report {
        tally: crate::matrix::Tally::default(),
        grids: Vec::new(),
        system: runs,
    };
    let md = markdown::render(&report);
    assert!(
        md.contains("| nested | 38 | 37 | 1 | 97.37 % | 3 |"),
        "{md}"
    );
    assert!(md.contains(&format!("* `{wrong}`")));
    assert!(md.contains("| bare | no results"));
    let page = html::render(&report);
    assert!(page.contains(&html::escape(&wrong)));
}

#[test]
fn grids_cover_the_settings_and_colour_known_cells() {
    let grids = grid::grids();
    assert_eq!(grids.len(), grid::SETTINGS.len());
    let none = &grids[0];
    let all = &grids[1];
    // Row 0 is "nothing · hardware exception": #PF delivered when nothing is intercepted,
    // exits when everything is.
    assert_eq!(
        none.rows[0].cells[14].as_ref().unwrap().class,
        crate::matrix::OutcomeClass::Deliver
    );
    assert_eq!(
        all.rows[0].cells[14].as_ref().unwrap().class,
        crate::matrix::OutcomeClass::Exit(0)
    );
    // No hardware exception 2 (the NMI has its own row).
    assert!(none.rows[0].cells[2].is_none());
    let gp_row = none
        .rows
        .iter()
        .find(|r| r.label.starts_with("contributory #GP"))
        .unwrap();
    assert_eq!(
        gp_row.cells[13].as_ref().unwrap().class,
        crate::matrix::OutcomeClass::DeliverDoubleFault
    );
    let df_row = none
        .rows
        .iter()
        .find(|r| r.label.starts_with("#DF"))
        .unwrap();
    assert_eq!(
        df_row.cells[14].as_ref().unwrap().class,
        crate::matrix::OutcomeClass::Exit(2)
    );
    assert!(df_row.cells[8].is_none());
}

#[test]
fn html_is_self_contained_and_escaped() {
    let report = Report {
        tally: crate::matrix::Tally::default(),
        grids: grid::grids(),
        system: system::compare(&scratch("html")),
    };
    let page = html::render(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<style>"));
    for external in ["<link", "<script", "src=", "http://", "https://"] {
        assert!(!page.contains(external), "{external}");
    }
    assert!(page.contains("No system results"));
    assert_eq!(
        html::escape("<a \"b\" & c>"),
        "&lt;a &quot;b&quot; &amp; c&gt;"
    );
    let md = markdown::render(&report);
    assert!(md.contains("### nothing intercepted"));
    assert!(md.contains("No system results"));
}
