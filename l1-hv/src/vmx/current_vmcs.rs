//! The hardware implementation of the `Vmcs` access trait: VMREAD/VMWRITE on the current VMCS.

use super::instructions::{vmread, vmwrite};
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
        // SAFETY: a VMCS is current (type invariant).
        let result = unsafe { vmread(field) };
        debug_assert!(result.is_ok(), "VMREAD {field:#x} failed");
        result.unwrap_or(0)
    }

    #[inline(always)]
    fn write(&mut self, field: u32, value: u64) {
        // SAFETY: a VMCS is current (type invariant).
        let result = unsafe { vmwrite(field, value) };
        debug_assert!(result.is_ok(), "VMWRITE {field:#x} <- {value:#x} failed");
    }
}
