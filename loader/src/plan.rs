//! What a load writes where, checked whole (inside RAM, below 4 GiB, no overlaps) before the
//! first write.

use alloc::vec::Vec;

use crate::layout::{self, FOUR_GIB};
use crate::{GuestMemory, Item, LoadError, MemoryRegion, Module};

/// The caller's inputs every format uses.
pub struct Boot<'a> {
    pub cmdline: &'a str,
    pub modules: &'a [Module<'a>],
    pub map: &'a [MemoryRegion],
    pub acpi_rsdp: Option<&'a [u8]>,
    pub ram_size: u64,
}

/// Bytes borrowed from the image or a module, or assembled by the loader.
enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Borrowed(bytes) => bytes,
            Self::Owned(bytes) => bytes,
        }
    }
}

/// `[at, at + len)` belongs to `item`: `bytes` are written at `at`, and the rest of the range
/// is zeroed when `zero_rest` (BSS) or left alone (room the Linux kernel claims itself).
struct Placement<'a> {
    item: Item,
    at: u64,
    len: u64,
    bytes: Bytes<'a>,
    zero_rest: bool,
}

/// The placements of one load, in writing order.
pub struct Plan<'a> {
    placements: Vec<Placement<'a>>,
}

impl<'a> Plan<'a> {
    /// A plan holding the boot GDT, which every 32-bit entry uses.
    pub fn new() -> Self {
        let mut plan = Self {
            placements: Vec::new(),
        };
        let gdt = layout::gdt_bytes().to_vec();
        plan.owned(Item::Gdt, layout::GDT_BASE.into(), gdt);
        plan
    }

    /// `bytes` at `at`, then zeroes up to `at + len` (if `len` is longer).
    pub fn segment(&mut self, item: Item, at: u64, bytes: &'a [u8], len: u64) {
        let len = len.max(bytes.len() as u64);
        let bytes = Bytes::Borrowed(bytes);
        self.placements.push(Placement {
            item,
            at,
            len,
            bytes,
            zero_rest: true,
        });
    }

    /// `bytes` at `at`, and `[at, at + room)` reserved for `item` but not written beyond them.
    pub fn reserve(&mut self, item: Item, at: u64, bytes: &'a [u8], room: u64) {
        let len = room.max(bytes.len() as u64);
        let bytes = Bytes::Borrowed(bytes);
        self.placements.push(Placement {
            item,
            at,
            len,
            bytes,
            zero_rest: false,
        });
    }

    /// `bytes` assembled by the loader, at `at`.
    pub fn owned(&mut self, item: Item, at: u64, bytes: Vec<u8>) {
        let len = bytes.len() as u64;
        let bytes = Bytes::Owned(bytes);
        self.placements.push(Placement {
            item,
            at,
            len,
            bytes,
            zero_rest: false,
        });
    }

    /// Multiboot boot information at [`layout::BOOT_INFO`], refused past [`layout::BOOT_INFO_END`].
    pub fn boot_info(&mut self, info: Vec<u8>) -> Result<(), LoadError> {
        if info.len() as u64 > layout::BOOT_INFO_END - layout::BOOT_INFO {
            return Err(LoadError::NoRoom(Item::BootInfo));
        }
        self.owned(Item::BootInfo, layout::BOOT_INFO, info);
        Ok(())
    }

    /// The caller's RSDP copied to [`layout::RSDP`], if given; its address.
    pub fn rsdp(&mut self, acpi_rsdp: Option<&'a [u8]>) -> Result<Option<u64>, LoadError> {
        let Some(rsdp) = acpi_rsdp else {
            return Ok(None);
        };
        // ACPI 6.5, 5.2.5.3: 20 bytes (revision 0) or 36 (revision 2, with the XSDT).
        if !(rsdp.len() == 20 || rsdp.len() == 36) || !rsdp.starts_with(b"RSD PTR ") {
            return Err(LoadError::BadRsdp);
        }
        self.segment(Item::Rsdp, layout::RSDP, rsdp, rsdp.len() as u64);
        Ok(Some(layout::RSDP))
    }

    /// The end of the highest placement so far (the image's end, when called after it).
    pub fn end(&self) -> u64 {
        self.placements
            .iter()
            .map(|p| p.at.saturating_add(p.len))
            .max()
            .unwrap_or(0)
    }

    /// Checks every placement lies in RAM below 4 GiB and no two overlap.
    fn check(&self, ram_size: u64) -> Result<(), LoadError> {
        let limit = ram_size.min(FOUR_GIB);
        for p in &self.placements {
            let end = p.at.checked_add(p.len).filter(|&end| end <= limit);
            if end.is_none() {
                let end = p.at.saturating_add(p.len);
                return Err(LoadError::OutsideRam {
                    item: p.item,
                    start: p.at,
                    end,
                    limit,
                });
            }
        }
        // Sorted by start, only neighbours can overlap first: O(n log n) for images with many
        // program headers.
        let mut order: Vec<&Placement> = self.placements.iter().filter(|p| p.len > 0).collect();
        order.sort_unstable_by_key(|p| p.at);
        for pair in order.windows(2) {
            if pair[0].at + pair[0].len > pair[1].at {
                return Err(LoadError::Overlap(pair[0].item, pair[1].item));
            }
        }
        Ok(())
    }

    /// Checks the plan against `mem`, then writes it.
    pub fn write(&self, mem: &mut dyn GuestMemory) -> Result<(), LoadError> {
        self.check(mem.ram_size())?;
        for p in &self.placements {
            let bytes = p.bytes.as_slice();
            mem.write(p.at, bytes)?;
            let written = bytes.len() as u64;
            if p.zero_rest && p.len > written {
                mem.fill(p.at + written, p.len - written, 0)?;
            }
        }
        Ok(())
    }
}

/// Places each module on the next page boundary from `from`; returns each module's start.
/// Each must end inside RAM and below 4 GiB - 1: the boot information describes it with a
/// 32-bit exclusive end (multiboot 0.6.96 3.3 `mod_end`, multiboot2 3.6.6), checked here
/// because that information is built before the plan is.
pub fn place_modules<'a>(
    plan: &mut Plan<'a>,
    modules: &'a [Module<'a>],
    from: u64,
    ram_size: u64,
) -> Result<Vec<u64>, LoadError> {
    let limit = ram_size.min(FOUR_GIB - 1);
    let mut next = from;
    let mut starts = Vec::with_capacity(modules.len());
    for (i, module) in modules.iter().enumerate() {
        let at =
            crate::bytes::align_up(next, layout::PAGE).ok_or(LoadError::NoRoom(Item::Module(i)))?;
        let len = module.bytes.len() as u64;
        let end = at.saturating_add(len);
        if end > limit {
            return Err(LoadError::OutsideRam {
                item: Item::Module(i),
                start: at,
                end,
                limit,
            });
        }
        plan.segment(Item::Module(i), at, module.bytes, len);
        starts.push(at);
        next = at.saturating_add(len);
    }
    Ok(starts)
}

/// Modules hold bytes (a multiboot2 module tag, 3.6.6, describes a non-empty range), and boot
/// strings are C strings: a NUL inside would cut them short.
pub fn check_modules_and_strings(boot: &Boot) -> Result<(), LoadError> {
    if let Some(i) = boot.modules.iter().position(|m| m.bytes.is_empty()) {
        return Err(LoadError::EmptyModule(i));
    }
    let strings = core::iter::once(boot.cmdline).chain(boot.modules.iter().map(|m| m.cmdline));
    for s in strings {
        if s.as_bytes().contains(&0) {
            return Err(LoadError::NulInString);
        }
    }
    Ok(())
}
