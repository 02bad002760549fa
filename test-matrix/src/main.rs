//! test-matrix: the routing model command, the matrix, and the emulator runners.

mod decide;
mod explain;
mod matrix;
mod report;
mod runner;
mod system;

use std::process::ExitCode;

const USAGE: &str = "usage: test-matrix <subcommand> [args]
subcommands:
  decide                 route JSON Lines scenarios from stdin (see docs/event-routing.md)
  bench-decide [--print] [N]
                         measure decide's throughput on N scenarios (default 2000000);
                         --print writes the scenario lines instead, to time decide end to end
  matrix [--scenarios]   route the model matrix and check the SDM invariants (docs/matrix.md);
                         --scenarios prints its scenarios as decide input instead
  report [--dir DIR]     write report.md and report.html (model and system runs) to DIR,
                         default target/matrix/, reading DIR/system-<mode>.jsonl
  system [--modes bare,nested,transparent]
                         run the system matrix on Bochs, write target/matrix/system-<mode>.jsonl,
                         compare with the model and the bare run (docs/matrix.md)
  explain <field> <value>
                         decode a VMCS field or error code in words (docs/fields.md)
  build                  build l1-hv, the guests and the bootable ISO (target/run/l1-hv.iso)
  demo [--emulator bochs|qemu-kvm|qemu-tcg|qemu-kvm-uefi|qemu-tcg-uefi] [--cpu MODEL] [--timeout SECONDS] [--guest \"IMAGE OPTIONS\"]...
       [--gdb PORT] [--bare IMAGE]
                         build, boot headless, stream l1-hv's console, exit with its verdict;
                         --bare boots a guest image (ghv) directly, as the L1; --gdb puts COM2
                         on 127.0.0.1:PORT for a guest with gdb=com2 (docs/debugging.md)
                         (exit status 0 PASS, 1 FAIL, 3 no VMX, 4 no verdict)
  run --kernel PATH [--initrd PATH] [--append ARGS] [--mem SIZE] [--forward none|all]
      [--expect poweroff|reset] [--emulator bochs|qemu-kvm] [--cpu MODEL] [--bare] [--timeout SECONDS]
      [--guest \"IMAGE OPTIONS\"]... [--name NAME] [--run-dir DIR] | run --linux-test|--linux-kvm [...]
                         boot your own kernel (bzImage, multiboot, multiboot2) under l1-hv, or
                         --bare on the emulator, streaming the console; `run --help` explains
                         every flag (docs/linux.md; exit status as demo's)
  linux-assets           fetch Debian's cloud kernel and build the Linux test's initramfs
                         under target/linux/; prints their paths and the test command line
  bench [--json]         boot the benchmark payloads in Bochs and print instructions per event
                         (docs/benchmarks.md); figures also in target/bench/bench.json
  bench-linux [--json]   boot the Linux test bare, under l1-hv with forward=none and forward=all
                         (in parallel) and print instructions from kernel entry to init and for
                         the workload, with the exits and forwarded events behind them
                         (docs/benchmarks.md); figures also in target/bench/linux.json
  bench-kvm [--json]     boot the KVM probe bare and under l1-hv (in parallel) and print
                         instructions per L3 exception, taken directly or reflected through
                         KVM, and l1-hv's exits per reflected one (docs/benchmarks.md);
                         figures also in target/bench/bench-kvm.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("decide") => decide::run(),
        Some("bench-decide") => decide::bench::run(&args[1..]),
        Some("matrix") => matrix::run(&args[1..]),
        Some("report") => report::run(&args[1..]),
        Some("system") => system::run(&args[1..]),
        Some("explain") => explain::run(&args[1..]),
        Some("build") => runner::cli::build(),
        Some("demo") => runner::cli::demo(&args[1..]),
        Some("run") => runner::run::run(&args[1..]),
        Some("linux-assets") => runner::cli::linux_assets(),
        Some("bench") => runner::bench::run(&args[1..]),
        Some("bench-linux") => runner::bench_linux::run(&args[1..]),
        Some("bench-kvm") => runner::bench_kvm::run(&args[1..]),
        Some(unknown) => {
            eprintln!("test-matrix: unknown subcommand {unknown:?}\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
