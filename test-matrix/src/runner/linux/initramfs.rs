//! The test initramfs: a newc cpio with a static busybox, our workload program and `/init`,
//! compressed with `lz4 -l` (the legacy LZ4 format, the only one Linux's initramfs unpacker
//! takes; gzip would cost ~30 guest-seconds more on Bochs). The KVM initramfs is the same plus
//! `/kvm/`: the kernel's own KVM modules and a probe that loads them and runs a VM (issue 14);
//! a separate archive, so the Linux test's boots do not unpack ~3 MiB of modules they never use.

use super::{dir, END_WITH_PANIC};
use crate::runner::{tools, workspace_root};
use cpio::newc::Builder;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `/init`: mount the pseudo file systems, run the workload between two marker lines, show the
/// interrupt counts (timing-dependent: not compared), then power off, or panic when the command
/// line asks for it (`panic=-1` turns that into an immediate reboot, which l1-hv contains).
/// `dmesg -n 1` keeps kernel messages from interleaving with the workload's output. The `tsc`
/// lines are for `bench-linux` (docs/benchmarks.md): the first thing init does, and around the
/// markers, never between them, since the test compares the lines between them across boots.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/linux-workload tsc init
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
dmesg -n 1
if [ -x /kvm/probe ]; then /kvm/probe; poweroff -f; fi
/bin/linux-workload tsc workload-begin
echo "workload: begin"
/bin/linux-workload forkexec 200
/bin/linux-workload memory
/bin/linux-workload signals
echo "workload: end"
/bin/linux-workload tsc workload-end
cat /proc/interrupts
case " $(cat /proc/cmdline) " in
*" END_WITH_PANIC "*) echo c > /proc/sysrq-trigger ;;
esac
poweroff -f
"#;

/// `/kvm/probe`, which `/init` runs instead of the workload when the archive has it: loads the
/// kernel's KVM modules in dependency order, shows what KVM said (its messages, kvm_intel's
/// parameters and kvm's, /dev/kvm) and runs the workload's VMM (`linux-workload kvm`, its lines
/// start with `vmm: `); then reloads kvm_intel with `ept=0` (shadow paging: KVM intercepts #PF)
/// and runs the VMM's exception VM again. Every other line starts with `kvm: `; a step that
/// fails says so and the next still runs, so one boot shows everything that can be seen.
pub const KVM_PROBE: &str = r#"#!/bin/busybox sh
echo "kvm: begin"
for module in irqbypass kvm kvm-intel; do
if insmod /kvm/$module.ko; then echo "kvm: insmod $module: ok"; else echo "kvm: insmod $module: failed"; fi
done
dmesg | grep -i -e kvm -e vmx | sed 's/^/kvm: dmesg: /'
for parameter in /sys/module/kvm/parameters/* /sys/module/kvm_intel/parameters/*; do
module=${parameter#/sys/module/}
[ -f "$parameter" ] && echo "kvm: ${module%%/*}.${parameter##*/}=$(cat "$parameter")"
done
ls -l /dev/kvm | sed 's/^/kvm: /'
grep LOC /proc/interrupts | sed 's/^/kvm: before the vm: /'
/bin/linux-workload kvm
grep LOC /proc/interrupts | sed 's/^/kvm: after the vm: /'
if rmmod kvm_intel && insmod /kvm/kvm-intel.ko ept=0; then echo "kvm: reload kvm-intel ept=0: ok"; else echo "kvm: reload kvm-intel ept=0: failed"; fi
echo "kvm: kvm_intel.ept=$(cat /sys/module/kvm_intel/parameters/ept)"
/bin/linux-workload kvm exceptions
echo "kvm: end"
"#;

/// The KVM modules the probe loads, in dependency order (kvm needs irqbypass, kvm-intel needs
/// kvm), by their paths under the kernel's `lib/modules/RELEASE/`.
const KVM_MODULES: [(&str, &str); 3] = [
    ("kvm/irqbypass.ko", "kernel/virt/lib/irqbypass.ko"),
    ("kvm/kvm.ko", "kernel/arch/x86/kvm/kvm.ko"),
    ("kvm/kvm-intel.ko", "kernel/arch/x86/kvm/kvm-intel.ko"),
];

/// Which initramfs to build.
pub enum Initramfs<'a> {
    /// The Linux test's: busybox, the workload, `/init`.
    Test,
    /// The test's plus the KVM modules of the kernel whose `lib/modules/RELEASE` is given, and
    /// the probe.
    Kvm(&'a Path),
}

/// Builds the workload and writes `target/linux/initramfs.cpio.lz4` (or, for the KVM one,
/// `initramfs-kvm.cpio.lz4`); returns its path.
pub fn build(which: &Initramfs) -> Result<PathBuf, String> {
    let workload =
        std::fs::read(build_workload()?).map_err(|e| format!("reading the workload: {e}"))?;
    let busybox = std::fs::read(tools::BUSYBOX).map_err(|e| format!("{}: {e}", tools::BUSYBOX))?;
    let init = INIT.replace("END_WITH_PANIC", END_WITH_PANIC);
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("dev"),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        // The kernel opens /dev/console for init's standard streams before devtmpfs is mounted.
        Entry::CharDevice("dev/console", 5, 1),
        Entry::File("bin/busybox", &busybox),
        Entry::File("bin/linux-workload", &workload),
        Entry::File("init", init.as_bytes()),
    ];
    let modules = match which {
        Initramfs::Test => Vec::new(),
        Initramfs::Kvm(release) => KVM_MODULES
            .iter()
            .map(|(_, path)| {
                let path = release.join(path);
                std::fs::read(&path)
                    .map(|mut module| {
                        strip_signature(&mut module);
                        module
                    })
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if !modules.is_empty() {
        entries.push(Entry::Dir("kvm"));
        entries.push(Entry::File("kvm/probe", KVM_PROBE.as_bytes()));
        entries.extend(
            KVM_MODULES
                .iter()
                .zip(&modules)
                .map(|((name, _), module)| Entry::File(name, module)),
        );
    }
    let archive = archive(&entries).map_err(|e| format!("writing the initramfs: {e}"))?;
    let name = match which {
        Initramfs::Test => "initramfs.cpio",
        Initramfs::Kvm(_) => "initramfs-kvm.cpio",
    };
    let cpio = dir().join(name);
    std::fs::write(&cpio, archive).map_err(|e| format!("{}: {e}", cpio.display()))?;
    let lz4 = dir().join(format!("{name}.lz4"));
    let status = Command::new("lz4")
        .args(["-l", "-9", "-f", "-q"])
        .arg(&cpio)
        .arg(&lz4)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return Err("lz4 -l failed".into());
    }
    Ok(lz4)
}

/// The marker that ends a signed module (the kernel's `MODULE_SIG_STRING`).
const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";
/// The signature's trailer before the marker (`struct module_signature`): algorithm, hash, id
/// type, signer and key-id lengths (one byte each), 3 bytes of padding, the signature's length
/// (32-bit big-endian).
const SIGNATURE_TRAILER: usize = 12;

/// Cuts a module's appended signature, if it has one. The kernel (without
/// CONFIG_MODULE_SIG_FORCE, as Debian builds it) loads an unsigned module, only marking itself
/// tainted, and skips hashing it: on Bochs the KVM modules load in ~12 s unsigned, ~30 s signed.
fn strip_signature(module: &mut Vec<u8>) {
    let Some(trailer_end) = module.len().checked_sub(SIGNATURE_MAGIC.len()) else {
        return;
    };
    if &module[trailer_end..] != SIGNATURE_MAGIC || trailer_end < SIGNATURE_TRAILER {
        return;
    }
    let length: [u8; 4] = module[trailer_end - 4..trailer_end]
        .try_into()
        .expect("four bytes");
    let signature = u32::from_be_bytes(length) as usize;
    if let Some(end) = (trailer_end - SIGNATURE_TRAILER).checked_sub(signature) {
        module.truncate(end);
    }
}

/// `cargo build --release --target x86_64-unknown-linux-musl -p linux-workload` in its own target
/// directory (`target/linux/workload/`), stripped: a static binary, small in the initramfs.
fn build_workload() -> Result<PathBuf, String> {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let target_dir = dir().join("workload");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            "linux-workload",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building linux-workload for x86_64-unknown-linux-musl failed".into());
    }
    Ok(target_dir
        .join(TARGET)
        .join("release")
        .join("linux-workload"))
}

/// One archive member (paths relative to the root, as the kernel's unpacker wants them).
enum Entry<'a> {
    Dir(&'a str),
    CharDevice(&'a str, u32, u32),
    /// An executable file.
    File(&'a str, &'a [u8]),
}

/// A newc archive of `entries`, owned by root, time 0: the same bytes for the same inputs.
fn archive(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (ino, entry) in (1..).zip(entries) {
        let (name, mode, data, rdev): (&str, u32, &[u8], (u32, u32)) = match *entry {
            Entry::Dir(name) => (name, 0o040_755, &[], (0, 0)),
            Entry::CharDevice(name, major, minor) => (name, 0o020_600, &[], (major, minor)),
            Entry::File(name, data) => (name, 0o100_755, data, (0, 0)),
        };
        let size = u32::try_from(data.len())
            .map_err(|_| std::io::Error::other(format!("{name} too large")))?;
        let mut writer = Builder::new(name)
            .ino(ino)
            .mode(mode)
            .nlink(if matches!(entry, Entry::Dir(_)) { 2 } else { 1 })
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(&mut out, size);
        writer.write_all(data)?;
        writer.finish()?;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive's members as `NAME MODE`, read back with the same crate.
    fn names(bytes: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = bytes;
        loop {
            let reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                return names;
            }
            names.push(format!(
                "{} {:o}",
                reader.entry().name(),
                reader.entry().mode()
            ));
            rest = reader.finish().unwrap();
        }
    }

    #[test]
    fn archives_are_newc_with_the_members_given() {
        let bytes = archive(&[
            Entry::Dir("bin"),
            Entry::CharDevice("dev/console", 5, 1),
            Entry::File("init", b"#!/bin/sh\n"),
        ])
        .unwrap();
        assert!(bytes.starts_with(b"070701"));
        assert_eq!(
            names(&bytes),
            ["bin 40755", "dev/console 20600", "init 100755"]
        );
        // Deterministic: no times or owners of the build machine.
        assert_eq!(
            bytes,
            archive(&[
                Entry::Dir("bin"),
                Entry::CharDevice("dev/console", 5, 1),
                Entry::File("init", b"#!/bin/sh\n")
            ])
            .unwrap()
        );
    }

    #[test]
    fn signatures_are_cut_and_unsigned_modules_kept() {
        let mut signed = b"ELF-module".to_vec();
        signed.extend_from_slice(b"SIG");
        signed.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        signed.extend_from_slice(SIGNATURE_MAGIC);
        strip_signature(&mut signed);
        assert_eq!(signed, b"ELF-module");
        let mut unsigned = b"ELF-module".to_vec();
        strip_signature(&mut unsigned);
        assert_eq!(unsigned, b"ELF-module");
        // A length past the start leaves the module as it was.
        let mut bogus = SIGNATURE_MAGIC.to_vec();
        bogus.splice(0..0, [0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF]);
        let before = bogus.clone();
        strip_signature(&mut bogus);
        assert_eq!(bogus, before);
    }

    #[test]
    fn init_runs_the_kvm_probe_only_where_the_archive_has_it() {
        assert!(INIT.contains("if [ -x /kvm/probe ]; then /kvm/probe; poweroff -f; fi\n"));
        assert!(KVM_PROBE.starts_with("#!/bin/busybox sh\n"));
        let probed: Vec<&str> = KVM_MODULES.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            probed,
            ["kvm/irqbypass.ko", "kvm/kvm.ko", "kvm/kvm-intel.ko"]
        );
        for (name, _) in KVM_MODULES {
            let module = name.trim_start_matches("kvm/").trim_end_matches(".ko");
            assert!(KVM_PROBE.contains(module));
        }
    }

    #[test]
    fn init_panics_only_when_asked() {
        let init = INIT.replace("END_WITH_PANIC", END_WITH_PANIC);
        assert!(init.contains("*\" l1hv.end=panic \"*) echo c > /proc/sysrq-trigger ;;"));
        assert!(init.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn tsc_lines_are_first_and_outside_the_compared_output() {
        let lines: Vec<&str> = INIT.lines().collect();
        assert_eq!(lines[1], "/bin/linux-workload tsc init");
        let at = |line: &str| lines.iter().position(|l| *l == line).unwrap();
        assert_eq!(
            at("/bin/linux-workload tsc workload-begin") + 1,
            at("echo \"workload: begin\"")
        );
        assert_eq!(
            at("echo \"workload: end\"") + 1,
            at("/bin/linux-workload tsc workload-end")
        );
    }
}
