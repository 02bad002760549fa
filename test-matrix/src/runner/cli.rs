//! The runner's subcommands: `build` (the ISO) and `demo` (build, boot, stream, verdict).

use super::emulator::{self, Emulator, Verdict, DEFAULT_BOCHS_CPU};
use super::{bare, image, linux, tools};
use std::process::ExitCode;
use std::time::Duration;

const DEMO_USAGE: &str =
    "demo [--emulator bochs|qemu-kvm|qemu-tcg|qemu-kvm-uefi|qemu-tcg-uefi] [--cpu MODEL] [--timeout SECONDS] [--gdb PORT] [--guest \"IMAGE OPTIONS\"]... | [--bare IMAGE]";

/// Exit status when the chosen platform has no VT-x (l1-hv said NO-VMX, or the host lacks VMX).
const EXIT_NO_VMX: u8 = 3;
/// Exit status when no verdict came (emulator died, or the time limit passed).
const EXIT_NO_VERDICT: u8 = 4;

/// `test-matrix build`: prints the ISO's path.
pub fn build() -> ExitCode {
    match prepare(&[]).and_then(|()| image::iso(&image::demo())) {
        Ok(iso) => {
            println!("{}", iso.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `test-matrix demo [--emulator bochs|qemu-kvm|qemu-tcg|qemu-kvm-uefi|qemu-tcg-uefi] [--cpu MODEL] [--timeout SECONDS]
/// [--guest "IMAGE OPTIONS"]... | [--bare IMAGE]`: `--guest` replaces the demo's guest list;
/// `--bare` boots that guest image alone, without l1-hv (see `bare`).
pub fn demo(args: &[String]) -> ExitCode {
    let mut emulator = Emulator::Bochs {
        cpu: DEFAULT_BOCHS_CPU.into(),
    };
    let mut limit = Duration::from_secs(120);
    let mut runs = Vec::new();
    let mut bare_image = None;
    let mut gdb_port = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value.map(String::as_str)) {
            ("--emulator", Some("bochs")) => {
                emulator = Emulator::Bochs {
                    cpu: DEFAULT_BOCHS_CPU.into(),
                }
            }
            ("--emulator", Some("qemu-kvm")) => emulator = Emulator::QemuKvm { uefi: false },
            ("--emulator", Some("qemu-kvm-uefi")) => emulator = Emulator::QemuKvm { uefi: true },
            ("--emulator", Some("qemu-tcg")) => emulator = Emulator::QemuTcg { uefi: false },
            ("--emulator", Some("qemu-tcg-uefi")) => emulator = Emulator::QemuTcg { uefi: true },
            ("--cpu", Some(model)) => emulator = Emulator::Bochs { cpu: model.into() },
            ("--timeout", Some(s)) if s.parse::<u64>().is_ok() => {
                limit = Duration::from_secs(s.parse().unwrap_or(120))
            }
            ("--bare", Some(name)) => bare_image = Some(name.to_string()),
            ("--gdb", Some(port)) if port.parse::<u16>().is_ok() => gdb_port = port.parse().ok(),
            ("--guest", Some(spec)) => match image::GuestRun::parse(spec) {
                Ok(run) => runs.push(run),
                Err(e) => return fail(&e),
            },
            _ => return fail(&format!("bad argument {arg:?}; usage: {DEMO_USAGE}")),
        }
    }
    let platform_tools = match emulator {
        Emulator::Bochs { .. } => tools::BOCHS_TOOLS,
        Emulator::QemuKvm { .. } | Emulator::QemuTcg { .. } => tools::QEMU_TOOLS,
    };
    if bare_image.is_some() && !runs.is_empty() {
        return fail(&format!(
            "--bare boots one image without l1-hv: no --guest with it; usage: {DEMO_USAGE}"
        ));
    }
    if runs.is_empty() {
        runs = image::demo();
    }
    let gdb_tools = if gdb_port.is_some() {
        tools::GDB_TOOLS
    } else {
        &[]
    };
    let iso = tools::ensure(&[gdb_tools])
        .and_then(|()| prepare(platform_tools))
        .and_then(|()| match &bare_image {
            Some(name) => bare::iso(name),
            None => image::iso(&runs),
        });
    let iso = match iso {
        Ok(iso) => iso,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "runner: booting {} on {emulator:?} (limit {} s)",
        iso.display(),
        limit.as_secs()
    );
    let settings = emulator::Settings {
        gdb_port,
        ..emulator::Settings::standard(&emulator, limit, true)
    };
    if let Some(port) = gdb_port {
        eprintln!("runner: COM2 waits for gdb: target remote 127.0.0.1:{port}");
    }
    let boot = match emulator::boot_with(&emulator, &iso, &settings) {
        Ok(boot) => boot,
        Err(e) if e.contains("lacks VMX") || e.contains("no /dev/kvm") => {
            eprintln!("runner: {e}");
            return ExitCode::from(EXIT_NO_VMX);
        }
        Err(e) => return fail(&e),
    };
    eprintln!(
        "runner: verdict {:?} after {:.2} s wall",
        boot.verdict,
        boot.wall.as_secs_f64()
    );
    match boot.verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::FAILURE,
        Verdict::NoVmx => ExitCode::from(EXIT_NO_VMX),
        Verdict::Missing(why) => {
            eprintln!("runner: {why}");
            ExitCode::from(EXIT_NO_VERDICT)
        }
    }
}

/// `test-matrix linux-assets`: the Linux test's kernel and initramfs (made once, before boots
/// that run in parallel use them), as `kernel PATH`, `initrd PATH`, `kvm-initrd PATH`,
/// `system-map PATH`, `modules PATH`, `append ARGS`.
pub fn linux_assets() -> ExitCode {
    match linux::prepare() {
        Ok(assets) => {
            println!("kernel {}", assets.kernel.vmlinuz.display());
            println!("initrd {}", assets.initrd.display());
            println!("kvm-initrd {}", assets.kvm_initrd.display());
            println!("system-map {}", assets.kernel.system_map.display());
            println!("modules {}", assets.kernel.modules.display());
            println!("append {}", linux::TEST_APPEND);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Installs what building and booting need.
fn prepare(platform: &[tools::Tool]) -> Result<(), String> {
    tools::ensure(&[tools::IMAGE_TOOLS, platform])?;
    tools::ensure_kernel_target()
}

fn fail(message: &str) -> ExitCode {
    eprintln!("runner: {message}");
    ExitCode::FAILURE
}
