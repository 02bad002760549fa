//! Booting the Linux test's kernel with `test-matrix run`, as a user would, for the tests that
//! boot it (tests/linux.rs, tests/linux_kvm.rs): the assets, one build, boots in parallel.

use std::path::PathBuf;
use std::process::Command;
use std::thread::JoinHandle;

/// Wall-clock limit of each boot (they run in parallel; Linux alone takes 40–80 s of a core).
const BOOT_LIMIT_S: &str = "300";

/// One finished `test-matrix run`.
pub struct Run {
    pub status: Option<i32>,
    pub console: String,
}

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_test-matrix"))
}

/// The kernel, the initrd `linux-assets` prints under `initrd_key`, and the command line.
/// Builds l1-hv and the guests too, once, before the boots that would each build them.
pub fn assets(initrd_key: &str) -> (String, String, String) {
    let out = runner()
        .arg("linux-assets")
        .output()
        .expect("runner starts");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "linux-assets failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("linux-assets printed no {key}"))
            .to_string()
    };
    let built = runner().arg("build").output().expect("runner starts");
    assert!(
        built.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    (value("kernel"), value(initrd_key), value("append"))
}

/// Starts one boot: `test-matrix run --kernel … --initrd … --append append` plus `extra`, in its
/// own run directory `target/run/<dir>`, where its console is kept for reading after a failure.
pub fn boot(
    dir: &str,
    (kernel, initrd): (&str, &str),
    append: &str,
    extra: &[&str],
) -> JoinHandle<Run> {
    let run_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/run")
        .join(dir);
    let mut command = runner();
    command.args([
        "run", "--kernel", kernel, "--initrd", initrd, "--append", append,
    ]);
    command
        .args(["--timeout", BOOT_LIMIT_S, "--run-dir"])
        .arg(&run_dir)
        .args(extra);
    let label = dir.to_string();
    std::thread::spawn(move || {
        let out = command.output().expect("runner starts");
        let console = String::from_utf8_lossy(&out.stdout).into_owned();
        let _ = std::fs::write(run_dir.join("console.txt"), &console);
        eprintln!(
            "--- {label}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Run {
            status: out.status.code(),
            console,
        }
    })
}
