//! The project's own multiboot1 kernel, `mb-contract` (l2-guests), checks the machine contract
//! kvm-unit-tests' images rely on (docs/kvm-unit-tests.md): booted bare on Bochs by GRUB's
//! `multiboot`/`module`, and under l1-hv (`boot=auto`) with `forward=none` and `forward=all`, it
//! must print the same check lines, and under l1-hv end through the exit port with status 1.
//!
//! The one line allowed to differ is Bochs 2.7's erratum: bare, it cannot enable a local APIC
//! again after its global enable was cleared; l1-hv emulates the disable (devices::apic_base).
//!
//! Each boot is a `test-matrix run` (the user's command for their own kernels); the three run
//! in parallel, each in its own directory under target/run/.

use std::path::PathBuf;
use std::process::Command;

/// Wall-clock limit of each boot in seconds (about 10 s of one core each when the machine is
/// idle).
const BOOT_LIMIT_S: &str = "300";

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

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One `test-matrix run` of the kernel as a user boots their own (`--bare`, or under l1-hv with
/// `forward` as given): QEMU's multiboot convention puts the image's name first on its command
/// line (argv[0]); the environment file is the one module. Returns the exit status and console.
fn boot(label: &str, forward: Option<&str>) -> (Option<i32>, String) {
    let dir = root().join("target/run").join(format!("multiboot-{label}"));
    std::fs::create_dir_all(&dir).unwrap();
    let env = dir.join("env");
    std::fs::write(&env, ENV).unwrap();
    let kernel = root().join("target/images/x86_64-unknown-none/image/mb-contract");
    let mut run = Command::new(env!("CARGO_BIN_EXE_test-matrix"));
    run.arg("run")
        .arg("--kernel")
        .arg(&kernel)
        .arg("--initrd")
        .arg(&env);
    run.args([
        "--append",
        "mb-contract alpha beta",
        "--mem",
        "128M",
        "--name",
        "mb-contract",
    ]);
    run.args(["--timeout", BOOT_LIMIT_S])
        .arg("--run-dir")
        .arg(&dir);
    match forward {
        Some(forward) => run.args(["--forward", forward]),
        None => run.arg("--bare"),
    };
    let out = run.output().expect("runner starts");
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    eprintln!(
        "== {label}\n{console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), console)
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
    // Build once before the parallel boots (each `run` would build the same images).
    let built = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("build")
        .output()
        .expect("runner starts");
    assert!(
        built.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let runs = [("bare", None), ("none", Some("none")), ("all", Some("all"))];
    let boots: Vec<(Option<i32>, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|&(label, forward)| s.spawn(move || boot(label, forward)))
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
    for ((status, console), label) in boots[1..].iter().zip(["none", "all"]) {
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
        assert_eq!(*status, Some(0), "forward={label}: run's exit status");
    }
    let mut bare = passing.clone();
    let erratum = CHECKS.iter().position(|&c| c == "apic-reenable").unwrap();
    bare[erratum] = BOCHS_APIC_ERRATUM.into();
    bare[CHECKS.len()] = format!("SUMMARY: {} tests, 1 unexpected failures", CHECKS.len());
    assert_eq!(kernel_lines(&boots[0].1), bare, "bare on Bochs");
    // The kernel ends bare Bochs itself (its shutdown port), so the bare run passes.
    assert_eq!(boots[0].0, Some(0), "bare run's exit status");
}
