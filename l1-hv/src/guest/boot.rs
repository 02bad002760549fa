//! Putting a guest's image into its RAM and choosing its first state: l1-hv's test images
//! (`image`, the `l2-abi` contract) or kernels through the `loader` crate (Linux, multiboot2,
//! multiboot1), each validated whole before a byte is copied.

use super::config::{Boot, GuestConfig};
use super::image::{self, ImageError};
use super::memory::{Region, RegionKind};
use super::vmcs_setup::{self, EntryState, Protected32};
use crate::memory::PhysPages;
use alloc::vec::Vec;
use core::fmt;
use l1_vmx::GuestRegisters;

/// A module that follows a guest's image (its module line starts with `+`): the initrd of a
/// Linux guest, a multiboot module of a multiboot kernel.
#[derive(Clone, Copy, Debug)]
pub struct Extra<'a> {
    /// The module's bytes.
    pub bytes: &'a [u8],
    /// The module's own string (the words after `+`).
    pub cmdline: &'a str,
}

/// Why an image was refused.
#[derive(Debug)]
pub enum BootError {
    /// A test image that is not what `l2-abi` requires.
    TestImage(ImageError),
    /// A kernel the loader refused.
    Kernel(loader::LoadError),
    /// A test image was given modules: it has no way to find them.
    ModulesForTestImage,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::TestImage(e) => e.fmt(f),
            Self::Kernel(e) => e.fmt(f),
            Self::ModulesForTestImage => f.write_str("a test image (boot=abi) takes no modules"),
        }
    }
}

/// Loads `image` and its `extras` into `ram` for `config`, describing `map` to a kernel; sets
/// the registers the boot protocol passes and returns the entry state.
pub fn load(
    config: &GuestConfig,
    image: &[u8],
    extras: &[Extra],
    ram: &mut PhysPages,
    map: &[Region],
    regs: &mut GuestRegisters,
) -> Result<EntryState, BootError> {
    match config.boot {
        Boot::Abi => {
            if !extras.is_empty() {
                return Err(BootError::ModulesForTestImage);
            }
            let rip = image::load(image, ram.bytes_mut()).map_err(BootError::TestImage)?;
            vmcs_setup::write_boot_structures(ram.bytes_mut());
            let ram_size = ram.bytes_mut().len() as u64;
            regs.rdi = ram_size;
            Ok(EntryState::Long64 { rip, ram_size })
        }
        Boot::Kernel => {
            let modules: Vec<loader::Module> = extras
                .iter()
                .map(|e| loader::Module {
                    bytes: e.bytes,
                    cmdline: e.cmdline,
                })
                .collect();
            let map: Vec<loader::MemoryRegion> = map.iter().map(loader_region).collect();
            let entry = loader::load(image, config.cmdline, &modules, &map, None, &mut Ram(ram))
                .map_err(BootError::Kernel)?;
            regs.rax = entry.eax.into();
            regs.rbx = entry.ebx.into();
            regs.rsi = entry.esi.into();
            Ok(EntryState::Protected32(Protected32 {
                eip: entry.eip,
                gdtr: (entry.gdt_base, entry.gdt_limit),
                code_selector: entry.code_selector,
                data_selector: entry.data_selector,
            }))
        }
    }
}

fn loader_region(region: &Region) -> loader::MemoryRegion {
    let kind = match region.kind {
        RegionKind::Ram => loader::RegionKind::Ram,
        RegionKind::Reserved => loader::RegionKind::Reserved,
        RegionKind::Acpi => loader::RegionKind::Acpi,
        RegionKind::Nvs => loader::RegionKind::Nvs,
    };
    loader::MemoryRegion {
        start: region.start,
        len: region.len,
        kind,
    }
}

/// Guest RAM as the loader writes it.
struct Ram<'a>(&'a mut PhysPages);

impl Ram<'_> {
    fn range(&mut self, gpa: u64, len: u64) -> Result<&mut [u8], loader::MemoryError> {
        let bytes = self.0.bytes_mut();
        match gpa.checked_add(len) {
            Some(end) if end <= bytes.len() as u64 => Ok(&mut bytes[gpa as usize..end as usize]),
            _ => Err(loader::MemoryError { gpa, len }),
        }
    }
}

impl loader::GuestMemory for Ram<'_> {
    fn ram_size(&self) -> u64 {
        self.0.len() as u64
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), loader::MemoryError> {
        self.range(gpa, bytes.len() as u64)?.copy_from_slice(bytes);
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), loader::MemoryError> {
        self.range(gpa, len)?.fill(byte);
        Ok(())
    }
}
