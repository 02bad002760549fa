//! MSR bitmaps (SDM 25.6.9): which RDMSR/WRMSR exit. A test image exits on every MSR access
//! (l1-hv answers the few a guest hypervisor needs and #GP for the rest); a kernel accesses
//! the machine's MSRs directly, except those l1-hv must own: IA32_FEATURE_CONTROL and the VMX
//! capability MSRs, which describe the VMX l1-hv offers rather than the processor's, and
//! IA32_APIC_BASE, whose global disable l1-hv emulates (`devices::apic_base`). MSRs
//! outside the bitmap's two ranges always exit (l1-hv raises #GP, as for a missing MSR).

use crate::memory::PhysPages;
use core::ops::RangeInclusive;
use x86::msr::{IA32_APIC_BASE, IA32_FEATURE_CONTROL, IA32_VMX_BASIC, IA32_VMX_VMFUNC};

/// Read bitmap for MSRs 0–0x1fff at offset 0, write bitmap for them at 2048 (SDM 25.6.9).
const READ_LOW: usize = 0;
const WRITE_LOW: usize = 2048;

/// The MSRs l1-hv emulates for kernel guests.
const OWNED: [RangeInclusive<u32>; 3] = [
    IA32_APIC_BASE..=IA32_APIC_BASE,
    IA32_FEATURE_CONTROL..=IA32_FEATURE_CONTROL,
    IA32_VMX_BASIC..=IA32_VMX_VMFUNC,
];

/// The two MSR bitmaps, shared by every guest of their kind.
pub struct MsrBitmaps {
    /// Every access exits.
    pub test_image: PhysPages,
    /// Only the MSRs l1-hv owns exit.
    pub machine: PhysPages,
}

impl MsrBitmaps {
    /// Builds both; `None` when memory is exhausted.
    pub fn new() -> Option<Self> {
        let mut test_image = PhysPages::page()?;
        test_image.bytes_mut().fill(0xff);
        let mut machine = PhysPages::page()?;
        let bytes = machine.bytes_mut();
        for msr in OWNED.into_iter().flatten() {
            for base in [READ_LOW, WRITE_LOW] {
                bytes[base + msr as usize / 8] |= 1 << (msr % 8);
            }
        }
        Some(Self {
            test_image,
            machine,
        })
    }
}
