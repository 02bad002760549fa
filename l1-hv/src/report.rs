//! Running the configured guests one after another, printing what each did, comparing runs of
//! the same image, and the verdict line the runner reads.

use crate::guest::config::{Expect, GuestConfig};
use crate::guest::trace::Display as TraceDisplay;
use crate::guest::{ExitCounts, Guest, Observation, RunEnd, Stop};
use crate::power::ExitStatus;
use nvmx::exit_reason::{self, ExitReason};
use crate::{println, Host};
use alloc::vec::Vec;

/// A finished run kept for the comparison across runs of the same image.
struct Finished<'a> {
    index: u16,
    config: GuestConfig<'a>,
    observations: Vec<Observation>,
}

/// Every run of this boot.
pub struct Runs<'a> {
    finished: Vec<Finished<'a>>,
    total: usize,
    failed: usize,
    first_entry_reported: bool,
}

impl<'a> Runs<'a> {
    /// No runs yet.
    pub fn new() -> Self {
        Self { finished: Vec::new(), total: 0, failed: 0, first_entry_reported: false }
    }

    /// A module whose command line could not be parsed counts as a failed run.
    pub fn reject(&mut self, cmdline: &str, word: &str) {
        self.total += 1;
        self.failed += 1;
        println!("l1-hv: module '{cmdline}': bad option '{word}': FAIL");
    }

    /// Creates, runs and reports one guest.
    pub fn run(&mut self, host: &Host, config: GuestConfig<'a>, image: &[u8], index: u16, boot_tsc: u64) {
        self.total += 1;
        let label = Label { index, name: config.name };
        println!(
            "l1-hv: {label}: start (exceptions={:#x}, expect={:?}, image {} bytes)",
            config.exception_bitmap,
            config.expect,
            image.len()
        );
        let mut guest = match Guest::create(host, config, image, index) {
            Ok(guest) => guest,
            Err(e) => {
                let pass = config.expect == Expect::Refused;
                println!("l1-hv: {label}: not run: {e}: {}", if pass { "PASS" } else { "FAIL" });
                self.failed += usize::from(!pass);
                return;
            }
        };
        if !self.first_entry_reported {
            self.first_entry_reported = true;
            // SAFETY: RDTSC has no side effects.
            let now = unsafe { core::arch::x86_64::_rdtsc() };
            println!("l1-hv: first guest entry at tsc={now} ({} ticks after kmain)", now - boot_tsc);
        }
        let end = guest.run(host);
        for o in &guest.observations {
            match o.error_code {
                Some(ec) => println!("l1-hv: {label}: observe vector={} error_code={ec:#x} cr2={:#x}", o.vector, o.cr2),
                None => println!("l1-hv: {label}: observe vector={} error_code=none cr2={:#x}", o.vector, o.cr2),
            }
        }
        println!("l1-hv: {label}: {} trace records", guest.trace.written());
        for record in guest.trace.iter() {
            println!("l1-hv: {label}: trace {}", TraceDisplay(record));
        }
        print_exits(label, "exits", &guest.exits);
        let nested = &guest.nested.stats;
        if nested.entries > 0 {
            print_exits(label, "L3 exits", &nested.l3_exits);
            let per_exception = match nested.exits_per_reflected_exception {
                Some((low, high)) if low == high => alloc::format!("{low}"),
                Some((low, high)) => alloc::format!("{low}..{high}"),
                None => "n/a".into(),
            };
            println!(
                "l1-hv: {label}: nested shadowing={} entries={} reflections={} exception-reflections={} \
                 exits-per-reflected-exception={per_exception} vmread-exits={} vmwrite-exits={}",
                if guest.nested.shadow.is_some() { "on" } else { "off" },
                nested.entries,
                nested.reflections,
                nested.exception_reflections,
                guest.exits[usize::from(exit_reason::VMREAD)],
                guest.exits[usize::from(exit_reason::VMWRITE)],
            );
        }
        let pass = matches!(
            (&end, config.expect),
            (RunEnd::Done(0), Expect::Done)
                | (RunEnd::TripleFault, Expect::TripleFault)
                | (RunEnd::Stopped(Stop::Unhandled { .. }), Expect::Stopped)
        );
        let ended = match &end {
            RunEnd::Done(code) => alloc::format!("done({code:#x})"),
            RunEnd::TripleFault => "triple fault (contained)".into(),
            RunEnd::Stopped(stop) => alloc::format!("stopped: {stop}"),
        };
        println!("l1-hv: {label}: {ended}: {}", if pass { "PASS" } else { "FAIL" });
        self.failed += usize::from(!pass);
        if pass && config.expect == Expect::Done {
            self.finished.push(Finished { index, config, observations: core::mem::take(&mut guest.observations) });
        }
    }

    /// Compares runs of the same image (they must observe identical events whatever l1-hv
    /// intercepts), prints the verdict and returns the exit status.
    pub fn verdict(mut self) -> ExitStatus {
        for (i, first) in self.finished.iter().enumerate() {
            let Some(other) = self.finished[i + 1..].iter().find(|r| r.config.name == first.config.name) else {
                continue;
            };
            // Images that report no observations (ghv) have nothing to compare.
            if first.observations.is_empty() && other.observations.is_empty() {
                continue;
            }
            let same = first.observations == other.observations;
            println!(
                "l1-hv: compare {}: run {} (exceptions={:#x}) vs run {} (exceptions={:#x}): {} ({} observations)",
                first.config.name,
                first.index,
                first.config.exception_bitmap,
                other.index,
                other.config.exception_bitmap,
                if same { "identical" } else { "DIFFERENT" },
                first.observations.len(),
            );
            self.failed += usize::from(!same);
        }
        if self.failed == 0 {
            println!("l1-hv: verdict PASS ({} runs)", self.total);
            ExitStatus::Pass
        } else {
            println!("l1-hv: verdict FAIL ({} of {} checks failed)", self.failed, self.total);
            ExitStatus::Fail
        }
    }
}

#[derive(Clone, Copy)]
struct Label<'a> {
    index: u16,
    name: &'a str,
}

impl core::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "guest {} {}", self.index, self.name)
    }
}

fn print_exits(label: Label, what: &str, exits: &ExitCounts) {
    let mut line = alloc::string::String::new();
    for (reason, count) in exits.iter().enumerate().filter(|(_, c)| **c > 0) {
        let name = ExitReason(reason as u32).name();
        line.push_str(&alloc::format!(" [{name}]={count}"));
    }
    println!("l1-hv: {label}: {what}{line}");
}
