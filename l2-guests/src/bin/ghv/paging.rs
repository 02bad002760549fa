//! Four-level tables mapping single 4 KiB pages of the low 8 MiB to themselves. The same shape
//! serves two formats: ghv's EPT (SDM 29.3.2) and L3's own IA-32e page tables (SDM 4.5), which
//! differ only in the permission bits of each entry.
//!
//! ghv runs identity-mapped in both modes, so a table's address is its physical address.

use core::ops::Range;

const ENTRIES: usize = 512;
const PAGE: u64 = 4096;
/// Page tables: one per 2 MiB of the mapped range (all memory ghv may use is below 8 MiB).
const PAGE_TABLES: usize = 4;
/// The end of what a hierarchy can map.
pub const LIMIT: u64 = (PAGE_TABLES * ENTRIES) as u64 * PAGE;

/// One 4 KiB paging structure.
#[repr(C, align(4096))]
pub struct Table([u64; ENTRIES]);

/// PML4, PDPT, PD and the page tables under PD entries 0..4.
#[repr(C, align(4096))]
pub struct Hierarchy {
    pml4: Table,
    pdpt: Table,
    pd: Table,
    pt: [Table; PAGE_TABLES],
}

impl Hierarchy {
    /// An empty hierarchy (for statics).
    pub const fn new() -> Self {
        const EMPTY: Table = Table([0; ENTRIES]);
        Self {
            pml4: EMPTY,
            pdpt: EMPTY,
            pd: EMPTY,
            pt: [EMPTY; PAGE_TABLES],
        }
    }

    /// Unmaps everything and links the tables with `table_bits` (the permissions of non-leaf
    /// entries).
    pub fn reset(&mut self, table_bits: u64) {
        for table in [&mut self.pml4, &mut self.pdpt, &mut self.pd]
            .into_iter()
            .chain(self.pt.iter_mut())
        {
            table.0.fill(0);
        }
        self.pml4.0[0] = address(&self.pdpt) | table_bits;
        self.pdpt.0[0] = address(&self.pd) | table_bits;
        for (entry, table) in self.pd.0.iter_mut().zip(&self.pt) {
            *entry = address(table) | table_bits;
        }
    }

    /// Maps every page of `range` (4 KiB-aligned, below [`LIMIT`]) to itself with `leaf_bits`.
    pub fn map(&mut self, range: Range<u64>, leaf_bits: u64) {
        assert!(
            range.start.is_multiple_of(PAGE)
                && range.end.is_multiple_of(PAGE)
                && range.end <= LIMIT,
            "bad range {range:x?}"
        );
        for page in (range.start..range.end).step_by(PAGE as usize) {
            let index = (page / PAGE) as usize;
            self.pt[index / ENTRIES].0[index % ENTRIES] = page | leaf_bits;
        }
    }

    /// The PML4's physical address.
    pub fn root(&self) -> u64 {
        address(&self.pml4)
    }
}

fn address<T>(item: &T) -> u64 {
    item as *const T as u64
}
