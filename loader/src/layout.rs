//! Fixed guest-physical places of the boot structures, all in conventional memory (above the
//! real-mode IVT and BDA page, below 640 KiB) where no kernel image loads: multiboot and Linux
//! kernels load at 1 MiB or above. The plan still checks each against the image and modules.

/// The boot GDT: null, null, flat code at 0x10, flat data at 0x18.
pub const GDT_BASE: u32 = 0x1000;
const GDT: [u64; 4] = [
    0,
    // 0x08 is left null: one pair of selectors serves every format, and Linux requires
    // __BOOT_CS = 0x10 and __BOOT_DS = 0x18 (boot.rst, "32-bit boot protocol").
    0,
    // Base 0, limit 0xFFFFF pages (4 GiB), 32-bit, present, DPL 0, execute/read code. The
    // accessed bit is set so the descriptor matches the access rights a VM entry requires of
    // CS/SS/DS (SDM Vol. 3C 27.3.1.2: usable segment types are accessed).
    0x00CF_9B00_0000_FFFF,
    // Same, read/write data.
    0x00CF_9300_0000_FFFF,
];
pub const GDT_LIMIT: u16 = (GDT.len() * 8 - 1) as u16;
pub const BOOT_CODE_SELECTOR: u16 = 0x10;
pub const BOOT_DATA_SELECTOR: u16 = 0x18;

/// The GDT as the bytes written at [`GDT_BASE`].
pub fn gdt_bytes() -> [u8; GDT.len() * 8] {
    let mut bytes = [0; GDT.len() * 8];
    for (chunk, descriptor) in bytes.chunks_exact_mut(8).zip(GDT) {
        chunk.copy_from_slice(&descriptor.to_le_bytes());
    }
    bytes
}

/// Linux `boot_params`, one 4 KiB page (boot.rst, "Details of header fields" / zeropage.rst).
pub const BOOT_PARAMS: u64 = 0x7000;
/// The Linux command line, NUL-terminated, up to [`CMDLINE_END`].
pub const CMDLINE: u64 = 0x8000;
pub const CMDLINE_END: u64 = 0x1_0000;
/// Multiboot boot information (info structure, module list, memory map, strings) grows from
/// here up to [`BOOT_INFO_END`] (640 KiB less a page that BIOS machines keep for the EBDA).
pub const BOOT_INFO: u64 = 0x1_0000;
pub const BOOT_INFO_END: u64 = 0x9_F000;
/// The copy of the firmware's RSDP: the first 16-byte boundary of the BIOS read-only area
/// 0xE0000-0xFFFFF, which Linux and kvm-unit-tests scan when no boot information gives the
/// RSDP (ACPI 6.5, 5.2.5.1 "Finding the RSDP on IA-PC Systems").
pub const RSDP: u64 = 0xE_0000;

/// Modules and the initrd start on page boundaries (multiboot1 header flag 0; initrd
/// alignment in boot.rst).
pub const PAGE: u64 = 0x1000;
/// The lowest address of the kernel's own memory above the low 1 MiB.
pub const ONE_MIB: u64 = 0x10_0000;
/// Multiboot and 32-bit entry addresses are 32 bits: nothing is placed at or above 4 GiB.
pub const FOUR_GIB: u64 = 1 << 32;
