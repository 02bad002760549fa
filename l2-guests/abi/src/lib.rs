//! The contract between l1-hv and the guests it runs, shared by both sides so it is written once.
//!
//! # Guest-physical layout
//! A guest gets [`RAM_SIZE`] bytes of RAM at guest-physical 0. l1-hv writes a boot GDT at
//! [`BOOT_GDT`] and boot page tables at [`BOOT_PML4`] (identity map of the first GiB with 2 MiB
//! pages), loads the ELF image's segments (which must lie in `[IMAGE_BASE, RAM_SIZE)`), and
//! enters the image's entry point in 64-bit mode at CPL 0 with RDI = `RAM_SIZE` and
//! RSP = `RAM_SIZE`. Guest code is expected to install its own GDT, IDT and page tables.
//!
//! # Hypercalls
//! `VMCALL` with RAX = [`Hypercall`] number and arguments in RDI, RSI, RDX. l1-hv returns
//! [`STATUS_OK`] or [`STATUS_BAD_ARGUMENT`] in RAX and advances RIP past the VMCALL. Pointers
//! are guest-physical (the guests identity-map their RAM). An unknown number, or a VMCALL
//! from CPL > 0, stops the guest.
#![no_std]

/// Bytes of guest RAM, at guest-physical 0.
pub const RAM_SIZE: u64 = 8 << 20;
/// Guest-physical address of the boot GDT l1-hv provides: null, code64 (0x08), data (0x10).
pub const BOOT_GDT: u64 = 0x0;
/// Guest-physical address of the boot PML4; the PDPT and PD follow in the next two pages.
pub const BOOT_PML4: u64 = 0x1000;
/// Lowest guest-physical address an image segment may occupy.
pub const IMAGE_BASE: u64 = 0x10_0000;
/// Boot code selector in the boot GDT.
pub const BOOT_CODE_SELECTOR: u16 = 0x08;
/// Boot data selector in the boot GDT.
pub const BOOT_DATA_SELECTOR: u16 = 0x10;

/// Hypercall numbers (RAX at VMCALL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Hypercall {
    /// Print RSI bytes of text at guest-physical RDI on l1-hv's console.
    Write = 1,
    /// Record what the guest's exception handler saw: RDI = vector, RSI = error code
    /// (`NO_ERROR_CODE` when none was pushed), RDX = CR2 (for #PF, else 0).
    Observe = 2,
    /// The guest is finished; RDI = 0 for success, anything else is a failure code.
    Done = 3,
    /// Does nothing: the cost of a hypercall round trip, for benchmarks.
    Nop = 4,
}

impl Hypercall {
    /// The hypercall for a RAX value, if it names one.
    pub fn from_number(number: u64) -> Option<Self> {
        match number {
            1 => Some(Self::Write),
            2 => Some(Self::Observe),
            3 => Some(Self::Done),
            4 => Some(Self::Nop),
            _ => None,
        }
    }
}

/// RAX after a successful hypercall.
pub const STATUS_OK: u64 = 0;
/// RAX after a hypercall whose arguments l1-hv rejected (e.g. a buffer outside guest RAM).
pub const STATUS_BAD_ARGUMENT: u64 = 1;
/// The error-code argument of `Observe` when the exception pushed none.
pub const NO_ERROR_CODE: u64 = u64::MAX;
/// Longest `Write` l1-hv accepts.
pub const MAX_WRITE: u64 = 256;

// The layout leaves room for the boot structures below the image (checked at compile time).
const _: () = assert!(BOOT_GDT + 0x1000 <= BOOT_PML4);
const _: () = assert!(BOOT_PML4 + 3 * 0x1000 <= IMAGE_BASE);
const _: () = assert!(IMAGE_BASE < RAM_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_numbers_round_trip() {
        for call in [
            Hypercall::Write,
            Hypercall::Observe,
            Hypercall::Done,
            Hypercall::Nop,
        ] {
            assert_eq!(Hypercall::from_number(call as u64), Some(call));
        }
        assert_eq!(Hypercall::from_number(0), None);
        assert_eq!(Hypercall::from_number(5), None);
    }
}
