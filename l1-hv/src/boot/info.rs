//! The multiboot2 boot information, copied into fixed-size storage before any memory is reused
//! (the boot loader may have placed it right after the image, where the heap will go).

use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

/// Most usable RAM regions and guest modules l1-hv keeps track of.
const MAX_REGIONS: usize = 32;
const MAX_MODULES: usize = 16;
/// Long enough for a Linux command line after the run options.
const MAX_CMDLINE: usize = 1024;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A multiboot2 module: one guest image and the command line that configures its run.
#[derive(Clone, Copy)]
pub struct GuestModule {
    /// Where GRUB loaded the file.
    pub range: Range,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
}

impl GuestModule {
    /// The module's command line (GRUB: the words after the file name on the `module2` line).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The image bytes.
    pub fn bytes(&self) -> &'static [u8] {
        // SAFETY: GRUB loaded the module there; l1-hv never hands that range to the heap.
        unsafe {
            core::slice::from_raw_parts(
                self.range.start as *const u8,
                (self.range.end - self.range.start) as usize,
            )
        }
    }
}

/// What the firmware's memory map says a physical range is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaKind {
    /// RAM the host may use.
    Ram,
    /// ACPI tables (reclaimable once read).
    Acpi,
    /// ACPI non-volatile storage.
    Nvs,
    /// Firmware-reserved (or defective) memory.
    Reserved,
}

/// One entry of the firmware's memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// The physical range.
    pub range: Range,
    /// What it is.
    pub kind: AreaKind,
}

/// Everything l1-hv uses from the boot loader.
pub struct BootInfo {
    areas: [Area; MAX_REGIONS],
    area_count: usize,
    usable: [Range; MAX_REGIONS],
    usable_count: usize,

    reserved: [Range; MAX_MODULES + 2],
    reserved_count: usize,
    modules: [Option<GuestModule>; MAX_MODULES],
}

/// Why the boot information could not be used.
#[derive(Debug)]
pub enum BootInfoError {
    /// The multiboot2 structure failed to parse.
    Malformed,
    /// No memory-map tag: l1-hv will not guess where RAM is.
    NoMemoryMap,
}

impl BootInfo {
    /// Parses the multiboot2 information at physical address `mbi`.
    ///
    /// # Safety
    /// `mbi` must be the pointer GRUB passed in EBX, still intact, identity-mapped.
    pub unsafe fn parse(mbi: u32, kernel: Range) -> Result<Self, BootInfoError> {
        let boot = BootInformation::load(mbi as usize as *const BootInformationHeader)
            .map_err(|_| BootInfoError::Malformed)?;
        let mut info = BootInfo {
            areas: [Area {
                range: Range::default(),
                kind: AreaKind::Reserved,
            }; MAX_REGIONS],
            area_count: 0,

            usable: [Range::default(); MAX_REGIONS],
            usable_count: 0,
            reserved: [Range::default(); MAX_MODULES + 2],
            reserved_count: 0,
            modules: [None; MAX_MODULES],
        };
        let map = boot.memory_map_tag().ok_or(BootInfoError::NoMemoryMap)?;
        for area in map.memory_areas() {
            let range = Range {
                start: area.start_address(),
                end: area.end_address(),
            };
            let kind = match area.typ() {
                MemoryAreaType::Available => AreaKind::Ram,
                MemoryAreaType::AcpiAvailable => AreaKind::Acpi,
                MemoryAreaType::ReservedHibernate => AreaKind::Nvs,
                _ => AreaKind::Reserved,
            };
            if info.area_count < MAX_REGIONS {
                info.areas[info.area_count] = Area { range, kind };
                info.area_count += 1;
            }
            if kind == AreaKind::Ram && info.usable_count < MAX_REGIONS {
                info.usable[info.usable_count] = range;
                info.usable_count += 1;
            }
        }

        info.reserve(kernel);
        info.reserve(Range {
            start: boot.start_address() as u64,
            end: boot.end_address() as u64,
        });
        for (slot, module) in info.modules.iter_mut().zip(boot.module_tags()) {
            let range = Range {
                start: u64::from(module.start_address()),
                end: u64::from(module.end_address()),
            };
            let text = module.cmdline().unwrap_or("").as_bytes();
            let len = text.len().min(MAX_CMDLINE);
            let mut cmdline = [0; MAX_CMDLINE];
            cmdline[..len].copy_from_slice(&text[..len]);
            *slot = Some(GuestModule {
                range,
                cmdline,
                cmdline_len: len,
            });
        }
        for range in info
            .modules
            .map(|m| m.map(|m| m.range))
            .into_iter()
            .flatten()
        {
            info.reserve(range);
        }
        Ok(info)
    }

    fn reserve(&mut self, range: Range) {
        self.reserved[self.reserved_count] = range;
        self.reserved_count += 1;
    }

    /// The firmware's memory map.
    pub fn areas(&self) -> &[Area] {
        &self.areas[..self.area_count]
    }

    /// The guest modules, in the order of the `module2` lines.
    pub fn modules(&self) -> impl Iterator<Item = &GuestModule> {
        self.modules.iter().flatten()
    }

    /// The largest stretch of usable RAM below 4 GiB (the identity-mapped range) that overlaps
    /// nothing reserved: the kernel image, the boot information, the modules.
    pub fn largest_free_range(&self) -> Option<Range> {
        const IDENTITY_MAPPED: u64 = 4 << 30;
        let reserved = &self.reserved[..self.reserved_count];
        let mut best: Option<Range> = None;
        for region in &self.usable[..self.usable_count] {
            let mut start = region.start.max(0x10_0000);
            let end = region.end.min(IDENTITY_MAPPED);
            while start < end {
                // The free stretch from `start` ends at the first reserved range above it.
                let blocker = reserved
                    .iter()
                    .filter(|r| r.overlaps(&Range { start, end }))
                    .min_by_key(|r| r.start);
                let (gap_end, next) = match blocker {
                    Some(r) if r.start <= start => (start, r.end),
                    Some(r) => (r.start, r.end),
                    None => (end, end),
                };
                let gap = Range {
                    start,
                    end: gap_end,
                };
                if gap.end > gap.start && best.is_none_or(|b| gap.end - gap.start > b.end - b.start)
                {
                    best = Some(gap);
                }
                start = next;
            }
        }
        best
    }
}
