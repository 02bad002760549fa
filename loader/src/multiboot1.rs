//! Multiboot specification 0.6.96: header (3.1), machine state (3.2), boot information (3.3).

use alloc::vec;
use alloc::vec::Vec;

use crate::bytes::{put, u32_at};
use crate::layout::{self, BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, GDT_BASE, GDT_LIMIT};
use crate::memory_map::{self, e820_entry, MEM_LOWER_KIB};
use crate::plan::{self, Boot, Plan};
use crate::{elf_image, Entry32, Item, LoadError};

const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// EAX at entry (3.2).
const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header lies 4-byte aligned within the first 8 KiB (3.1.1).
const SEARCH_END: usize = 8192;

/// Header flags (3.1.2). Bits 0-15 are requirements: a loader that cannot meet one refuses.
const FLAG_PAGE_ALIGN_MODULES: u32 = 1 << 0;
const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_REQUIRED_MASK: u32 = 0xFFFF;
/// Bit 16: the address fields (the "a.out kludge") say where to load, not the ELF headers.
const FLAG_ADDRESS_FIELDS: u32 = 1 << 16;
/// Modules are always page-aligned and memory information always given, so those two
/// requirements hold; every other (video mode, bit 2, or undefined) is refused.
const FLAGS_MET: u32 = FLAG_PAGE_ALIGN_MODULES | FLAG_MEMORY_INFO;

/// Offset of the first header whose checksum holds (magic + flags + checksum = 0 mod 2^32).
pub fn find_header(image: &[u8]) -> Option<usize> {
    magic_offsets(image).find(|&at| {
        let fields = (u32_at(image, at + 4), u32_at(image, at + 8));
        matches!(fields, (Some(flags), Some(checksum)) if HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) == 0)
    })
}

pub fn has_magic(image: &[u8]) -> bool {
    magic_offsets(image).next().is_some()
}

fn magic_offsets(image: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let searched = &image[..image.len().min(SEARCH_END)];
    searched
        .chunks_exact(4)
        .enumerate()
        .filter(|(_, word)| *word == HEADER_MAGIC.to_le_bytes())
        .map(|(i, _)| i * 4)
}

/// The address fields (3.1.3), all physical addresses.
pub struct AddressFields {
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

pub fn plan<'a>(image: &'a [u8], boot: &Boot<'a>) -> Result<(Plan<'a>, Entry32), LoadError> {
    let header = find_header(image).ok_or(LoadError::BadChecksum(crate::Format::Multiboot1))?;
    let flags = u32_at(image, header + 4).ok_or(LoadError::Truncated("multiboot1 header"))?;
    if flags & FLAG_REQUIRED_MASK & !FLAGS_MET != 0 {
        return Err(LoadError::UnsupportedMultiboot1Flags(
            flags & FLAG_REQUIRED_MASK & !FLAGS_MET,
        ));
    }
    plan::check_modules_and_strings(boot)?;
    let map = memory_map::checked(boot.map)?;
    let mut plan = Plan::new();
    let entry = if flags & FLAG_ADDRESS_FIELDS != 0 {
        let field = |i: usize| {
            u32_at(image, header + 12 + 4 * i)
                .ok_or(LoadError::Truncated("multiboot1 address fields"))
        };
        let fields = AddressFields {
            header_addr: field(0)?,
            load_addr: field(1)?,
            load_end_addr: field(2)?,
            bss_end_addr: field(3)?,
            entry_addr: field(4)?,
        };
        plan_address_fields(image, header, &fields, &mut plan)?
    } else {
        elf_image::plan(image, &mut plan)?
    };
    let image_end = plan.end();
    let module_starts = plan::place_modules(&mut plan, boot.modules, image_end, boot.ram_size)?;
    plan.rsdp(boot.acpi_rsdp)?;
    plan.boot_info(boot_information(boot, map, &module_starts)?)?;
    let entry = Entry32 {
        eip: entry,
        eax: BOOTLOADER_MAGIC,
        ebx: layout::BOOT_INFO as u32,
        esi: 0,
        gdt_base: GDT_BASE,
        gdt_limit: GDT_LIMIT,
        code_selector: BOOT_CODE_SELECTOR,
        data_selector: BOOT_DATA_SELECTOR,
    };
    Ok((plan, entry))
}

/// Plans text+data from the file and the zeroed BSS the address fields describe (3.1.3); the
/// same fields make up multiboot2's address tag (multiboot2 3.1.5). Returns the entry point.
pub fn plan_address_fields<'a>(
    image: &'a [u8],
    header_offset: usize,
    fields: &AddressFields,
    plan: &mut Plan<'a>,
) -> Result<u32, LoadError> {
    let &AddressFields {
        header_addr,
        load_addr,
        load_end_addr,
        bss_end_addr,
        entry_addr,
    } = fields;
    // "The offset in the OS image file at which to start loading is defined by the offset at
    // which the header was found, minus (header_addr - load_addr)."
    let before_header = header_addr
        .checked_sub(load_addr)
        .ok_or(LoadError::BadHeader("load_addr above header_addr"))?;
    let file_start = (header_offset as u64)
        .checked_sub(before_header.into())
        .ok_or(LoadError::BadHeader(
            "load_addr before the start of the file",
        ))? as usize;
    // load_end_addr 0: text and data occupy the rest of the file.
    let load_len = if load_end_addr == 0 {
        (image.len() - file_start) as u64
    } else {
        load_end_addr
            .checked_sub(load_addr)
            .ok_or(LoadError::BadHeader("load_end_addr below load_addr"))?
            .into()
    };
    let file = usize::try_from(load_len)
        .ok()
        .and_then(|len| image.get(file_start..file_start.checked_add(len)?))
        .ok_or(LoadError::Truncated("text and data (load_end_addr)"))?;
    // bss_end_addr 0: no BSS.
    let load_end = u64::from(load_addr) + load_len;
    let mem_len = if bss_end_addr == 0 {
        load_len
    } else {
        u64::from(bss_end_addr)
            .checked_sub(load_end)
            .ok_or(LoadError::BadHeader("bss_end_addr below load_end_addr"))?
            + load_len
    };
    plan.segment(Item::Segment(0), load_addr.into(), file, mem_len);
    if !(u64::from(load_addr)..u64::from(load_addr) + mem_len).contains(&entry_addr.into()) {
        return Err(LoadError::BadEntry(entry_addr.into()));
    }
    Ok(entry_addr)
}

/// Boot information structure offsets (3.3) and its size through `boot_loader_name`.
mod info {
    pub const FLAGS: usize = 0;
    pub const MEM_LOWER: usize = 4;
    pub const MEM_UPPER: usize = 8;
    pub const CMDLINE: usize = 16;
    pub const MODS_COUNT: usize = 20;
    pub const MODS_ADDR: usize = 24;
    pub const MMAP_LENGTH: usize = 44;
    pub const MMAP_ADDR: usize = 48;
    pub const BOOT_LOADER_NAME: usize = 64;
    pub const SIZE: usize = 88;
    const _: () = assert!(BOOT_LOADER_NAME + 4 <= SIZE && SIZE.is_multiple_of(8));

    /// flags: mem_* valid (0), cmdline (2), mods (3), mmap (6), boot_loader_name (9).
    pub const FLAGS_GIVEN: u32 = 1 << 0 | 1 << 2 | 1 << 3 | 1 << 6 | 1 << 9;
    /// A module entry: mod_start, mod_end, string, reserved.
    pub const MODULE_SIZE: usize = 16;
    /// A memory-map entry: size (20, not counting itself), base_addr, length, type.
    pub const MMAP_ENTRY_SIZE: usize = 24;
}

/// The name in `boot_loader_name`.
pub const BOOT_LOADER_NAME: &str = "l1-hv";

/// The boot information at [`layout::BOOT_INFO`]: the structure, the module list, the memory
/// map, then the NUL-terminated strings (command line, module strings, loader name). Refused
/// if it would reach past [`layout::BOOT_INFO_END`], before any address in it is computed.
fn boot_information(
    boot: &Boot,
    map: &[memory_map::MemoryRegion],
    module_starts: &[u64],
) -> Result<Vec<u8>, LoadError> {
    let base = layout::BOOT_INFO as u32;
    let mods_at = info::SIZE;
    let mmap_at = mods_at + info::MODULE_SIZE * boot.modules.len();
    let strings_at = mmap_at + info::MMAP_ENTRY_SIZE * map.len();
    let strings = core::iter::once(boot.cmdline)
        .chain(boot.modules.iter().map(|m| m.cmdline))
        .chain([BOOT_LOADER_NAME]);
    let size = strings.fold(strings_at, |size, s| size.saturating_add(s.len() + 1));
    if size as u64 > layout::BOOT_INFO_END - layout::BOOT_INFO {
        return Err(LoadError::NoRoom(Item::BootInfo));
    }
    let mut buf = vec![0; strings_at];
    // Below BOOT_INFO_END, so addresses fit in u32.
    let push_string = |buf: &mut Vec<u8>, s: &str| -> u32 {
        let at = base + buf.len() as u32;
        buf.extend_from_slice(s.as_bytes());
        buf.push(0);
        at
    };
    let cmdline = push_string(&mut buf, boot.cmdline);
    for (i, (module, &start)) in boot.modules.iter().zip(module_starts).enumerate() {
        let string = push_string(&mut buf, module.cmdline);
        let entry = mods_at + i * info::MODULE_SIZE;
        // Modules lie below 4 GiB (the plan checks), so their addresses fit in 32 bits.
        put(&mut buf, entry, &(start as u32).to_le_bytes());
        put(
            &mut buf,
            entry + 4,
            &((start + module.bytes.len() as u64) as u32).to_le_bytes(),
        );
        put(&mut buf, entry + 8, &string.to_le_bytes());
    }
    for (i, region) in map.iter().enumerate() {
        let entry = mmap_at + i * info::MMAP_ENTRY_SIZE;
        put(&mut buf, entry, &20u32.to_le_bytes());
        put(&mut buf, entry + 4, &e820_entry(region));
    }
    let loader_name = push_string(&mut buf, BOOT_LOADER_NAME);
    put(&mut buf, info::FLAGS, &info::FLAGS_GIVEN.to_le_bytes());
    put(&mut buf, info::MEM_LOWER, &MEM_LOWER_KIB.to_le_bytes());
    put(
        &mut buf,
        info::MEM_UPPER,
        &memory_map::mem_upper_kib(map).to_le_bytes(),
    );
    put(&mut buf, info::CMDLINE, &cmdline.to_le_bytes());
    put(
        &mut buf,
        info::MODS_COUNT,
        &(boot.modules.len() as u32).to_le_bytes(),
    );
    put(
        &mut buf,
        info::MODS_ADDR,
        &(base + mods_at as u32).to_le_bytes(),
    );
    put(
        &mut buf,
        info::MMAP_LENGTH,
        &((map.len() * info::MMAP_ENTRY_SIZE) as u32).to_le_bytes(),
    );
    put(
        &mut buf,
        info::MMAP_ADDR,
        &(base + mmap_at as u32).to_le_bytes(),
    );
    put(&mut buf, info::BOOT_LOADER_NAME, &loader_name.to_le_bytes());
    Ok(buf)
}
