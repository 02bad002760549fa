//! The workload on the host kernel: the same output the Linux guest must print (the test of
//! l1-hv compares a bare and a nested guest; this checks the program itself).

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_linux-workload"))
        .args(args)
        .output()
        .expect("workload starts");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "linux-workload {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn signals_are_taken_and_handled_in_user_mode() {
    assert_eq!(
        run(&["signals"]),
        "signals: read of an unmapped page: SIGSEGV SEGV_MAPERR si_addr=0x10000000 rip=instruction:yes: ok\n\
         signals: write to a read-only page: SIGSEGV SEGV_ACCERR si_addr=0x10001000 rip=instruction:yes: ok\n\
         signals: integer divide by zero: SIGFPE FPE_INTDIV si_addr=instruction:yes rip=instruction:yes: ok\n\
         signals: int3: SIGTRAP SI_KERNEL rip=after-instruction:yes: ok\n\
         signals: ud2: SIGILL ILL_ILLOPN si_addr=instruction:yes rip=instruction:yes: ok\n\
         signals: 5 of 5 faults handled in user mode\n"
    );
}

#[test]
fn memory_output_is_the_same_on_every_run() {
    let first = run(&["memory"]);
    assert!(
        first.contains("memory: at least 16384 page faults taken: yes\n"),
        "{first}"
    );
    assert_eq!(run(&["memory"]), first);
}

#[test]
fn forkexec_runs_true_n_times() {
    assert_eq!(
        run(&["forkexec", "5"]),
        "forkexec: 5 of 5 children exec'd /bin/true and exited 0\n"
    );
}

#[test]
fn tsc_prints_the_label_and_a_count() {
    let first = run(&["tsc", "a"]);
    let count = |line: &str| {
        line.trim_end()
            .strip_prefix("tsc: a ")
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert!(count(&first).is_some(), "{first}");
    // The counter only goes forward.
    assert!(count(&run(&["tsc", "a"])) > count(&first));
}

#[test]
fn bad_arguments_are_refused_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_linux-workload"))
        .args(["forkexec", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
