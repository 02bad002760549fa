//! Building l1-hv and the guests for `x86_64-unknown-none`, and the GRUB multiboot2 ISO that
//! boots them: one `module2` line per guest run, in order.

use super::{run_dir, workspace_root};
use std::borrow::Cow;
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
            return Err(format!(
                "unknown guest image {image:?} (known: {})",
                IMAGES.join(", ")
            ));
        }
        Ok(Self {
            image: image.into(),
            options: options.trim().into(),
        })
    }

    /// Its `module2` line: `/boot/guests/IMAGE IMAGE OPTIONS...`.
    pub fn module(&self) -> Module {
        let words = std::iter::once(self.image.as_str()).chain(self.options.split_whitespace());
        Module {
            file: self.image.clone(),
            words: words.map(str::to_string).collect(),
        }
    }
}

/// One `module2` line of l1-hv's grub.cfg: a file in `/boot/guests/` and the words of the
/// module's string (l1-hv's `guest/config.rs` parses them: the run's name first, or `+` for a
/// module that belongs to the previous guest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// File name under `/boot/guests/`.
    pub file: String,
    /// The string's words, unquoted.
    pub words: Vec<String>,
}

/// `word` as one word of GRUB's config language, which expands `$`, takes quotes and `\` as
/// quoting, `;`, `|`, `&`, `<`, `>`, `{`, `}` as syntax, `#` as a comment and blanks as
/// separators: any word with other characters than these safe ones is single-quoted (inside
/// single quotes every character is literal; a quote itself is closed, escaped, reopened).
pub fn grub_word(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=,:+@%^~".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
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
    "gdb-guest",
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
            .args([
                "build",
                "--profile",
                PROFILE,
                "--target",
                TARGET,
                "-p",
                package,
            ])
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
    l1hv_grub_cfg(&runs.iter().map(GuestRun::module).collect::<Vec<_>>())
}

/// The GRUB configuration that loads l1-hv with `modules`, in order.
pub fn l1hv_grub_cfg(modules: &[Module]) -> String {
    let mut cfg = String::from(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"l1-hv\" {\n  multiboot2 /boot/l1-hv\n",
    );
    for module in modules {
        let _ = write!(cfg, "  module2 /boot/guests/{}", grub_word(&module.file));
        for word in &module.words {
            let _ = write!(cfg, " {}", grub_word(word));
        }
        cfg.push('\n');
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
        copy_guest(&elves, &guests, run).map_err(io)?;
    }
    std::fs::write(
        stage.join("boot").join("grub").join("grub.cfg"),
        grub_cfg(runs),
    )
    .map_err(io)?;
    let iso = run_dir().join("l1-hv.iso");
    mkrescue(&stage, &iso)?;
    Ok(iso)
}

/// Copies `run`'s image from `elves` into `guests` (or writes the not-an-ELF text file).
pub fn copy_guest(elves: &Path, guests: &Path, run: &GuestRun) -> std::io::Result<()> {
    if run.image == NOT_AN_ELF {
        std::fs::write(
            guests.join(NOT_AN_ELF),
            b"This is a text file, not a guest image.\n",
        )
    } else {
        std::fs::copy(elves.join(&run.image), guests.join(&run.image)).map(drop)
    }
}

/// The GRUB modules l1-hv's ISO needs (a multiboot2 kernel on a serial console).
pub const L1HV_GRUB_MODULES: &str = "multiboot2 normal iso9660 part_msdos serial terminal";

/// `grub-mkrescue` with only the modules l1-hv needs (a small image boots faster). It adds a
/// UEFI boot path too where `grub-efi-amd64-bin` is installed.
pub fn mkrescue(stage: &Path, iso: &Path) -> Result<(), String> {
    mkrescue_with(stage, iso, L1HV_GRUB_MODULES)
}

/// `grub-mkrescue` with the GRUB modules `grub_modules` (space-separated) installed.
pub fn mkrescue_with(stage: &Path, iso: &Path, grub_modules: &str) -> Result<(), String> {
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(iso)
        .arg(format!("--install-modules={grub_modules}"))
        .args(["--locales=", "--fonts=", "--themes="])
        .arg(stage)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "grub-mkrescue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn io(e: std::io::Error) -> String {
    format!("staging the ISO: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_words_are_quoted_only_when_needed() {
        assert_eq!(grub_word("console=ttyS0,115200"), "console=ttyS0,115200");
        assert_eq!(grub_word("--"), "--");
        assert_eq!(grub_word("+"), "+");
        assert_eq!(grub_word("mem=256M"), "mem=256M");
        assert_eq!(grub_word("a$b"), "'a$b'");
        assert_eq!(grub_word("#x"), "'#x'");
        assert_eq!(grub_word("a;b"), "'a;b'");
        assert_eq!(grub_word("say \"hi\""), "'say \"hi\"'");
        assert_eq!(grub_word("it's"), r"'it'\''s'");
        assert_eq!(grub_word(r"a\b"), r"'a\b'");
        assert_eq!(grub_word("{x}"), "'{x}'");
        assert_eq!(grub_word(""), "''");
    }

    #[test]
    fn guest_runs_become_module_lines() {
        let cfg = grub_cfg(&[
            GuestRun::parse("pf-guest exceptions=pf").unwrap(),
            GuestRun::parse("ghv").unwrap(),
        ]);
        assert!(cfg.contains("  multiboot2 /boot/l1-hv\n  module2 /boot/guests/pf-guest pf-guest exceptions=pf\n  module2 /boot/guests/ghv ghv\n  boot\n"));
    }
}
