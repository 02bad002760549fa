//! RDMSR/WRMSR executed on the processor for a guest that could have executed it itself (an
//! L3 access to an MSR its guest hypervisor lets through and l1-hv passes through to L2): the
//! instruction faults exactly as the guest's would, and the #GP comes back as an error for
//! l1-hv to deliver to the guest rather than ending l1-hv.

core::arch::global_asm!(include_str!("msr.s"));

extern "C" {
    fn l1hv_msr_read(msr: u32, value: *mut u64) -> u64;
    fn l1hv_msr_write(msr: u32, value: u64) -> u64;
}

/// The processor raised #GP(0) for the access: a nonexistent MSR, a reserved bit or an invalid
/// value (SDM Vol. 2B RDMSR, WRMSR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// RDMSR of `msr`.
pub fn read(msr: u32) -> Result<u64, GeneralProtection> {
    let mut value = 0;
    // SAFETY: RDMSR at CPL 0 changes nothing; a #GP resumes in the stub (isr.s).
    match unsafe { l1hv_msr_read(msr, &mut value) } {
        0 => Ok(value),
        _ => Err(GeneralProtection),
    }
}

/// WRMSR of `value` to `msr`.
///
/// # Safety
/// The MSR must be one l1-hv does not depend on (its guests' MSRs, never one VM exits load for
/// l1-hv or that l1-hv owns).
pub unsafe fn write(msr: u32, value: u64) -> Result<(), GeneralProtection> {
    // SAFETY: the caller vouches for the MSR; a #GP resumes in the stub (isr.s).
    match unsafe { l1hv_msr_write(msr, value) } {
        0 => Ok(()),
        _ => Err(GeneralProtection),
    }
}
