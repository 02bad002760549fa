//! The docs cannot drift from the code: every command they show is run or checked here, and every
//! relative link points at a file that exists.
//!
//! * Commands: every line in a fenced code block of `README.md` or `docs/**/*.md` that starts
//!   with `$ ` (the lines below it, up to a blank line, the next `$ ` or the end of the block,
//!   are its output as shown):
//!   - `test-matrix explain|decide|matrix …` (cheap) run through the built binary; where output
//!     is shown it must equal stdout, or start it when the last shown line is `...`.
//!     `echo '…' | test-matrix decide` feeds the quoted text to stdin.
//!   - `test-matrix demo …` (a boot) must parse (subcommand and options in the usage texts);
//!     the lines shown below it are a console excerpt: `demo_excerpts_appear_in_the_console`
//!     boots each distinct demo once and finds every excerpt line in its console.
//!   - other `test-matrix` subcommands (build, report, bench, bench-decide) must parse.
//!   - `cargo test …` must name packages and test files that exist (.ci/run runs the suite).
//!   - anything else fails: a command no test runs is not shown with `$ `.
//! * `cargo run … -p test-matrix -- SUB …` anywhere in those files (prose, inline code, indented
//!   blocks) must parse too.
//! * Links: every `[text](target)` that is not a URL must name an existing file or directory
//!   (relative to the document), and every inline-code path that starts with a crate or docs
//!   directory (`l1-hv/src/nested/entry.rs`, `nvmx/src/route/mod.rs::route`) must exist.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Top-level directories whose paths inline code may name.
const PATH_ROOTS: [&str; 9] = [
    "l1-hv/",
    "nvmx/",
    "shadow-vmcs/",
    "test-matrix/",
    "l2-guests/",
    "docs/",
    "fuzz/",
    "tools/",
    ".ci/",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// README.md and every Markdown file under docs/, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("docs/ readable")
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut paths = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut paths);
    paths
        .into_iter()
        .map(|p| (p.clone(), std::fs::read_to_string(&p).expect("readable")))
        .collect()
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One `$ ` line of a fenced block and the output lines shown under it.
struct Example {
    doc: String,
    line: usize,
    command: String,
    output: Vec<String>,
}

fn examples() -> Vec<Example> {
    let mut all = Vec::new();
    for (path, text) in documents() {
        let lines: Vec<&str> = text.lines().collect();
        // A fence may be indented (inside a list item): its lines lose that indentation.
        let mut fence_indent: Option<usize> = None;
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if line.trim_start().starts_with("```") {
                fence_indent = match fence_indent {
                    None => Some(line.len() - line.trim_start().len()),
                    Some(_) => None,
                };
                i += 1;
                continue;
            }
            if let Some(indent) = fence_indent {
                let strip = |l: &str| -> String {
                    if l.len() >= indent && l[..indent].trim().is_empty() {
                        l[indent..].to_string()
                    } else {
                        l.to_string()
                    }
                };
                if let Some(command) = strip(line).strip_prefix("$ ") {
                    let command = command.to_string();
                    let mut output = Vec::new();
                    let start = i + 1;
                    i += 1;
                    while i < lines.len()
                        && !lines[i].trim().is_empty()
                        && !strip(lines[i]).starts_with("$ ")
                        && !lines[i].trim_start().starts_with("```")
                    {
                        output.push(strip(lines[i]));
                        i += 1;
                    }
                    all.push(Example {
                        doc: shown(&path),
                        line: start,
                        command,
                        output,
                    });
                    continue;
                }
            }
            i += 1;
        }
    }
    all
}

/// Splits a command line like a POSIX shell would for the simple forms the docs use: words,
/// '…' and "…" quoting, and `|` between two commands.
fn shell_words(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.push(q);
                }
            }
            '|' if word.is_none() => commands.push(Vec::new()),
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    commands.last_mut().unwrap().push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        commands.last_mut().unwrap().push(w);
    }
    commands
}

/// `test-matrix SUB ARGS` from `test-matrix …` or `cargo run [--release] -p test-matrix -- …`.
fn test_matrix_args(words: &[String]) -> Option<Vec<String>> {
    match words.first().map(String::as_str) {
        Some("test-matrix") => Some(words[1..].to_vec()),
        Some("cargo") if words.get(1).is_some_and(|w| w == "run") => {
            let p = words.iter().position(|w| w == "-p")?;
            if words.get(p + 1).map(String::as_str) != Some("test-matrix") {
                return None;
            }
            let dashes = words.iter().position(|w| w == "--")?;
            Some(words[dashes + 1..].to_vec())
        }
        _ => None,
    }
}

fn run_binary(args: &[String], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn test-matrix");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// The usage texts: the main one (no arguments) and, per subcommand that has its own, the one an
/// unknown option prints (each of these rejects it before doing any work).
struct Usage {
    main: String,
    own: BTreeMap<String, String>,
}

impl Usage {
    fn get() -> Self {
        let main = String::from_utf8_lossy(&run_binary(&[], None).stderr).into_owned();
        assert!(
            main.contains("subcommands:"),
            "test-matrix without arguments prints its usage: {main}"
        );
        let own = ["demo", "bench", "matrix", "report", "explain"]
            .iter()
            .map(|sub| {
                let out = run_binary(
                    &[sub.to_string(), "--docs-test-unknown-option".into()],
                    None,
                );
                assert!(!out.status.success(), "{sub} must reject an unknown option");
                (
                    sub.to_string(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            })
            .collect();
        Usage { main, own }
    }

    /// Whether `args` (after `test-matrix`) names a subcommand of the usage text and only options
    /// that subcommand's usage texts mention.
    fn check(&self, args: &[String]) -> Result<(), String> {
        let Some(sub) = args.first() else {
            return Err("no subcommand".into());
        };
        let listed = self
            .main
            .lines()
            .any(|l| l.split_whitespace().next() == Some(sub.as_str()));
        if !listed {
            return Err(format!("subcommand {sub:?} is not in test-matrix's usage"));
        }
        let own = self.own.get(sub).map(String::as_str).unwrap_or("");
        for arg in &args[1..] {
            let option = arg.trim_matches(|c| c == '[' || c == ']');
            if option.starts_with("--") && !(self.main.contains(option) || own.contains(option)) {
                return Err(format!("option {option:?} of {sub} is in no usage text"));
            }
        }
        Ok(())
    }
}

#[test]
fn every_shown_command_runs_or_parses() {
    let usage = Usage::get();
    let mut failures = Vec::new();
    let mut ran = 0;
    let examples = examples();
    assert!(
        examples.len() >= 20,
        "only {} `$ ` examples found",
        examples.len()
    );
    for ex in &examples {
        let place = format!("{}:{}: $ {}", ex.doc, ex.line, ex.command);
        let pipeline = shell_words(&ex.command);
        let (stdin, words) = match pipeline.as_slice() {
            [words] => (None, words.clone()),
            [echo, words] if echo.first().is_some_and(|w| w == "echo") && echo.len() == 2 => {
                (Some(format!("{}\n", echo[1])), words.clone())
            }
            _ => {
                failures.push(format!(
                    "{place}: only `CMD` and `echo '…' | CMD` are understood"
                ));
                continue;
            }
        };
        if words.first().is_some_and(|w| w == "cargo") && words.get(1).is_some_and(|w| w == "test")
        {
            if let Err(e) = check_cargo_test(&words) {
                failures.push(format!("{place}: {e}"));
            }
            continue;
        }
        let Some(args) = test_matrix_args(&words) else {
            failures.push(format!(
                "{place}: not a test-matrix or cargo test command: no test runs it"
            ));
            continue;
        };
        if let Err(e) = usage.check(&args) {
            failures.push(format!("{place}: {e}"));
            continue;
        }
        let cheap = matches!(args[0].as_str(), "explain" | "decide" | "matrix");
        if stdin.is_some() && args[0] != "decide" {
            failures.push(format!("{place}: stdin only for decide"));
            continue;
        }
        if !cheap {
            continue; // demo excerpts: demo_excerpts_appear_in_the_console
        }
        let out = run_binary(&args, stdin.as_deref());
        ran += 1;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if ex.output.is_empty() {
            if !out.status.success() {
                failures.push(format!("{place}: exit status {:?}", out.status.code()));
            }
            continue;
        }
        let got: Vec<&str> = stdout.lines().collect();
        let (want, prefix) = match ex.output.last().map(String::as_str) {
            Some("..." | "…") => (&ex.output[..ex.output.len() - 1], true),
            _ => (&ex.output[..], false),
        };
        let matches = if prefix {
            got.len() >= want.len() && got[..want.len()] == *want
        } else {
            got == *want
        };
        if !matches {
            failures.push(format!(
                "{place}: output differs\n--- shown\n{}\n--- actual\n{}",
                want.join("\n"),
                stdout.trim_end()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} doc command(s) wrong:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran >= 15, "only {ran} cheap commands ran");
}

fn check_cargo_test(words: &[String]) -> Result<(), String> {
    let members = [
        "nvmx",
        "shadow-vmcs",
        "test-matrix",
        "l1-hv",
        "l2-guests",
        "l2-abi",
    ];
    let mut package = None;
    let mut i = 2;
    while i < words.len() {
        match words[i].as_str() {
            "-p" | "--package" => {
                let p = words.get(i + 1).ok_or("-p without a package")?;
                if !members.contains(&p.as_str()) {
                    return Err(format!("no workspace package {p:?}"));
                }
                package = Some(if p == "l2-abi" {
                    "l2-guests/abi".to_string()
                } else {
                    p.clone()
                });
                i += 2;
            }
            "--test" => {
                let t = words.get(i + 1).ok_or("--test without a name")?;
                let dir = package.as_deref().ok_or("--test needs -p before it")?;
                if !root()
                    .join(dir)
                    .join("tests")
                    .join(format!("{t}.rs"))
                    .is_file()
                {
                    return Err(format!("no test file {dir}/tests/{t}.rs"));
                }
                i += 2;
            }
            "--release" | "--bin" | "--lib" | "--" => i += 1,
            other if other.starts_with("--") => {
                return Err(format!("unexpected cargo test option {other}"))
            }
            _ => i += 1, // a test-name filter
        }
    }
    Ok(())
}

/// `cargo run … -p test-matrix -- SUB …` mentioned anywhere (prose, inline code, indented
/// blocks): the part up to a closing backtick, a `#` comment or the end of the line.
#[test]
fn every_cargo_run_of_test_matrix_parses() {
    let usage = Usage::get();
    let mut failures = Vec::new();
    let mut seen = 0;
    for (path, text) in documents() {
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("cargo run") {
                let tail = &rest[at..];
                let end = tail.find(['`', '#']).unwrap_or(tail.len());
                let command = &tail[..end];
                rest = &tail[end.max(1)..];
                if !command.contains("-p test-matrix --") {
                    continue;
                }
                seen += 1;
                let words = shell_words(command).remove(0);
                let args = test_matrix_args(&words).unwrap_or_default();
                if args.is_empty() || matches!(args[0].as_str(), "…" | "...") {
                    continue; // "`test-matrix` stands for `cargo run … --`"
                }
                // Placeholders such as <field> <value> or [N] are fine; options must exist.
                if let Err(e) = usage.check(&args) {
                    failures.push(format!("{}:{}: {command}: {e}", shown(&path), n + 1));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seen >= 5,
        "only {seen} `cargo run -p test-matrix` mentions found"
    );
}

/// Markdown links `[text](target)` in `text`, without URLs and mail addresses.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let Some(end) = tail.find(')') else { break };
            let target = tail[..end].trim();
            rest = &tail[end..];
            if target.contains("://")
                || target.starts_with("mailto:")
                || target.starts_with('#')
                || target.is_empty()
            {
                continue;
            }
            out.push((n + 1, target.split('#').next().unwrap().to_string()));
        }
    }
    out
}

/// Inline-code spans that name a path under one of [`PATH_ROOTS`] (an item after `::` dropped).
fn code_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 0 || span.contains(char::is_whitespace) {
                continue;
            }
            let path = span.split("::").next().unwrap();
            // A segment in capitals (`fuzz/artifacts/TARGET/`) is a placeholder.
            let placeholder = path.split('/').any(|seg| {
                seg.len() >= 2
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            });
            if PATH_ROOTS.iter().any(|r| path.starts_with(r))
                && !path.contains(['*', '<', '{'])
                && !placeholder
            {
                out.push((n + 1, path.trim_end_matches(['.', ',', ':']).to_string()));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_and_code_path_exists() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        let dir = path.parent().unwrap();
        for (line, target) in links(&text) {
            checked += 1;
            if !dir.join(&target).exists() {
                failures.push(format!("{}:{line}: link to missing {target}", shown(&path)));
            }
        }
        for (line, target) in code_paths(&text) {
            checked += 1;
            if !root().join(&target).exists() {
                failures.push(format!(
                    "{}:{line}: code path {target} does not exist",
                    shown(&path)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 30, "only {checked} links and paths found");
}

/// Boots each distinct `$ test-matrix demo …` of the docs once (Bochs, like tests/boot.rs) and
/// finds every excerpt line shown under it in that run's console (`...` lines stand for omitted
/// ones). The walkthrough's traces are copied from real runs; this keeps them real.
#[test]
fn demo_excerpts_appear_in_the_console() {
    let mut demos: BTreeMap<Vec<String>, Vec<Example>> = BTreeMap::new();
    for ex in examples() {
        let words = shell_words(&ex.command).remove(0);
        if let Some(args) = test_matrix_args(&words) {
            if args.first().is_some_and(|a| a == "demo") && !ex.output.is_empty() {
                demos.entry(args).or_default().push(ex);
            }
        }
    }
    assert!(
        !demos.is_empty(),
        "the walkthrough shows demo console excerpts"
    );
    let mut failures = Vec::new();
    for (args, shown_in) in &demos {
        // `args` starts with `demo` (filtered above); the shared runner adds it back.
        let words: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let run = common::demo(&words);
        let console = run.console;
        for ex in shown_in {
            for line in ex
                .output
                .iter()
                .filter(|l| !matches!(l.trim(), "..." | "…"))
            {
                if !console.lines().any(|c| c == line) {
                    failures.push(format!(
                        "{}:{}: `test-matrix {}` printed no line\n    {line}",
                        ex.doc,
                        ex.line,
                        args.join(" ")
                    ));
                }
            }
        }
        if !failures.is_empty() {
            failures.push(format!(
                "console of `test-matrix {}` (exit status {:?}):\n{console}",
                args.join(" "),
                run.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
