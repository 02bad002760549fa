//! Boot: the multiboot2 entry (32→64-bit switch) and what the boot loader hands over.

mod info;

pub use info::{Area, AreaKind, BootInfo, Range};

core::arch::global_asm!(include_str!("entry.s"));

/// The value a multiboot2 boot loader leaves in EAX (multiboot2 specification, 3.3).
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
