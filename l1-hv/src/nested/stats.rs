//! What l1-hv counts for a guest hypervisor: its L3's exits, the reflections, and how many exits
//! of its own each reflected exception cost (the exception's, plus the guest hypervisor's until
//! it re-entered L3: with VMCS shadowing, only its VMRESUME).

use crate::guest::ExitCounts;

/// Counters of one nested vCPU.
#[derive(Debug)]
pub struct NestedStats {
    /// L3's VM exits to l1-hv, by basic reason.
    pub l3_exits: ExitCounts,
    /// Nested VM entries.
    pub entries: u32,
    /// VM exits reflected to the guest hypervisor.
    pub reflections: u32,
    /// Of those, exits for an exception or NMI.
    pub exception_reflections: u32,
    /// l1-hv's exits per reflected exception, lowest and highest seen.
    pub exits_per_reflected_exception: Option<(u32, u32)>,
    /// L2 exits since the last reflected exception (None: not counting).
    counting: Option<u32>,
}

impl Default for NestedStats {
    fn default() -> Self {
        Self {
            l3_exits: [0; 80],
            entries: 0,
            reflections: 0,
            exception_reflections: 0,
            exits_per_reflected_exception: None,
            counting: None,
        }
    }
}

impl NestedStats {
    /// An exit was reflected; `exception` if it was an exception or NMI exit.
    pub fn reflected(&mut self, exception: bool) {
        self.reflections += 1;
        if exception {
            self.exception_reflections += 1;
            self.counting = Some(1);
        } else {
            self.counting = None;
        }
    }

    /// The guest hypervisor (L2) exited to l1-hv.
    pub fn l2_exit(&mut self) {
        if let Some(count) = &mut self.counting {
            *count += 1;
        }
    }

    /// A nested VM entry: closes the count of the last reflected exception, if any.
    pub fn entered(&mut self) {
        self.entries += 1;
        if let Some(count) = self.counting.take() {
            let (low, high) = self.exits_per_reflected_exception.unwrap_or((count, count));
            self.exits_per_reflected_exception = Some((low.min(count), high.max(count)));
        }
    }
}
