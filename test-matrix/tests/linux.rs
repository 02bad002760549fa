//! Unmodified Debian Linux (the stock cloud kernel) with our initramfs and workload, booted
//! three ways in parallel, each in its own run directory:
//! - bare on Bochs (the reference: what the emulated hardware does);
//! - under l1-hv with `forward=none` (the hardware delivers the guest's events), then
//!   `pf-guest exceptions=pf` as a second guest;
//! - under l1-hv with `forward=all` (l1-hv intercepts and re-injects every exception and
//!   interrupt) and `l1hv.end=panic`: the guest panics and resets, l1-hv contains it, and the
//!   next guest (`pf-guest exceptions=pf`) still runs and passes.
//!
//! The workload's output must be identical in all three. The boots happen once, shared by the
//! tests below, so the bare reference passes or fails on its own.

#[path = "../src/runner/linux/console.rs"]
mod console;

use console::{guest_lines, guest_report, workload_output};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Wall-clock limit of each boot (they run in parallel; Linux alone takes 40–80 s of a core).
const BOOT_LIMIT_S: &str = "300";

/// What the workload's `signals` must print, wherever it runs (the #PF addresses are fixed).
const SIGNAL_LINES: &[&str] = &[
    "signals: read of an unmapped page: SIGSEGV SEGV_MAPERR si_addr=0x10000000 rip=instruction:yes: ok",
    "signals: write to a read-only page: SIGSEGV SEGV_ACCERR si_addr=0x10001000 rip=instruction:yes: ok",
    "signals: integer divide by zero: SIGFPE FPE_INTDIV si_addr=instruction:yes rip=instruction:yes: ok",
    "signals: int3: SIGTRAP SI_KERNEL rip=after-instruction:yes: ok",
    "signals: ud2: SIGILL ILL_ILLOPN si_addr=instruction:yes rip=instruction:yes: ok",
    "signals: 5 of 5 faults handled in user mode",
];

/// One finished `test-matrix run`.
struct Run {
    status: Option<i32>,
    console: String,
}

/// The three boots.
struct Boots {
    bare: Run,
    none: Run,
    all: Run,
}

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_test-matrix"))
}

fn run_dir(label: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/run")
        .join(format!("linux-{label}"))
}

/// The kernel, initrd and command line `test-matrix linux-assets` made.
fn assets() -> (String, String, String) {
    let out = runner()
        .arg("linux-assets")
        .output()
        .expect("runner starts");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "linux-assets failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("linux-assets printed no {key}"))
            .to_string()
    };
    (value("kernel"), value("initrd"), value("append"))
}

fn boots() -> &'static Boots {
    static BOOTS: OnceLock<Boots> = OnceLock::new();
    BOOTS.get_or_init(|| {
        let (kernel, initrd, append) = assets();
        // Build l1-hv and the guests once, before the boots that would each build them.
        let built = runner().arg("build").output().expect("runner starts");
        assert!(
            built.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let panic_append = format!("{append} l1hv.end=panic");
        let boot = |label: &'static str, append: &str, extra: &[&str]| {
            let mut command = runner();
            command.args([
                "run", "--kernel", &kernel, "--initrd", &initrd, "--append", append,
            ]);
            command
                .args(["--timeout", BOOT_LIMIT_S, "--run-dir"])
                .arg(run_dir(label))
                .args(extra);
            std::thread::spawn(move || {
                let out = command.output().expect("runner starts");
                let console = String::from_utf8_lossy(&out.stdout).into_owned();
                // Kept for reading after a failure.
                let _ = std::fs::write(run_dir(label).join("console.txt"), &console);
                eprintln!(
                    "--- {label}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                Run {
                    status: out.status.code(),
                    console,
                }
            })
        };
        let bare = boot("bare", &append, &["--bare"]);
        let none = boot(
            "none",
            &append,
            &["--forward", "none", "--guest", "pf-guest exceptions=pf"],
        );
        let all = boot(
            "all",
            &panic_append,
            &["--forward", "all", "--guest", "pf-guest exceptions=pf"],
        );
        Boots {
            bare: bare.join().expect("bare boot thread"),
            none: none.join().expect("forward=none boot thread"),
            all: all.join().expect("forward=all boot thread"),
        }
    })
}

/// l1-hv's verdict line's words after `verdict`, e.g. `PASS (3 runs)`.
fn verdict(console: &str) -> Option<&str> {
    console
        .lines()
        .find_map(|l| l.strip_prefix("l1-hv: verdict "))
}

/// The workload's output in `run`: the lines between the markers; under l1-hv the guest's
/// lines without l1-hv's `guest linux: ` prefix.
fn workload(run: &Run, under_l1hv: bool) -> Vec<String> {
    let lines = if under_l1hv {
        guest_lines(&run.console, "linux")
    } else {
        run.console.lines().collect()
    };
    let output = workload_output(lines)
        .unwrap_or_else(|| panic!("no complete workload output in:\n{}", run.console));
    output.into_iter().map(str::to_string).collect()
}

#[test]
fn bare_linux_runs_the_workload_and_powers_off() {
    let bare = &boots().bare;
    let output = workload(bare, false);
    for line in SIGNAL_LINES {
        assert!(
            output.iter().any(|l| l == line),
            "missing {line:?} in {output:#?}"
        );
    }
    assert!(
        output.contains(&"forkexec: 200 of 200 children exec'd /bin/true and exited 0".to_string())
    );
    assert!(output.contains(&"memory: at least 16384 page faults taken: yes".to_string()));
    // Bochs ends when Linux powers off (ACPI S5); the runner passes only an end before its limit.
    assert!(
        bare.console.contains("reboot: Power down"),
        "no power-off:\n{}",
        bare.console
    );
    assert_eq!(bare.status, Some(0));
}

#[test]
fn under_l1hv_forward_none_the_workload_matches_bare_and_the_next_guest_runs() {
    let boots = boots();
    assert_eq!(workload(&boots.none, true), workload(&boots.bare, false));
    let c = &boots.none.console;
    assert_eq!(
        guest_report(c, 1, "linux").end.as_deref(),
        Some("powered off: PASS"),
        "console:\n{c}"
    );
    assert!(guest_report(c, 2, "pf-guest").passed(), "console:\n{c}");
    assert_eq!(verdict(c), Some("PASS (2 runs)"));
    assert_eq!(boots.none.status, Some(0));
}

#[test]
fn under_l1hv_forward_all_events_are_reinjected_and_a_panic_is_contained() {
    let boots = boots();
    assert_eq!(workload(&boots.all, true), workload(&boots.bare, false));
    let c = &boots.all.console;
    let linux = guest_report(c, 1, "linux");
    // The workload alone takes 16,384 page faults; the timer ticks all the while.
    let pf = linux
        .exceptions
        .iter()
        .find(|(name, _)| name == "#PF")
        .map_or(0, |(_, n)| *n);
    assert!(pf >= 10_000, "forwarded #PF: {linux:?}");
    assert!(
        linux.interrupts_total.is_some_and(|n| n >= 1_000),
        "forwarded interrupts: {linux:?}"
    );
    // The panic (sysrq crash, panic=-1) resets the guest: l1-hv says so in one line.
    assert_eq!(linux.end.as_deref(), Some("reset: PASS"), "console:\n{c}");
    assert!(guest_lines(c, "linux")
        .iter()
        .any(|l| l.contains("Kernel panic - not syncing")));
    assert!(
        guest_report(c, 2, "pf-guest").passed(),
        "the next guest must still run: {c}"
    );
    assert_eq!(verdict(c), Some("PASS (2 runs)"));
    assert_eq!(boots.all.status, Some(0));
}
