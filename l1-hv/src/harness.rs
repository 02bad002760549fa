//! The harness around the hypervisor: it reads each run's module line (the guest's options and
//! what the run is expected to do), runs the guests one after another, prints what each did,
//! compares runs of the same image, and prints the verdict line the runner reads. Nothing in
//! the VM core depends on it.

use crate::guest::config::{Boot, GuestConfig};
use crate::guest::trace::Display as TraceDisplay;
use crate::guest::{ExitCounts, Extra, Forwarded, Guest, Observation, RunEnd, Stop};
use crate::power::ExitStatus;
use crate::{println, Host};
use alloc::vec::Vec;
use devices::power::PowerEvent;
use nvmx::exit_reason::{self, ExitReason};

/// How a run is expected to end; the verdict compares the real end with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A test image reports success with the `Done` hypercall.
    Done,
    /// The guest ends in a triple fault that l1-hv contains.
    TripleFault,
    /// l1-hv stops the guest for something it does not handle (an unhandled exit).
    Stopped,
    /// l1-hv refuses the image (malformed or oversized) and runs nothing.
    Refused,
    /// A kernel powers the machine off (ACPI S5), or exits with status 1 (QEMU's convention for
    /// success at the exit port).
    PowerOff,
    /// A kernel resets the machine (a panic with `panic=-1` reboots).
    Reset,
}

/// One run as its module line describes it:
/// `NAME [expect=done|triple-fault|stopped|refused|poweroff|reset] [guest options] [-- KERNEL ARGS]`.
pub struct RunSpec<'a> {
    /// The guest's configuration.
    pub config: GuestConfig<'a>,
    /// How the run should end.
    pub expect: Expect,
}

impl<'a> RunSpec<'a> {
    /// Parses a module line; `Err` carries the offending word.
    pub fn parse(line: &'a str) -> Result<Self, &'a str> {
        let (options, cmdline) = match line.split_once(" -- ") {
            Some((options, cmdline)) => (options, cmdline.trim()),
            None => (line.strip_suffix(" --").unwrap_or(line), ""),
        };
        let mut words = options.split_ascii_whitespace();
        let name = words
            .next()
            .ok_or("empty module command line (a guest needs a name)")?;
        let mut config = GuestConfig::new(name, cmdline);
        let mut expect = None;
        for word in words {
            let value = match word.split_once('=') {
                Some(("expect", value)) => value,
                _ => {
                    config.apply(word)?;
                    continue;
                }
            };
            expect = Some(match value {
                "done" => Expect::Done,
                "triple-fault" => Expect::TripleFault,
                "stopped" => Expect::Stopped,
                "refused" => Expect::Refused,
                "poweroff" => Expect::PowerOff,
                "reset" => Expect::Reset,
                _ => return Err(word),
            });
        }
        let default = match config.boot {
            Boot::Abi => Expect::Done,
            Boot::Kernel => Expect::PowerOff,
        };
        Ok(Self {
            config,
            expect: expect.unwrap_or(default),
        })
    }
}

/// A finished run kept for the comparison across runs of the same image.
struct Finished<'a> {
    index: u16,
    config: GuestConfig<'a>,
    observations: Vec<Observation>,
}

/// Whether the way a run ended is what was expected of it.
fn as_expected(end: &RunEnd, expect: Expect) -> bool {
    matches!(
        (end, expect),
        (RunEnd::Done(0), Expect::Done)
            | (RunEnd::TripleFault, Expect::TripleFault)
            | (RunEnd::Stopped(Stop::Unhandled { .. }), Expect::Stopped)
            | (
                RunEnd::Power(PowerEvent::PoweredOff { .. } | PowerEvent::Exited { status: 1 }),
                Expect::PowerOff
            )
            | (RunEnd::Power(PowerEvent::Reset { .. }), Expect::Reset)
    )
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
        Self {
            finished: Vec::new(),
            total: 0,
            failed: 0,
            first_entry_reported: false,
        }
    }

    /// A module whose command line could not be parsed counts as a failed run.
    pub fn reject(&mut self, cmdline: &str, word: &str) {
        self.total += 1;
        self.failed += 1;
        println!("l1-hv: module '{cmdline}': bad option '{word}': FAIL");
    }

    /// Creates, runs and reports one guest.
    pub fn run(
        &mut self,
        host: &Host,
        spec: RunSpec<'a>,
        image: &[u8],
        extras: &[Extra],
        index: u16,
        boot_tsc: u64,
    ) {
        self.total += 1;
        let RunSpec { config, expect } = spec;
        let label = Label {
            index,
            name: config.name,
        };
        match config.boot {
            Boot::Abi => println!(
                "l1-hv: {label}: start (exceptions={:#x}, expect={expect:?}, image {} bytes)",
                config.exception_bitmap,
                image.len()
            ),
            Boot::Kernel => println!(
                "l1-hv: {label}: start kernel (mem={} MiB, forward={:?}, expect={expect:?}, image {} bytes, {} modules)",
                config.ram_size >> 20,
                config.forward,
                image.len(),
                extras.len()
            ),
        }
        let mut guest = match Guest::create(host, config, image, extras, index) {
            Ok(guest) => guest,
            Err(e) => {
                let pass = expect == Expect::Refused;
                println!(
                    "l1-hv: {label}: not run: {e}: {}",
                    if pass { "PASS" } else { "FAIL" }
                );
                self.failed += usize::from(!pass);
                return;
            }
        };
        if !self.first_entry_reported {
            self.first_entry_reported = true;
            // SAFETY: RDTSC has no side effects.
            let now = unsafe { core::arch::x86_64::_rdtsc() };
            println!(
                "l1-hv: first guest entry at tsc={now} ({} ticks after kmain)",
                now - boot_tsc
            );
        }
        // SAFETY: RDTSC has no side effects; on Bochs it counts instructions.
        let start = unsafe { core::arch::x86_64::_rdtsc() };
        if config.boot == Boot::Kernel {
            // Where the kernel's own timeline starts (benchmarks measure from here to its init).
            println!("l1-hv: {label}: entered at tsc={start}");
        }
        let end = crate::guest::debug::run(host, &mut guest);
        // SAFETY: as above.
        let instructions = unsafe { core::arch::x86_64::_rdtsc() } - start;
        for o in &guest.observations {
            match o.error_code {
                Some(ec) => println!(
                    "l1-hv: {label}: observe vector={} error_code={ec:#x} cr2={:#x}",
                    o.vector, o.cr2
                ),
                None => println!(
                    "l1-hv: {label}: observe vector={} error_code=none cr2={:#x}",
                    o.vector, o.cr2
                ),
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
            // One line per vector, `[exits]=count` in increasing exits (bench-kvm reads them).
            let mut lines = alloc::collections::BTreeMap::<u8, alloc::string::String>::new();
            for (&(vector, exits), count) in &nested.exits_by_vector {
                let line = lines.entry(vector).or_default();
                line.push_str(&alloc::format!(" [{exits}]={count}"));
            }
            for (vector, line) in lines {
                println!(
                    "l1-hv: {label}: nested exits-per-reflected-exception vector={vector}{line}"
                );
            }
        }
        if let Some(machine) = &guest.machine {
            print_forwarded(label, &machine.forwarded);
            println!("l1-hv: {label}: instructions {instructions}");
        }
        let pass = as_expected(&end, expect);
        let ended = match &end {
            RunEnd::Done(code) => alloc::format!("done({code:#x})"),
            RunEnd::TripleFault => "triple fault (contained)".into(),
            RunEnd::Power(PowerEvent::PoweredOff { sleep_type }) => {
                println!("l1-hv: {label}: sleep request: SLP_EN with SLP_TYP={sleep_type}");
                "powered off".into()
            }
            RunEnd::Power(PowerEvent::Exited { status }) => {
                alloc::format!("exited with status {status}")
            }
            RunEnd::Power(PowerEvent::Reset { how }) => {
                println!("l1-hv: {label}: reset request: {how:?}");
                "reset".into()
            }
            RunEnd::Stopped(stop) => alloc::format!("stopped: {stop}"),
            RunEnd::Debug(stop) => alloc::format!("stopped for the debugger ({stop:?})"),
        };
        println!(
            "l1-hv: {label}: {ended}: {}",
            if pass { "PASS" } else { "FAIL" }
        );
        self.failed += usize::from(!pass);
        if pass && expect == Expect::Done {
            self.finished.push(Finished {
                index,
                config,
                observations: core::mem::take(&mut guest.observations),
            });
        }
    }

    /// Compares runs of the same image (they must observe identical events whatever l1-hv
    /// intercepts), prints the verdict and returns the exit status.
    pub fn verdict(mut self) -> ExitStatus {
        for (i, first) in self.finished.iter().enumerate() {
            let Some(other) = self.finished[i + 1..]
                .iter()
                .find(|r| r.config.name == first.config.name)
            else {
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
            println!(
                "l1-hv: verdict FAIL ({} of {} checks failed)",
                self.failed, self.total
            );
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

/// The events l1-hv re-injected: exceptions by mnemonic, interrupts by vector, NMIs.
fn print_forwarded(label: Label, forwarded: &Forwarded) {
    let mut line = alloc::string::String::new();
    for (vector, count) in forwarded
        .exceptions
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
    {
        let name = x86::irq::EXCEPTIONS.get(vector).map_or("?", |e| e.mnemonic);
        line.push_str(&alloc::format!(" [{name}]={count}"));
    }
    println!("l1-hv: {label}: forwarded exceptions{line}");
    let mut line = alloc::string::String::new();
    let mut total = 0u64;
    for (vector, count) in forwarded
        .interrupts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
    {
        line.push_str(&alloc::format!(" [{vector:#04x}]={count}"));
        total += u64::from(*count);
    }
    println!("l1-hv: {label}: forwarded interrupts{line} total={total}");
    println!("l1-hv: {label}: forwarded nmis {}", forwarded.nmis);
}

fn print_exits(label: Label, what: &str, exits: &ExitCounts) {
    let mut line = alloc::string::String::new();
    for (reason, count) in exits.iter().enumerate().filter(|(_, c)| **c > 0) {
        let name = ExitReason(reason as u32).name();
        line.push_str(&alloc::format!(" [{name}]={count}"));
    }
    println!("l1-hv: {label}: {what}{line}");
}
