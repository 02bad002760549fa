//! The composed EPT l1-hv runs L3 with ("EPT02"): L3-physical → host-physical, filled lazily
//! one 4 KiB page at a time from the guest hypervisor's EPT (L3 → L2) and l1-hv's own
//! (L2 → host). Dropped whole on INVEPT or when the guest hypervisor changes its EPTP; the
//! next L3 accesses refill it through EPT-violation exits.

use crate::memory::PhysPages;
use alloc::vec::Vec;

const ENTRIES: u64 = 512;
const TABLE_RWX: u64 = 0b111;

/// A shadow EPT hierarchy (4 levels, 4 KiB leaves).
pub struct Ept02 {
    tables: Vec<PhysPages>,
}

/// The hierarchy could not grow: no memory.
#[derive(Debug)]
pub struct OutOfMemory;

impl Ept02 {
    /// An empty hierarchy (just the PML4).
    pub fn new() -> Result<Self, OutOfMemory> {
        Ok(Self {
            tables: alloc::vec![PhysPages::page().ok_or(OutOfMemory)?],
        })
    }

    /// The EPT pointer for vmcs02: 4-level walk, write-back paging structures.
    pub fn pointer(&self) -> u64 {
        self.tables[0].phys() | (3 << 3) | 6
    }

    /// Installs the 4 KiB leaf entry `leaf` (from `nvmx::ept::compose`) for the page at `l3_gpa`.
    pub fn map_entry(&mut self, l3_gpa: u64, leaf: u64) -> Result<(), OutOfMemory> {
        let mut table = 0;
        for level in (1..4).rev() {
            let index = ((l3_gpa >> (12 + 9 * level)) & (ENTRIES - 1)) as usize;
            let entry = self.tables[table].words_mut()[index];
            table = if entry & TABLE_RWX == 0 {
                let next = PhysPages::page().ok_or(OutOfMemory)?;
                self.tables[table].words_mut()[index] = next.phys() | TABLE_RWX;
                self.tables.push(next);
                self.tables.len() - 1
            } else {
                let phys = entry & !0xfff;
                self.tables
                    .iter()
                    .position(|t| t.phys() == phys)
                    .expect("EPT02 tables are all owned here")
            };
        }
        let index = ((l3_gpa >> 12) & (ENTRIES - 1)) as usize;
        self.tables[table].words_mut()[index] = leaf;
        Ok(())
    }

    /// Unmaps everything (the caller then invalidates the CPU's EPT-derived translations).
    pub fn clear(&mut self) {
        self.tables.truncate(1);
        self.tables[0].words_mut().fill(0);
    }
}
