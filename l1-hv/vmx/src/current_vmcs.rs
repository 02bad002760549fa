//! The hardware implementation of the `Vmcs` access trait: VMREAD/VMWRITE on the current VMCS.

use super::instructions::{vmread, vmread_unchecked, vmwrite, vmwrite_unchecked};
use shadow_vmcs::Vmcs;

/// The CPU's current VMCS (the one last made current by VMPTRLD).
///
/// Holding one promises that a VMCS is current on this CPU. A VMREAD or VMWRITE of a supported
/// field then cannot fail; a failure is an l1-hv bug, asserted in debug builds and not branched
/// on in release builds (the exit path stays short).
pub struct CurrentVmcs(());

impl CurrentVmcs {
    /// # Safety
    /// A VMCS must be current on this CPU for as long as the value is used.
    pub unsafe fn assume_loaded() -> Self {
        Self(())
    }
}

impl Vmcs for CurrentVmcs {
    #[inline(always)]
    fn read(&self, field: u32) -> u64 {
        // SAFETY: a VMCS is current (type invariant); callers name supported fields.
        unsafe {
            if cfg!(debug_assertions) {
                vmread(field).unwrap_or_else(|_| panic!("VMREAD {field:#x} failed"))
            } else {
                vmread_unchecked(field)
            }
        }
    }

    #[inline(always)]
    fn write(&mut self, field: u32, value: u64) {
        // SAFETY: as for `read`.
        unsafe {
            if cfg!(debug_assertions) {
                if vmwrite(field, value).is_err() {
                    panic!("VMWRITE {field:#x} <- {value:#x} failed");
                }
            } else {
                vmwrite_unchecked(field, value);
            }
        }
    }
}
