//! The Linux test's assets, all made under `target/linux/` and nothing committed: Debian's stock
//! cloud kernel as shipped (`kernel`), and an initramfs with busybox and our workload program
//! (`initramfs`); reading such a guest's console (`console`).

pub mod console;
pub mod initramfs;
pub mod kernel;

use super::{tools, workspace_root};
use std::path::PathBuf;

/// The kernel command line the tests use (docs/linux.md says why each word):
/// `cryptomgr.notests` skips the deferred crypto self-tests (~220 guest-seconds on Bochs),
/// `clearcpuid=aperfmperf` hides APERF/MPERF, which Bochs' CPU model advertises without the MSRs
/// (a #GP per timer tick otherwise), `panic=-1` reboots at once on a panic (l1-hv contains it).
pub const TEST_APPEND: &str =
    "console=ttyS0,115200 cryptomgr.notests clearcpuid=aperfmperf nokaslr panic=-1";

/// Appended to the command line, makes the initramfs end with a kernel panic instead of a
/// power-off (see `initramfs::INIT`): the containment test.
pub const END_WITH_PANIC: &str = "l1hv.end=panic";

/// The assets of one Linux test boot.
pub struct Assets {
    /// The bzImage.
    pub kernel: kernel::Kernel,
    /// The LZ4 (legacy format) newc initramfs.
    pub initrd: PathBuf,
    /// The same with the kernel's KVM modules and the probe that loads them (issue 14).
    pub kvm_initrd: PathBuf,
}

/// `target/linux/`.
pub fn dir() -> PathBuf {
    workspace_root().join("target").join("linux")
}

/// Installs the tools, fetches the kernel (cached) and builds the two initramfs archives.
pub fn prepare() -> Result<Assets, String> {
    tools::ensure_linux()?;
    let kernel = kernel::ensure()?;
    let initrd = initramfs::build(&initramfs::Initramfs::Test)?;
    let kvm_initrd = initramfs::build(&initramfs::Initramfs::Kvm(&kernel.modules))?;
    Ok(Assets {
        kernel,
        initrd,
        kvm_initrd,
    })
}
