//! l1-hv's gdb stub against the real client (docs/debugging.md): `demo --gdb PORT` boots
//! gdb-guest with `gdb=com2` in Bochs, COM2 a TCP server; Debian's gdb in batch mode connects,
//! breaks on a function, reads registers and memory, single-steps, watches a variable and runs
//! the guest to its end. The transcript is asserted line by line, and the guest must still pass:
//! its own INT3 reached its own handler while the debugger was attached.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// gdb's commands. The watchpoint is a software one: Debian's Bochs 2.7 does not raise #DB for
/// DR7 data breakpoints, so gdb single-steps and compares (the stub's hardware watchpoints are
/// host-tested in `guest-gdb`).
const SCRIPT: &str = "\
set pagination off
set confirm off
set tcp connect-timeout 600
set remotetimeout 600
target remote 127.0.0.1:PORT
break gdb_tick
continue
info registers
x/8gx $rsp
stepi
stepi
stepi
info registers rip
delete
set can-use-hw-watchpoints 0
watch *(unsigned long *)&GDB_COUNTER
continue
continue
delete
continue
";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn gdb_breaks_steps_watches_and_runs_a_guest_to_its_end() {
    let runner = env!("CARGO_BIN_EXE_test-matrix");
    // The images first: gdb reads the guest's symbols from its ELF file.
    let built = Command::new(runner)
        .arg("build")
        .status()
        .expect("runner starts");
    assert!(built.success(), "test-matrix build failed");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    // Bochs waits for gdb on COM2 before the machine starts; gdb retries its connection.
    let demo = Command::new(runner)
        .args(["demo", "--timeout", "600", "--gdb", &port])
        .args(["--guest", "gdb-guest gdb=com2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("runner starts");
    let script = workspace().join("target").join("run").join("gdb-test.gdb");
    std::fs::write(&script, SCRIPT.replace("PORT", &port)).unwrap();
    let elf = workspace().join("target/images/x86_64-unknown-none/image/gdb-guest");
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-x"])
        .arg(&script)
        .arg(&elf)
        .output()
        .expect("gdb runs (the runner installs it with --gdb)");
    let transcript =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let out = demo.wait_with_output().expect("runner ends");
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("--- gdb ---\n{transcript}\n--- console ---\n{console}");

    // Stopped at the guest's first instruction, then at the breakpoint (the INT3 at the function's
    // address; l1-hv paused instead of injecting).
    assert!(
        transcript.contains("0x0000000000100000 in _start ()"),
        "first instruction"
    );
    assert!(transcript.contains("Breakpoint 1 at 0x"));
    assert!(transcript.contains("Breakpoint 1, 0x"));
    assert!(transcript.contains(" in gdb_tick ()"));
    // `info registers`: the first call's argument, RIP at the function, selectors of the flat
    // 64-bit boot GDT.
    let reg = |name: &str| {
        transcript
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line"))
            .to_string()
    };
    assert!(reg("rdi").contains("0x1 "), "{}", reg("rdi"));
    assert!(reg("rip").contains("<gdb_tick>"), "{}", reg("rip"));
    assert!(reg("cs").contains("0x8"), "{}", reg("cs"));
    assert!(reg("ss").contains("0x10"), "{}", reg("ss"));
    // `x/8gx $rsp`: four lines of two quadwords, the first being the return address.
    let memory: Vec<_> = transcript
        .lines()
        .filter(|l| l.starts_with("0x") && l.contains(":\t0x"))
        .collect();
    assert_eq!(memory.len(), 4, "{memory:?}");
    // Three single steps right after the memory dump, one instruction each (the load, the add,
    // the store): three distinct, increasing addresses inside gdb_tick.
    let lines: Vec<_> = transcript.lines().collect();
    let after_dump = lines.iter().position(|l| *l == memory[3]).unwrap() + 1;
    let steps: Vec<u64> = lines[after_dump..after_dump + 3]
        .iter()
        .map(|l| {
            let address = l
                .strip_suffix(" in gdb_tick ()")
                .unwrap_or_else(|| panic!("{l}"));
            u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    assert!(steps[0] < steps[1] && steps[1] < steps[2], "{steps:x?}");
    assert!(
        lines[after_dump + 3].starts_with("rip") && lines[after_dump + 3].contains("<gdb_tick+")
    );
    // The watchpoint sees the second and third calls' stores: 1 → 3 → 6.
    assert!(transcript.contains("Watchpoint 2: *(unsigned long *)&GDB_COUNTER"));
    for (old, new) in [(1, 3), (3, 6)] {
        assert!(
            transcript.contains(&format!("Old value = {old}\nNew value = {new}")),
            "{old} -> {new}"
        );
    }
    assert!(transcript.contains("[Inferior 1 (process 1) exited normally]"));
    // l1-hv's side: the guest ran to its end with its own #BP delivered to its own handler.
    assert!(console.contains("gdb: waiting on COM2 (stopped at rip=0x100000)"));
    assert!(console.contains("guest gdb-guest: gdb-guest: counted to 6, own #BP handled"));
    assert!(console.contains("gdb: saw the guest end"));
    assert!(console.contains("trace DEBUGGER_PAUSE vector=3"));
    assert!(console.contains("l1-hv: verdict PASS"), "l1-hv's verdict");
    assert_eq!(out.status.code(), Some(0));
}
