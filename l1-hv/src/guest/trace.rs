//! The trace ring: fixed-size records (`nvmx::inject::TraceRecord`) written on the exit path
//! with no allocation or formatting, printed once the guest has ended.

use core::fmt;
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
        Self { records: [None; CAPACITY], written: 0 }
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

/// A record in the trace format the docs and tests read, named after Xen's trace events.
pub struct Display<'a>(pub &'a TraceRecord);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self.0 {
            TraceRecord::PfInject { error_code, cr2 } => {
                write!(f, "PF_INJECT error_code={error_code:#x} cr2={cr2:#x}")
            }
            TraceRecord::InjExc { vector, error_code } => {
                write!(f, "INJ_EXC vector={vector} error_code={error_code:#x}")
            }
            TraceRecord::DoubleFault { first, second } => write!(f, "DOUBLE_FAULT first={first} second={second}"),
            TraceRecord::TripleFault { first, second } => write!(f, "TRIPLE_FAULT first={first} second={second}"),
            TraceRecord::Reflect { exit_reason, vector } => {
                write!(f, "REFLECT exit_reason={exit_reason} vector={vector}")
            }
            TraceRecord::DebuggerPause { vector } => write!(f, "DEBUGGER_PAUSE vector={vector}"),
            TraceRecord::Requeue { vector } => write!(f, "REQUEUE vector={vector}"),
        }
    }
}
