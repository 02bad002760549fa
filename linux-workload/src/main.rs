//! linux-workload: what l1-hv's Linux test runs inside its L2 Linux guest (and bare, as the
//! reference). Every line it prints is independent of timing and address-space layout, so the
//! output of a bare run and of runs under l1-hv can be compared line for line.
//!
//! - `signals`: faults taken in user mode and handled by our own SA_SIGINFO handler (#PF on an
//!   unmapped and on a read-only page, #DE, #BP, #UD), each reported with its si_code;
//! - `memory`: page-fault-heavy work (the kernel's #PF handler, thousands of times);
//! - `forkexec N`: fork and exec `/bin/true` N times (process creation, copy-on-write faults);
//! - `kvm [exceptions]`: VMs through the kernel's own KVM, to their exits and exceptions (issue
//!   14);
//! - `tsc LABEL`: the time-stamp counter, for the Linux benchmark (timing-dependent: printed
//!   outside the compared output).

mod forkexec;
mod kvm;
mod memory;
mod signals;
mod tsc;

use std::process::ExitCode;

const USAGE: &str =
    "usage: linux-workload signals | memory | forkexec N | kvm [exceptions] | tsc LABEL";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["signals"] => signals::run(),
        ["memory"] => memory::run(),
        ["kvm"] => kvm::run(kvm::Vms::All),
        ["kvm", "exceptions"] => kvm::run(kvm::Vms::Exceptions),
        ["tsc", label] => tsc::run(label),
        ["forkexec", n] => match n.parse() {
            Ok(n) => forkexec::run(n),
            Err(_) => Err(format!("forkexec: {n:?} is not a count; {USAGE}")),
        },
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("linux-workload: error: {e}");
            ExitCode::FAILURE
        }
    }
}
