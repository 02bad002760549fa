//! Multiboot2 specification 2.0: header and its tags (3.1), machine state (3.3), boot
//! information (3.6), serialised by the `multiboot2` crate's builder.

use alloc::vec::Vec;

use multiboot2::{
    BasicMemoryInfoTag, BootLoaderNameTag, Builder, CommandLineTag, MaybeDynSized, MemoryArea,
    MemoryMapTag, ModuleTag, RsdpV1Tag,
};

use crate::bytes::{align_up, array, u16_at, u32_at};
use crate::layout::{self, BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, GDT_BASE, GDT_LIMIT};
use crate::memory_map::{self, MemoryRegion, MEM_LOWER_KIB};
use crate::multiboot1::{plan_address_fields, AddressFields, BOOT_LOADER_NAME};
use crate::plan::{self, Boot, Plan};
use crate::{elf_image, Entry32, Format, Item, LoadError};

const HEADER_MAGIC: u32 = 0xE852_50D6;
/// EAX at entry (3.3).
const BOOTLOADER_MAGIC: u32 = 0x36D7_6289;
/// The header lies 8-byte aligned within the first 32 KiB (3.1.1).
const SEARCH_END: usize = 32768;
/// magic, architecture, header_length, checksum.
const HEADER_SIZE: usize = 16;
/// architecture 0: 32-bit protected mode of i386 (3.1.2).
const ARCH_I386: u32 = 0;
/// Tag flags bit 0: the kernel boots without the tag's feature (3.1.3).
const TAG_OPTIONAL: u16 = 1;

/// Offset of the first header whose checksum holds (magic + architecture + header_length +
/// checksum = 0 mod 2^32).
pub fn find_header(image: &[u8]) -> Option<usize> {
    magic_offsets(image).find(|&at| {
        let sum = (1..4).try_fold(HEADER_MAGIC, |sum, i| {
            Some(sum.wrapping_add(u32_at(image, at + 4 * i)?))
        });
        sum == Some(0)
    })
}

pub fn has_magic(image: &[u8]) -> bool {
    magic_offsets(image).next().is_some()
}

fn magic_offsets(image: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let searched = &image[..image.len().min(SEARCH_END)];
    searched
        .chunks_exact(8)
        .enumerate()
        .filter(|(_, chunk)| chunk[..4] == HEADER_MAGIC.to_le_bytes())
        .map(|(i, _)| i * 8)
}

/// What the header's tags ask of the loader.
#[derive(Default)]
struct Requests {
    /// Address tag: header_addr, load_addr, load_end_addr, bss_end_addr (3.1.5).
    address: Option<[u32; 4]>,
    /// Entry address tag (3.1.6): overrides the ELF entry point.
    entry: Option<u32>,
}

/// Header tag types (3.1.4-3.1.12).
mod header_tag {
    pub const END: u16 = 0;
    pub const INFORMATION_REQUEST: u16 = 1;
    pub const ADDRESS: u16 = 2;
    pub const ENTRY_ADDRESS: u16 = 3;
    pub const CONSOLE_FLAGS: u16 = 4;
    pub const FRAMEBUFFER: u16 = 5;
    pub const MODULE_ALIGNMENT: u16 = 6;
    pub const EFI_BOOT_SERVICES: u16 = 7;
    pub const EFI_I386_ENTRY: u16 = 8;
    pub const EFI_AMD64_ENTRY: u16 = 9;
    pub const RELOCATABLE: u16 = 10;

    pub fn name(tag: u16) -> &'static str {
        match tag {
            INFORMATION_REQUEST => "information request",
            ADDRESS => "address",
            ENTRY_ADDRESS => "entry address",
            CONSOLE_FLAGS => "console flags",
            FRAMEBUFFER => "framebuffer",
            MODULE_ALIGNMENT => "module alignment",
            EFI_BOOT_SERVICES => "EFI boot services",
            EFI_I386_ENTRY => "EFI i386 entry address",
            EFI_AMD64_ENTRY => "EFI amd64 entry address",
            RELOCATABLE => "relocatable header",
            _ => "unknown",
        }
    }
}

/// Boot information tag types (3.6) this loader provides; the RSDP only when given one.
fn provides(tag: u32, has_rsdp: bool) -> bool {
    matches!(tag, 1..=4 | 6) || (tag == 14 && has_rsdp)
}

fn info_tag_name(tag: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "end",
        "command line",
        "boot loader name",
        "module",
        "basic memory information",
        "BIOS boot device",
        "memory map",
        "VBE info",
        "framebuffer info",
        "ELF symbols",
        "APM table",
        "EFI 32-bit system table",
        "EFI 64-bit system table",
        "SMBIOS tables",
        "ACPI old RSDP",
        "ACPI new RSDP",
        "networking information",
        "EFI memory map",
        "EFI boot services not terminated",
        "EFI 32-bit image handle",
        "EFI 64-bit image handle",
        "image load base physical address",
    ];
    NAMES.get(tag as usize).copied().unwrap_or("unknown")
}

/// Walks the header's tags, refusing those without the optional flag it cannot honour.
fn read_tags(image: &[u8], header: usize, has_rsdp: bool) -> Result<Requests, LoadError> {
    let length =
        u32_at(image, header + 8).ok_or(LoadError::Truncated("multiboot2 header"))? as usize;
    let header_end = header
        .checked_add(length)
        .filter(|&end| end <= image.len())
        .ok_or(LoadError::Truncated(
            "multiboot2 header tags (header_length)",
        ))?;
    let mut requests = Requests::default();
    let mut at = header + HEADER_SIZE;
    loop {
        let (Some(tag), Some(flags), Some(size)) = (
            u16_at(image, at),
            u16_at(image, at + 2),
            u32_at(image, at + 4),
        ) else {
            return Err(LoadError::BadHeader(
                "multiboot2 tags end without an end tag",
            ));
        };
        let size = size as usize;
        let tag_end = at
            .checked_add(size)
            .filter(|&end| size >= 8 && end <= header_end);
        let tag_end = tag_end.ok_or(LoadError::BadHeader(
            "multiboot2 tag size outside header_length",
        ))?;
        let body = &image[at + 8..tag_end];
        let optional = flags & TAG_OPTIONAL != 0;
        match tag {
            header_tag::END => return Ok(requests),
            header_tag::INFORMATION_REQUEST if !optional => {
                for request in body
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                {
                    if !provides(request, has_rsdp) {
                        return Err(LoadError::UnsupportedInfoRequest {
                            tag: request,
                            name: info_tag_name(request),
                        });
                    }
                }
            }
            header_tag::ADDRESS => {
                let field = |i: usize| {
                    u32_at(body, 4 * i)
                        .ok_or(LoadError::BadHeader("multiboot2 address tag too short"))
                };
                requests.address = Some([field(0)?, field(1)?, field(2)?, field(3)?]);
            }
            header_tag::ENTRY_ADDRESS => {
                let entry = array::<4>(body, 0).ok_or(LoadError::BadHeader(
                    "multiboot2 entry address tag too short",
                ))?;
                requests.entry = Some(u32::from_le_bytes(entry));
            }
            // Met or moot here: modules are page-aligned, no EFI boot services exist to keep,
            // the kernel loads where it is linked (which the relocatable tag allows), and the
            // console flags describe consoles, which the guest finds on its own.
            header_tag::INFORMATION_REQUEST
            | header_tag::CONSOLE_FLAGS
            | header_tag::MODULE_ALIGNMENT
            | header_tag::EFI_BOOT_SERVICES
            | header_tag::RELOCATABLE => {}
            // No framebuffer, no EFI entry, nothing unknown: fine only if optional.
            _ if optional => {}
            _ => {
                return Err(LoadError::UnsupportedTag {
                    tag,
                    name: header_tag::name(tag),
                })
            }
        }
        // Tags are 8-byte aligned (3.1.3).
        at = align_up(tag_end as u64, 8)
            .map(|next| next as usize)
            .unwrap_or(usize::MAX);
    }
}

pub fn plan<'a>(image: &'a [u8], boot: &Boot<'a>) -> Result<(Plan<'a>, Entry32), LoadError> {
    let header = find_header(image).ok_or(LoadError::BadChecksum(Format::Multiboot2))?;
    if u32_at(image, header + 4) != Some(ARCH_I386) {
        return Err(LoadError::BadHeader(
            "multiboot2 architecture is not i386 (0)",
        ));
    }
    let requests = read_tags(image, header, boot.acpi_rsdp.is_some())?;
    plan::check_modules_and_strings(boot)?;
    let map = memory_map::checked(boot.map)?;
    let mut plan = Plan::new();
    let entry = match requests.address {
        Some([header_addr, load_addr, load_end_addr, bss_end_addr]) => {
            let entry_addr = requests.entry.ok_or(LoadError::BadHeader(
                "multiboot2 address tag without an entry address tag",
            ))?;
            // load_addr -1: load from the start of the file (3.1.5).
            let load_addr = match load_addr {
                u32::MAX => u32::try_from(header)
                    .ok()
                    .and_then(|offset| header_addr.checked_sub(offset))
                    .ok_or(LoadError::BadHeader(
                        "header_addr below the header's file offset",
                    ))?,
                load_addr => load_addr,
            };
            let fields = AddressFields {
                header_addr,
                load_addr,
                load_end_addr,
                bss_end_addr,
                entry_addr,
            };
            plan_address_fields(image, header, &fields, &mut plan)?
        }
        None => {
            let elf_entry = elf_image::plan(image, &mut plan)?;
            requests.entry.unwrap_or(elf_entry)
        }
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

/// The boot information tags (3.6): command line, loader name, modules, basic memory
/// information, memory map (entry_size 24), the old RSDP when given, the end tag. Strings and
/// map too large for the boot information area are refused before the builder sees them (it
/// panics on a tag over 4 GiB).
fn boot_information(
    boot: &Boot,
    map: &[MemoryRegion],
    module_starts: &[u64],
) -> Result<Vec<u8>, LoadError> {
    let strings = core::iter::once(boot.cmdline).chain(boot.modules.iter().map(|m| m.cmdline));
    let payload = strings.fold(24 * map.len(), |size, s| size.saturating_add(s.len()));
    if payload as u64 > layout::BOOT_INFO_END - layout::BOOT_INFO {
        return Err(LoadError::NoRoom(Item::BootInfo));
    }
    let mut builder = Builder::new()
        .cmdline(CommandLineTag::new(boot.cmdline))
        .bootloader(BootLoaderNameTag::new(BOOT_LOADER_NAME))
        .meminfo(BasicMemoryInfoTag::new(
            MEM_LOWER_KIB,
            memory_map::mem_upper_kib(map),
        ));
    for (module, &start) in boot.modules.iter().zip(module_starts) {
        // The plan refuses modules at or above 4 GiB before any of this is written.
        let end = start + module.bytes.len() as u64;
        builder = builder.add_module(ModuleTag::new(start as u32, end as u32, module.cmdline));
    }
    let areas: Vec<MemoryArea> = map
        .iter()
        .map(|r| MemoryArea::new(r.start, r.len, r.kind as u32))
        .collect();
    builder = builder.mmap(MemoryMapTag::new(&areas));
    if let Some(rsdp) = boot.acpi_rsdp {
        // The tag holds a copy of the 20-byte revision-0 RSDP (3.6.17); the builder recomputes
        // its checksum from the fields. The caller's bytes were checked by Plan::rsdp.
        let oem_id = array::<6>(rsdp, 9).unwrap_or_default();
        let rsdt = u32_at(rsdp, 16).unwrap_or_default();
        builder = builder.rsdpv1(RsdpV1Tag::new(
            oem_id,
            rsdp.get(15).copied().unwrap_or(0),
            rsdt,
        ));
    }
    Ok(builder.build().as_bytes().to_vec())
}
