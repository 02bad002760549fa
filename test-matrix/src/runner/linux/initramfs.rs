//! The test initramfs: a newc cpio with a static busybox, our workload program and `/init`,
//! compressed with `lz4 -l` (the legacy LZ4 format, the only one Linux's initramfs unpacker
//! takes; gzip would cost ~30 guest-seconds more on Bochs).

use super::{dir, END_WITH_PANIC};
use crate::runner::{tools, workspace_root};
use cpio::newc::Builder;
use std::io::Write as _;
use std::path::PathBuf;
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

/// Builds the workload and writes `target/linux/initramfs.cpio.lz4`; returns its path.
pub fn build() -> Result<PathBuf, String> {
    let workload =
        std::fs::read(build_workload()?).map_err(|e| format!("reading the workload: {e}"))?;
    let busybox = std::fs::read(tools::BUSYBOX).map_err(|e| format!("{}: {e}", tools::BUSYBOX))?;
    let init = INIT.replace("END_WITH_PANIC", END_WITH_PANIC);
    let archive = archive(&[
        Entry::Dir("bin"),
        Entry::Dir("dev"),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        // The kernel opens /dev/console for init's standard streams before devtmpfs is mounted.
        Entry::CharDevice("dev/console", 5, 1),
        Entry::File("bin/busybox", &busybox),
        Entry::File("bin/linux-workload", &workload),
        Entry::File("init", init.as_bytes()),
    ])
    .map_err(|e| format!("writing the initramfs: {e}"))?;
    let cpio = dir().join("initramfs.cpio");
    std::fs::write(&cpio, archive).map_err(|e| format!("{}: {e}", cpio.display()))?;
    let lz4 = dir().join("initramfs.cpio.lz4");
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
