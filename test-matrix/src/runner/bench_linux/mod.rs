//! `test-matrix bench-linux [--json]`: boots the Linux test's kernel and initramfs three ways in
//! parallel (bare, under l1-hv with `forward=none`, with `forward=all`), each through `run`'s own
//! code and in its own directory, and prints one table of instructions from kernel entry to init
//! and for the workload, with the exits and forwarded events behind them (docs/benchmarks.md).
//! A benchmark, not a test: it fails only when a boot gives no figures.

mod figures;

use super::linux::{self, TEST_APPEND};
use super::run::{self, args::RunArgs};
use super::{image, tools, workspace_root};
use clap::Parser;
use figures::{Mode, Output};
use std::path::PathBuf;
use std::process::ExitCode;

/// Wall-clock limit per boot: Linux takes 40–80 s of a core alone, and three share the machine.
const BOOT_LIMIT_S: &str = "900";

/// Boot Linux bare, under l1-hv with forward=none and with forward=all, and print instructions
/// from kernel entry to init and for the workload.
#[derive(Parser, Debug)]
#[command(name = "test-matrix bench-linux")]
struct Args {
    /// Print the figures as JSON too (they are always written to target/bench/linux.json).
    #[arg(long)]
    json: bool,
}

/// `test-matrix bench-linux [--json]`.
pub fn run(args: &[String]) -> ExitCode {
    let args = match Args::try_parse_from(
        std::iter::once("bench-linux").chain(args.iter().map(String::as_str)),
    ) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let figures = measure()
        .and_then(|outputs| figures::Figures::read(&outputs))
        .map(|f| (f.table(), f.json()));
    super::report_figures("bench-linux", "linux.json", args.json, figures)
}

/// `target/bench/`: the JSON, the consoles, and each boot's run directory.
fn bench_dir() -> PathBuf {
    workspace_root().join("target").join("bench")
}

/// The three boots' consoles (also written to `target/bench/linux-MODE.console.txt`) and Bochs
/// logs (in `target/bench/linux-MODE/`), in [`Mode::ALL`]'s order.
fn measure() -> Result<[Output; 3], String> {
    // Made once, before the parallel boots, which would otherwise each rebuild the initramfs and
    // l1-hv over one another (as tests/linux.rs does with `linux-assets` and `build`).
    let assets = linux::prepare()?;
    tools::ensure(&[tools::IMAGE_TOOLS, tools::BOCHS_TOOLS])?;
    tools::ensure_kernel_target()?;
    image::build()?;
    std::fs::create_dir_all(bench_dir()).map_err(|e| format!("{}: {e}", bench_dir().display()))?;
    let boots = Mode::ALL.map(|mode| {
        let mut words: Vec<String> = ["run", "--kernel"].map(String::from).to_vec();
        words.push(assets.kernel.vmlinuz.display().to_string());
        words.extend([
            "--initrd".into(),
            assets.initrd.display().to_string(),
            "--append".into(),
            TEST_APPEND.into(),
        ]);
        words.extend(["--timeout".into(), BOOT_LIMIT_S.into(), "--run-dir".into()]);
        let dir = bench_dir().join(format!("linux-{}", mode.label()));
        words.push(dir.display().to_string());
        words.extend(mode.run_flags().iter().map(|w| w.to_string()));
        std::thread::spawn(move || -> Result<Output, String> {
            let args = RunArgs::try_parse_from(&words).map_err(|e| e.to_string())?;
            let boot = run::boot(&args, false).map_err(|e| format!("{}: {e}", mode.label()))?;
            let path = bench_dir().join(format!("linux-{}.console.txt", mode.label()));
            std::fs::write(&path, &boot.console).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "runner: {}: {:?} after {:.0} s wall",
                mode.label(),
                boot.verdict,
                boot.wall.as_secs_f64()
            );
            let log = dir.join("bochs.log");
            let bochs_log =
                std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            Ok(Output {
                console: boot.console,
                bochs_log,
            })
        })
    });
    let [bare, none, all] =
        boots.map(|b| b.join().map_err(|_| "a boot thread panicked".to_string()));
    Ok([bare??, none??, all??])
}
