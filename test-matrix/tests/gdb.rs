//! l1-hv's gdb stub against the real client (docs/debugging.md): `demo --gdb PORT` boots
//! gdb-guest with `gdb=com2` in Bochs, COM2 a TCP server; Debian's gdb in batch mode connects,
//! breaks on a function, reads registers and memory, single-steps, watches a variable and runs
//! the guest to its end. The transcript is asserted line by line, and the guest must still pass:
//! its own INT3 reached its own handler while the debugger was attached.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One boot at a time: the two boots and their gdbs would share two cores, and the guest's
/// build lock.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// gdb's commands: `watch` takes one of the debug registers (a hardware watchpoint, Z2).
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
watch *(unsigned long *)&GDB_COUNTER
continue
continue
delete
continue
";

/// Waits until the runner says COM2 waits for gdb (it has installed gdb, built the ISO and
/// started the emulator), then passes the rest of its stderr through.
fn wait_for_com2(runner: &mut std::process::Child) {
    use std::io::BufRead;
    let stderr = runner.stderr.take().expect("piped stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("runner's stderr");
        eprintln!("{line}");
        if line.contains("COM2 waits for gdb") {
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("{l}")));
            return;
        }
    }
    panic!("the runner ended before COM2 waited for gdb");
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn gdb_breaks_steps_watches_and_runs_a_guest_to_its_end() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
    // Bochs waits for gdb on COM2 before the machine starts.
    let mut demo = Command::new(runner)
        .args(["demo", "--timeout", "600", "--gdb", &port])
        .args(["--guest", "gdb-guest gdb=com2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    wait_for_com2(&mut demo);
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
    assert!(transcript.contains("Hardware watchpoint 2: *(unsigned long *)&GDB_COUNTER"));
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

/// The kernel's vmlinux ELF file, from the bzImage's LZ4 payload (the compression Debian's
/// cloud kernel uses).
fn vmlinux(bzimage: &str) -> Vec<u8> {
    let image = std::fs::read(bzimage).unwrap();
    const LZ4_LEGACY: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
    let start = image
        .windows(4)
        .position(|w| w == LZ4_LEGACY)
        .expect("an LZ4 payload");
    let payload = workspace().join("target/run/gdb-vmlinux.lz4");
    std::fs::write(&payload, &image[start..]).unwrap();
    let out = Command::new("lz4")
        .arg("-dc")
        .arg(&payload)
        .output()
        .expect("lz4 runs");
    assert!(
        out.stdout.starts_with(b"\x7fELF"),
        "vmlinux from the bzImage"
    );
    out.stdout
}

/// The link address of the first occurrence of `bytes` in `elf`'s loaded segments (with
/// `nokaslr` the kernel runs at its link addresses).
fn address_of(elf: &[u8], bytes: &[u8]) -> u64 {
    let offset = elf
        .windows(bytes.len())
        .position(|w| w == bytes)
        .expect("the bytes in vmlinux") as u64;
    let u16_at = |at: usize| u64::from(u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()));
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| (phoff + i * phentsize) as usize)
        .filter(|&ph| elf[ph] == 1) // PT_LOAD
        .find_map(|ph| {
            let (file_offset, vaddr, size) = (u64_at(ph + 8), u64_at(ph + 16), u64_at(ph + 32));
            (file_offset..file_offset + size)
                .contains(&offset)
                .then(|| vaddr + offset - file_offset)
        })
        .expect("in a loaded segment")
}

/// x86-64 getrusage(2).
const SYS_GETRUSAGE: u64 = 98;

/// Linux under l1-hv with gdb attached from its first (32-bit) instruction: gdb continues it,
/// interrupts it with Ctrl-C once the workload runs, reads `linux_banner` through the kernel's
/// page tables, stops at the workload's getrusage(2) on a hardware breakpoint, and detaches; the kernel runs on to its power-off and l1-hv's verdict is PASS.
#[test]
fn gdb_interrupts_linux_reads_its_banner_stops_at_a_syscall_and_detaches() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runner = env!("CARGO_BIN_EXE_test-matrix");
    let assets = Command::new(runner).arg("linux-assets").output().unwrap();
    let assets = String::from_utf8_lossy(&assets.stdout).into_owned();
    let kernel = assets
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .expect("linux-assets names the kernel");
    // Debian's package ships a placeholder System.map (the real one is in the -dbg package),
    // so the addresses come from the kernel image: `linux_banner` is the "Linux version "
    // string, and the 64-bit SYSCALL entry (entry_SYSCALL_64, where IA32_LSTAR points) is the
    // one place that starts `swapgs; mov %rsp, %gs:…`.
    let elf = vmlinux(kernel);
    let banner = address_of(&elf, b"Linux version ");
    let syscall_entry = address_of(&elf, &[0x0f, 0x01, 0xf8, 0x65, 0x48, 0x89, 0x24, 0x25]);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
        .to_string();
    let dir = workspace().join("target/run/gdb-linux");
    // A console left by an earlier run must not look like this one's workload.
    let serial = dir.join("serial.txt");
    let _ = std::fs::remove_file(&serial);
    // nopti: the kernel half is mapped whatever CR3 the interrupt finds (user or kernel).
    let run = Command::new(runner)
        .args([
            "run",
            "--linux-test",
            "--append",
            "nopti",
            "--timeout",
            "600",
        ])
        .args(["--gdb", &port, "--run-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("runner starts");
    let script = workspace().join("target/run/gdb-linux.gdb");
    std::fs::write(
        &script,
        format!(
            "set pagination off\nset confirm off\nset tcp connect-timeout 600\n\
             set remotetimeout 600\ntarget remote 127.0.0.1:{port}\ncontinue\n\
             info registers rip\nx/s {banner:#x}\n\
             hbreak *{syscall_entry:#x} if $rax == {SYS_GETRUSAGE}\ncontinue\n\
             info registers rax\ndelete\ndetach\n"
        ),
    )
    .unwrap();
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-x"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb runs");
    // Ctrl-C once the workload's `forkexec` is done (gdb forwards SIGINT to the stub as 0x03):
    // `memory`, next, calls getrusage(2) before and after touching 64 MiB.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&serial).is_ok_and(|c| c.contains("forkexec:")) {
        assert!(
            started.elapsed().as_secs() < 600,
            "the workload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &gdb.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let gdb_out = gdb.wait_with_output().unwrap();
    let transcript = String::from_utf8_lossy(&gdb_out.stdout).into_owned()
        + &String::from_utf8_lossy(&gdb_out.stderr);
    let out = run.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("--- gdb ---\n{transcript}\n--- console ---\n{console}");

    assert!(
        transcript.contains("Program received signal SIGINT"),
        "Ctrl-C stopped it"
    );
    let rip = transcript
        .lines()
        .find(|l| l.starts_with("rip "))
        .expect("info registers rip");
    assert!(rip.contains("0x"), "{rip}");
    assert!(
        transcript.contains(&format!("{banner:#x}:\t\"Linux version 6.")),
        "linux_banner through the kernel's page tables"
    );
    // A hardware breakpoint on the syscall entry, stopping at the workload's getrusage(2)
    // (`memory` reports its RSS with it).
    assert!(
        transcript.contains(&format!(
            "Hardware assisted breakpoint 1 at {syscall_entry:#x}"
        )),
        "hbreak"
    );
    assert!(
        transcript.contains(&format!("Breakpoint 1, {syscall_entry:#018x} in ?? ()")),
        "stopped at the syscall entry"
    );
    let rax = transcript
        .lines()
        .find(|l| l.starts_with("rax "))
        .expect("info registers rax");
    assert!(rax.contains(&format!("{SYS_GETRUSAGE:#x}")), "{rax}");
    assert!(transcript.contains("[Inferior 1 (process 1) detached]"));
    assert!(console.contains("gdb: detached, the guest runs on"));
    // After detach nothing of the debugger is left: the workload's own INT3 (its `signals`
    // run after the detach) gets Linux's SIGTRAP as without a debugger. (A guest's own INT3
    // while gdb is attached is the gdb-guest test's.)
    assert!(console.contains("signals: int3: SIGTRAP SI_KERNEL rip=after-instruction:yes: ok"));
    assert!(
        console.contains("l1-hv: verdict PASS"),
        "the kernel powered off after detach"
    );
}
