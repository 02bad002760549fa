//! EPT for one guest (SDM 29.3): a 4-level hierarchy built from the guest's memory map, with
//! 2 MiB pages wherever a range is 2 MiB-aligned and 4 KiB pages at the edges. What the map
//! leaves out is unmapped, so a guest access there is an EPT violation l1-hv contains.

use crate::memory::PhysPages;
use alloc::vec::Vec;

const READ_WRITE_EXECUTE: u64 = 0b111;
/// Bit 7 of a PDE: it maps a 2 MiB page (SDM Table 29-4).
const LARGE_PAGE: u64 = 1 << 7;
const ENTRIES: u64 = 512;
const PAGE: u64 = 4 << 10;
const LARGE: u64 = 2 << 20;
/// Bits 51:12 of an EPT entry: the next table or the page.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// EPT memory type of a leaf (bits 5:3, SDM 29.3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum MemoryType {
    /// Uncacheable: device memory.
    Uncacheable = 0,
    /// Write-back: RAM.
    WriteBack = 6,
}

/// A guest's EPT hierarchy; the tables are freed when it is dropped (after INVEPT).
pub struct Ept {
    tables: Vec<PhysPages>,
}

impl Ept {
    /// An empty hierarchy (only the PML4), or `None` when memory is exhausted.
    pub fn new() -> Option<Self> {
        Some(Self {
            tables: alloc::vec![PhysPages::page()?],
        })
    }

    /// Maps guest-physical `[gpa, gpa + len)` to host-physical `[hpa, hpa + len)` (4 KiB
    /// aligned), read/write/execute with memory type `kind`; `None` when memory is exhausted.
    /// A later mapping of the same page replaces an earlier one.
    pub fn map(&mut self, gpa: u64, hpa: u64, len: u64, kind: MemoryType) -> Option<()> {
        let mut offset = 0;
        while offset < len {
            let (g, h) = (gpa + offset, hpa + offset);
            let large = g % LARGE == 0 && h % LARGE == 0 && len - offset >= LARGE;
            let pd = self.table_at(g, 2)?;
            let pde = &mut self.words(pd)[index(g, 1)];
            if large {
                *pde = h | LARGE_PAGE | (kind as u64) << 3 | READ_WRITE_EXECUTE;
                offset += LARGE;
                continue;
            }
            let pt = self.table_at(g, 3)?;
            self.words(pt)[index(g, 0)] = h | (kind as u64) << 3 | READ_WRITE_EXECUTE;
            offset += PAGE;
        }
        Some(())
    }

    /// Where `gpa` is mapped: the host-physical address and the leaf's memory type (bits 5:3),
    /// `None` where the guest has nothing. Every mapping is read/write/execute.
    pub fn translate(&self, gpa: u64) -> Option<(u64, u8)> {
        let mut table = &self.tables[0];
        for level in (0..4).rev() {
            let entry = table.words()[index(gpa, level)];
            if entry & READ_WRITE_EXECUTE == 0 {
                return None;
            }
            let size = match level {
                0 => PAGE,
                1 if entry & LARGE_PAGE != 0 => LARGE,
                _ => {
                    table = self
                        .tables
                        .iter()
                        .find(|t| t.phys() == entry & ADDRESS_MASK)?;
                    continue;
                }
            };
            let page = entry & ADDRESS_MASK & !(size - 1);
            return Some((page + gpa % size, (entry >> 3 & 7) as u8));
        }
        None
    }

    /// The EPT pointer (SDM 25.6.11): PML4 address, 4-level walk (3 << 3), write-back (6).
    pub fn pointer(&self) -> u64 {
        self.tables[0].phys() | (3 << 3) | 6
    }

    /// The table `steps` entries down the walk to `gpa` from the PML4 (2 = its PD, 3 = its PT),
    /// created where missing; a 2 MiB leaf in the way is split into 4 KiB pages.
    fn table_at(&mut self, gpa: u64, steps: usize) -> Option<usize> {
        let mut table = 0;
        for level in (4 - steps..4).rev() {
            let slot = index(gpa, level);
            let entry = self.words(table)[slot];
            let next = match entry {
                0 => {
                    let fresh = self.push_table()?;
                    self.words(table)[slot] = self.tables[fresh].phys() | READ_WRITE_EXECUTE;
                    fresh
                }
                e if e & LARGE_PAGE != 0 => {
                    let fresh = self.push_table()?;
                    let base = e & ADDRESS_MASK & !(LARGE - 1);
                    let flags = e & !ADDRESS_MASK & !LARGE_PAGE;
                    for (i, pte) in self.words(fresh).iter_mut().enumerate() {
                        *pte = (base + i as u64 * PAGE) | flags;
                    }
                    self.words(table)[slot] = self.tables[fresh].phys() | READ_WRITE_EXECUTE;
                    fresh
                }
                e => self
                    .tables
                    .iter()
                    .position(|t| t.phys() == e & ADDRESS_MASK)?,
            };
            table = next;
        }
        Some(table)
    }

    fn push_table(&mut self) -> Option<usize> {
        self.tables.push(PhysPages::page()?);
        Some(self.tables.len() - 1)
    }

    fn words(&mut self, table: usize) -> &mut [u64] {
        self.tables[table].words_mut()
    }
}

/// The index of `gpa` in a table of `level` (0 = PT, 1 = PD, 2 = PDPT, 3 = PML4).
fn index(gpa: u64, level: usize) -> usize {
    ((gpa >> (12 + 9 * level)) % ENTRIES) as usize
}
