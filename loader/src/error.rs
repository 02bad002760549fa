//! Why an image was refused, one line each.

use core::fmt;

use crate::MemoryError;

/// A boot protocol this loader speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Linux x86 boot protocol (bzImage), Documentation/arch/x86/boot.rst.
    Linux,
    /// Multiboot specification 2.0.
    Multiboot2,
    /// Multiboot specification 0.6.96.
    Multiboot1,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Self::Linux => "Linux bzImage",
            Self::Multiboot2 => "multiboot2",
            Self::Multiboot1 => "multiboot1",
        })
    }
}

/// Something the loader places in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// The boot GDT (all formats).
    Gdt,
    /// A loadable segment, or the a.out-kludge / address-tag text+data+bss range (index 0).
    Segment(usize),
    /// The protected-mode Linux kernel with the room `init_size` asks for.
    Kernel,
    /// A multiboot module, by position in the caller's list.
    Module(usize),
    /// The Linux initrd.
    Initrd,
    /// Multiboot boot information with its strings, module list and memory map.
    BootInfo,
    /// Linux `boot_params` (the zero page).
    BootParams,
    /// The Linux command line.
    CommandLine,
    /// The copy of the firmware's ACPI RSDP.
    Rsdp,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Gdt => f.write_str("boot GDT"),
            Self::Segment(i) => write!(f, "segment {i}"),
            Self::Kernel => f.write_str("kernel (init_size)"),
            Self::Module(i) => write!(f, "module {i}"),
            Self::Initrd => f.write_str("initrd"),
            Self::BootInfo => f.write_str("boot information"),
            Self::BootParams => f.write_str("boot_params"),
            Self::CommandLine => f.write_str("command line"),
            Self::Rsdp => f.write_str("ACPI RSDP copy"),
        }
    }
}

/// Why [`crate::load`] refused an image. Guest RAM is untouched when it does, except for
/// [`LoadError::Memory`] (the `GuestMemory` failed a write the plan had checked).
#[derive(Debug)]
pub enum LoadError {
    /// No bzImage, multiboot2 or multiboot1 header.
    UnknownFormat,
    /// An ELF file, but without a multiboot header.
    ElfWithoutMultiboot,
    /// The multiboot magic is there, but no header's checksum holds.
    BadChecksum(Format),
    /// The image ends before a part it declares.
    Truncated(&'static str),
    /// A header field is inconsistent (the text says which).
    BadHeader(&'static str),
    /// The ELF file does not parse.
    Elf(elf::ParseError),
    /// Not an x86 (EM_386 / EM_X86_64) executable ELF file.
    NotX86Executable,
    /// A PT_LOAD segment's file part exceeds its memory part or the file.
    BadSegment(usize),
    /// The entry point is not inside the loaded image, or not below 4 GiB.
    BadEntry(u64),
    /// Multiboot1 header flags (bits 0-15) asking for what this loader does not provide.
    UnsupportedMultiboot1Flags(u32),
    /// A multiboot2 header tag without the optional flag that this loader does not support.
    UnsupportedTag { tag: u16, name: &'static str },
    /// A multiboot2 information request (without the optional flag) for a tag not provided.
    UnsupportedInfoRequest { tag: u32, name: &'static str },
    /// A bzImage older than boot protocol 2.06 (version as major << 8 | minor).
    LinuxProtocolTooOld(u16),
    /// A bzImage whose protected-mode part cannot be loaded at 1 MiB or above.
    NotLoadedHigh,
    /// More modules than the format takes.
    TooManyModules { got: usize, max: usize },
    /// The command line is longer than the kernel or the layout takes.
    CmdlineTooLong { len: usize, max: usize },
    /// A module (or initrd) of no bytes, by position in the caller's list.
    EmptyModule(usize),
    /// A command line or module string with a NUL byte (boot strings are C strings).
    NulInString,
    /// More memory-map regions than fit (128, the e820 table's size).
    TooManyRegions(usize),
    /// The ACPI RSDP bytes are not 20 or 36 bytes starting with "RSD PTR ".
    BadRsdp,
    /// An item reaches outside guest RAM (or above 4 GiB, out of a 32-bit entry's reach).
    OutsideRam {
        item: Item,
        start: u64,
        end: u64,
        limit: u64,
    },
    /// Two items would overlap in guest memory.
    Overlap(Item, Item),
    /// No room for an item between the image and its upper limit.
    NoRoom(Item),
    /// The GuestMemory refused a write inside `ram_size()`.
    Memory(MemoryError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::UnknownFormat => f.write_str("not a bzImage, multiboot2 or multiboot1 kernel"),
            Self::ElfWithoutMultiboot => f.write_str(
                "ELF file without a multiboot header: not a kernel this loader boots",
            ),
            Self::BadChecksum(format) => write!(f, "{format} header magic with a bad checksum"),
            Self::Truncated(what) => write!(f, "image truncated: {what} beyond the end of the file"),
            Self::BadHeader(what) => write!(f, "bad header: {what}"),
            Self::Elf(e) => write!(f, "malformed ELF: {e}"),
            Self::NotX86Executable => f.write_str("not an x86 executable ELF file"),
            Self::BadSegment(i) => {
                write!(f, "ELF segment {i}: file size exceeds memory size or the file")
            }
            Self::BadEntry(entry) => {
                write!(f, "entry point {entry:#x} not in the loaded image below 4 GiB")
            }
            Self::UnsupportedMultiboot1Flags(bits) => {
                write!(f, "multiboot1 header requires unsupported features (flags {bits:#x})")
            }
            Self::UnsupportedTag { tag, name } => {
                write!(f, "multiboot2 header tag {tag} ({name}) is required but not supported")
            }
            Self::UnsupportedInfoRequest { tag, name } => {
                write!(f, "multiboot2 kernel requires boot information tag {tag} ({name}), not provided")
            }
            Self::LinuxProtocolTooOld(v) => write!(
                f,
                "bzImage boot protocol {}.{:02} is older than 2.06 (no cmdline_size, 32-bit entry unsupported)",
                v >> 8,
                v & 0xff
            ),
            Self::NotLoadedHigh => f.write_str("bzImage without LOADED_HIGH (a zImage loads below 1 MiB)"),
            Self::TooManyModules { got, max } => write!(f, "{got} modules given, the format takes at most {max}"),
            Self::CmdlineTooLong { len, max } => write!(f, "command line of {len} bytes, at most {max} allowed"),
            Self::EmptyModule(i) => write!(f, "module {i} is empty"),
            Self::NulInString => f.write_str("command line or module string contains a NUL byte"),
            Self::TooManyRegions(n) => write!(f, "memory map of {n} regions, at most 128 allowed"),
            Self::BadRsdp => f.write_str("ACPI RSDP is not 20 or 36 bytes starting with \"RSD PTR \""),
            Self::OutsideRam { item, start, end, limit } => {
                write!(f, "{item} [{start:#x}, {end:#x}) outside guest RAM [0, {limit:#x})")
            }
            Self::Overlap(a, b) => write!(f, "{a} overlaps {b}"),
            Self::NoRoom(item) => write!(f, "no room in guest RAM for the {item}"),
            Self::Memory(e) => write!(f, "guest memory refused a write of {:#x} bytes at {:#x}", e.len, e.gpa),
        }
    }
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> Self {
        Self::Memory(e)
    }
}
