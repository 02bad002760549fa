//! Building the bootable image and running it: the Bochs runner (CI's VT-x), QEMU (KVM nested on
//! an Intel host, or TCG to see the "no VMX" path), and the verdict read from l1-hv's console.

pub mod bare;
pub mod bench;
pub mod bench_kvm;
pub mod bench_linux;
pub mod cli;
pub mod emulator;
pub mod image;
pub mod kernel_kind;
pub mod linux;
pub mod run;
pub mod tools;

use std::path::PathBuf;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-matrix lives in the workspace")
        .to_path_buf()
}

/// Where runner outputs go: `target/run/`.
pub fn run_dir() -> PathBuf {
    workspace_root().join("target").join("run")
}
