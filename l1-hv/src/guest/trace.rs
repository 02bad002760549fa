//! The trace ring: fixed-size records (`nvmx::inject::TraceRecord`) written on the exit path
//! with no allocation or formatting, printed once the guest has ended.

use core::fmt;
use nvmx::explain;
use nvmx::inject::{TraceRecord, TraceSink};

const CAPACITY: usize = 64;

/// The newest `CAPACITY` records of one guest, and how many were written in all.
pub struct TraceRing {
    records: [Option<TraceRecord>; CAPACITY],
    written: usize,
}

impl TraceRing {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            records: [None; CAPACITY],
            written: 0,
        }
    }

    /// Records in write order (oldest kept first).
    pub fn iter(&self) -> impl Iterator<Item = &TraceRecord> {
        let start = self.written.saturating_sub(CAPACITY);
        (start..self.written).filter_map(|n| self.records[n % CAPACITY].as_ref())
    }

    /// How many records were written, including ones overwritten since.
    pub fn written(&self) -> usize {
        self.written
    }
}

impl TraceSink for TraceRing {
    fn record(&mut self, record: TraceRecord) {
        self.records[self.written % CAPACITY] = Some(record);
        self.written += 1;
    }
}

/// A record in the trace format the docs and tests read, named after Xen's trace events and
/// followed by the record in words.
pub struct Display<'a>(pub &'a TraceRecord);

impl fmt::Display for Display<'_> {
    /// The record's fields, then the same record in words, worded by `nvmx::explain` as
    /// `test-matrix explain` words it (the first line of its decoding).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let name = |vector: u8| explain::exception_name(vector);
        match *self.0 {
            TraceRecord::PfInject { error_code, cr2 } => {
                let words = explain::pfec(error_code.into());
                let first = words.lines().next().unwrap_or_default();
                write!(
                    f,
                    "PF_INJECT error_code={error_code:#x} cr2={cr2:#x}: {first}"
                )
            }
            TraceRecord::InjExc { vector, error_code } => {
                write!(
                    f,
                    "INJ_EXC vector={vector} error_code={error_code:#x}: {}",
                    name(vector)
                )?;
                // #TS, #NP, #SS and #GP push a selector error code (SDM 6.13).
                if matches!(vector, 10..=13) {
                    let words = explain::selector_error_code(error_code.into());
                    write!(
                        f,
                        ", error code: {}",
                        words.lines().next().unwrap_or_default()
                    )?;
                }
                Ok(())
            }
            TraceRecord::InjVirq { vector } => {
                write!(f, "INJ_VIRQ vector={vector:#04x}: external interrupt")
            }
            TraceRecord::DoubleFault { first, second } => write!(
                f,
                "DOUBLE_FAULT first={first} second={second}: {} during {} becomes #DF",
                name(second),
                name(first)
            ),
            TraceRecord::TripleFault { first, second } => write!(
                f,
                "TRIPLE_FAULT first={first} second={second}: {} during {} shuts down",
                name(second),
                name(first)
            ),
            TraceRecord::Reflect {
                exit_reason,
                vector,
            } => write!(
                f,
                "REFLECT exit_reason={exit_reason} vector={vector}: {}",
                nvmx::exit_reason::name(exit_reason).unwrap_or("undefined")
            ),
            TraceRecord::DebuggerPause { vector } => {
                write!(f, "DEBUGGER_PAUSE vector={vector}: {}", name(vector))
            }
            TraceRecord::Requeue { vector } => {
                write!(f, "REQUEUE vector={vector}: {}", name(vector))
            }
        }
    }
}
