//! Boots real kernels as l1-hv guests: Linux bzImages (x86 boot protocol >= 2.06), multiboot2
//! and multiboot1 kernels (ELF32, ELF64, or the header's address fields).
//!
//! [`load`] validates the whole image and plans every byte it will write (segments, modules,
//! boot information, GDT) before the first write: a refused image leaves guest RAM untouched,
//! and nothing is ever written outside `[0, GuestMemory::ram_size())`. The result is the 32-bit
//! protected-mode entry state ([`Entry32`]) the kernel puts into the VMCS. docs/loaders.md
//! describes the formats, the guest-physical layout and the refusals.
#![no_std]

extern crate alloc;

mod bytes;
mod elf_image;
mod error;
mod layout;
mod linux;
mod memory_map;
mod multiboot1;
mod multiboot2;
mod plan;

pub use error::{Format, Item, LoadError};
pub use memory_map::{MemoryRegion, RegionKind};

/// Guest RAM: `ram_size()` bytes at guest-physical 0.
pub trait GuestMemory {
    /// Bytes of RAM from guest-physical 0.
    fn ram_size(&self) -> u64;
    /// Copies `bytes` to guest-physical `gpa`.
    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError>;
    /// Sets `len` bytes from guest-physical `gpa` to `byte`.
    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError>;
}

/// A write [`GuestMemory`] could not do: `[gpa, gpa + len)` is not RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryError {
    pub gpa: u64,
    pub len: u64,
}

/// A boot module (multiboot) or the initrd (Linux: at most one).
#[derive(Debug, Clone, Copy)]
pub struct Module<'a> {
    pub bytes: &'a [u8],
    /// The module's own string (multiboot); Linux ignores it.
    pub cmdline: &'a str,
}

/// The 32-bit protected-mode state the guest starts in: paging off, CR0 = PE (plus the VMX
/// fixed bits), EFLAGS = 0x2 (IF = 0), CS = `code_selector` and DS/ES/FS/GS/SS =
/// `data_selector`, flat 4 GiB segments described by the GDT at `gdt_base`. The caller sets
/// the general registers not named here (ECX, EDX, EBP, EDI, ESP) to zero: Linux requires
/// EBP = EDI = EBX = 0 (boot.rst, "32-bit Boot Protocol"), multiboot leaves them undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry32 {
    pub eip: u32,
    pub eax: u32,
    pub ebx: u32,
    pub esi: u32,
    pub gdt_base: u32,
    pub gdt_limit: u16,
    pub code_selector: u16,
    pub data_selector: u16,
}

/// Which boot protocol `image` speaks, if any: a bzImage (`"HdrS"` at 0x202), else a multiboot2
/// header (first 32 KiB), else a multiboot1 header (first 8 KiB), found as GRUB finds them: the
/// first aligned magic whose checksum holds. A bzImage too old to boot is still
/// [`Format::Linux`]; [`load`] says why it refuses it.
pub fn detect(image: &[u8]) -> Option<Format> {
    if linux::is_bzimage(image) {
        Some(Format::Linux)
    } else if multiboot2::find_header(image).is_some() {
        Some(Format::Multiboot2)
    } else if multiboot1::find_header(image).is_some() {
        Some(Format::Multiboot1)
    } else {
        None
    }
}

/// Loads `image` into `mem` with `cmdline`, `modules` (the initrd for Linux) and the memory map
/// `map` the guest is to see; `acpi_rsdp` (the firmware's RSDP bytes, 20 or 36) is copied where
/// the guest looks for it. Nothing is written unless the whole load is valid.
pub fn load(
    image: &[u8],
    cmdline: &str,
    modules: &[Module],
    map: &[MemoryRegion],
    acpi_rsdp: Option<&[u8]>,
    mem: &mut dyn GuestMemory,
) -> Result<Entry32, LoadError> {
    let boot = plan::Boot {
        cmdline,
        modules,
        map,
        acpi_rsdp,
        ram_size: mem.ram_size(),
    };
    let (plan, entry) = match detect(image) {
        Some(Format::Linux) => linux::plan(image, &boot)?,
        Some(Format::Multiboot2) => multiboot2::plan(image, &boot)?,
        Some(Format::Multiboot1) => multiboot1::plan(image, &boot)?,
        None => return Err(why_not_a_kernel(image)),
    };
    plan.write(mem)?;
    Ok(entry)
}

/// The most useful reason an undetected image is refused.
fn why_not_a_kernel(image: &[u8]) -> LoadError {
    if multiboot2::has_magic(image) {
        LoadError::BadChecksum(Format::Multiboot2)
    } else if multiboot1::has_magic(image) {
        LoadError::BadChecksum(Format::Multiboot1)
    } else if image.starts_with(b"\x7fELF") {
        LoadError::ElfWithoutMultiboot
    } else {
        LoadError::UnknownFormat
    }
}
