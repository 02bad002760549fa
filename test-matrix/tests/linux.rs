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

mod linux_boot;

use console::{guest_lines, guest_report, workload_output};
use linux_boot::Run;
use std::sync::OnceLock;

/// What the workload's `signals` must print, wherever it runs (the #PF addresses are fixed).
const SIGNAL_LINES: &[&str] = &[
    "signals: read of an unmapped page: SIGSEGV SEGV_MAPERR si_addr=0x10000000 rip=instruction:yes: ok",
    "signals: write to a read-only page: SIGSEGV SEGV_ACCERR si_addr=0x10001000 rip=instruction:yes: ok",
    "signals: integer divide by zero: SIGFPE FPE_INTDIV si_addr=instruction:yes rip=instruction:yes: ok",
    "signals: int3: SIGTRAP SI_KERNEL rip=after-instruction:yes: ok",
    "signals: ud2: SIGILL ILL_ILLOPN si_addr=instruction:yes rip=instruction:yes: ok",
    "signals: 5 of 5 faults handled in user mode",
];

/// The three boots.
struct Boots {
    bare: Run,
    none: Run,
    all: Run,
}

fn boots() -> &'static Boots {
    static BOOTS: OnceLock<Boots> = OnceLock::new();
    BOOTS.get_or_init(|| {
        let (kernel, initrd, append) = linux_boot::assets("initrd");
        let files = (kernel.as_str(), initrd.as_str());
        let panic_append = format!("{append} l1hv.end=panic");
        let pf_guest = ["--guest", "pf-guest exceptions=pf"];
        let bare = linux_boot::boot("linux-bare", files, &append, &["--bare"]);
        let none = linux_boot::boot(
            "linux-none",
            files,
            &append,
            &["--forward", "none", pf_guest[0], pf_guest[1]],
        );
        let all = linux_boot::boot(
            "linux-all",
            files,
            &panic_append,
            &["--forward", "all", pf_guest[0], pf_guest[1]],
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
