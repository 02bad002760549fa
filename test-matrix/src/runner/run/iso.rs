//! The `run` command's ISOs: the kernel bare (GRUB loads it by its kind), or l1-hv with the
//! kernel as its guest (one `module2` line for the kernel, one `+` line for its initrd, then any
//! further guests).

use super::super::image::{self, grub_word, GuestRun, Module};
use super::super::kernel_kind::KernelKind;
use super::args::{Expect, Forward, MemSize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The GRUB modules every run ISO needs, besides the loader's.
const BASE_GRUB_MODULES: &str = "normal iso9660 part_msdos serial terminal";

/// What l1-hv is told about the kernel guest.
pub struct KernelGuest {
    /// The run's name.
    pub name: String,
    /// Guest memory.
    pub mem: MemSize,
    /// `forward=`.
    pub forward: Forward,
    /// `expect=`.
    pub expect: Expect,
    /// The guest kernel's command line.
    pub append: String,
    /// Whether an initrd (or multiboot module) comes with it.
    pub initrd: bool,
    /// `gdb=com2`: l1-hv serves gdb for it.
    pub gdb: bool,
}

impl KernelGuest {
    /// `kernel NAME boot=auto mem=M forward=F expect=E -- ARGS...`, then `initrd +` when there is
    /// one: everything after the lone `--` is the guest kernel's command line; a module whose
    /// first word is `+` belongs to the guest before it.
    pub fn modules(&self) -> Vec<Module> {
        let options = [
            self.name.clone(),
            "boot=auto".into(),
            format!("mem={}", self.mem),
            format!("forward={}", self.forward),
            format!("expect={}", self.expect),
        ];
        let gdb = self.gdb.then(|| "gdb=com2".to_string());
        let words = options
            .into_iter()
            .chain(gdb)
            .chain(["--".to_string()])
            .chain(self.append.split_whitespace().map(str::to_string))
            .collect();
        let mut modules = vec![Module {
            file: "kernel".into(),
            words,
        }];
        if self.initrd {
            modules.push(Module {
                file: "initrd".into(),
                words: vec!["+".into()],
            });
        }
        modules
    }
}

/// The GRUB configuration that boots a kernel of `kind` bare with `append`, and `/boot/initrd`
/// when `initrd` is set.
pub fn bare_grub_cfg(kind: KernelKind, initrd: bool, append: &str) -> String {
    let (load, module, _) = kind.grub_commands();
    let mut cfg = String::from(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"kernel (bare)\" {\n",
    );
    let _ = write!(cfg, "  {load} /boot/kernel");
    for word in append.split_whitespace() {
        let _ = write!(cfg, " {}", grub_word(word));
    }
    cfg.push('\n');
    if initrd {
        let _ = writeln!(cfg, "  {module} /boot/initrd");
    }
    cfg.push_str("  boot\n}\n");
    cfg
}

/// Stages `dir/iso/` and writes `dir/bare.iso`.
pub fn bare(
    dir: &Path,
    kind: KernelKind,
    kernel: &Path,
    initrd: Option<&Path>,
    append: &str,
) -> Result<PathBuf, String> {
    let stage = fresh_stage(dir)?;
    let boot = stage.join("boot");
    copy(kernel, &boot.join("kernel"))?;
    if let Some(initrd) = initrd {
        copy(initrd, &boot.join("initrd"))?;
    }
    write(
        &boot.join("grub").join("grub.cfg"),
        &bare_grub_cfg(kind, initrd.is_some(), append),
    )?;
    let iso = dir.join("bare.iso");
    // GRUB's `linux` (or `multiboot`) module only where the kernel needs it.
    image::mkrescue_with(
        &stage,
        &iso,
        &format!("{} {BASE_GRUB_MODULES}", kind.grub_commands().2),
    )?;
    Ok(iso)
}

/// Builds l1-hv and the guests, stages `dir/iso/` and writes `dir/l1-hv.iso`.
pub fn under_l1hv(
    dir: &Path,
    guest: &KernelGuest,
    kernel: &Path,
    initrd: Option<&Path>,
    others: &[GuestRun],
) -> Result<PathBuf, String> {
    let elves = image::build()?;
    let stage = fresh_stage(dir)?;
    let guests = stage.join("boot").join("guests");
    copy(&elves.join("l1-hv"), &stage.join("boot").join("l1-hv"))?;
    copy(kernel, &guests.join("kernel"))?;
    if let Some(initrd) = initrd {
        copy(initrd, &guests.join("initrd"))?;
    }
    let mut modules = guest.modules();
    for other in others {
        image::copy_guest(&elves, &guests, other)
            .map_err(|e| format!("staging {}: {e}", other.image))?;
        modules.push(other.module());
    }
    write(
        &stage.join("boot").join("grub").join("grub.cfg"),
        &image::l1hv_grub_cfg(&modules),
    )?;
    let iso = dir.join("l1-hv.iso");
    image::mkrescue(&stage, &iso)?;
    Ok(iso)
}

/// An empty `dir/iso/` with `boot/grub/` and `boot/guests/`.
fn fresh_stage(dir: &Path) -> Result<PathBuf, String> {
    let stage = dir.join("iso");
    let _ = std::fs::remove_dir_all(&stage);
    for sub in ["grub", "guests"] {
        let path = stage.join("boot").join(sub);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(stage)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(append: &str) -> KernelGuest {
        KernelGuest {
            name: "linux".into(),
            mem: MemSize(256),
            forward: Forward::All,
            expect: Expect::Poweroff,
            append: append.into(),
            initrd: true,
            gdb: false,
        }
    }

    #[test]
    fn the_kernel_guest_is_one_line_and_its_initrd_a_plus_line() {
        let mut modules = linux("console=ttyS0,115200  nokaslr panic=-1").modules();
        modules.push(GuestRun::parse("pf-guest exceptions=pf").unwrap().module());
        let cfg = image::l1hv_grub_cfg(&modules);
        assert!(cfg.contains(
            "  multiboot2 /boot/l1-hv\n\
             \x20 module2 /boot/guests/kernel linux boot=auto mem=256M forward=all expect=poweroff -- console=ttyS0,115200 nokaslr panic=-1\n\
             \x20 module2 /boot/guests/initrd +\n\
             \x20 module2 /boot/guests/pf-guest pf-guest exceptions=pf\n\
             \x20 boot\n"
        ), "{cfg}");
    }

    #[test]
    fn command_line_words_are_quoted_for_grub() {
        let cfg = image::l1hv_grub_cfg(&linux("init=/bin/sh x=$HOME y=a;b").modules());
        assert!(cfg.contains("-- init=/bin/sh 'x=$HOME' 'y=a;b'\n"), "{cfg}");
        let mut guest = linux("");
        guest.initrd = false;
        assert_eq!(guest.modules().len(), 1);
        assert_eq!(
            guest.modules()[0].words.last().map(String::as_str),
            Some("--")
        );
    }

    #[test]
    fn bare_kernels_are_loaded_by_kind() {
        let cfg = bare_grub_cfg(KernelKind::BzImage, true, "console=ttyS0,115200 a#b");
        assert!(
            cfg.contains(
                "  linux /boot/kernel console=ttyS0,115200 'a#b'\n  initrd /boot/initrd\n  boot\n"
            ),
            "{cfg}"
        );
        let cfg = bare_grub_cfg(KernelKind::Multiboot1, true, "");
        assert!(
            cfg.contains("  multiboot /boot/kernel\n  module /boot/initrd\n"),
            "{cfg}"
        );
        let cfg = bare_grub_cfg(KernelKind::Multiboot2, false, "x");
        assert!(
            cfg.contains("  multiboot2 /boot/kernel x\n  boot\n"),
            "{cfg}"
        );
        assert!(!cfg.contains("module2"));
    }
}
