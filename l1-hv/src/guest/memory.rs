//! A guest's physical address space, as regions: its RAM (a block of host memory it owns), and
//! for kernel guests the machine's firmware and devices at their real addresses (passed
//! through: see docs/machine.md for why), with the host RAM it does not own left unmapped.
//! The same regions make the EPT and the memory map the guest's boot protocol describes.

use super::ept::{Ept, MemoryType};
use crate::boot::{Area, AreaKind};
use crate::memory::PhysPages;
use alloc::vec::Vec;

/// The legacy window below 1 MiB the machine owns: VGA memory, option and system ROMs (with
/// the ACPI RSDP and the SMBIOS entry point the guest's kernel searches there).
const LEGACY_WINDOW: (u64, u64) = (0xa_0000, 0x10_0000);
/// End of conventional memory a guest may use below the legacy window (the last KiB is left
/// for an EBDA, as PC firmware does).
const CONVENTIONAL_END: u64 = 0x9_fc00;
/// The top of the 32-bit physical address space, where the PC's MMIO lives.
const FOUR_GIB: u64 = 4 << 30;

/// What a guest-physical region is, in the guest's memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// RAM the guest owns.
    Ram,
    /// Firmware-reserved: the guest must not use it as RAM.
    Reserved,
    /// ACPI tables.
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
}

/// One entry of the guest's memory map (what e820 or a multiboot map tells it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First guest-physical byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it is.
    pub kind: RegionKind,
}

/// A guest's RAM and the regions around it: its address space.
pub struct AddressSpace {
    /// The RAM block: guest-physical 0 is its first byte.
    pub ram: PhysPages,
    /// The guest's memory map.
    pub map: Vec<Region>,
    /// The EPT that implements it.
    pub ept: Ept,
}

impl AddressSpace {
    /// `size` bytes of zeroed RAM at guest-physical 0 and nothing else (l1-hv's test guests);
    /// `None` when memory is exhausted.
    pub fn ram_only(size: u64) -> Option<Self> {
        let ram = PhysPages::new(size as usize, 2 << 20)?;
        let mut ept = Ept::new()?;
        ept.map(0, ram.phys(), size, MemoryType::WriteBack)?;
        let map = alloc::vec![Region {
            start: 0,
            len: size,
            kind: RegionKind::Ram
        }];
        Some(Self { ram, map, ept })
    }

    /// A PC for a kernel: `size` bytes of RAM at 0 with the legacy window and everything the
    /// firmware's memory map `host` does not call RAM passed through at its real address below
    /// 4 GiB; host RAM above the guest's is listed as reserved and left unmapped.
    pub fn machine(size: u64, host: &[Area]) -> Option<Self> {
        let mut memory = Self::ram_only(size)?;
        let (legacy_start, legacy_end) = LEGACY_WINDOW;
        memory.ept.map(
            legacy_start,
            legacy_start,
            legacy_end - legacy_start,
            MemoryType::Uncacheable,
        )?;
        memory.map = alloc::vec![
            Region {
                start: 0,
                len: CONVENTIONAL_END,
                kind: RegionKind::Ram
            },
            Region {
                start: CONVENTIONAL_END,
                len: legacy_start - CONVENTIONAL_END,
                kind: RegionKind::Reserved
            },
            Region {
                start: legacy_start,
                len: legacy_end - legacy_start,
                kind: RegionKind::Reserved
            },
            Region {
                start: legacy_end,
                len: size - legacy_end,
                kind: RegionKind::Ram
            },
        ];
        let mut cursor = size;
        let mut areas: Vec<Area> = host
            .iter()
            .filter(|a| a.range.end > size && a.range.start < FOUR_GIB)
            .copied()
            .collect();
        areas.sort_unstable_by_key(|a| a.range.start);
        for area in areas {
            let start = area.range.start.max(size) & !0xfff;
            let end = area.range.end.min(FOUR_GIB).next_multiple_of(0x1000);
            if start > cursor {
                // A hole in the firmware's map: device memory (PCI BARs, APICs, HPET, ROM).
                memory
                    .ept
                    .map(cursor, cursor, start - cursor, MemoryType::Uncacheable)?;
            }
            let kind = match area.kind {
                AreaKind::Ram => RegionKind::Reserved,
                AreaKind::Acpi => RegionKind::Acpi,
                AreaKind::Nvs => RegionKind::Nvs,
                AreaKind::Reserved => RegionKind::Reserved,
            };
            if area.kind != AreaKind::Ram {
                let cache = if kind == RegionKind::Reserved {
                    MemoryType::Uncacheable
                } else {
                    MemoryType::WriteBack
                };
                memory.ept.map(start, start, end - start, cache)?;
            }
            memory.map.push(Region {
                start,
                len: end - start,
                kind,
            });
            cursor = cursor.max(end);
        }
        if cursor < FOUR_GIB {
            memory
                .ept
                .map(cursor, cursor, FOUR_GIB - cursor, MemoryType::Uncacheable)?;
        }
        Some(memory)
    }
}
