//! `bench-linux`'s figures, read from the three consoles, and their table and JSON.
//!
//! On Bochs the TSC counts executed instructions at every level (VM exit and entry add none), and
//! l1-hv sets no TSC offset, so every TSC below is on one scale: instructions since reset.
//!
//! - Kernel entry: the same kernel instruction in all three boots, the decompressor's first
//!   RDMSR of IA32_MISC_ENABLE (0x1a0; `verify_cpu`, a few hundred instructions after
//!   `startup_32`). Bochs' CPU model lacks that MSR and logs the access in `bochs.log` with its
//!   tick count, which is the TSC: bare Bochs has no other witness of the kernel's entry (GRUB's
//!   `linux` path hands over ~41 M instructions later than its `multiboot2` path hands over to
//!   l1-hv, so l1-hv's own start is no stand-in). Under l1-hv this read comes a fixed 165,700
//!   instructions after l1-hv's `entered at tsc=` (l1-hv prints that line before its VM entry);
//!   both are in the JSON.
//! - Init, workload: the guest's `tsc: init N`, `tsc: workload-begin N`, `tsc: workload-end N`
//!   lines (`linux-workload tsc`, run by the initramfs's `/init`).

use crate::runner::linux::console::{
    guest_lines, guest_report, workload_output, Counts, GuestReport,
};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// The l1-hv run name of the kernel guest (`run`'s default `--name`).
const GUEST: &str = "linux";

/// One of the three boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bare,
    ForwardNone,
    ForwardAll,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bare, Mode::ForwardNone, Mode::ForwardAll];

    /// The name of its run directory and console file.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::ForwardNone => "none",
            Mode::ForwardAll => "all",
        }
    }

    /// Its `run` flags.
    pub fn run_flags(self) -> &'static [&'static str] {
        match self {
            Mode::Bare => &["--bare"],
            Mode::ForwardNone => &["--forward", "none"],
            Mode::ForwardAll => &["--forward", "all"],
        }
    }

    /// Its name in the table and the JSON.
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::ForwardNone => "forward=none",
            Mode::ForwardAll => "forward=all",
        }
    }

    /// The target for both ratios to bare.
    fn target(self) -> Option<f64> {
        match self {
            Mode::Bare => None,
            Mode::ForwardNone => Some(1.02),
            Mode::ForwardAll => Some(1.10),
        }
    }
}

/// What one boot left: its console and its `bochs.log`.
pub struct Output {
    pub console: String,
    pub bochs_log: String,
}

/// Bochs' log line for the kernel-entry witness (see the module comment).
const ENTRY_WITNESS: &str = "RDMSR: Unknown register 0x1a0";

/// One boot's figures.
#[derive(Debug)]
struct Boot {
    mode: Mode,
    /// TSC at kernel entry: the witness in `bochs.log` (see the module comment).
    entry: u64,
    /// Under l1-hv, its `entered at tsc=`.
    l1hv_entry: Option<u64>,
    /// TSC when `/init` started.
    init: u64,
    /// TSC just before `workload: begin` and just after `workload: end`.
    workload_begin: u64,
    workload_end: u64,
    /// l1-hv's summary of the guest run (none bare).
    report: Option<GuestReport>,
}

impl Boot {
    fn entry_to_init(&self) -> u64 {
        self.init - self.entry
    }

    fn workload(&self) -> u64 {
        self.workload_end - self.workload_begin
    }
}

/// The figures of the three boots, bare first.
pub struct Figures {
    boots: [Boot; 3],
}

impl Figures {
    /// Reads the figures of the boots in [`Mode::ALL`]'s order; an error names what is missing.
    pub fn read(outputs: &[Output; 3]) -> Result<Self, String> {
        let [bare, none, all] = outputs;
        let bare = boot(
            Mode::Bare,
            bare.console.lines().collect(),
            &bare.bochs_log,
            None,
        )?;
        let under_l1hv = |mode: Mode, output: &Output| {
            let report = guest_report(&output.console, 1, GUEST);
            if !report.passed() {
                return Err(format!(
                    "{}: the guest run did not pass ({:?})",
                    mode.name(),
                    report.end
                ));
            }
            let lines = guest_lines(&output.console, GUEST);
            let entered = entered_tsc(&output.console)
                .ok_or_else(|| format!("{}: no `entered at tsc=`", mode.name()))?;
            boot(mode, lines, &output.bochs_log, Some((entered, report)))
        };
        Ok(Self {
            boots: [
                bare,
                under_l1hv(Mode::ForwardNone, none)?,
                under_l1hv(Mode::ForwardAll, all)?,
            ],
        })
    }

    /// The table: one row per mode, then the exits and forwarded events behind the l1-hv rows.
    pub fn table(&self) -> String {
        let [bare, ..] = &self.boots;
        let mut out = String::from(
            "Linux (Debian cloud kernel + test initramfs) on Bochs 2.7: instructions (TSC ticks)\n",
        );
        let _ = writeln!(
            out,
            "{:<13} {:>14} {:>7} {:>14} {:>7}  target (both ratios)",
            "mode", "entry->init", "x bare", "workload", "x bare"
        );
        for boot in &self.boots {
            let init_ratio = ratio(boot.entry_to_init(), bare.entry_to_init());
            let workload_ratio = ratio(boot.workload(), bare.workload());
            let target = match boot.mode.target() {
                None => "-".to_string(),
                Some(t) => {
                    let worst = init_ratio.max(workload_ratio);
                    let verdict = if worst <= t {
                        "met".to_string()
                    } else {
                        format!("missed by {:.3}x", worst - t)
                    };
                    format!("<= {t:.2}x: {verdict}")
                }
            };
            let _ = writeln!(
                out,
                "{:<13} {:>14} {:>7.3} {:>14} {:>7.3}  {target}",
                boot.mode.name(),
                boot.entry_to_init(),
                init_ratio,
                boot.workload(),
                workload_ratio
            );
        }
        for boot in &self.boots {
            let Some(report) = &boot.report else { continue };
            let _ = writeln!(out, "{}:", boot.mode.name());
            let _ = writeln!(out, "  exits {}", list(&report.exits));
            let _ = writeln!(out, "  forwarded exceptions {}", list(&report.exceptions));
            let _ = writeln!(
                out,
                "  forwarded interrupts {} total={}",
                list(&report.interrupts),
                report.interrupts_total.unwrap_or(0)
            );
            let _ = writeln!(out, "  forwarded nmis {}", report.nmis.unwrap_or(0));
            let _ = writeln!(
                out,
                "  guest instructions (l1-hv's count) {}",
                report.instructions.unwrap_or(0)
            );
        }
        out.push_str(
            "notes: entry->init is from the kernel's entry to /init's first command, workload from just\n\
             before `workload: begin` to just after `workload: end`. Kernel entry, in all three boots: the\n\
             tick Bochs logs for the decompressor's first RDMSR of IA32_MISC_ENABLE (verify_cpu, right\n\
             after startup_32). Exits and forwarded events cover the whole guest run.\n",
        );
        for boot in &self.boots {
            if let Some(entered) = boot.l1hv_entry {
                let _ = writeln!(
                    out,
                    "       {}: l1-hv's `entered at tsc=` is {} instructions before that read",
                    boot.mode.name(),
                    boot.entry - entered
                );
            }
        }
        out
    }

    /// The figures as JSON (`target/bench/linux.json`).
    pub fn json(&self) -> Value {
        let [bare, ..] = &self.boots;
        let modes: Map<String, Value> = self
            .boots
            .iter()
            .map(|boot| {
                let mut figures = json!({
                    "kernel_entry_tsc": boot.entry,
                    "l1hv_entered_tsc": boot.l1hv_entry,
                    "init_tsc": boot.init,
                    "workload_begin_tsc": boot.workload_begin,
                    "workload_end_tsc": boot.workload_end,
                    "entry_to_init": boot.entry_to_init(),
                    "workload": boot.workload(),
                    "entry_to_init_ratio": ratio(boot.entry_to_init(), bare.entry_to_init()),
                    "workload_ratio": ratio(boot.workload(), bare.workload()),
                    "target_ratio": boot.mode.target(),
                });
                if let Some(report) = &boot.report {
                    figures["exits"] = object(&report.exits);
                    figures["forwarded_exceptions"] = object(&report.exceptions);
                    figures["forwarded_interrupts"] = object(&report.interrupts);
                    figures["forwarded_interrupts_total"] = json!(report.interrupts_total);
                    figures["forwarded_nmis"] = json!(report.nmis);
                    figures["guest_instructions"] = json!(report.instructions);
                }
                (boot.mode.name().to_string(), figures)
            })
            .collect();
        json!({
            "unit": "instructions (Bochs TSC ticks)",
            "kernel_entry": "bochs.log tick of the kernel's first RDMSR of IA32_MISC_ENABLE (verify_cpu)",
            "modes": modes,
        })
    }
}

/// One boot's figures from its guest's lines (bare: the whole console), its `bochs.log`, and
/// under l1-hv its `entered at` TSC and report.
fn boot(
    mode: Mode,
    lines: Vec<&str>,
    bochs_log: &str,
    l1hv: Option<(u64, GuestReport)>,
) -> Result<Boot, String> {
    let tsc = |label: &str| {
        let prefix = format!("tsc: {label} ");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok())
            .ok_or_else(|| format!("{}: no `tsc: {label} N` line", mode.name()))
    };
    let (init, workload_begin, workload_end) =
        (tsc("init")?, tsc("workload-begin")?, tsc("workload-end")?);
    if workload_output(lines.iter().copied()).is_none() {
        return Err(format!("{}: the workload did not finish", mode.name()));
    }
    let (l1hv_entry, report) = l1hv.map_or((None, None), |(entered, report)| {
        (Some(entered), Some(report))
    });
    // Under l1-hv, only the guest's read counts, not one l1-hv might make before entering it.
    let entry = entry_witness(bochs_log, l1hv_entry.unwrap_or(0))
        .ok_or_else(|| format!("{}: no `{ENTRY_WITNESS}` in bochs.log", mode.name()))?;
    if !(entry <= init && init <= workload_begin && workload_begin <= workload_end) {
        return Err(format!(
            "{}: TSCs out of order: entry {entry}, init {init}, workload {workload_begin}..{workload_end}",
            mode.name()
        ));
    }
    Ok(Boot {
        mode,
        entry,
        l1hv_entry,
        init,
        workload_begin,
        workload_end,
        report,
    })
}

/// The tick of the first [`ENTRY_WITNESS`] line of `bochs_log` at or after `from`: Bochs starts
/// each line with the tick count, e.g. `00379842869e[CPU0  ] RDMSR: Unknown register 0x1a0`.
fn entry_witness(bochs_log: &str, from: u64) -> Option<u64> {
    bochs_log
        .lines()
        .filter(|l| l.ends_with(ENTRY_WITNESS))
        .filter_map(|l| l.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .find(|&tick| tick >= from)
}

/// `l1-hv: guest 1 linux: entered at tsc=N`: the kernel's first instruction.
fn entered_tsc(console: &str) -> Option<u64> {
    let prefix = format!("l1-hv: guest 1 {GUEST}: entered at tsc=");
    console
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok())
}

fn ratio(n: u64, bare: u64) -> f64 {
    n as f64 / bare as f64
}

/// `[KEY]=N ...`, as l1-hv prints it; `-` when empty.
fn list(counts: &Counts) -> String {
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("[{k}]={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn object(counts: &Counts) -> Value {
    Value::Object(counts.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "\
[    0.000000] Linux version 6.1.0
tsc: init 1000
tsc: workload-begin 2000
workload: begin
signals: 5 of 5 faults handled in user mode
workload: end
tsc: workload-end 3000
[    9.000000] reboot: Power down
";

    /// An l1-hv boot's `bochs.log`: l1-hv's own read of the MSR at 50, the kernel's at `tick`.
    fn bochs_log(tick: u64) -> String {
        format!("00000000050e[CPU0  ] {ENTRY_WITNESS}\n{tick:011}e[CPU0  ] {ENTRY_WITNESS}\n00000900000i[CPU0  ] x\n")
    }

    /// An l1-hv console: l1-hv enters the kernel at 90, the kernel's witness is at 100.
    fn under_l1hv(init: u64, begin: u64, end: u64, summary: &str) -> Output {
        let console = format!(
            "l1-hv: guest 1 linux: entered at tsc=90\n\
             guest linux: tsc: init {init}\n\
             guest linux: tsc: workload-begin {begin}\n\
             guest linux: workload: begin\n\
             guest linux: signals: 5 of 5 faults handled in user mode\n\
             guest linux: workload: end\n\
             guest linux: tsc: workload-end {end}\n\
             {summary}\
             l1-hv: guest 1 linux: powered off (SLP_TYP 0): PASS\n\
             l1-hv: verdict PASS (1 runs)\n"
        );
        Output {
            console,
            bochs_log: bochs_log(100),
        }
    }

    /// Bare's entry->init is 1000 - 100 = 900, its workload 1000.
    fn outputs() -> [Output; 3] {
        [
            // Bare has no l1-hv to read the MSR first.
            Output {
                console: BARE.into(),
                bochs_log: format!("00000000100e[CPU0  ] {ENTRY_WITNESS}\n"),
            },
            under_l1hv(
                1018,
                2000,
                3010,
                "l1-hv: guest 1 linux: exits [CPUID]=13 [I/O instruction]=456\n\
                 l1-hv: guest 1 linux: forwarded exceptions [#GP]=2\n\
                 l1-hv: guest 1 linux: forwarded interrupts total=0\n\
                 l1-hv: guest 1 linux: forwarded nmis 0\n\
                 l1-hv: guest 1 linux: instructions 5000\n",
            ),
            under_l1hv(
                1090,
                5000,
                6200,
                "l1-hv: guest 1 linux: exits [exception or NMI]=30 [external interrupt]=7\n\
                 l1-hv: guest 1 linux: forwarded exceptions [#PF]=29 [#GP]=1\n\
                 l1-hv: guest 1 linux: forwarded interrupts [0xec]=7 total=7\n\
                 l1-hv: guest 1 linux: forwarded nmis 0\n\
                 l1-hv: guest 1 linux: instructions 6000\n",
            ),
        ]
    }

    #[test]
    fn the_table_has_a_row_per_mode_with_ratios_to_bare_and_the_events_behind_them() {
        let table = Figures::read(&outputs()).unwrap().table();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let row = |mode: &str| {
            rows.iter()
                .find(|r| r.first() == Some(&mode))
                .unwrap()
                .clone()
        };
        assert_eq!(row("bare"), ["bare", "900", "1.000", "1000", "1.000", "-"]);
        // 918 / 900 = 1.02 (met), 1010 / 1000.
        assert_eq!(
            row("forward=none"),
            [
                "forward=none",
                "918",
                "1.020",
                "1010",
                "1.010",
                "<=",
                "1.02x:",
                "met"
            ]
        );
        // 990 / 900 = 1.1 met; 1200 / 1000 = 1.2: missed by 0.1.
        assert_eq!(
            row("forward=all"),
            [
                "forward=all",
                "990",
                "1.100",
                "1200",
                "1.200",
                "<=",
                "1.10x:",
                "missed",
                "by",
                "0.100x"
            ]
        );
        assert!(table.contains("forward=none:\n  exits [CPUID]=13 [I/O instruction]=456\n  forwarded exceptions [#GP]=2\n  forwarded interrupts - total=0\n  forwarded nmis 0\n  guest instructions (l1-hv's count) 5000\n"), "{table}");
        assert!(
            table.contains("  forwarded interrupts [0xec]=7 total=7\n"),
            "{table}"
        );
        assert!(
            !table.contains("bare:"),
            "bare has no l1-hv summary: {table}"
        );
        assert!(
            table.contains(
                "forward=all: l1-hv's `entered at tsc=` is 10 instructions before that read"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_json_has_the_same_figures() {
        let json = Figures::read(&outputs()).unwrap().json();
        let bare = &json["modes"]["bare"];
        assert_eq!(bare["kernel_entry_tsc"], 100);
        assert_eq!(bare["l1hv_entered_tsc"], Value::Null);
        assert_eq!(bare["entry_to_init"], 900);
        assert_eq!(bare["workload"], 1000);
        assert!(bare.get("exits").is_none());
        let all = &json["modes"]["forward=all"];
        assert_eq!(all["l1hv_entered_tsc"], 90);
        assert_eq!(all["entry_to_init"], 990);
        assert_eq!(all["workload_ratio"], 1.2);
        assert_eq!(all["target_ratio"], 1.1);
        assert_eq!(all["exits"]["exception or NMI"], 30);
        assert_eq!(all["forwarded_exceptions"]["#PF"], 29);
        assert_eq!(all["forwarded_interrupts"]["0xec"], 7);
        assert_eq!(all["forwarded_interrupts_total"], 7);
        assert_eq!(all["guest_instructions"], 6000);
    }

    #[test]
    fn missing_lines_are_named() {
        let mut c = outputs();
        c[0].console = c[0].console.replace("tsc: init 1000\n", "");
        assert_eq!(
            Figures::read(&c).err().unwrap(),
            "bare: no `tsc: init N` line"
        );
        let mut c = outputs();
        c[2].console = c[2].console.replace(": PASS", ": FAIL");
        assert!(Figures::read(&c)
            .err()
            .unwrap()
            .starts_with("forward=all: the guest run did not pass"));
        let mut c = outputs();
        c[1].console = c[1].console.replace("guest linux: workload: end\n", "");
        assert_eq!(
            Figures::read(&c).err().unwrap(),
            "forward=none: the workload did not finish"
        );
        // Under l1-hv a read before its `entered at` is l1-hv's, not the kernel's.
        let mut c = outputs();
        c[1].bochs_log = bochs_log(80);
        assert_eq!(
            Figures::read(&c).err().unwrap(),
            format!("forward=none: no `{ENTRY_WITNESS}` in bochs.log")
        );
    }
}
