//! Host tools the runner needs, installed when missing: apt packages when running as root,
//! otherwise the one command to run is printed. The kernel target comes from rustup.

use std::process::Command;

/// A host program and the Debian package that provides it.
pub struct Tool {
    /// Program looked up on PATH.
    pub program: &'static str,
    /// Debian package providing it.
    pub package: &'static str,
}

/// What building the ISO needs.
pub const IMAGE_TOOLS: &[Tool] = &[
    Tool {
        program: "grub-mkrescue",
        package: "grub-common",
    },
    Tool {
        program: "xorriso",
        package: "xorriso",
    },
    Tool {
        program: "mformat",
        package: "mtools",
    },
];

/// What booting in Bochs needs (its `term` display, the one that runs headless, is a plugin
/// of package `bochs-term`, checked with the data packages).
pub const BOCHS_TOOLS: &[Tool] = &[Tool {
    program: "bochs",
    package: "bochs",
}];

/// What booting in QEMU needs.
pub const QEMU_TOOLS: &[Tool] = &[Tool {
    program: "qemu-system-x86_64",
    package: "qemu-system-x86",
}];

/// What attaching to l1-hv's gdb stub needs (`--gdb PORT`, test-matrix/tests/gdb.rs): Debian's
/// gdb, which knows x86-64 without a multiarch build.
pub const GDB_TOOLS: &[Tool] = &[Tool {
    program: "gdb",
    package: "gdb",
}];

/// Extra packages without a program to probe: Bochs' BIOS images and term display, GRUB's BIOS
/// and UEFI platforms (the ISO boots both ways), QEMU's UEFI firmware.
const DATA_PACKAGES: &[&str] = &[
    "bochsbios",
    "vgabios",
    "bochs-term",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "ovmf",
];
/// A file of each data package: if any is missing, all of them are installed.
const DATA_FILES: &[&str] = &[
    "/usr/share/bochs/BIOS-bochs-latest",
    "/usr/share/bochs/VGABIOS-lgpl-latest",
    "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so.0.0.0",
    "/usr/lib/grub/i386-pc/multiboot2.mod",
    "/usr/lib/grub/x86_64-efi/multiboot2.mod",
    "/usr/share/ovmf/OVMF.fd",
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Makes sure every tool in `tools` (and the data packages) is installed.
pub fn ensure(tools: &[&[Tool]]) -> Result<(), String> {
    let mut missing: Vec<&str> = tools
        .iter()
        .flat_map(|t| t.iter())
        .filter(|t| !on_path(t.program))
        .map(|t| t.package)
        .collect();
    if DATA_FILES
        .iter()
        .any(|file| !std::path::Path::new(file).is_file())
    {
        missing.extend(DATA_PACKAGES);
    }
    install(missing)
}

/// Installs `missing` Debian packages with apt when root; otherwise says what to run.
fn install(mut missing: Vec<&str>) -> Result<(), String> {
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    let line = format!("apt-get install -y --no-install-recommends {packages}");
    if !is_root() {
        return Err(format!(
            "missing tools; run as root: apt-get update && {line}"
        ));
    }
    eprintln!("runner: installing {packages}");
    let update = Command::new("apt-get").args(["update", "-qq"]).status();
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    match (update, install) {
        (Ok(u), Ok(i)) if u.success() && i.success() => Ok(()),
        _ => Err(format!("apt-get failed; try: apt-get update && {line}")),
    }
}

/// Where package `busybox-static` puts its binary (package `busybox` puts a dynamic one there).
pub const BUSYBOX: &str = "/bin/busybox";

/// What building the Linux test's initramfs needs: a static busybox (the initramfs has no shared
/// libraries), `lz4` (the legacy LZ4 format, the one Linux's initramfs unpacker takes), and the
/// musl target for the workload program. The kernel itself comes from `linux::kernel`.
pub fn ensure_linux() -> Result<(), String> {
    let mut missing = Vec::new();
    if !on_path("lz4") {
        missing.push("lz4");
    }
    if !std::fs::read(BUSYBOX).is_ok_and(|elf| is_static_elf(&elf)) {
        missing.push("busybox-static");
    }
    install(missing)?;
    add_target("x86_64-unknown-linux-musl")
}

/// An ELF64 file without a PT_INTERP program header needs no dynamic loader.
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let field = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at + len)?;
        Some(bytes.iter().rev().fold(0, |v, b| v << 8 | u64::from(*b)))
    };
    let header = || -> Option<bool> {
        if elf.get(..5)? != b"\x7fELF\x02" {
            return None;
        }
        let (phoff, phentsize, phnum) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
        let mut interp = false;
        for i in 0..phnum {
            interp |=
                field(usize::try_from(phoff + i * phentsize).ok()?, 4)? == u64::from(PT_INTERP);
        }
        Some(!interp)
    };
    header().unwrap_or(false)
}

/// Adds the kernel target (idempotent; RUSTUP_AUTO_INSTALL=0 machines need it explicitly).
pub fn ensure_kernel_target() -> Result<(), String> {
    add_target("x86_64-unknown-none")
}

fn add_target(target: &str) -> Result<(), String> {
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .output();
    match status {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "rustup target add {target} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("rustup not found ({e}); install Rust with rustup")),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_files_have_no_interpreter() {
        let current = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // The test binary links against the host's libc dynamically.
        assert!(!is_static_elf(&current));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // A minimal ELF64 header with no program headers.
        let mut elf = vec![0u8; 64];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        assert!(is_static_elf(&elf));
    }
}
