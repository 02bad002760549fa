//! EPT for one guest (SDM 29.3): guest-physical `[0, size)` maps to the guest's RAM block with
//! 4 KiB pages, read/write/execute, write-back. Everything else is unmapped, so a guest access
//! outside its RAM is an EPT violation that l1-hv reports and contains.

use crate::memory::PhysPages;
use alloc::vec::Vec;

const READ_WRITE_EXECUTE: u64 = 0b111;
/// EPT memory type for leaf entries (bits 5:3): 6 = write-back.
const MEMORY_TYPE_WB: u64 = 6 << 3;
const ENTRIES: usize = 512;

/// A guest's EPT hierarchy; the tables are freed when it is dropped (after INVEPT).
pub struct Ept {
    tables: Vec<PhysPages>,
}

impl Ept {
    /// Maps guest-physical `[0, ram_size)` to host-physical `[ram_base, ram_base + ram_size)`.
    /// `ram_size` must be a multiple of 4 KiB and at most 1 GiB.
    pub fn identity_offset(ram_base: u64, ram_size: u64) -> Option<Self> {
        let pages = (ram_size / 4096) as usize;
        let page_tables = pages.div_ceil(ENTRIES);
        let mut tables = Vec::new();
        for _ in 0..3 + page_tables {
            tables.push(PhysPages::page()?);
        }
        let pdpt = tables[1].phys();
        let pd = tables[2].phys();
        tables[0].words_mut()[0] = pdpt | READ_WRITE_EXECUTE;
        tables[1].words_mut()[0] = pd | READ_WRITE_EXECUTE;
        for table in 0..page_tables {
            let pt_phys = tables[3 + table].phys();
            tables[2].words_mut()[table] = pt_phys | READ_WRITE_EXECUTE;
            let first = table * ENTRIES;
            for (index, entry) in tables[3 + table].words_mut().iter_mut().enumerate() {
                let page = first + index;
                if page < pages {
                    *entry = (ram_base + page as u64 * 4096) | MEMORY_TYPE_WB | READ_WRITE_EXECUTE;
                }
            }
        }
        Some(Self { tables })
    }

    /// The EPT pointer (SDM 25.6.11): PML4 address, 4-level walk (3 << 3), write-back (6).
    pub fn pointer(&self) -> u64 {
        self.tables[0].phys() | (3 << 3) | 6
    }
}
