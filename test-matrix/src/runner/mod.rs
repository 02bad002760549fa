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

/// How a Linux benchmark command ends (`bench-linux`, `bench-kvm`): the table printed, the figures
/// written to `target/bench/<file>` (and printed too with `--json`), or the error.
pub fn report_figures(
    command: &str,
    file: &str,
    print_json: bool,
    figures: Result<(String, serde_json::Value), String>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (table, json) = match figures {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!("runner: {command}: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{table}");
    let json = serde_json::to_string_pretty(&json).expect("JSON of plain values");
    if print_json {
        println!("{json}");
    }
    let path = workspace_root().join("target").join("bench").join(file);
    if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
        eprintln!("runner: {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("runner: figures written to {}", path.display());
    ExitCode::SUCCESS
}
