//! Guest-virtual to guest-physical translation for the debugger: the guest's own page tables,
//! read through its guest-physical memory (SDM vol. 3 chapter 4, "Paging"). Only what a
//! debugger needs: the address a byte is at. Access rights (R/W, U/S, XD, protection keys) are
//! not checked (gdb reads kernel and user memory alike) and accessed/dirty bits are never set,
//! so looking at memory changes nothing in it.

/// What selects the paging mode (SDM 4.1.1, Table 4-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// CR0 (PG, bit 31).
    pub cr0: u64,
    /// CR3: the root table's physical address (and PCD/PWT or a PCID, ignored here).
    pub cr3: u64,
    /// CR4 (PSE bit 4, PAE bit 5, LA57 bit 12).
    pub cr4: u64,
    /// IA32_EFER (LMA, bit 10).
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1 << 0;
/// PS: the entry maps a page rather than pointing to a table (PDPTE 1 GiB, PDE 2/4 MiB).
const PAGE_SIZE: u64 = 1 << 7;
/// Bits 51:12 of a 64-bit entry: the next table or the page frame (bit 63 is XD, 62:52 are
/// ignored or protection keys, never part of the address).
const FRAME: u64 = 0x000f_ffff_ffff_f000;

/// Why a guest-virtual address has no guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The entry at this level (4 = PML4, 3 = PDPT, 2 = PD, 1 = PT; 5 = PML5) is not present.
    NotPresent {
        /// Paging-structure level.
        level: u8,
    },
    /// A paging structure lies outside the guest's memory.
    TableOutsideMemory {
        /// Guest-physical address of the entry that could not be read.
        gpa: u64,
    },
    /// In 4-level paging, bits 63:47 are not a sign extension of bit 47 (57 with LA57).
    NonCanonical,
}

/// Reads one paging-structure entry of `width` bytes (4 or 8) at guest-physical `gpa`.
pub trait ReadEntry {
    /// The little-endian entry, or `None` when `gpa` is not guest memory.
    fn read_entry(&mut self, gpa: u64, width: usize) -> Option<u64>;
}

/// Translates `linear` under `paging`: the guest-physical address of that byte.
pub fn translate(
    paging: &Paging,
    memory: &mut impl ReadEntry,
    linear: u64,
) -> Result<u64, WalkError> {
    if paging.cr0 & CR0_PG == 0 {
        return Ok(linear);
    }
    if paging.cr4 & CR4_PAE == 0 {
        return translate_32bit(paging, memory, linear as u32);
    }
    let mut entry_at = |gpa: u64| {
        memory
            .read_entry(gpa, 8)
            .ok_or(WalkError::TableOutsideMemory { gpa })
    };
    let (mut table, top) = if paging.efer & EFER_LMA == 0 {
        // PAE paging: CR3[31:5] holds four PDPTEs, indexed by bits 31:30 (SDM 4.4.1).
        let pdpte = entry_at((paging.cr3 & 0xffff_ffe0) + ((linear >> 30) & 3) * 8)?;
        if pdpte & PRESENT == 0 {
            return Err(WalkError::NotPresent { level: 3 });
        }
        (pdpte & FRAME, 2)
    } else {
        let top = if paging.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
        let bits = 12 + 9 * top;
        let sign = (linear as i64) << (64 - bits) >> (64 - bits);
        if sign as u64 != linear {
            return Err(WalkError::NonCanonical);
        }
        (paging.cr3 & FRAME, top)
    };
    for level in (1..=top).rev() {
        let shift = 12 + 9 * (u32::from(level) - 1);
        let entry = entry_at(table + ((linear >> shift) & 0x1ff) * 8)?;
        if entry & PRESENT == 0 {
            return Err(WalkError::NotPresent { level });
        }
        // A PDPTE (1 GiB) or PDE (2 MiB) with PS maps a page; PML4Es and PML5Es never do.
        if level == 1 || (level <= 3 && entry & PAGE_SIZE != 0) {
            let offset = linear & ((1 << shift) - 1);
            return Ok((entry & FRAME & !((1 << shift) - 1)) | offset);
        }
        table = entry & FRAME;
    }
    unreachable!("level 1 always maps a page")
}

/// 32-bit paging (SDM 4.3): a page directory of 4-byte entries, 4 MiB pages with CR4.PSE.
fn translate_32bit(
    paging: &Paging,
    memory: &mut impl ReadEntry,
    linear: u32,
) -> Result<u64, WalkError> {
    let mut entry_at = |gpa: u64| {
        memory
            .read_entry(gpa, 4)
            .ok_or(WalkError::TableOutsideMemory { gpa })
    };
    let pde = entry_at((paging.cr3 & 0xffff_f000) + u64::from(linear >> 22) * 4)?;
    if pde & PRESENT == 0 {
        return Err(WalkError::NotPresent { level: 2 });
    }
    if paging.cr4 & CR4_PSE != 0 && pde & PAGE_SIZE != 0 {
        // PDE bits 20:13 are physical-address bits 39:32 of a 4 MiB page (PSE-36).
        let high = ((pde >> 13) & 0xff) << 32;
        return Ok(high | (pde & 0xffc0_0000) | u64::from(linear & 0x3f_ffff));
    }
    let pte = entry_at((pde & 0xffff_f000) + u64::from((linear >> 12) & 0x3ff) * 4)?;
    if pte & PRESENT == 0 {
        return Err(WalkError::NotPresent { level: 1 });
    }
    Ok((pte & 0xffff_f000) | u64::from(linear & 0xfff))
}
