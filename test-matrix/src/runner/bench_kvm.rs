//! `test-matrix bench-kvm [--json]`: boots the KVM initramfs (`run --linux-kvm`'s) twice in
//! parallel, bare on Bochs and under l1-hv with `forward=none`, and prints the exception VM's
//! timed loops (docs/benchmarks.md "KVM as a guest hypervisor"): instructions per iteration of
//! an exception L3 takes from the processor and of one KVM intercepts and reflects back into
//! L3, bare and under l1-hv, and l1-hv's exits per reflected exception, by vector.
//! A benchmark, not a test: it fails only when a boot gives no figures.

use super::bench::{parse_bench_line, Figures};
use super::linux::console::{counts, guest_lines, Counts};
use super::linux::{self, TEST_APPEND};
use super::run::{self, args::RunArgs};
use super::{image, tools, workspace_root};
use clap::Parser;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Wall-clock limit per boot (~2 min each with two sharing the machine).
const BOOT_LIMIT_S: &str = "900";
/// The l1-hv run name of the kernel guest (`run`'s default `--name`).
const GUEST: &str = "linux";
/// l1-hv's summary lines of a guest hypervisor's run, after `l1-hv: guest 1 linux: `.
const NESTED: &str = "nested ";
const L3_EXITS: &str = "L3 exits ";
const BY_VECTOR: &str = "nested exits-per-reflected-exception vector=";

/// Boot the KVM probe bare and under l1-hv (forward=none) and print instructions per L3
/// exception, taken directly or reflected through KVM, and l1-hv's exits per reflected one.
#[derive(Parser, Debug)]
#[command(name = "test-matrix bench-kvm")]
struct Args {
    /// Print the figures as JSON too (they are always written to target/bench/bench-kvm.json).
    #[arg(long)]
    json: bool,
}

/// `test-matrix bench-kvm [--json]`.
pub fn run(args: &[String]) -> ExitCode {
    let args = match Args::try_parse_from(
        std::iter::once("bench-kvm").chain(args.iter().map(String::as_str)),
    ) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let figures = measure()
        .and_then(|[bare, l1hv]| KvmFigures::read(&bare, &l1hv))
        .map(|f| (f.table(), f.json()));
    super::report_figures("bench-kvm", "bench-kvm.json", args.json, figures)
}

/// `target/bench/`: the JSON, the consoles (`kvm-MODE.console.txt`), each boot's run directory.
fn bench_dir() -> PathBuf {
    workspace_root().join("target").join("bench")
}

/// The consoles of the bare boot and of the boot under l1-hv.
fn measure() -> Result<[String; 2], String> {
    // Made once, before the parallel boots, which would otherwise each rebuild the initramfs and
    // l1-hv over one another (as bench-linux does).
    let assets = linux::prepare()?;
    tools::ensure(&[tools::IMAGE_TOOLS, tools::BOCHS_TOOLS])?;
    tools::ensure_kernel_target()?;
    image::build()?;
    std::fs::create_dir_all(bench_dir()).map_err(|e| format!("{}: {e}", bench_dir().display()))?;
    let boots =
        [("bare", ["--bare", ""]), ("l1hv", ["--forward", "none"])].map(|(label, flags)| {
            let mut words: Vec<String> = ["run", "--kernel"].map(String::from).to_vec();
            words.push(assets.kernel.vmlinuz.display().to_string());
            words.extend([
                "--initrd".into(),
                assets.kvm_initrd.display().to_string(),
                "--append".into(),
                TEST_APPEND.into(),
            ]);
            words.extend(["--timeout".into(), BOOT_LIMIT_S.into(), "--run-dir".into()]);
            words.push(
                bench_dir()
                    .join(format!("kvm-{label}"))
                    .display()
                    .to_string(),
            );
            words.extend(
                flags
                    .iter()
                    .filter(|f| !f.is_empty())
                    .map(|f| f.to_string()),
            );
            std::thread::spawn(move || -> Result<String, String> {
                let args = RunArgs::try_parse_from(&words).map_err(|e| e.to_string())?;
                let boot = run::boot(&args, false).map_err(|e| format!("{label}: {e}"))?;
                let path = bench_dir().join(format!("kvm-{label}.console.txt"));
                std::fs::write(&path, &boot.console)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                eprintln!(
                    "runner: {label}: {:?} after {:.0} s wall",
                    boot.verdict,
                    boot.wall.as_secs_f64()
                );
                Ok(boot.console)
            })
        });
    let [bare, l1hv] = boots.map(|b| b.join().map_err(|_| "a boot thread panicked".to_string()));
    Ok([bare??, l1hv??])
}

/// One timed loop (`CONFIG/EVENT`), bare and under l1-hv.
struct Row {
    path: String,
    bare: Figures,
    l1hv: Figures,
}

/// What the two consoles say.
struct KvmFigures {
    rows: Vec<Row>,
    /// l1-hv's `exits-per-reflected-exception=` (lowest..highest over the run).
    range: String,
    /// l1-hv's exits per reflected exception, by vector: (exits, how many exceptions).
    by_vector: Vec<(u8, Counts)>,
    /// L3's exits to l1-hv, by reason.
    l3_exits: Counts,
}

/// The timed loops' figures in `lines`, in order.
fn bench_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, Figures)> {
    lines
        .into_iter()
        .filter_map(|l| parse_bench_line(l.trim_end()))
        .collect()
}

impl KvmFigures {
    fn read(bare: &str, l1hv: &str) -> Result<Self, String> {
        let bare_lines = bench_lines(bare.lines());
        let l1hv_lines = bench_lines(guest_lines(l1hv, GUEST));
        if bare_lines.is_empty() {
            return Err(
                "the bare boot printed no timed loop (target/bench/kvm-bare.console.txt)".into(),
            );
        }
        let mut rows = Vec::new();
        for (path, bare) in bare_lines {
            let (_, l1hv) = l1hv_lines.iter().find(|(p, _)| *p == path).ok_or_else(|| {
                format!("no {path} under l1-hv (target/bench/kvm-l1hv.console.txt)")
            })?;
            rows.push(Row {
                path,
                bare,
                l1hv: *l1hv,
            });
        }
        let summary: Vec<&str> = l1hv
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("l1-hv: guest 1 {GUEST}: ")))
            .collect();
        let range = summary
            .iter()
            .find_map(|l| {
                l.strip_prefix(NESTED)?
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("exits-per-reflected-exception="))
            })
            .ok_or("no nested summary from l1-hv")?
            .to_string();
        let by_vector = summary
            .iter()
            .filter_map(|l| {
                let (vector, list) = l.strip_prefix(BY_VECTOR)?.split_once(' ')?;
                Some((vector.parse().ok()?, counts(list)))
            })
            .collect();
        let l3_exits = summary
            .iter()
            .find_map(|l| l.strip_prefix(L3_EXITS))
            .map(counts)
            .unwrap_or_default();
        Ok(Self {
            rows,
            range,
            by_vector,
            l3_exits,
        })
    }

    /// The floor (the loop alone) of `path`'s configuration.
    fn floor(&self, path: &str) -> Option<&Row> {
        let config = path.rsplit_once('/')?.0;
        self.rows
            .iter()
            .find(|r| r.path == format!("{config}/floor"))
    }

    fn table(&self) -> String {
        let mut out = String::from(
            "KVM as a guest hypervisor: instructions per iteration of L3's timed loops \
             (median; net: less the floor's median)\n",
        );
        let _ = writeln!(
            out,
            "{:<32} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "loop", "bare", "net", "l1-hv", "net", "ratio"
        );
        for row in &self.rows {
            let (bare, l1hv) = match self.floor(&row.path) {
                Some(floor) => (row.bare.net(floor.bare), row.l1hv.net(floor.l1hv)),
                None => (row.bare, row.l1hv),
            };
            let ratio = if bare.median > 0 {
                format!("{:.1}x", l1hv.median as f64 / bare.median as f64)
            } else {
                "-".into()
            };
            let _ = writeln!(
                out,
                "{:<32} {:>9} {:>9} {:>9} {:>9} {:>8}",
                row.path, row.bare.median, bare.median, row.l1hv.median, l1hv.median, ratio
            );
        }
        let _ = writeln!(
            out,
            "l1-hv's exits per reflected exception: {} over the run; by vector, [exits]=exceptions:",
            self.range
        );
        for (vector, list) in &self.by_vector {
            let list: Vec<String> = list.iter().map(|(e, n)| format!("[{e}]={n}")).collect();
            let _ = writeln!(out, "  vector {vector}: {}", list.join(" "));
        }
        let list: Vec<String> = self
            .l3_exits
            .iter()
            .map(|(r, n)| format!("[{r}]={n}"))
            .collect();
        let _ = writeln!(out, "L3 exits to l1-hv: {}", list.join(" "));
        out
    }

    fn json(&self) -> Value {
        let figures =
            |f: Figures| json!({"n": f.n, "median": f.median, "min": f.min, "max": f.max});
        let loops: Vec<Value> = self
            .rows
            .iter()
            .map(|r| json!({"loop": r.path, "bare": figures(r.bare), "l1hv": figures(r.l1hv)}))
            .collect();
        let by_vector: Map<String, Value> = self
            .by_vector
            .iter()
            .map(|(vector, list)| {
                let list: Map<String, Value> =
                    list.iter().map(|(e, n)| (e.clone(), json!(n))).collect();
                (vector.to_string(), Value::Object(list))
            })
            .collect();
        let l3_exits: Map<String, Value> = self
            .l3_exits
            .iter()
            .map(|(r, n)| (r.clone(), json!(n)))
            .collect();
        json!({
            "unit": "instructions per iteration (Bochs TSC ticks)",
            "loops": loops,
            "exits_per_reflected_exception": {"range": self.range, "by_vector": by_vector},
            "l3_exits": l3_exits,
        })
    }
}
