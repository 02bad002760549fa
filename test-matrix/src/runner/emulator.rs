//! Booting the ISO headless and reading l1-hv's console until its verdict line, under a
//! wall-clock limit: no run can hang CI.

use super::run_dir;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where to boot.
#[derive(Clone, Debug)]
pub enum Emulator {
    /// Bochs with an emulated VT-x CPU model (CI's platform).
    Bochs {
        /// Bochs CPU model, e.g. `corei7_haswell_4770` (EPT, VPID, VMCS shadowing).
        cpu: String,
    },
    /// QEMU with KVM and `-cpu host`: nested VMX on an Intel host with `kvm_intel nested=1`.
    QemuKvm {
        /// Boot through UEFI firmware (OVMF) instead of the BIOS.
        uefi: bool,
    },
    /// QEMU's TCG: no VMX at all; shows l1-hv's "no VMX" path.
    QemuTcg {
        /// Boot through UEFI firmware (OVMF) instead of the BIOS.
        uefi: bool,
    },
}

/// The Bochs CPU model the runner uses unless told otherwise.
pub const DEFAULT_BOCHS_CPU: &str = "corei7_haswell_4770";

/// What the verdict line (`NAME: verdict WORD ...`, printed by l1-hv or by a bare-booted image
/// such as ghv) said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `NAME: verdict PASS ...`; for a bare kernel (`End::EmulatorExit`), the emulator ended by itself.
    Pass,
    /// `NAME: verdict FAIL ...` (or any other word).
    Fail,
    /// `NAME: verdict NO-VMX`.
    NoVmx,
    /// No verdict line: the emulator ended or the time limit passed first (the reason).
    Missing(String),
}

/// A finished boot.
pub struct Boot {
    /// The verdict.
    pub verdict: Verdict,
    /// Everything printed on COM1 (CR LF normalised to LF).
    pub console: String,
    /// Wall time from starting the emulator to the verdict (or its end).
    pub wall: Duration,
}

/// How one boot runs: where its files go, the machine, when it is over.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The boot's own directory (bochsrc, serial log, bochs.log): boots with different
    /// directories can run in parallel.
    pub dir: PathBuf,
    /// Emulated memory in MiB.
    pub megs: u32,
    /// Bochs' instructions per emulated second: what the guest's timers count against.
    pub ips: u32,
    /// Wall-clock limit.
    pub limit: Duration,
    /// Stream the console to stdout.
    pub echo: bool,
    /// What ends the boot.
    pub end: End,
    /// COM2 as a TCP server on 127.0.0.1 at this port, for gdb (docs/debugging.md): l1-hv
    /// serves gdb there for a guest with the option `gdb=com2`.
    pub gdb_port: Option<u16>,
}

/// What ends a boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A verdict line (l1-hv, or a bare image that prints one such as ghv).
    Verdict,
    /// The emulator exiting by itself (a bare kernel powering off, e.g. Linux through ACPI S5),
    /// which is then the pass: nothing prints a verdict. Needs no VMX.
    EmulatorExit,
}

impl Settings {
    /// What the demo, the bench and the system matrix use: `target/run/EMULATOR/`, 256 MiB,
    /// 4 M instructions per emulated second, until the verdict.
    pub fn standard(emulator: &Emulator, limit: Duration, echo: bool) -> Self {
        let dir = run_dir().join(match emulator {
            Emulator::Bochs { .. } => "bochs",
            Emulator::QemuKvm { uefi: false } => "qemu-kvm",
            Emulator::QemuKvm { uefi: true } => "qemu-kvm-uefi",
            Emulator::QemuTcg { uefi: false } => "qemu-tcg",
            Emulator::QemuTcg { uefi: true } => "qemu-tcg-uefi",
        });
        Self {
            dir,
            megs: 256,
            ips: 4_000_000,
            limit,
            echo,
            end: End::Verdict,
            gdb_port: None,
        }
    }
}

/// Boots `iso` with the standard settings and streams the console to stdout when `echo` is set.
pub fn boot(emulator: &Emulator, iso: &Path, limit: Duration, echo: bool) -> Result<Boot, String> {
    boot_with(emulator, iso, &Settings::standard(emulator, limit, echo))
}

/// Boots `iso` with `settings`.
pub fn boot_with(emulator: &Emulator, iso: &Path, settings: &Settings) -> Result<Boot, String> {
    let dir = &settings.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let serial = dir.join("serial.txt");
    let _ = std::fs::remove_file(&serial);
    std::fs::write(&serial, b"").map_err(|e| format!("{}: {e}", serial.display()))?;
    // A stale log would be read as this boot's (`bochs_panic`).
    let _ = std::fs::remove_file(dir.join("bochs.log"));
    let child = match emulator {
        Emulator::Bochs { cpu } => spawn_bochs(dir, iso, &serial, cpu, settings)?,
        Emulator::QemuKvm { uefi } => {
            if settings.end == End::Verdict {
                check_kvm_vmx()?;
            }
            spawn_qemu(
                iso,
                &serial,
                &["-accel", "kvm", "-cpu", "host"],
                *uefi,
                settings,
            )?
        }
        Emulator::QemuTcg { uefi } => spawn_qemu(
            iso,
            &serial,
            &["-accel", "tcg", "-cpu", "max"],
            *uefi,
            settings,
        )?,
    };
    Ok(watch(child, &serial, settings))
}

fn spawn_bochs(
    dir: &Path,
    iso: &Path,
    serial: &Path,
    cpu: &str,
    settings: &Settings,
) -> Result<Child, String> {
    let (megs, ips) = (settings.megs, settings.ips);
    let config = dir.join("bochsrc");
    // Bochs' socket-server mode waits for gdb to connect before the machine starts.
    let com2 = match settings.gdb_port {
        Some(port) => format!("com2: enabled=1, mode=socket-server, dev=127.0.0.1:{port}\n"),
        None => String::new(),
    };
    // `reset_on_triple_fault=0`: a host triple fault ends Bochs at once instead of rebooting.
    let text = format!(
        "megs: {megs}\n\
         cpu: model={cpu}, ips={ips}, reset_on_triple_fault=0\n\
         clock: sync=none\n\
         romimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
         vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest\n\
         ata0-master: type=cdrom, path={iso}, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev={serial}\n\
         {com2}\
         display_library: term\n\
         panic: action=fatal\n\
         error: action=report\n\
         mouse: enabled=0\n\
         log: {log}\n",
        iso = iso.display(),
        serial = serial.display(),
        log = dir.join("bochs.log").display(),
    );
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    // Debian's Bochs has the internal debugger: `c` runs, `quit` leaves if it ever stops.
    let rc = dir.join("bochs.rc");
    std::fs::write(&rc, "c\nquit\n").map_err(|e| format!("{}: {e}", rc.display()))?;
    let screen = std::fs::File::create(dir.join("screen.txt")).map_err(|e| e.to_string())?;
    Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&config)
        .arg("-rc")
        .arg(&rc)
        .env("TERM", "dumb") // the term display dies at start without TERM (CI may have none)
        .stdin(Stdio::null())
        .stdout(screen.try_clone().map_err(|e| e.to_string())?)
        .stderr(screen)
        .spawn()
        .map_err(|e| format!("cannot start bochs: {e}"))
}

/// QEMU's UEFI firmware (Debian package `ovmf`).
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

fn spawn_qemu(
    iso: &Path,
    serial: &Path,
    accel: &[&str],
    uefi: bool,
    settings: &Settings,
) -> Result<Child, String> {
    let megs = settings.megs;
    let firmware: &[&str] = if uefi { &["-bios", OVMF] } else { &[] };
    // QEMU's `server` waits for gdb to connect before the machine starts, as Bochs does.
    let com2: Vec<String> = match settings.gdb_port {
        Some(port) => vec!["-serial".into(), format!("tcp:127.0.0.1:{port},server")],
        None => Vec::new(),
    };
    Command::new("qemu-system-x86_64")
        .args(accel)
        .args(firmware)
        .args([
            "-m",
            &megs.to_string(),
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-cdrom")
        .arg(iso)
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args(com2)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))
}

/// Nested VMX under KVM needs /dev/kvm and an Intel CPU whose VMX KVM exposes.
fn check_kvm_vmx() -> Result<(), String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_vmx = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "vmx"));
    if !has_vmx {
        return Err(
            "this host lacks VMX (no 'vmx' CPU flag): QEMU/KVM cannot offer nested VT-x here"
                .into(),
        );
    }
    if !Path::new("/dev/kvm").exists() {
        return Err("this host has VMX but no /dev/kvm: load kvm_intel (nested=1)".into());
    }
    Ok(())
}

fn watch(mut child: Child, serial: &Path, settings: &Settings) -> Boot {
    let (limit, echo) = (settings.limit, settings.echo);
    // A bare kernel prints no verdict: only the emulator's end counts.
    let verdict_of = |console: &str| match settings.end {
        End::Verdict => parse_verdict(console),
        End::EmulatorExit => None,
    };
    let start = Instant::now();
    let mut seen = 0;
    let mut console = String::new();
    let verdict = loop {
        let bytes = std::fs::read(serial).unwrap_or_default();
        if bytes.len() > seen {
            let fresh = String::from_utf8_lossy(&bytes[seen..]).replace('\r', "");
            seen = bytes.len();
            if echo {
                print!("{fresh}");
                let _ = std::io::stdout().flush();
            }
            console.push_str(&fresh);
            if let Some(verdict) = verdict_of(&console) {
                break verdict;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // One last read: the emulator may have written the final bytes just before exiting.
            let bytes = std::fs::read(serial).unwrap_or_default();
            let fresh = String::from_utf8_lossy(&bytes[seen.min(bytes.len())..]).replace('\r', "");
            if echo {
                print!("{fresh}");
            }
            console.push_str(&fresh);
            break match settings.end {
                End::Verdict => verdict_of(&console).unwrap_or_else(|| {
                    Verdict::Missing(format!("emulator exited ({status}) before a verdict"))
                }),
                End::EmulatorExit => match bochs_panic(&settings.dir) {
                    Some(panic) => {
                        Verdict::Missing(format!("the emulator stopped ({status}): {panic}"))
                    }
                    None => Verdict::Pass,
                },
            };
        }
        if start.elapsed() > limit {
            break Verdict::Missing(match settings.end {
                End::Verdict => format!("no verdict within {} s", limit.as_secs()),
                End::EmulatorExit => {
                    format!("the emulator did not end within {} s", limit.as_secs())
                }
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    Boot {
        verdict,
        console,
        wall,
    }
}

/// How a kernel powers Bochs off on purpose, which Bochs reports as a panic too (and, with
/// `panic: action=fatal`, exits with status 1 on it as on any other): ACPI S5, and Bochs' own
/// shutdown port (0x8900), which test kernels use where QEMU's exit port is absent.
const BOCHS_POWER_OFFS: &[&str] = &[
    "ACPI control: soft power off",
    "Shutdown port: shutdown requested",
];

/// The first Bochs panic in `dir/bochs.log` other than a power-off: a bare kernel that powered
/// off ended normally, one that stopped Bochs did not.
fn bochs_panic(dir: &Path) -> Option<String> {
    let log = std::fs::read_to_string(dir.join("bochs.log")).ok()?;
    let panic = log
        .lines()
        .find(|l| l.contains(">>PANIC<<") && !BOCHS_POWER_OFFS.iter().any(|off| l.contains(off)))?;
    Some(panic[panic.find(">>PANIC<<")?..].to_string())
}

/// Finds the verdict line in the console text: `NAME: verdict WORD`, where NAME is one word
/// at the start of the line (l1-hv, or a bare-booted image such as ghv). Text a guest prints
/// through l1-hv carries l1-hv's prefix, so a guest's own verdict line is not taken for l1-hv's.
pub fn parse_verdict(console: &str) -> Option<Verdict> {
    let (line, rest) = console.lines().find_map(|l| {
        let (name, rest) = l.split_once(": verdict ")?;
        let one_word = !name.is_empty() && !name.contains(char::is_whitespace);
        one_word.then_some((l, rest))
    })?;
    // Only a complete line counts (the rest may still be arriving).
    if !console.contains(&format!("{line}\n")) {
        return None;
    }
    let word = rest.split_whitespace().next()?;
    Some(match word {
        "PASS" => Verdict::Pass,
        "NO-VMX" => Verdict::NoVmx,
        _ => Verdict::Fail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_needs_a_complete_line() {
        assert_eq!(parse_verdict("l1-hv: verdict PA"), None);
        assert_eq!(
            parse_verdict("x\nl1-hv: verdict PASS (5 runs)\n"),
            Some(Verdict::Pass)
        );
        assert_eq!(
            parse_verdict("l1-hv: verdict FAIL (1 of 5 checks failed)\n"),
            Some(Verdict::Fail)
        );
        assert_eq!(
            parse_verdict("l1-hv: verdict NO-VMX\n"),
            Some(Verdict::NoVmx)
        );
        assert_eq!(parse_verdict("guest says l1-hv: verdict PASS\n"), None);
        assert_eq!(
            parse_verdict("ghv: verdict PASS (22 scenarios)\n"),
            Some(Verdict::Pass)
        );
        assert_eq!(
            parse_verdict("ghv: verdict FAIL (panic)\n"),
            Some(Verdict::Fail)
        );
        assert_eq!(
            parse_verdict("l1-hv: guest 1 ghv: ghv: verdict PASS\n"),
            None
        );
    }

    #[test]
    fn a_power_off_is_no_bochs_panic_but_others_are() {
        let dir = std::env::temp_dir().join(format!("bochs-panic-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("bochs.log");
        std::fs::write(
            &log,
            "01206383887p[ACPI  ] >>PANIC<< ACPI control: soft power off\n",
        )
        .unwrap();
        assert_eq!(bochs_panic(&dir), None);
        std::fs::write(
            &log,
            "00000101010p[UNMP  ] >>PANIC<< Shutdown port: shutdown requested\n",
        )
        .unwrap();
        assert_eq!(bochs_panic(&dir), None);
        std::fs::write(
            &log,
            "00000000001p[CPU0  ] >>PANIC<< exception(): 3rd (13) exception with no resolution\n",
        )
        .unwrap();
        assert_eq!(
            bochs_panic(&dir).as_deref(),
            Some(">>PANIC<< exception(): 3rd (13) exception with no resolution")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
