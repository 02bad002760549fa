//! Building l1-hv and the guests for `x86_64-unknown-none`, and the GRUB multiboot2 ISO that
//! boots them: one `module2` line per guest run, in order.

use super::{run_dir, workspace_root};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One guest run: an image of `l2-guests` and its module command line (see l1-hv's
/// `guest/config.rs`: `NAME [exceptions=..] [expect=..]`).
#[derive(Clone, Debug)]
pub struct GuestRun {
    /// Binary name in `l2-guests` (also the run's name).
    pub image: String,
    /// Options after the name.
    pub options: String,
}

impl GuestRun {
    /// Parses `IMAGE [OPTIONS...]`, the form `demo --guest` takes.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (image, options) = spec.trim().split_once(' ').unwrap_or((spec.trim(), ""));
        let known = IMAGES.contains(&image);
        if !known {
            return Err(format!("unknown guest image {image:?} (known: {})", IMAGES.join(", ")));
        }
        Ok(Self { image: image.into(), options: options.trim().into() })
    }
}

/// The guest images: those `l2-guests` builds, and [`NOT_AN_ELF`].
pub const IMAGES: &[&str] = &[
    "pf-guest",
    "triple-fault-guest",
    "io-guest",
    "oversized-guest",
    "ghv",
    "ghv-hostile",
    "flood-guest",
    "matrix-ghv",
    "matrix-l2",
    "mb-contract",
    NOT_AN_ELF,
];

/// A module that is not an ELF file at all (text), written by the runner instead of built: l1-hv
/// must refuse it with a clear message and go on.
pub const NOT_AN_ELF: &str = "not-an-elf";

/// The demo: the page-fault guest with #PF left to hardware and intercepted by l1-hv (the two
/// runs must observe the same faults), a triple-fault guest with nothing and with everything
/// intercepted, a guest doing port I/O l1-hv does not handle, and an oversized and a malformed
/// image l1-hv must refuse.
pub fn demo() -> Vec<GuestRun> {
    [
        "pf-guest exceptions=none",
        "pf-guest exceptions=pf",
        "triple-fault-guest expect=triple-fault",
        "triple-fault-guest exceptions=all expect=triple-fault",
        "io-guest expect=stopped",
        "oversized-guest expect=refused",
        "not-an-elf expect=refused",
    ]
    .iter()
    .map(|spec| GuestRun::parse(spec).expect("demo plan names known images"))
    .collect()
}

const TARGET: &str = "x86_64-unknown-none";
const PROFILE: &str = "image";

/// Builds the kernel and every guest; returns the directory holding the ELF files.
///
/// Two cargo runs, not one: built together, the guests would get nvmx with l1-hv's `explain`
/// feature (cargo unifies features within one build), which needs an allocator they lack.
pub fn build() -> Result<PathBuf, String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("images");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in ["l2-guests", "l1-hv"] {
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "--profile", PROFILE, "--target", TARGET, "-p", package])
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building {package} failed"));
        }
    }
    Ok(target_dir.join(TARGET).join(PROFILE))
}

/// The GRUB configuration for `runs`: serial console, l1-hv, one module per run.
pub fn grub_cfg(runs: &[GuestRun]) -> String {
    let mut cfg = String::from(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"l1-hv\" {\n  multiboot2 /boot/l1-hv\n",
    );
    for run in runs {
        let _ = writeln!(cfg, "  module2 /boot/guests/{0} {0} {1}", run.image, run.options);
    }
    cfg.push_str("  boot\n}\n");
    cfg
}

/// Builds everything and writes `target/run/l1-hv.iso` for `runs`; returns its path.
pub fn iso(runs: &[GuestRun]) -> Result<PathBuf, String> {
    let elves = build()?;
    let stage = run_dir().join("iso");
    let _ = std::fs::remove_dir_all(&stage);
    let guests = stage.join("boot").join("guests");
    std::fs::create_dir_all(stage.join("boot").join("grub")).map_err(io)?;
    std::fs::create_dir_all(&guests).map_err(io)?;
    std::fs::copy(elves.join("l1-hv"), stage.join("boot").join("l1-hv")).map_err(io)?;
    for run in runs {
        if run.image == NOT_AN_ELF {
            std::fs::write(guests.join(NOT_AN_ELF), b"This is a text file, not a guest image.\n").map_err(io)?;
        } else {
            std::fs::copy(elves.join(&run.image), guests.join(&run.image)).map_err(io)?;
        }
    }
    std::fs::write(stage.join("boot").join("grub").join("grub.cfg"), grub_cfg(runs)).map_err(io)?;
    let iso = run_dir().join("l1-hv.iso");
    mkrescue(&stage, &iso)?;
    Ok(iso)
}

/// `grub-mkrescue` with only the modules l1-hv needs (a small image boots faster). It adds a
/// UEFI boot path too where `grub-efi-amd64-bin` is installed.
pub fn mkrescue(stage: &Path, iso: &Path) -> Result<(), String> {
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .args([
            "--install-modules=multiboot2 normal iso9660 part_msdos serial terminal",
            "--locales=",
            "--fonts=",
            "--themes=",
        ])
        .arg(stage)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("grub-mkrescue failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn io(e: std::io::Error) -> String {
    format!("staging the ISO: {e}")
}
