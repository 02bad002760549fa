//! MSR bitmaps (SDM 25.6.9): which RDMSR/WRMSR exit. A test image exits on every MSR access
//! (l1-hv answers the few a guest hypervisor needs and #GP for the rest); a kernel accesses
//! the machine's MSRs directly, except those l1-hv must own: IA32_FEATURE_CONTROL and the VMX
//! capability MSRs, which describe the VMX l1-hv offers rather than the processor's, and
//! IA32_APIC_BASE, whose global disable l1-hv emulates (`devices::apic_base`). MSRs
//! outside the bitmap's two ranges always exit (l1-hv raises #GP, as for a missing MSR).

use super::config::Boot;
use crate::memory::PhysPages;
use core::ops::RangeInclusive;
use nvmx::nested::msr_bitmap_bit;
use x86::msr::{IA32_APIC_BASE, IA32_FEATURE_CONTROL, IA32_VMX_BASIC, IA32_VMX_VMFUNC};

/// The MSRs l1-hv emulates for kernel guests.
const OWNED: [RangeInclusive<u32>; 3] = [
    IA32_APIC_BASE..=IA32_APIC_BASE,
    IA32_FEATURE_CONTROL..=IA32_FEATURE_CONTROL,
    IA32_VMX_BASIC..=IA32_VMX_VMFUNC,
];

/// The two MSR bitmaps, shared by every guest of their kind.
pub struct MsrBitmaps {
    /// Every access exits.
    test_image: PhysPages,
    /// Only the MSRs l1-hv owns exit.
    machine: PhysPages,
}

impl MsrBitmaps {
    /// Builds both; `None` when memory is exhausted.
    pub fn new() -> Option<Self> {
        let mut test_image = PhysPages::page()?;
        test_image.bytes_mut().fill(0xff);
        let mut machine = PhysPages::page()?;
        let bytes = machine.bytes_mut();
        for msr in OWNED.into_iter().flatten() {
            for bit in [false, true]
                .into_iter()
                .filter_map(|w| msr_bitmap_bit(msr, w))
            {
                bytes[bit as usize / 8] |= 1 << (bit % 8);
            }
        }
        Some(Self {
            test_image,
            machine,
        })
    }

    /// The bitmap a guest of kind `boot` runs with.
    pub fn of(&self, boot: Boot) -> &PhysPages {
        match boot {
            Boot::Abi => &self.test_image,
            Boot::Kernel => &self.machine,
        }
    }
}
