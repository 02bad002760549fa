//! Guest images: ELF64 executables for x86-64, checked completely before a byte is copied.

use elf::abi::{EM_X86_64, ET_EXEC, PT_LOAD};
use elf::endian::LittleEndian;
use elf::ElfBytes;
use l2_abi::IMAGE_BASE;

/// Why an image was refused.
#[derive(Debug)]
pub enum ImageError {
    /// Not a parseable ELF file.
    Malformed(elf::ParseError),
    /// Not a 64-bit x86-64 executable.
    WrongKind,
    /// A loadable segment reaches outside `[IMAGE_BASE, limit)` of guest-physical memory.
    OutOfRange { start: u64, end: u64, limit: u64 },
    /// A segment's file part is larger than its memory part or lies outside the file.
    BadSegment,
    /// The entry point is not inside a loaded segment.
    BadEntry(u64),
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed ELF: {e}"),
            Self::WrongKind => f.write_str("not an x86-64 ELF executable"),
            Self::OutOfRange { start, end, limit } => {
                write!(f, "segment [{start:#x}, {end:#x}) outside guest RAM [{IMAGE_BASE:#x}, {limit:#x})")
            }
            Self::BadSegment => f.write_str("segment file size exceeds memory size or file"),
            Self::BadEntry(entry) => write!(f, "entry point {entry:#x} not in a loaded segment"),
        }
    }
}

/// Validates `file` and copies its loadable segments into `ram` (guest-physical 0 = `ram[0]`).
/// Returns the entry point. `ram` is untouched if the image is refused.
pub fn load(file: &[u8], ram: &mut [u8]) -> Result<u64, ImageError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(ImageError::Malformed)?;
    if elf.ehdr.e_machine != EM_X86_64
        || elf.ehdr.e_type != ET_EXEC
        || elf.ehdr.class != elf::file::Class::ELF64
    {
        return Err(ImageError::WrongKind);
    }
    let segments = elf.segments().ok_or(ImageError::WrongKind)?;
    let limit = ram.len() as u64;
    let mut entry_found = false;
    for phdr in segments.iter().filter(|p| p.p_type == PT_LOAD) {
        let start = phdr.p_paddr;
        let end = start
            .checked_add(phdr.p_memsz)
            .ok_or(ImageError::OutOfRange {
                start,
                end: u64::MAX,
                limit,
            })?;
        if start < IMAGE_BASE || end > limit {
            return Err(ImageError::OutOfRange { start, end, limit });
        }
        let file_end = phdr
            .p_offset
            .checked_add(phdr.p_filesz)
            .ok_or(ImageError::BadSegment)?;
        if phdr.p_filesz > phdr.p_memsz || file_end > file.len() as u64 {
            return Err(ImageError::BadSegment);
        }
        entry_found |= (start..end).contains(&elf.ehdr.e_entry);
    }
    if !entry_found {
        return Err(ImageError::BadEntry(elf.ehdr.e_entry));
    }
    for phdr in segments.iter().filter(|p| p.p_type == PT_LOAD) {
        let (start, file_size) = (phdr.p_paddr as usize, phdr.p_filesz as usize);
        let offset = phdr.p_offset as usize;
        ram[start..start + file_size].copy_from_slice(&file[offset..offset + file_size]);
        ram[start + file_size..start + phdr.p_memsz as usize].fill(0);
    }
    Ok(elf.ehdr.e_entry)
}
