//! Issue 14's first milestone, held: Debian's own `kvm_intel` loads in the Linux guest under
//! l1-hv and two VMs made through its /dev/kvm (L3: real mode, 64-bit paged) run to HLT, each of
//! their exits reaching KVM.
//! One boot, `test-matrix run --linux-kvm` (the KVM initramfs, docs/linux.md "KVM as a guest
//! hypervisor"), alone: the bare reference lives in the docs, not here, to keep CI short.

use std::path::PathBuf;
use std::process::Command;

/// Wall-clock limit of the boot (~40 s alone on an idle core, ~60 s on a loaded one).
const BOOT_LIMIT_S: &str = "300";

/// Lines of the guest's console that the milestone needs, as l1-hv relays them.
const GUEST_LINES: &[&str] = &[
    "guest linux: kvm: insmod kvm-intel: ok",
    "guest linux: kvm: kvm_intel.nested=Y",
    "guest linux: kvm: kvm_intel.ept=Y",
    "guest linux: kvm: kvm_intel.vpid=Y",
    "guest linux: kvm: kvm_intel.unrestricted_guest=Y",
    "guest linux: kvm: kvm_intel.vnmi=Y",
    "guest linux: kvm: real-mode exit KVM_EXIT_IO out port=0x10 data=[42]",
    "guest linux: kvm: real-mode exit KVM_EXIT_IO in port=0x11 size=1",
    "guest linux: kvm: real-mode exit KVM_EXIT_IO out port=0x10 data=[5a]",
    "guest linux: kvm: real-mode exit KVM_EXIT_MMIO write address=0x10000 data=[43]",
    "guest linux: kvm: real-mode exit KVM_EXIT_MMIO write address=0x10000 data=[44]",
    "guest linux: kvm: real-mode exit KVM_EXIT_HLT",
    "guest linux: kvm: real-mode vm ran as expected: yes",
    "guest linux: kvm: 64-bit exit KVM_EXIT_IO out port=0x10 data=[64]",
    "guest linux: kvm: 64-bit exit KVM_EXIT_MMIO write address=0x10000 data=[45]",
    "guest linux: kvm: 64-bit exit KVM_EXIT_HLT",
    "guest linux: kvm: 64-bit vm ran as expected: yes",
    "l1-hv: guest 1 linux: powered off: PASS",
];

#[test]
fn kvm_intel_loads_in_the_linux_guest_and_runs_a_vm() {
    let run_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/run/linux-kvm");
    let out = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .args(["run", "--linux-kvm", "--timeout", BOOT_LIMIT_S, "--run-dir"])
        .arg(&run_dir)
        .output()
        .expect("runner starts");
    let console = String::from_utf8_lossy(&out.stdout);
    // Kept for reading after a failure.
    let _ = std::fs::write(run_dir.join("console.txt"), console.as_bytes());
    let lines: Vec<&str> = console.lines().map(str::trim_end).collect();
    for wanted in GUEST_LINES {
        assert!(
            lines.contains(wanted),
            "no {wanted:?} in the console:\n{console}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The VMs' exits came to l1-hv from vmcs02 and went to KVM: the port accesses, HLTs, and
    // the host's timer interrupts while the real-mode VM looped.
    let l3 = lines
        .iter()
        .find(|l| l.starts_with("l1-hv: guest 1 linux: L3 exits "))
        .unwrap_or_else(|| panic!("no L3 exit counts in the console:\n{console}"));
    for wanted in ["[HLT]=2", "[I/O instruction]=4", "[external interrupt]="] {
        assert!(l3.contains(wanted), "{wanted} not in {l3:?}");
    }
    assert_eq!(out.status.code(), Some(0), "verdict not PASS:\n{console}");
}
