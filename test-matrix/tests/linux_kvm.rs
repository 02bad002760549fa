//! Issue 14, differential: Debian's own `kvm_intel` in the Linux guest runs VMs made through
//! its /dev/kvm (L3 in l1-hv's levels), booted twice in parallel with the KVM initramfs
//! (docs/linux.md "KVM as a guest hypervisor"):
//! - bare on Bochs, the reference: what KVM does on the emulated hardware;
//! - under l1-hv (`forward=none`), where every L3 exit reaches l1-hv first.
//!
//! The VMM's output (`vmm: ` lines: each VM's exits, what the exception VM's handlers observed,
//! in kvm_intel's default configuration, with the VMM debugging the VM, and with `ept=0`) must
//! be the same in both; l1-hv's nested counters of the run are printed. The exception VM's timed
//! loops (`bench path=` lines, read by `test-matrix bench-kvm`) must have run in both.

#[path = "../src/runner/linux/console.rs"]
mod console;
mod linux_boot;

use console::{counts, guest_lines};
use linux_boot::Run;
use std::sync::OnceLock;

/// The VMM's verdict on each VM it ran, in order: the exception VM in kvm_intel's defaults
/// (EPT), again debugged by the VMM, then after the reload with `ept=0`.
const VMS_AS_EXPECTED: &[&str] = &[
    "vmm: real-mode vm ran as expected: yes",
    "vmm: 64-bit vm ran as expected: yes",
    "vmm: exceptions ept=Y vm ran as expected: yes",
    "vmm: exceptions ept=Y guest-debug vm ran as expected: yes",
    "vmm: exceptions ept=N vm ran as expected: yes",
];

/// The timed loops each undebugged exception VM runs (floor, #DE, #PF, #UD, #DB), in the
/// configurations with EPT and with `ept=0`.
const TIMED_LOOPS: usize = 5 * 2;
/// The iterations of each (linux-workload's `TIMED_ITERATIONS`).
const TIMED_ITERATIONS: u64 = 1000;

/// The two boots.
struct Boots {
    bare: Run,
    l1hv: Run,
}

fn boots() -> &'static Boots {
    static BOOTS: OnceLock<Boots> = OnceLock::new();
    BOOTS.get_or_init(|| {
        let (kernel, initrd, append) = linux_boot::assets("kvm-initrd");
        let files = (kernel.as_str(), initrd.as_str());
        let bare = linux_boot::boot("linux-kvm-bare", files, &append, &["--bare"]);
        let l1hv = linux_boot::boot("linux-kvm-l1hv", files, &append, &["--forward", "none"]);
        Boots {
            bare: bare.join().expect("bare boot thread"),
            l1hv: l1hv.join().expect("l1-hv boot thread"),
        }
    })
}

/// The VMM's lines in `lines`.
fn vmm<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    lines
        .into_iter()
        .map(str::trim_end)
        .filter(|l| l.starts_with("vmm: "))
        .collect()
}

/// A line diff of `a` and `b` (longest common subsequence): ` ` both, `-` only in `a`, `+` only
/// in `b`.
fn diff(a: &[&str], b: &[&str]) -> String {
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if j == b.len() || (i < a.len() && common[i + 1][j] >= common[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn the_diff_keeps_common_lines_and_marks_the_others() {
    assert_eq!(
        diff(&["a", "b", "c", "d"], &["a", "x", "c", "d", "e"]),
        "  a\n- b\n+ x\n  c\n  d\n+ e\n"
    );
}

#[test]
fn bare_kvm_runs_every_vm_as_expected() {
    let bare = &boots().bare;
    let lines = vmm(bare.console.lines());
    for wanted in VMS_AS_EXPECTED {
        assert!(lines.contains(wanted), "no {wanted:?} in {lines:#?}");
    }
    assert!(
        bare.console.contains("kvm: reload kvm-intel ept=0: ok"),
        "console:\n{}",
        bare.console
    );
    assert_eq!(bare.status, Some(0), "console:\n{}", bare.console);
}

#[test]
fn under_l1hv_the_vmm_sees_what_it_sees_bare() {
    let boots = boots();
    let c = &boots.l1hv.console;
    // l1-hv's view of the run, for the record (docs/linux.md).
    let prefix = "l1-hv: guest 1 linux: ";
    for line in c.lines().filter(|l| {
        ["L3 exits ", "nested ", "forwarded exceptions "]
            .iter()
            .any(|what| l.starts_with(&format!("{prefix}{what}")))
    }) {
        println!("{line}");
    }
    let bare = vmm(boots.bare.console.lines());
    let l1hv = vmm(guest_lines(c, "linux"));
    assert!(
        bare == l1hv,
        "the VMM's output differs (- bare, + under l1-hv):\n{}\nconsole:\n{c}",
        diff(&bare, &l1hv)
    );
    // The exceptions KVM intercepts exited L3 to l1-hv, which reflected them to KVM: #UD and
    // #DB with EPT (2); debugging, #UD, #BP and four #DB (6); with ept=0, #UD, #DB, #PF and
    // those of KVM's shadow paging (3 or more).
    let l3_exits = c
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{prefix}L3 exits ")))
        .unwrap_or_else(|| panic!("no L3 exit counts in the console:\n{c}"));
    let l3_exits = counts(l3_exits);
    assert!(
        l3_exits
            .iter()
            .any(|(reason, n)| reason == "exception or NMI" && *n >= 2 + 6 + 3),
        "L3 exits: {l3_exits:?}"
    );
    assert!(
        c.contains(&format!("{prefix}powered off: PASS")),
        "console:\n{c}"
    );
    assert_eq!(boots.l1hv.status, Some(0));
}

#[test]
fn the_timed_loops_ran_in_both() {
    let boots = boots();
    for (label, run) in [("bare", &boots.bare), ("l1-hv", &boots.l1hv)] {
        // `bench path=P n=N median=M min=A max=B`: the numbers after P.
        let loops: Vec<Vec<u64>> = run
            .console
            .lines()
            .filter_map(|l| l.split_once("bench path="))
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(1)
                    .filter_map(|w| w.split_once('=')?.1.parse().ok())
                    .collect()
            })
            .collect();
        assert_eq!(loops.len(), TIMED_LOOPS, "{label}: {loops:?}");
        for figures in &loops {
            let &[n, median, min, max] = figures.as_slice() else {
                panic!("{label}: {figures:?}");
            };
            assert!(
                n == TIMED_ITERATIONS && min <= median && median <= max,
                "{label}: {figures:?}"
            );
        }
    }
}
