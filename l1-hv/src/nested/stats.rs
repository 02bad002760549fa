//! What l1-hv counts for a guest hypervisor: its L3's exits, the reflections, and how many exits
//! of its own each reflected exception cost (the exception's, plus the guest hypervisor's until
//! it re-entered L3: with VMCS shadowing, only its VMRESUME).

use crate::guest::ExitCounts;
use alloc::collections::BTreeMap;

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
    /// How many reflected exceptions of each vector cost each number of exits: (vector, exits)
    /// to count. The lowest and highest alone mix a guest hypervisor's fast reinjection with its
    /// round trips through user space; a benchmark repeating one exception reads its cost here.
    pub exits_by_vector: BTreeMap<(u8, u32), u32>,
    /// The vector of the last reflected exception and the L2 exits since (None: not counting).
    counting: Option<(u8, u32)>,
}

impl Default for NestedStats {
    fn default() -> Self {
        Self {
            l3_exits: [0; 80],
            entries: 0,
            reflections: 0,
            exception_reflections: 0,
            exits_per_reflected_exception: None,
            exits_by_vector: BTreeMap::new(),
            counting: None,
        }
    }
}

impl NestedStats {
    /// An exit was reflected; `exception`: the vector, if it was an exception or NMI exit.
    pub fn reflected(&mut self, exception: Option<u8>) {
        self.reflections += 1;
        if exception.is_some() {
            self.exception_reflections += 1;
        }
        self.counting = exception.map(|vector| (vector, 1));
    }

    /// The guest hypervisor (L2) exited to l1-hv.
    pub fn l2_exit(&mut self) {
        if let Some((_, count)) = &mut self.counting {
            *count += 1;
        }
    }

    /// A nested VM entry: closes the count of the last reflected exception, if any.
    pub fn entered(&mut self) {
        self.entries += 1;
        if let Some((vector, count)) = self.counting.take() {
            let (low, high) = self.exits_per_reflected_exception.unwrap_or((count, count));
            self.exits_per_reflected_exception = Some((low.min(count), high.max(count)));
            *self.exits_by_vector.entry((vector, count)).or_default() += 1;
        }
    }
}
