//! The project's own multiboot1 kernel, `mb-contract` (l2-guests), checks the machine contract
//! kvm-unit-tests' images rely on (docs/kvm-unit-tests.md): booted bare on Bochs by GRUB's
//! `multiboot`/`module`, and under l1-hv (`boot=auto`) with `forward=none` and `forward=all`, it
//! must print the same check lines, and under l1-hv end through the exit port with status 1.
//!
//! The one line allowed to differ is Bochs 2.7's erratum: bare, it cannot enable a local APIC
//! again after its global enable was cleared; l1-hv emulates the disable (devices::apic_base).
//!
//! The three boots run in parallel, each in its own directory under target/run/.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wall-clock limit of each boot (about 10 s of one core each when the machine is idle).
const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// The environment module: kvm-unit-tests' keys, and the arguments the kernel must see.
const ENV: &str = "NR_CPUS=1\nMEMSIZE=256\nTEST_DEVICE=0\nEXPECT_ARGS=alpha beta\n";

/// Every check the kernel makes, in order, as it reports them when they pass.
const CHECKS: &[&str] = &[
    "ports-pic-post",
    "boot-magic",
    "env-module",
    "cmdline-argv",
    "memory-map",
    "apic-base",
    "apic-id",
    "apic-version",
    "apic-spiv-tpr",
    "self-ipi-fixed",
    "self-ipi-nmi",
    "apic-timer-oneshot",
    "hlt-wake",
    "apic-reenable",
    "single-step-cpuid",
    "single-step-rdmsr",
    "single-step-out",
    "rf-in-fault-frame",
    "absent-port-all-ones",
];

/// Bare Bochs 2.7 ignores the write that enables the APIC again (docs/kvm-unit-tests.md).
const BOCHS_APIC_ERRATUM: &str = "FAIL apic-reenable: IA32_APIC_BASE not enabled again";

#[derive(Clone, Copy)]
enum Mode {
    Bare,
    L1hv(&'static str),
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn images() -> PathBuf {
    root().join("target/images/x86_64-unknown-none/image")
}

/// The GRUB menu entry: QEMU's multiboot convention puts the image's name first on the
/// command line (argv[0]); GRUB's `multiboot` passes only the words after the file, and
/// l1-hv the words after `--`.
fn grub_cfg(mode: Mode) -> String {
    let entry = match mode {
        Mode::Bare => {
            "  multiboot /boot/mb-contract mb-contract alpha beta\n  module /boot/env\n".into()
        }
        Mode::L1hv(forward) => format!(
            "  multiboot2 /boot/l1-hv\n  module2 /boot/mb-contract mb-contract boot=auto mem=128M \
             forward={forward} expect=poweroff -- mb-contract alpha beta\n  module2 /boot/env +\n"
        ),
    };
    format!(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"mb-contract\" {{\n{entry}  boot\n}}\n"
    )
}

fn stage(dir: &Path, mode: Mode) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let boot = dir.join("iso/boot");
    std::fs::create_dir_all(boot.join("grub")).unwrap();
    std::fs::copy(images().join("mb-contract"), boot.join("mb-contract")).unwrap();
    std::fs::copy(images().join("l1-hv"), boot.join("l1-hv")).unwrap();
    std::fs::write(boot.join("env"), ENV).unwrap();
    std::fs::write(boot.join("grub/grub.cfg"), grub_cfg(mode)).unwrap();
    let iso = dir.join("boot.iso");
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .args([
            "--install-modules=multiboot multiboot2 normal iso9660 part_msdos serial terminal",
            "--locales=",
            "--fonts=",
            "--themes=",
        ])
        .arg(dir.join("iso"))
        .output()
        .expect("grub-mkrescue runs");
    assert!(
        out.status.success(),
        "grub-mkrescue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    iso
}

/// Boots `mode` on Bochs until its last line (bare: the summary; l1-hv: its verdict) and
/// returns the console.
fn boot(label: &str, mode: Mode) -> String {
    let dir = root().join("target/run").join(format!("multiboot-{label}"));
    let iso = stage(&dir, mode);
    let serial = dir.join("serial.txt");
    std::fs::write(&serial, b"").unwrap();
    // l1-hv takes its own memory besides the guest's 128 MiB.
    let megs = match mode {
        Mode::Bare => 128,
        Mode::L1hv(_) => 384,
    };
    let config = dir.join("bochsrc");
    std::fs::write(
        &config,
        format!(
            "megs: {megs}\ncpu: model=corei7_haswell_4770, ips=4000000, reset_on_triple_fault=0\n\
             clock: sync=none\nromimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
             vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest\n\
             ata0-master: type=cdrom, path={}, status=inserted\nboot: cdrom\n\
             com1: enabled=1, mode=file, dev={}\ndisplay_library: term\npanic: action=fatal\n\
             error: action=report\nmouse: enabled=0\nlog: {}\n",
            iso.display(),
            serial.display(),
            dir.join("bochs.log").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("bochs.rc"), "c\nquit\n").unwrap();
    let mut bochs = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&config)
        .arg("-rc")
        .arg(dir.join("bochs.rc"))
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bochs starts");
    let last_line = match mode {
        Mode::Bare => "SUMMARY: ",
        Mode::L1hv(_) => "l1-hv: verdict ",
    };
    let start = Instant::now();
    let console = loop {
        let text =
            String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).replace('\r', "");
        let finished = text.lines().any(|l| l.starts_with(last_line)) && text.ends_with('\n');
        if finished || start.elapsed() > BOOT_LIMIT || bochs.try_wait().ok().flatten().is_some() {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = bochs.kill();
    let _ = bochs.wait();
    // Bochs may have written the last bytes between the read above and its exit.
    let last =
        String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).replace('\r', "");
    let console = if last.len() > console.len() {
        last
    } else {
        console
    };
    eprintln!("== {label}\n{console}");
    console
}

/// The kernel's own lines: check results and the summary, without l1-hv's `guest NAME: `.
fn kernel_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .map(|l| l.strip_prefix("guest mb-contract: ").unwrap_or(l))
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL ") || l.starts_with("SUMMARY: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn mb_contract_reports_the_same_checks_bare_and_under_l1hv() {
    let built = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("build")
        .output()
        .expect("runner starts");
    assert!(
        built.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let runs: Vec<(&str, Mode)> = vec![
        ("bare", Mode::Bare),
        ("none", Mode::L1hv("none")),
        ("all", Mode::L1hv("all")),
    ];
    let consoles: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(label, mode)| s.spawn(move || boot(label, mode)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("boot thread"))
            .collect()
    });

    let mut passing: Vec<String> = CHECKS.iter().map(|c| format!("PASS {c}")).collect();
    passing.push(format!(
        "SUMMARY: {} tests, 0 unexpected failures",
        CHECKS.len()
    ));
    for (console, label) in consoles[1..].iter().zip(["none", "all"]) {
        assert_eq!(
            kernel_lines(console),
            passing,
            "under l1-hv forward={label}"
        );
        assert!(
            console.contains("l1-hv: guest 1 mb-contract: exited with status 1: PASS\n"),
            "forward={label}: exit port status"
        );
        assert!(
            console.contains("l1-hv: verdict PASS (1 runs)\n"),
            "forward={label}"
        );
    }
    let mut bare = passing.clone();
    let erratum = CHECKS.iter().position(|&c| c == "apic-reenable").unwrap();
    bare[erratum] = BOCHS_APIC_ERRATUM.into();
    bare[CHECKS.len()] = format!("SUMMARY: {} tests, 1 unexpected failures", CHECKS.len());
    assert_eq!(kernel_lines(&consoles[0]), bare, "bare on Bochs");
}
