//! The `run` command's flags (QEMU's names where QEMU has one) and their values.

use super::super::emulator::DEFAULT_BOCHS_CPU;
use clap::{Parser, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Boot your own kernel: under l1-hv as its L2 guest (default), or bare on the emulator.
///
/// Builds l1-hv, makes a GRUB ISO holding it and the kernel, boots it headless and streams the
/// console. Exit status: 0 when the guest ended as expected (l1-hv's verdict PASS; bare: the
/// emulator ended by itself, e.g. Linux powered off), 1 when it did not, 3 when the platform
/// has no VT-x, 4 when no verdict came (the emulator died or the time limit passed).
#[derive(Parser, Debug)]
#[command(name = "test-matrix run")]
pub struct RunArgs {
    /// The kernel: a Linux bzImage, or a multiboot or multiboot2 kernel (told by its headers).
    #[arg(long, value_name = "PATH", required_unless_present_any = ["linux_test", "linux_kvm"])]
    pub kernel: Option<PathBuf>,
    /// The initrd (Linux), or the one module (multiboot kernels), loaded with the kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// The kernel's command line. With --linux-test, words added after the test's command line.
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub append: String,
    /// The guest's memory, in MiB unless suffixed M or G (e.g. 256M, 1G): 16M to 1792M. The
    /// emulator gets 256 MiB more for l1-hv when not --bare.
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub mem: MemSize,
    /// Which of the guest's exceptions and interrupts l1-hv intercepts and re-injects: none (the
    /// hardware delivers them) or all.
    #[arg(long, value_enum, default_value_t = Forward::None)]
    pub forward: Forward,
    /// How the guest must end for l1-hv's verdict PASS: poweroff, or reset (a reboot, e.g. a
    /// panic with panic=-1). Default: reset when the command line has l1hv.end=panic, else poweroff.
    #[arg(long, value_enum)]
    pub expect: Option<Expect>,
    /// Where to boot: Bochs' emulated VT-x (CI's platform) or QEMU with KVM (nested VT-x on an
    /// Intel host with kvm_intel nested=1).
    #[arg(long, value_enum, default_value_t = EmulatorChoice::Bochs)]
    pub emulator: EmulatorChoice,
    /// The Bochs CPU model.
    #[arg(long, value_name = "MODEL", default_value = DEFAULT_BOCHS_CPU)]
    pub cpu: String,
    /// Boot the kernel directly on the emulator, without l1-hv: the reference run. Passes when
    /// the emulator ends by itself (a power-off) before the time limit.
    #[arg(long)]
    pub bare: bool,
    /// Wall-clock limit in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
    /// Boot the Linux test's kernel and initramfs (Debian's cloud kernel and our workload, built
    /// under target/linux/) with the test's command line; no --kernel needed.
    #[arg(long, conflicts_with_all = ["kernel", "initrd"])]
    pub linux_test: bool,
    /// As --linux-test, with the KVM initramfs: init loads the kernel's own kvm modules, prints
    /// what KVM reports (kvm_intel's parameters, /dev/kvm) and runs one small VM through
    /// /dev/kvm instead of the workload (docs/linux.md, "KVM as a guest hypervisor").
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "linux_test"])]
    pub linux_kvm: bool,
    /// Another l1-hv guest run after this kernel, as `demo --guest` takes it (repeatable), e.g.
    /// "pf-guest exceptions=pf".
    #[arg(long = "guest", value_name = "IMAGE OPTIONS", conflicts_with = "bare")]
    pub guests: Vec<String>,
    /// The run's name in l1-hv's report (its first module word).
    #[arg(long, default_value = "linux")]
    pub name: String,
    /// Serve gdb for the kernel guest: it stops at its first instruction and l1-hv's stub waits
    /// on COM2, which the emulator puts on 127.0.0.1:PORT (`target remote 127.0.0.1:PORT`,
    /// docs/debugging.md). Not with --bare.
    #[arg(long, value_name = "PORT", conflicts_with = "bare")]
    pub gdb: Option<u16>,
    /// The boot's own directory (ISO, bochsrc, serial log); default target/run/run-bare or
    /// target/run/run-l1hv. Boots with different directories can run in parallel.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

/// l1-hv's `forward=` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Forward {
    /// The hardware delivers the guest's events.
    None,
    /// l1-hv intercepts every exception and external interrupt and re-injects it.
    All,
}

/// l1-hv's `expect=` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Expect {
    /// The guest powers off (ACPI S5).
    Poweroff,
    /// The guest resets (reboots).
    Reset,
}

/// `--emulator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmulatorChoice {
    /// Bochs 2.7 with emulated VT-x.
    Bochs,
    /// QEMU with KVM, `-cpu host`.
    QemuKvm,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::All => "all",
        })
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Self::Poweroff => "poweroff",
            Self::Reset => "reset",
        })
    }
}

/// A memory size in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemSize(pub u32);

impl MemSize {
    /// What a guest may have: Linux needs some room; l1-hv's 256 MiB on top must fit Bochs'
    /// 2 GiB.
    const RANGE: std::ops::RangeInclusive<u32> = 16..=1792;
}

impl FromStr for MemSize {
    type Err = String;

    /// `256`, `256M`, `256m`, `1G`: MiB unless suffixed, as QEMU's `-m`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (digits, unit) = match text.char_indices().last() {
            Some((at, 'M' | 'm')) => (&text[..at], 1),
            Some((at, 'G' | 'g')) => (&text[..at], 1024),
            _ => (text, 1),
        };
        let mib = digits
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .ok_or_else(|| format!("{text:?} is not a size such as 256M or 1G"))?;
        if !Self::RANGE.contains(&mib) {
            return Err(format!(
                "{mib} MiB is outside {}M to {}M",
                Self::RANGE.start(),
                Self::RANGE.end()
            ));
        }
        Ok(Self(mib))
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}M", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn memory_sizes_parse_like_qemus() {
        assert_eq!("256M".parse(), Ok(MemSize(256)));
        assert_eq!("256".parse(), Ok(MemSize(256)));
        assert_eq!("1g".parse(), Ok(MemSize(1024)));
        assert_eq!("512m".parse::<MemSize>().unwrap().to_string(), "512M");
        assert!("".parse::<MemSize>().unwrap_err().contains("not a size"));
        assert!("12x".parse::<MemSize>().unwrap_err().contains("not a size"));
        assert!("-5M".parse::<MemSize>().unwrap_err().contains("not a size"));
        assert!("8M"
            .parse::<MemSize>()
            .unwrap_err()
            .contains("outside 16M to 1792M"));
        assert!("4G".parse::<MemSize>().unwrap_err().contains("outside"));
        assert!("99999999G"
            .parse::<MemSize>()
            .unwrap_err()
            .contains("not a size"));
    }

    #[test]
    fn flags_are_consistent_and_documented() {
        RunArgs::command().debug_assert();
        let help = RunArgs::command().render_long_help().to_string();
        for flag in [
            "--kernel",
            "--initrd",
            "--append",
            "--mem",
            "--forward",
            "--emulator",
            "--bare",
            "--timeout",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn a_kernel_or_the_linux_test_is_required() {
        assert!(RunArgs::try_parse_from(["run"]).is_err());
        assert!(RunArgs::try_parse_from(["run", "--linux-test"]).is_ok());
        assert!(RunArgs::try_parse_from(["run", "--linux-kvm", "--bare"]).is_ok());
        assert!(RunArgs::try_parse_from(["run", "--linux-kvm", "--linux-test"]).is_err());
        let args =
            RunArgs::try_parse_from(["run", "--kernel", "k", "--mem", "1G", "--forward", "all"])
                .unwrap();
        assert_eq!((args.mem, args.forward), (MemSize(1024), Forward::All));
        assert!(
            RunArgs::try_parse_from(["run", "--kernel", "k", "--bare", "--guest", "pf-guest"])
                .is_err()
        );
        let bad = RunArgs::try_parse_from(["run", "--kernel", "k", "--mem", "lots"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("--mem") && bad.contains("not a size"), "{bad}");
    }
}
