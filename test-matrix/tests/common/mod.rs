//! What the booting integration tests share: one `test-matrix demo` run and the lock that keeps
//! their boots apart.

use std::process::Command;
use std::sync::Mutex;

/// The boots share target/run/ (ISOs, serial log): one boot at a time.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The outcome of one `test-matrix demo` run.
pub struct Run {
    /// The runner's exit status (`None` if a signal ended it).
    pub status: Option<i32>,
    /// Everything the runner printed on stdout: the emulator's console.
    pub console: String,
}

/// Runs `test-matrix demo ARGS`, holding the boot lock, and echoes its output to stderr so a
/// failing test shows the console it judged.
pub fn demo(args: &[&str]) -> Run {
    // A test that panicked while holding the lock poisoned it; the next boot is still valid.
    let _guard = ONE_BOOT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_test-matrix"))
        .arg("demo")
        .args(args)
        .output()
        .expect("runner starts");
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{console}\n{}", String::from_utf8_lossy(&out.stderr));
    Run {
        status: out.status.code(),
        console,
    }
}
