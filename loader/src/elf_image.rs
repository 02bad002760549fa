//! ELF32/ELF64 multiboot kernels: PT_LOAD segments by physical address (multiboot 0.6.96
//! 3.1.3: without the address fields the image is loaded as ELF; multiboot2 3.1.5 alike).

use elf::abi::{EM_386, EM_X86_64, ET_EXEC, PT_LOAD};
use elf::endian::LittleEndian;
use elf::ElfBytes;

use crate::layout::FOUR_GIB;
use crate::plan::Plan;
use crate::{Item, LoadError};

/// Adds the image's loadable segments to `plan` (file part, then zeroed BSS up to p_memsz);
/// returns the physical entry point. Segments are numbered among the non-empty PT_LOADs.
pub fn plan<'a>(image: &'a [u8], plan: &mut Plan<'a>) -> Result<u32, LoadError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(LoadError::Elf)?;
    if !matches!(elf.ehdr.e_machine, EM_386 | EM_X86_64) || elf.ehdr.e_type != ET_EXEC {
        return Err(LoadError::NotX86Executable);
    }
    let segments = elf.segments().ok_or(LoadError::NotX86Executable)?;
    let mut entry = None;
    for (i, phdr) in segments
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .enumerate()
    {
        let file_end = phdr.p_offset.checked_add(phdr.p_filesz);
        let file = file_end
            .filter(|_| phdr.p_filesz <= phdr.p_memsz)
            .and_then(|end| {
                image.get(usize::try_from(phdr.p_offset).ok()?..usize::try_from(end).ok()?)
            })
            .ok_or(LoadError::BadSegment(i))?;
        plan.segment(Item::Segment(i), phdr.p_paddr, file, phdr.p_memsz);
        // The entry point is virtual; like GRUB, translate it through the segment that holds
        // it (the same address for kernels linked where they load, as kvm-unit-tests are).
        let offset = elf.ehdr.e_entry.wrapping_sub(phdr.p_vaddr);
        if entry.is_none() && offset < phdr.p_memsz {
            entry = phdr.p_paddr.checked_add(offset);
        }
    }
    entry
        .filter(|&entry| entry < FOUR_GIB)
        .map(|entry| entry as u32)
        .ok_or(LoadError::BadEntry(elf.ehdr.e_entry))
}
