//! Runs `test-matrix matrix` and `test-matrix report` as the documentation says to.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .args(args)
        .output()
        .expect("spawn test-matrix")
}

#[test]
fn matrix_prints_counts_and_every_invariant_holds() {
    let out = run(&["matrix"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("matrix: 425920 scenarios routed and checked in "),
        "{text}"
    );
    for outcome in [
        "deliver ",
        "deliver #DF",
        "exit 0 (exception or NMI)",
        "exit 1 (external interrupt)",
        "exit 2 (triple fault)",
    ] {
        assert!(text.contains(outcome), "missing {outcome}: {text}");
    }
    let counted: u64 = text
        .lines()
        .skip_while(|l| *l != "outcomes:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, 425_920, "per-outcome counts add up to the total");
    let invariants: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "invariants:")
        .skip(1)
        .collect();
    assert_eq!(invariants.len(), 9, "{text}");
    assert!(invariants.iter().all(|l| l.ends_with(" holds")), "{text}");
}

#[test]
fn matrix_scenarios_are_decide_input() {
    let out = run(&["matrix", "--scenarios"]);
    assert!(out.status.success());
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 425_920);
    // A deterministic sample through `decide`: every line is accepted and answered in order.
    let sample: Vec<&[u8]> = lines.iter().step_by(997).copied().collect();
    let mut decide = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("decide")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Input is written by a thread of its own while the answers are read: `decide` answers as it
    // reads, and with both pipes full a writer that read nothing until the end would wait on it
    // forever.
    let mut stdin = decide.stdin.take().unwrap();
    let input: Vec<u8> = sample.iter().flat_map(|l| [*l, b"\n"].concat()).collect();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let answered = decide.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(answered.status.success());
    let answers: Vec<serde_json::Value> = String::from_utf8(answered.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), sample.len());
    for (line, answer) in sample.iter().zip(&answers) {
        let input: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(answer["id"], input["id"]);
        assert_ne!(answer["outcome"], "error", "{answer}");
    }
}

#[test]
fn report_writes_markdown_and_html_and_compares_system_runs() {
    let dir = std::env::temp_dir().join(format!("matrix-cli-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();

    let out = run(&["report", "--dir", dir_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("system runs: none yet"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("425920 scenarios"));
    assert!(md.contains("No system results"));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<style>") && !html.contains("<script") && !html.contains("<link"));

    // One bare-mode result that agrees with the model and one that does not.
    let agree = r#"{"id":"none/hw14/ec0x2/pfec-0-0/own0/rest0/prot/direct","mode":"bare","outcome":"deliver","type":"hardware_exception","vector":14,"error_code":2,"cr2":3735924736}"#;
    let disagree = r#"{"id":"none/hw14/ec0x2/pfec-0-0/own1/rest0/prot/direct","mode":"bare","outcome":"deliver","type":"hardware_exception","vector":14,"error_code":2,"cr2":3735924736}"#;
    std::fs::write(
        dir.join("system-bare.jsonl"),
        format!("{agree}\n{disagree}\n"),
    )
    .unwrap();
    let out = run(&["report", "--dir", dir_arg]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("system bare: 1 of 2 observed scenarios agree with the model, 1 disagree"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("| bare | 2 | 1 | 1 | 50.00 % | 0 |"), "{md}");
    assert!(md.contains("* `none/hw14/ec0x2/pfec-0-0/own1/rest0/prot/direct`"));
    assert!(
        md.contains("\"outcome\":\"vmexit\""),
        "the model's outcome is shown"
    );
    assert!(md.contains("| nested | no results"));

    assert_eq!(run(&["report", "--bogus"]).status.code(), Some(2));
}
