//! Progress on stderr for long runs: "n of N, ETA", shown only once a run has taken a second,
//! so that quick runs print nothing.

use std::io::Write;
use std::time::{Duration, Instant};

/// How often the clock is read: every this many items.
const CHECK_EVERY: u64 = 4096;
/// Silence before the first line, and the least time between lines.
const FIRST_AFTER: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_millis(250);

/// A progress line for `total` items.
pub struct Progress {
    label: &'static str,
    total: u64,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// Starts the clock.
    pub fn new(label: &'static str, total: u64) -> Self {
        Self {
            label,
            total,
            start: Instant::now(),
            last: None,
        }
    }

    /// Reports that `done` items are finished; cheap unless a line is due.
    pub fn tick(&mut self, done: u64) {
        if !done.is_multiple_of(CHECK_EVERY) {
            return;
        }
        let now = Instant::now();
        let elapsed = now - self.start;
        let due = match self.last {
            None => elapsed >= FIRST_AFTER,
            Some(last) => now - last >= EVERY,
        };
        if !due || done == 0 {
            return;
        }
        self.last = Some(now);
        let eta = elapsed.as_secs_f64() * (self.total.saturating_sub(done)) as f64 / done as f64;
        eprint!(
            "\r{}: {done} of {} ({:.0}%), ETA {eta:.1} s   ",
            self.label,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64
        );
        let _ = std::io::stderr().flush();
    }

    /// Ends the line if one was shown; returns the time taken.
    pub fn finish(self) -> Duration {
        let elapsed = self.start.elapsed();
        if self.last.is_some() {
            eprintln!(
                "\r{}: {} of {} in {:.1} s            ",
                self.label,
                self.total,
                self.total,
                elapsed.as_secs_f64()
            );
        }
        elapsed
    }
}
