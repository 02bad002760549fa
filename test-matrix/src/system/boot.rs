//! Booting the matrix guests in Bochs for each mode, with "n of N, ETA" on stderr while the
//! result lines arrive, and the result lines per scenario.

use crate::runner::emulator::{self, Emulator, Verdict, DEFAULT_BOCHS_CPU};
use crate::runner::{bare, image, run_dir};
use matrix_scenarios::{cases, is_triple_fault_case, L1HV_SETTINGS};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// No boot of the matrix may take longer than this (wall).
const LIMIT: Duration = Duration::from_secs(240);
/// The magic matrix-l2's selectable pair index follows (l2-guests' `matrix/l2_main.rs`).
const SELECT_MAGIC: &[u8] = b"mx-select-v1";
/// The settings a triple-fault pair runs under in its own guest run: l1-hv intercepting
/// everything and nothing.
const TRIPLE_FAULT_SETTINGS: [&str; 2] = ["all", "none"];

/// One guest run of the transparency boot.
#[derive(Clone, Debug)]
pub struct L2Run {
    /// l1-hv's `exceptions=` setting.
    pub setting: &'static str,
    /// The one triple-fault pair the run makes (its index in `cases()`), or `None`: all others.
    pub only: Option<usize>,
}

/// The transparency boot's guest runs, in boot order.
pub fn l2_runs() -> Vec<L2Run> {
    let mut runs: Vec<L2Run> = L1HV_SETTINGS
        .iter()
        .map(|&setting| L2Run {
            setting,
            only: None,
        })
        .collect();
    for (index, case) in cases()
        .enumerate()
        .filter(|&(_, c)| is_triple_fault_case(c))
    {
        let _ = case;
        runs.extend(TRIPLE_FAULT_SETTINGS.iter().map(|&setting| L2Run {
            setting,
            only: Some(index),
        }));
    }
    runs
}

/// A finished boot: the console and the wall time.
pub struct Booted {
    /// COM1 text.
    pub console: String,
    /// Wall time of the boot.
    pub wall: Duration,
}

/// Boots `iso`, expecting `expected` result lines (for the progress line).
fn boot(label: &str, iso: PathBuf, expected: usize) -> Result<Booted, String> {
    let serial = run_dir().join("bochs").join("serial.txt");
    let emulator = Emulator::Bochs {
        cpu: DEFAULT_BOCHS_CPU.into(),
    };
    let start = Instant::now();
    let handle = std::thread::spawn(move || emulator::boot(&emulator, &iso, LIMIT, false));
    let mut shown = false;
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let text = std::fs::read(&serial).unwrap_or_default();
        let done = String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| is_result(l))
            .count();
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= 1.0 && done > 0 {
            let eta = elapsed * expected.saturating_sub(done) as f64 / done as f64;
            eprint!("\rsystem {label}: scenario {done} of {expected}, ETA {eta:.0} s   ");
            let _ = std::io::stderr().flush();
            shown = true;
        }
    }
    if shown {
        eprintln!();
    }
    let boot = handle
        .join()
        .map_err(|_| "the boot thread panicked".to_string())??;
    // The console, kept for reading what a guest printed (target/matrix/system-MODE.console.txt).
    let log = crate::runner::workspace_root()
        .join("target")
        .join("matrix")
        .join(format!("system-{label}.console.txt"));
    let _ = std::fs::write(log, &boot.console);
    match boot.verdict {
        Verdict::Pass => Ok(Booted {
            console: boot.console,
            wall: boot.wall,
        }),
        other => Err(format!(
            "{label}: verdict {other:?}; console tail:\n{}",
            tail(&boot.console)
        )),
    }
}

fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A result line of either guest: `... mx I d ...` / `... mx I x ...`.
fn is_result(line: &str) -> bool {
    result_words(line).is_some()
}

/// The words after `mx ` of a result line: index, then the outcome.
pub fn result_words(line: &str) -> Option<(usize, Vec<&str>)> {
    let rest = &line[line.find("mx ")? + 3..];
    let mut words = rest.split_whitespace();
    let index = words.next()?.parse().ok()?;
    let words: Vec<&str> = words.collect();
    (!words.is_empty()).then_some((index, words))
}

/// matrix-ghv booted bare by GRUB.
pub fn bare(expected: usize) -> Result<Booted, String> {
    boot("bare", bare::iso("matrix-ghv")?, expected)
}

/// matrix-ghv as the one guest of l1-hv.
pub fn nested(expected: usize) -> Result<Booted, String> {
    let runs = [image::GuestRun::parse("matrix-ghv")?];
    boot("nested", image::iso(&runs)?, expected)
}

/// matrix-l2 under l1-hv, once per [`l2_runs`] entry; triple-fault runs use a copy with the
/// pair's index patched in.
pub fn transparent(expected: usize) -> Result<Booted, String> {
    let elves = image::build()?;
    let stage = run_dir().join("iso-matrix-l2");
    let _ = std::fs::remove_dir_all(&stage);
    let io = |e: std::io::Error| format!("staging the transparency ISO: {e}");
    let guests = stage.join("boot").join("guests");
    std::fs::create_dir_all(stage.join("boot").join("grub")).map_err(io)?;
    std::fs::create_dir_all(&guests).map_err(io)?;
    std::fs::copy(elves.join("l1-hv"), stage.join("boot").join("l1-hv")).map_err(io)?;
    let image = std::fs::read(elves.join("matrix-l2")).map_err(io)?;
    let mut modules = Vec::new();
    for run in l2_runs() {
        let name = match run.only {
            None => "matrix-l2".to_string(),
            Some(index) => format!("matrix-l2-tf{index}"),
        };
        let path = guests.join(&name);
        if !path.exists() {
            std::fs::write(&path, patch(&image, run.only)?).map_err(io)?;
        }
        let expect = if run.only.is_some() {
            " expect=triple-fault"
        } else {
            ""
        };
        modules.push(format!(
            "  module2 /boot/guests/{name} {name} exceptions={}{expect}\n",
            run.setting
        ));
    }
    let cfg = image::grub_cfg(&[]).replace("  boot\n", &format!("{}  boot\n", modules.concat()));
    std::fs::write(stage.join("boot").join("grub").join("grub.cfg"), cfg).map_err(io)?;
    let iso = run_dir().join("matrix-l2.iso");
    image::mkrescue(&stage, &iso)?;
    boot("transparent", iso, expected)
}

/// The image with its `SELECT.index` set to `only` (`u32::MAX`: all but triple-fault pairs).
fn patch(image: &[u8], only: Option<usize>) -> Result<Vec<u8>, String> {
    let mut copy = image.to_vec();
    let at = image
        .windows(SELECT_MAGIC.len())
        .position(|w| w == SELECT_MAGIC)
        .ok_or("matrix-l2 has no select magic")?
        + SELECT_MAGIC.len();
    let index = only.map_or(u32::MAX, |i| i as u32);
    copy[at..at + 4].copy_from_slice(&index.to_le_bytes());
    Ok(copy)
}
