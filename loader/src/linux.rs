//! Linux x86 boot protocol >= 2.06, 32-bit entry (Documentation/arch/x86/boot.rst, "The
//! Real-Mode Kernel Header", "Details of Header Fields", "32-bit Boot Protocol";
//! zero-page.rst for the rest of `boot_params`).

use alloc::vec;

use crate::bytes::{align_up, put, u16_at, u32_at, u64_at};
use crate::layout::{
    self, BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, FOUR_GIB, GDT_BASE, GDT_LIMIT, ONE_MIB, PAGE,
};
use crate::memory_map::{self, e820_entry};
use crate::plan::{self, Boot, Plan};
use crate::{Entry32, Item, LoadError};

/// Offsets in the image, which are also the offsets in `boot_params` (the setup header is
/// copied to the same place).
mod offset {
    pub const ACPI_RSDP_ADDR: usize = 0x070;
    pub const E820_ENTRIES: usize = 0x1E8;
    /// The setup header starts here.
    pub const SETUP_SECTS: usize = 0x1F1;
    pub const SYSSIZE: usize = 0x1F4;
    pub const BOOT_FLAG: usize = 0x1FE;
    /// The second byte of the jump at 0x200: the setup header ends at 0x202 plus it.
    pub const JUMP_OFFSET: usize = 0x201;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const CODE32_START: usize = 0x214;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21C;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22C;
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const PREF_ADDRESS: usize = 0x258;
    pub const INIT_SIZE: usize = 0x260;
    pub const E820_TABLE: usize = 0x2D0;
}

const BOOT_PARAMS_SIZE: usize = 4096;
const BOOT_FLAG: u16 = 0xAA55;
/// loadflags bit 0: the protected-mode kernel loads at 0x100000.
const LOADED_HIGH: u8 = 1;
/// "Undefined" boot loader ID: no ID assigned (boot.rst, type_of_loader).
const LOADER_UNDEFINED: u8 = 0xFF;
/// Protocol versions (major << 8 | minor) that added what this loader uses.
const V2_06_CMDLINE_SIZE: u16 = 0x206;
const V2_05_RELOCATABLE: u16 = 0x205;
const V2_10_PREF_ADDRESS_INIT_SIZE: u16 = 0x20A;
const V2_14_ACPI_RSDP_ADDR: u16 = 0x20E;

pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(offset::HEADER..offset::HEADER + 4) == Some(b"HdrS")
}

fn header_u8(image: &[u8], at: usize) -> Result<u8, LoadError> {
    image
        .get(at)
        .copied()
        .ok_or(LoadError::Truncated("setup header"))
}

fn header_u16(image: &[u8], at: usize) -> Result<u16, LoadError> {
    u16_at(image, at).ok_or(LoadError::Truncated("setup header"))
}

fn header_u32(image: &[u8], at: usize) -> Result<u32, LoadError> {
    u32_at(image, at).ok_or(LoadError::Truncated("setup header"))
}

pub fn plan<'a>(image: &'a [u8], boot: &Boot<'a>) -> Result<(Plan<'a>, Entry32), LoadError> {
    let version = header_u16(image, offset::VERSION)?;
    if version < V2_06_CMDLINE_SIZE {
        return Err(LoadError::LinuxProtocolTooOld(version));
    }
    if header_u16(image, offset::BOOT_FLAG)? != BOOT_FLAG {
        return Err(LoadError::BadHeader("bzImage boot_flag is not 0xAA55"));
    }
    if header_u8(image, offset::LOADFLAGS)? & LOADED_HIGH == 0 {
        return Err(LoadError::NotLoadedHigh);
    }
    let header_end = offset::HEADER + usize::from(header_u8(image, offset::JUMP_OFFSET)?);
    let setup_header = image
        .get(offset::SETUP_SECTS..header_end)
        .ok_or(LoadError::Truncated("setup header"))?;

    // The protected-mode kernel follows the real-mode setup sectors; 0 means 4.
    let setup_sects = match header_u8(image, offset::SETUP_SECTS)? {
        0 => 4,
        n => usize::from(n),
    };
    let kernel = image
        .get((setup_sects + 1) * 512..)
        .filter(|kernel| !kernel.is_empty())
        .ok_or(LoadError::Truncated("protected-mode kernel (setup_sects)"))?;
    let syssize = u64::from(header_u32(image, offset::SYSSIZE)?) * 16;
    if syssize > kernel.len() as u64 {
        return Err(LoadError::Truncated("protected-mode kernel (syssize)"));
    }

    let relocatable =
        version >= V2_05_RELOCATABLE && header_u8(image, offset::RELOCATABLE_KERNEL)? != 0;
    let (load_addr, init_size) = if version >= V2_10_PREF_ADDRESS_INIT_SIZE {
        let pref =
            u64_at(image, offset::PREF_ADDRESS).ok_or(LoadError::Truncated("setup header"))?;
        let at = if relocatable { pref } else { ONE_MIB };
        (at, u64::from(header_u32(image, offset::INIT_SIZE)?))
    } else {
        (ONE_MIB, 0)
    };
    // The kernel decompresses itself in place and needs init_size bytes from where it loads.
    let room = init_size.max(kernel.len() as u64);
    let mut plan = Plan::new();
    plan.reserve(Item::Kernel, load_addr, kernel, room);

    // code32_start is where the 32-bit entry lies when the kernel loads at 1 MiB; moved with
    // the kernel when it loads elsewhere ("modify (optional, reloc)").
    let code32_start = header_u32(image, offset::CODE32_START)?;
    let entry = u64::from(code32_start)
        .checked_sub(ONE_MIB)
        .and_then(|from_base| load_addr.checked_add(from_base))
        .filter(|&entry| {
            entry >= load_addr
                && entry < load_addr.saturating_add(kernel.len() as u64)
                && entry < FOUR_GIB
        })
        .ok_or(LoadError::BadEntry(code32_start.into()))?;

    plan::check_modules_and_strings(boot)?;
    let max_cmdline = (header_u32(image, offset::CMDLINE_SIZE)? as usize)
        .min((layout::CMDLINE_END - layout::CMDLINE) as usize - 1);
    if boot.cmdline.len() > max_cmdline {
        return Err(LoadError::CmdlineTooLong {
            len: boot.cmdline.len(),
            max: max_cmdline,
        });
    }
    let mut cmdline = vec![0; boot.cmdline.len() + 1];
    cmdline[..boot.cmdline.len()].copy_from_slice(boot.cmdline.as_bytes());
    plan.owned(Item::CommandLine, layout::CMDLINE, cmdline);

    let initrd = match boot.modules {
        [] => None,
        [initrd] => {
            let at = initrd_address(
                image,
                boot.ram_size,
                load_addr.saturating_add(room),
                initrd.bytes.len() as u64,
            )?;
            plan.segment(Item::Initrd, at, initrd.bytes, initrd.bytes.len() as u64);
            Some((at, initrd.bytes.len() as u64))
        }
        more => {
            return Err(LoadError::TooManyModules {
                got: more.len(),
                max: 1,
            })
        }
    };
    let rsdp = plan.rsdp(boot.acpi_rsdp)?;
    let map = memory_map::checked(boot.map)?;

    let mut params = vec![0; BOOT_PARAMS_SIZE];
    put(&mut params, offset::SETUP_SECTS, setup_header);
    put(&mut params, offset::TYPE_OF_LOADER, &[LOADER_UNDEFINED]);
    put(
        &mut params,
        offset::CODE32_START,
        &(entry as u32).to_le_bytes(),
    );
    put(
        &mut params,
        offset::CMD_LINE_PTR,
        &(layout::CMDLINE as u32).to_le_bytes(),
    );
    if let Some((at, len)) = initrd {
        // Both below 4 GiB: the plan refuses anything above.
        put(
            &mut params,
            offset::RAMDISK_IMAGE,
            &(at as u32).to_le_bytes(),
        );
        put(
            &mut params,
            offset::RAMDISK_SIZE,
            &(len as u32).to_le_bytes(),
        );
    }
    if let Some(rsdp) = rsdp.filter(|_| version >= V2_14_ACPI_RSDP_ADDR) {
        put(&mut params, offset::ACPI_RSDP_ADDR, &rsdp.to_le_bytes());
    }
    // Written after the setup header, which may reach past 0x2D0 in a malformed image.
    put(&mut params, offset::E820_ENTRIES, &[map.len() as u8]);
    for (i, region) in map.iter().enumerate() {
        put(
            &mut params,
            offset::E820_TABLE + 20 * i,
            &e820_entry(region),
        );
    }
    plan.owned(Item::BootParams, layout::BOOT_PARAMS, params);

    let entry = Entry32 {
        eip: entry as u32,
        eax: 0,
        ebx: 0,
        esi: layout::BOOT_PARAMS as u32,
        gdt_base: GDT_BASE,
        gdt_limit: GDT_LIMIT,
        code_selector: BOOT_CODE_SELECTOR,
        data_selector: BOOT_DATA_SELECTOR,
    };
    Ok((plan, entry))
}

/// The initrd's address: page-aligned, as high as possible below min(initrd_addr_max + 1,
/// RAM end, 4 GiB) (boot.rst, initrd_addr_max and "sample boot configuration"), and not below
/// `kernel_end`, the end of the kernel's init_size room.
fn initrd_address(
    image: &[u8],
    ram_size: u64,
    kernel_end: u64,
    len: u64,
) -> Result<u64, LoadError> {
    let addr_max = u64::from(header_u32(image, offset::INITRD_ADDR_MAX)?);
    let limit = (addr_max + 1).min(ram_size).min(FOUR_GIB);
    let lowest = align_up(kernel_end, PAGE).ok_or(LoadError::NoRoom(Item::Initrd))?;
    limit
        .checked_sub(len)
        .map(|highest| highest & !(PAGE - 1))
        .filter(|&at| at >= lowest)
        .ok_or(LoadError::NoRoom(Item::Initrd))
}
