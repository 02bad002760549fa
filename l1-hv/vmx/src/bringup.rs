//! Entering VMX operation (SDM 24.7 "Enabling and entering VMX operation").

use super::capabilities::Capabilities;
use super::instructions;
use x86::controlregs::{cr0, cr0_write, cr4, cr4_write, Cr0, Cr4};
use x86::msr::{rdmsr, wrmsr, IA32_FEATURE_CONTROL};

/// Why VMX operation could not be entered. Each is reported in one line and ends the run.
#[derive(Debug)]
pub enum BringupError {
    /// CPUID.1:ECX.VMX[bit 5] is clear: the CPU (or emulator) offers no VT-x.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with VMX outside SMX disabled (firmware setting).
    DisabledByFirmware,
    /// VMXON failed although every documented precondition was met.
    VmxonFailed,
    /// The CPU's EPT lacks a feature l1-hv relies on.
    EptUnsupported(&'static str),
}

impl core::fmt::Display for BringupError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoVmx => "no VMX: CPUID.1:ECX.VMX[bit 5] = 0 (this CPU or emulator has no VT-x)",
            Self::DisabledByFirmware => {
                "VMX disabled by firmware: IA32_FEATURE_CONTROL locked without VMXON outside SMX"
            }
            Self::VmxonFailed => "VMXON failed (VMfail) with all documented preconditions met",
            Self::EptUnsupported(feature) => return write!(f, "EPT without {feature}"),
        })
    }
}

const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
const FEATURE_CONTROL_VMXON_OUTSIDE_SMX: u64 = 1 << 2;

/// Checks VMX support, fixes CR0/CR4 and executes VMXON with the 4 KiB VMXON region `region`,
/// whose physical address is `region_phys`. The region must stay untouched for as long as the
/// CPU is in VMX operation (for l1-hv and ghv: until power-off).
///
/// # Safety
/// CPL 0; `region_phys` must be the physical address of `region` (4 KiB-aligned).
pub unsafe fn enter_vmx_root(
    region: &mut [u8; 4096],
    region_phys: u64,
) -> Result<Capabilities, BringupError> {
    let cpuid = x86::cpuid::CpuId::new();
    if !cpuid.get_feature_info().is_some_and(|f| f.has_vmx()) {
        return Err(BringupError::NoVmx);
    }
    // SAFETY: CPL 0; the MSRs exist because CPUID reports VMX.
    unsafe {
        let control = rdmsr(IA32_FEATURE_CONTROL);
        if control & FEATURE_CONTROL_LOCK == 0 {
            wrmsr(
                IA32_FEATURE_CONTROL,
                control | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMXON_OUTSIDE_SMX,
            );
        } else if control & FEATURE_CONTROL_VMXON_OUTSIDE_SMX == 0 {
            return Err(BringupError::DisabledByFirmware);
        }
        let caps = Capabilities::read();
        if let Some(feature) = caps.missing_ept_feature() {
            return Err(BringupError::EptUnsupported(feature));
        }
        cr0_write(Cr0::from_bits_truncate(
            caps.fix_cr0(cr0().bits() as u64) as usize
        ));
        cr4_write(Cr4::from_bits_truncate(
            caps.fix_cr4((cr4() | Cr4::CR4_ENABLE_VMX).bits() as u64) as usize,
        ));
        region[..4].copy_from_slice(&caps.revision_id().to_le_bytes());
        instructions::vmxon(region_phys).map_err(|_| BringupError::VmxonFailed)?;
        Ok(caps)
    }
}
