//! `test-matrix run`: boot your own kernel under l1-hv (or bare), QEMU's vocabulary.

pub mod args;
mod iso;

use super::emulator::{self, Emulator, End, Settings, Verdict};
use super::image::GuestRun;
use super::kernel_kind::KernelKind;
use super::{linux, run_dir, tools};
use args::{EmulatorChoice, Expect, RunArgs};
use clap::Parser;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exit statuses, as `demo`'s.
const EXIT_NO_VMX: u8 = 3;
const EXIT_NO_VERDICT: u8 = 4;
/// What l1-hv adds to the guest's memory for the emulator's.
const L1HV_MEGS: u32 = 256;
/// Bochs' instructions per emulated second for a Linux guest: fewer timer ticks per instruction
/// than the demo's 4 M (about 20% fewer instructions for the same work, docs/linux.md).
const LINUX_IPS: u32 = 40_000_000;
const DEMO_IPS: u32 = 4_000_000;

/// Why a run could not start, in one line.
#[derive(Debug)]
pub enum RunError {
    /// A file named on the command line is not there.
    Missing { flag: &'static str, path: PathBuf },
    /// The kernel file is neither a bzImage nor a multiboot(2) kernel.
    NotAKernel(PathBuf),
    /// Building, staging, installing or starting failed.
    Runner(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Missing { flag, path } => write!(f, "{flag} {}: no such file", path.display()),
            Self::NotAKernel(path) => write!(
                f,
                "--kernel {}: neither a Linux bzImage (no \"HdrS\" at 0x202) nor a multiboot or multiboot2 kernel (no header)",
                path.display()
            ),
            Self::Runner(message) => f.write_str(message),
        }
    }
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        Self::Runner(message)
    }
}

/// `test-matrix run ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    let args = match RunArgs::try_parse_from(
        std::iter::once("run").chain(args.iter().map(String::as_str)),
    ) {
        Ok(args) => args,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("runner: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The kernel, initrd and command line to boot.
struct Inputs {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    append: String,
}

fn inputs(args: &RunArgs) -> Result<Inputs, RunError> {
    if args.linux_test || args.linux_kvm {
        let assets = linux::prepare()?;
        let append = format!("{} {}", linux::TEST_APPEND, args.append)
            .trim()
            .to_string();
        return Ok(Inputs {
            kernel: assets.kernel.vmlinuz,
            initrd: Some(if args.linux_kvm {
                assets.kvm_initrd
            } else {
                assets.initrd
            }),
            append,
        });
    }
    let kernel = args
        .kernel
        .clone()
        .expect("clap requires --kernel without --linux-test or --linux-kvm");
    Ok(Inputs {
        kernel,
        initrd: args.initrd.clone(),
        append: args.append.clone(),
    })
}

fn kind_of(kernel: &Path) -> Result<KernelKind, RunError> {
    let image = std::fs::read(kernel)
        .map_err(|e| RunError::Runner(format!("--kernel {}: {e}", kernel.display())))?;
    KernelKind::detect(&image).ok_or_else(|| RunError::NotAKernel(kernel.to_path_buf()))
}

fn execute(args: &RunArgs) -> Result<ExitCode, RunError> {
    let boot = match boot(args, true) {
        Ok(boot) => boot,
        Err(RunError::Runner(e)) if e.contains("lacks VMX") || e.contains("no /dev/kvm") => {
            eprintln!("runner: {e}");
            return Ok(ExitCode::from(EXIT_NO_VMX));
        }
        Err(e) => return Err(e),
    };
    let what = if args.bare {
        "the emulator ended by itself"
    } else {
        "verdict"
    };
    eprintln!(
        "runner: {what}: {:?} after {:.2} s wall",
        boot.verdict,
        boot.wall.as_secs_f64()
    );
    Ok(match boot.verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::FAILURE,
        Verdict::NoVmx => ExitCode::from(EXIT_NO_VMX),
        Verdict::Missing(why) => {
            eprintln!("runner: {why}");
            ExitCode::from(EXIT_NO_VERDICT)
        }
    })
}

/// Builds what `args` needs and boots it, streaming the console to stdout when `echo` is set (not
/// when boots run in parallel, as `bench-linux`'s do). An emulator without VT-x is an error here.
pub fn boot(args: &RunArgs, echo: bool) -> Result<emulator::Boot, RunError> {
    // Cheap checks first: a bad file name fails before anything is built or installed.
    let others = args
        .guests
        .iter()
        .map(|spec| GuestRun::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = args.kernel.as_ref().filter(|p| !p.is_file()) {
        return Err(RunError::Missing {
            flag: "--kernel",
            path: path.clone(),
        });
    }
    if let Some(path) = args.initrd.as_ref().filter(|p| !p.is_file()) {
        return Err(RunError::Missing {
            flag: "--initrd",
            path: path.clone(),
        });
    }
    if let Some(kernel) = &args.kernel {
        kind_of(kernel)?;
    }
    let (emulator, platform) = match args.emulator {
        EmulatorChoice::Bochs => (
            Emulator::Bochs {
                cpu: args.cpu.clone(),
            },
            tools::BOCHS_TOOLS,
        ),
        EmulatorChoice::QemuKvm => (Emulator::QemuKvm { uefi: false }, tools::QEMU_TOOLS),
    };
    let gdb_tools = if args.gdb.is_some() {
        tools::GDB_TOOLS
    } else {
        &[]
    };
    tools::ensure(&[tools::IMAGE_TOOLS, platform, gdb_tools])?;
    if !args.bare {
        tools::ensure_kernel_target()?;
    }
    let input = inputs(args)?;
    let kind = kind_of(&input.kernel)?;
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| run_dir().join(if args.bare { "run-bare" } else { "run-l1hv" }));
    let iso = if args.bare {
        iso::bare(
            &dir,
            kind,
            &input.kernel,
            input.initrd.as_deref(),
            &input.append,
        )?
    } else {
        let expect = args.expect.unwrap_or(
            if input
                .append
                .split_whitespace()
                .any(|w| w == linux::END_WITH_PANIC)
            {
                Expect::Reset
            } else {
                Expect::Poweroff
            },
        );
        let guest = iso::KernelGuest {
            name: args.name.clone(),
            mem: args.mem,
            forward: args.forward,
            expect,
            append: input.append.clone(),
            initrd: input.initrd.is_some(),
            gdb: args.gdb.is_some(),
        };
        iso::under_l1hv(
            &dir,
            &guest,
            &input.kernel,
            input.initrd.as_deref(),
            &others,
        )?
    };
    let settings = Settings {
        dir,
        megs: args.mem.0 + if args.bare { 0 } else { L1HV_MEGS },
        ips: if kind == KernelKind::BzImage {
            LINUX_IPS
        } else {
            DEMO_IPS
        },
        limit: Duration::from_secs(args.timeout),
        echo,
        end: if args.bare {
            End::EmulatorExit
        } else {
            End::Verdict
        },
        gdb_port: args.gdb,
    };
    eprintln!(
        "runner: booting {} ({kind:?}{}) on {emulator:?}, {} MiB, limit {} s",
        iso.display(),
        if args.bare { ", bare" } else { " under l1-hv" },
        settings.megs,
        args.timeout
    );
    if let Some(port) = args.gdb {
        eprintln!("runner: COM2 waits for gdb: target remote 127.0.0.1:{port}");
    }
    Ok(emulator::boot_with(&emulator, &iso, &settings)?)
}
