//! `test-matrix bench [--json]`: boots the benchmark payloads in Bochs and prints one table of
//! instructions per event (docs/benchmarks.md); `--json` prints the figures as JSON too, and they
//! are always written to `target/bench/bench.json` for tracking across changes.
//!
//! Two boots: l1-hv with `bench-guest` (#PF left to the hardware, then intercepted) and
//! `ghv-bench` (VMCS shadowing on, then off), and `ghv-bench` bare, the hardware reference for
//! the nested paths. The payloads time each event with RDTSC; on Bochs one tick is one executed
//! instruction (l1-hv's included; VM exit and entry add none), so after subtracting the empty
//! region (the floor) a figure is the instructions the event costs.

use super::emulator::{self, Emulator, DEFAULT_BOCHS_CPU};
use super::image::{self, GuestRun};
use super::{bare, tools, workspace_root};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Wall-clock limit per boot.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
/// What a nested cell says until l1-hv runs L3 for `ghv-bench`.
const NOT_READY: &str = "n/a (nested VMX not ready)";

/// The runs of the l1-hv boot, in module order (l1-hv labels them `guest 1`, `guest 2`, ...).
const L1HV_RUNS: [&str; 4] = [
    "bench-guest exceptions=none",
    "bench-guest exceptions=pf",
    "ghv-bench",
    "ghv-bench shadowing=off",
];
/// Positions in [`L1HV_RUNS`] (1-based, as l1-hv prints them).
const PF_NATIVE_RUN: usize = 1;
const PF_INTERCEPTED_RUN: usize = 2;
const NESTED_SHADOWING_ON_RUN: usize = 3;
const NESTED_SHADOWING_OFF_RUN: usize = 4;

/// `test-matrix bench [--json]`.
pub fn run(args: &[String]) -> ExitCode {
    let json_too = match args {
        [] => false,
        [flag] if flag == "--json" => true,
        _ => {
            eprintln!("runner: usage: bench [--json]");
            return ExitCode::from(2);
        }
    };
    match measure() {
        Ok(results) => {
            print!("{}", table(&results));
            let json =
                serde_json::to_string_pretty(&to_json(&results)).expect("JSON of plain values");
            if json_too {
                println!("{json}");
            }
            let path = bench_dir().join("bench.json");
            if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
                eprintln!("runner: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("runner: figures written to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("runner: bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench_dir() -> PathBuf {
    workspace_root().join("target").join("bench")
}

/// One path's raw deltas, as a payload reported them (`bench path=P n=N median=M min=A max=B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figures {
    /// Timed regions.
    pub n: u64,
    /// Upper median delta.
    pub median: u64,
    /// Smallest delta.
    pub min: u64,
    /// Largest delta.
    pub max: u64,
}

impl Figures {
    /// The figures less the floor's median (the cost of the timing itself).
    pub fn net(self, floor: Figures) -> Figures {
        let less = |v: u64| v.saturating_sub(floor.median);
        Figures {
            n: self.n,
            median: less(self.median),
            min: less(self.min),
            max: less(self.max),
        }
    }
}

/// What one guest run (or the bare boot) printed that the bench reads.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// `bench` lines by path.
    pub paths: Vec<(String, Figures)>,
    /// l1-hv's exit counts for the run, by reason name.
    pub exits: Vec<(String, u64)>,
    /// Lines the guest wrote (each one a `Write` hypercall).
    pub written: u64,
    /// l1-hv's trace records for the run.
    pub trace_records: u64,
    /// l1-hv's `exits-per-reflected-exception=` for a guest hypervisor (its `nested` line).
    pub exits_per_reflection: Option<String>,
}

impl RunOutput {
    /// The figures of `path`, if reported.
    pub fn path(&self, path: &str) -> Option<Figures> {
        self.paths.iter().find(|(p, _)| p == path).map(|(_, f)| *f)
    }

    fn exits(&self, reason: &str) -> u64 {
        self.exits
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, c)| *c)
    }
}

/// Parses `bench path=P n=N median=M min=A max=B` anywhere in `line`.
pub fn parse_bench_line(line: &str) -> Option<(String, Figures)> {
    let rest = &line[line.find("bench path=")? + "bench ".len()..];
    let mut path = None;
    let mut numbers = [None; 4];
    for word in rest.split_whitespace() {
        match word.split_once('=')? {
            ("path", p) => path = Some(p.to_string()),
            (key, value) => {
                let slot = ["n", "median", "min", "max"]
                    .iter()
                    .position(|k| *k == key)?;
                numbers[slot] = Some(value.parse().ok()?);
            }
        }
    }
    let [n, median, min, max] = numbers;
    Some((
        path?,
        Figures {
            n: n?,
            median: median?,
            min: min?,
            max: max?,
        },
    ))
}

/// Parses l1-hv's `... exits [REASON]=N [REASON]=N` into (reason, count) pairs.
pub fn parse_exits(list: &str) -> Vec<(String, u64)> {
    list.split('[')
        .filter_map(|item| {
            let (reason, count) = item.split_once("]=")?;
            Some((reason.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// Splits l1-hv's console into its guest runs: run k (1-based) is everything from
/// `l1-hv: guest k NAME: start` to the next run's start.
pub fn parse_l1hv_console(console: &str, runs: usize) -> Vec<RunOutput> {
    let mut outputs: Vec<RunOutput> = (0..runs).map(|_| RunOutput::default()).collect();
    let mut current: Option<(usize, String)> = None;
    for line in console.lines() {
        if let Some(rest) = line.strip_prefix("l1-hv: guest ") {
            let (index, rest) = rest.split_once(' ').unwrap_or(("", ""));
            let (name, what) = rest.split_once(": ").unwrap_or(("", ""));
            let Some(index) = index
                .parse::<usize>()
                .ok()
                .filter(|i| (1..=runs).contains(i))
            else {
                continue;
            };
            if what.starts_with("start (") {
                current = Some((index, name.to_string()));
            }
            let out = &mut outputs[index - 1];
            if let Some(list) = what.strip_prefix("exits") {
                out.exits = parse_exits(list);
            } else if let Some(count) = what.strip_suffix(" trace records") {
                out.trace_records = count.parse().unwrap_or(0);
            } else if let Some(at) = what.find("exits-per-reflected-exception=") {
                let value = what[at + "exits-per-reflected-exception=".len()..]
                    .split_whitespace()
                    .next();
                out.exits_per_reflection = value.map(str::to_string);
            }
        } else if let Some((index, name)) = &current {
            if let Some(text) = line.strip_prefix(&format!("guest {name}: ")) {
                let out = &mut outputs[index - 1];
                out.written += 1;
                out.paths.extend(parse_bench_line(text));
            }
        }
    }
    outputs
}

/// Everything one `bench` measured.
pub struct Results {
    /// The l1-hv boot's runs, in [`L1HV_RUNS`] order.
    pub l1hv: Vec<RunOutput>,
    /// `ghv-bench` bare.
    pub bare: RunOutput,
}

fn measure() -> Result<Results, String> {
    tools::ensure(&[tools::IMAGE_TOOLS, tools::BOCHS_TOOLS])?;
    tools::ensure_kernel_target()?;
    let elves = image::build()?;
    let runs: Vec<GuestRun> = L1HV_RUNS
        .iter()
        .map(|spec| {
            let (image, options) = spec.split_once(' ').unwrap_or((spec, ""));
            GuestRun {
                image: image.into(),
                options: options.into(),
            }
        })
        .collect();
    let emulator = Emulator::Bochs {
        cpu: DEFAULT_BOCHS_CPU.into(),
    };

    let iso = stage_iso(&elves, "l1-hv", Some(&image::grub_cfg(&runs)))?;
    eprintln!("runner: bench: booting l1-hv with {} runs", runs.len());
    let boot = emulator::boot(&emulator, &iso, BOOT_LIMIT, false)?;
    eprintln!(
        "runner: bench: l1-hv boot took {:.2} s wall ({:?})",
        boot.wall.as_secs_f64(),
        boot.verdict
    );
    save_console("l1-hv", &boot.console)?;
    let l1hv = parse_l1hv_console(&boot.console, runs.len());
    for (index, path) in [(PF_NATIVE_RUN, "pf"), (PF_INTERCEPTED_RUN, "pf")] {
        if l1hv[index - 1].path(path).is_none() {
            return Err(format!(
                "run {index} ({}) reported no `{path}` path; console:\n{}",
                L1HV_RUNS[index - 1],
                boot.console
            ));
        }
    }

    let iso = stage_iso(&elves, "ghv-bench", None)?;
    eprintln!("runner: bench: booting ghv-bench bare");
    let boot = emulator::boot(&emulator, &iso, BOOT_LIMIT, false)?;
    save_console("ghv-bench-bare", &boot.console)?;
    let bare = RunOutput {
        paths: boot
            .console
            .lines()
            .filter_map(|l| l.strip_prefix("ghv: "))
            .filter_map(parse_bench_line)
            .collect(),
        ..RunOutput::default()
    };
    Ok(Results { l1hv, bare })
}

/// Keeps a boot's console as `target/bench/NAME.console.txt` (the table's source).
fn save_console(name: &str, console: &str) -> Result<(), String> {
    let path = bench_dir().join(format!("{name}.console.txt"));
    std::fs::write(&path, console).map_err(|e| format!("{}: {e}", path.display()))
}

/// Stages `target/bench/NAME/` and writes `target/bench/NAME.iso`: l1-hv with `grub_cfg`, or,
/// without one, the image `name` booted bare.
fn stage_iso(elves: &Path, name: &str, grub_cfg: Option<&str>) -> Result<PathBuf, String> {
    let stage = bench_dir().join(name);
    let _ = std::fs::remove_dir_all(&stage);
    let io = |e: std::io::Error| format!("staging {}: {e}", stage.display());
    let guests = stage.join("boot").join("guests");
    std::fs::create_dir_all(stage.join("boot").join("grub")).map_err(io)?;
    std::fs::create_dir_all(&guests).map_err(io)?;
    let cfg = match grub_cfg {
        Some(cfg) => {
            std::fs::copy(elves.join("l1-hv"), stage.join("boot").join("l1-hv")).map_err(io)?;
            for image in ["bench-guest", "ghv-bench"] {
                std::fs::copy(elves.join(image), guests.join(image)).map_err(io)?;
            }
            cfg.to_string()
        }
        None => {
            std::fs::copy(elves.join(name), guests.join(name)).map_err(io)?;
            bare::grub_cfg(name)
        }
    };
    std::fs::write(stage.join("boot").join("grub").join("grub.cfg"), cfg).map_err(io)?;
    let iso = bench_dir().join(format!("{name}.iso"));
    image::mkrescue(&stage, &iso)?;
    Ok(iso)
}

/// One L2 row: label, the path's net figures, l1-hv exits per event (None: not attributable).
struct L2Row {
    key: &'static str,
    label: &'static str,
    figures: Figures,
    raw_median: u64,
    exits_per_event: Option<f64>,
}

/// The L2 rows; `None` if a payload line is missing.
fn l2_rows(results: &Results) -> Option<Vec<L2Row>> {
    let native = &results.l1hv[PF_NATIVE_RUN - 1];
    let intercepted = &results.l1hv[PF_INTERCEPTED_RUN - 1];
    let floor = native.path("floor")?;
    let per = |exits: u64, figures: Figures| Some(exits as f64 / figures.n as f64);
    let vmcall = native.path("vmcall")?;
    // The run's other VMCALLs: one `Write` per line it printed, and `Done`.
    let vmcall_exits = native.exits("VMCALL").saturating_sub(native.written + 1);
    let cpuid = native.path("cpuid")?;
    let pf_native = native.path("pf")?;
    let pf_intercepted = intercepted.path("pf")?;
    let row = |key, label, raw: Figures, exits_per_event| L2Row {
        key,
        label,
        figures: if key == "floor" { raw } else { raw.net(floor) },
        raw_median: raw.median,
        exits_per_event,
    };
    Some(vec![
        row("floor", "floor: empty timed region (raw)", floor, None),
        row(
            "vmcall",
            "VMCALL round trip (Nop hypercall)",
            vmcall,
            per(vmcall_exits, vmcall),
        ),
        row(
            "cpuid",
            "CPUID, emulated by l1-hv",
            cpuid,
            per(native.exits("CPUID"), cpuid),
        ),
        row(
            "pf-hardware",
            "L2 #PF, not intercepted",
            pf_native,
            per(native.exits("exception or NMI"), pf_native),
        ),
        row(
            "pf-intercepted",
            "L2 #PF, intercepted + re-injected",
            pf_intercepted,
            per(intercepted.exits("exception or NMI"), pf_intercepted),
        ),
    ])
}

/// The nested rows: (key, label, ghv-bench path, or the difference of two paths).
const NESTED_ROWS: [(&str, &str, &str, Option<&str>); 7] = [
    (
        "vmread-shadowed",
        "VMREAD guest RIP (shadowed)",
        "vmread-shadowed",
        None,
    ),
    (
        "vmwrite-shadowed",
        "VMWRITE guest RIP (shadowed)",
        "vmwrite-shadowed",
        None,
    ),
    (
        "vmread-unshadowed",
        "VMREAD guest ES base (not shadowed)",
        "vmread-unshadowed",
        None,
    ),
    (
        "vmwrite-unshadowed",
        "VMWRITE guest ES base (not shadowed)",
        "vmwrite-unshadowed",
        None,
    ),
    (
        "l3-pf-delivered",
        "L3 #PF, not intercepted by ghv",
        "l3-pf-delivered",
        None,
    ),
    (
        "l3-pf-reflected",
        "L3 #PF reflected to ghv and resumed",
        "l3-pf-reflected",
        None,
    ),
    (
        "l3-pf-round-trip",
        "  round trip (reflected - delivered)",
        "l3-pf-reflected",
        Some("l3-pf-delivered"),
    ),
];

/// A nested cell: the path's net figures in one ghv-bench run, or with `minus`, the difference
/// of two paths' medians (min and max are then not meaningful and left equal to it); None: not
/// reported.
fn nested_cell(run: &RunOutput, path: &str, minus: Option<&str>) -> Option<Figures> {
    let floor = run.path(if path.starts_with("l3-") {
        "l3-floor"
    } else {
        "vmx-floor"
    })?;
    let net = run.path(path)?.net(floor);
    let Some(other) = minus else { return Some(net) };
    let other = run.path(other)?.net(floor);
    let median = net.median.saturating_sub(other.median);
    Some(Figures {
        n: net.n,
        median,
        min: median,
        max: median,
    })
}

/// The three nested columns: bare, under l1-hv with shadowing on, off.
fn nested_columns(results: &Results) -> [&RunOutput; 3] {
    [
        &results.bare,
        &results.l1hv[NESTED_SHADOWING_ON_RUN - 1],
        &results.l1hv[NESTED_SHADOWING_OFF_RUN - 1],
    ]
}

/// The printed table.
pub fn table(results: &Results) -> String {
    let mut out = String::from(
        "bench: instructions per event on Bochs (1 TSC tick = 1 instruction), floor subtracted;\n\
         differences (indented rows) are of medians\n\n",
    );
    out += &format!(
        "{:<38} {:>6} {:>8} {:>8} {:>8}  {}\n",
        "L2 path (bench-guest)", "n", "median", "min", "max", "l1-hv exits/event"
    );
    match l2_rows(results) {
        Some(rows) => {
            for r in &rows {
                let exits = r
                    .exits_per_event
                    .map_or("-".to_string(), |e| format!("{e:.2}"));
                let f = r.figures;
                out += &format!(
                    "{:<38} {:>6} {:>8} {:>8} {:>8}  {exits}\n",
                    r.label, f.n, f.median, f.min, f.max
                );
            }
            let (hw, int) = (&rows[3], &rows[4]);
            out += &format!(
                "{:<38} {:>6} {:>8}  (trace records/event {:.2})\n",
                "  l1-hv's #PF cost (intercepted - not)",
                "",
                int.raw_median.saturating_sub(hw.raw_median),
                results.l1hv[PF_INTERCEPTED_RUN - 1].trace_records as f64 / int.figures.n as f64,
            );
        }
        None => out += "(bench-guest's lines are missing)\n",
    }
    out += &format!(
        "\n{:<42} {:<26} {:<26} {:<26}\n",
        "nested path (ghv-bench), median [min..max]",
        "bare (no l1-hv)",
        "l1-hv, shadowing on",
        "l1-hv, shadowing off"
    );
    let columns = nested_columns(results);
    for (_, label, path, minus) in NESTED_ROWS {
        out += &format!("{label:<42}");
        for (i, run) in columns.iter().enumerate() {
            let cell = match nested_cell(run, path, minus) {
                Some(f) if minus.is_some() => f.median.to_string(),
                Some(f) => format!("{} [{}..{}]", f.median, f.min, f.max),
                None if i == 0 => "missing".into(),
                None => NOT_READY.into(),
            };
            out += &format!(" {cell:<26}");
        }
        out += "\n";
    }
    let exits: Vec<String> = columns[1..]
        .iter()
        .map(|run| {
            run.exits_per_reflection
                .clone()
                .unwrap_or_else(|| "n/a (not printed by l1-hv)".into())
        })
        .collect();
    out += &format!(
        "{:<42} {:<26} {:<26} {:<26}\n",
        "  l1-hv exits per reflected #PF", "-", exits[0], exits[1]
    );
    out
}

fn figures_json(f: Option<Figures>) -> Value {
    f.map_or(
        Value::Null,
        |f| json!({ "n": f.n, "median": f.median, "min": f.min, "max": f.max }),
    )
}

/// The figures as JSON (`null` where a path was not measured).
pub fn to_json(results: &Results) -> Value {
    let l2: Vec<Value> = l2_rows(results)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            json!({
                "path": r.key,
                "figures": figures_json(Some(r.figures)),
                "raw_median": r.raw_median,
                "l1hv_exits_per_event": r.exits_per_event,
            })
        })
        .collect();
    let columns = nested_columns(results);
    let nested: Vec<Value> = NESTED_ROWS
        .iter()
        .map(|(key, _, path, minus)| {
            json!({
                "path": key,
                "bare": figures_json(nested_cell(columns[0], path, *minus)),
                "shadowing_on": figures_json(nested_cell(columns[1], path, *minus)),
                "shadowing_off": figures_json(nested_cell(columns[2], path, *minus)),
            })
        })
        .collect();
    json!({
        "unit": "instructions (Bochs TSC ticks), floor subtracted",
        "l2": l2,
        "nested": nested,
        "l1hv_exits_per_reflected_pf": {
            "shadowing_on": columns[1].exits_per_reflection,
            "shadowing_off": columns[2].exits_per_reflection,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_parse_with_or_without_prefixes() {
        let f = Figures {
            n: 1000,
            median: 7,
            min: 5,
            max: 9,
        };
        assert_eq!(
            parse_bench_line("bench path=cpuid n=1000 median=7 min=5 max=9"),
            Some(("cpuid".into(), f))
        );
        assert_eq!(
            parse_bench_line("ghv: bench path=l3-floor n=1000 median=7 min=5 max=9")
                .unwrap()
                .0,
            "l3-floor"
        );
        assert_eq!(
            parse_bench_line("bench path=cpuid n=1000 median=7 min=5"),
            None
        );
        assert_eq!(parse_bench_line("bench-guest: start"), None);
    }

    #[test]
    fn exit_lists_parse_reason_names_with_spaces() {
        assert_eq!(
            parse_exits(" [exception or NMI]=1000 [VMCALL]=6"),
            [
                ("exception or NMI".to_string(), 1000),
                ("VMCALL".to_string(), 6)
            ]
        );
    }

    #[test]
    fn console_splits_into_runs() {
        let console = "l1-hv: guest 1 bench-guest: start (exceptions=0x0, expect=Done, image 1 bytes)\n\
                       guest bench-guest: bench path=floor n=1000 median=3 min=3 max=3\n\
                       l1-hv: guest 1 bench-guest: 0 trace records\n\
                       l1-hv: guest 1 bench-guest: exits [VMCALL]=1002\n\
                       l1-hv: guest 2 bench-guest: start (exceptions=0x4000, expect=Done, image 1 bytes)\n\
                       guest bench-guest: bench path=pf n=1000 median=90 min=90 max=91\n\
                       l1-hv: guest 2 bench-guest: 1000 trace records\n\
                       l1-hv: guest 2 bench-guest: nested exits-per-reflected-exception=2 reflections=9\n";
        let runs = parse_l1hv_console(console, 2);
        assert_eq!(runs[0].path("floor").map(|f| f.median), Some(3));
        assert_eq!(runs[0].written, 1);
        assert_eq!(runs[0].exits("VMCALL"), 1002);
        assert_eq!(runs[1].path("floor"), None);
        assert_eq!(runs[1].trace_records, 1000);
        assert_eq!(runs[1].exits_per_reflection.as_deref(), Some("2"));
    }

    #[test]
    fn net_figures_subtract_the_floor_median() {
        let floor = Figures {
            n: 1000,
            median: 3,
            min: 3,
            max: 4,
        };
        let raw = Figures {
            n: 1000,
            median: 50,
            min: 49,
            max: 60,
        };
        assert_eq!(
            raw.net(floor),
            Figures {
                n: 1000,
                median: 47,
                min: 46,
                max: 57
            }
        );
    }
}
