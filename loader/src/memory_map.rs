//! The guest-physical memory map the caller describes, in the forms the boot protocols take.

use crate::layout::ONE_MIB;
use crate::LoadError;

/// What a range of guest-physical addresses is, with the e820 / multiboot type numbers
/// (ACPI 6.5, 15.1 "Address Range Types"; multiboot 0.6.96 3.3; multiboot2 3.6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RegionKind {
    /// Usable RAM.
    Ram = 1,
    /// Not to be used (firmware, MMIO).
    Reserved = 2,
    /// ACPI tables, reclaimable once read.
    Acpi = 3,
    /// ACPI non-volatile storage, preserved across sleep.
    Nvs = 4,
}

/// `[start, start + len)` of guest-physical memory is of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: RegionKind,
}

/// The e820 table in `boot_params` holds 128 entries (E820_MAX_ENTRIES_ZEROPAGE); the same
/// bound keeps multiboot boot information small.
pub const MAX_REGIONS: usize = 128;

/// The map, refused if longer than [`MAX_REGIONS`].
pub fn checked(map: &[MemoryRegion]) -> Result<&[MemoryRegion], LoadError> {
    if map.len() > MAX_REGIONS {
        return Err(LoadError::TooManyRegions(map.len()));
    }
    Ok(map)
}

/// One 20-byte e820 entry: base, length, type (the layout of both `boot_params.e820_table`
/// and, after its size field, a multiboot1 memory-map entry).
pub fn e820_entry(region: &MemoryRegion) -> [u8; 20] {
    let mut entry = [0; 20];
    entry[0..8].copy_from_slice(&region.start.to_le_bytes());
    entry[8..16].copy_from_slice(&region.len.to_le_bytes());
    entry[16..20].copy_from_slice(&(region.kind as u32).to_le_bytes());
    entry
}

/// Conventional memory in KiB: multiboot's `mem_lower`. Guest RAM always starts at 0 and the
/// BIOS convention keeps 640 KiB below the EBDA and video memory.
pub const MEM_LOWER_KIB: u32 = 640;

/// KiB of RAM contiguous from 1 MiB upwards, as the map describes it (multiboot `mem_upper`,
/// which spec 0.6.96 3.3 defines as "starting at 1 megabyte"), saturated to 32 bits.
pub fn mem_upper_kib(map: &[MemoryRegion]) -> u32 {
    let mut end = ONE_MIB;
    // Each step moves `end` strictly up through a RAM region, so the loop ends.
    while let Some(next) = map
        .iter()
        .filter(|r| r.kind == RegionKind::Ram && r.start <= end)
        .map(|r| r.start.saturating_add(r.len))
        .filter(|&region_end| region_end > end)
        .max()
    {
        end = next;
    }
    u32::try_from((end - ONE_MIB) / 1024).unwrap_or(u32::MAX)
}
