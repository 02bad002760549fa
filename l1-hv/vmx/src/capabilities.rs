//! VMX capability MSRs (SDM Appendix A) and the control values they allow. No allowed bit is
//! hard-coded: every control word is `desired` adjusted against the reporting MSR.

use x86::msr::{self, rdmsr};
use x86::vmx::vmcs::control::{PrimaryControls, SecondaryControls};

/// A control word the CPU cannot provide.
#[derive(Clone, Copy, Debug)]
pub struct Unsupported {
    /// Which control word.
    pub control: &'static str,
    /// Bits l1-hv needs that the CPU's allowed-1 settings do not permit.
    pub missing: u32,
}

/// One allowed-0/allowed-1 pair (SDM A.3–A.5): bit set in `must_be_1` must be 1; bit clear in
/// `may_be_1` must be 0.
#[derive(Clone, Copy, Debug)]
struct Allowed {
    must_be_1: u32,
    may_be_1: u32,
}

impl Allowed {
    fn read(msr: u32) -> Self {
        // SAFETY: only called for capability MSRs whose presence was established.
        let value = unsafe { rdmsr(msr) };
        Self {
            must_be_1: value as u32,
            may_be_1: (value >> 32) as u32,
        }
    }

    /// `required` must all be available; `optional` are taken where allowed.
    fn adjust(
        self,
        control: &'static str,
        required: u32,
        optional: u32,
    ) -> Result<u32, Unsupported> {
        let missing = required & !self.may_be_1;
        if missing != 0 {
            return Err(Unsupported { control, missing });
        }
        Ok((required | (optional & self.may_be_1)) | self.must_be_1)
    }
}

/// What this CPU's VMX offers, read once after VMXON is known to be possible.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// IA32_VMX_BASIC.
    pub basic: u64,
    pin: Allowed,
    primary: Allowed,
    secondary: Allowed,
    exit: Allowed,
    entry: Allowed,
    /// IA32_VMX_EPT_VPID_CAP.
    pub ept_vpid: u64,
    /// IA32_VMX_CR0_FIXED0 / FIXED1.
    pub cr0_fixed: (u64, u64),
    /// IA32_VMX_CR4_FIXED0 / FIXED1.
    pub cr4_fixed: (u64, u64),
}

/// IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist and report the real default-1 bits.
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;
/// IA32_VMX_EPT_VPID_CAP bits l1-hv's EPT relies on (SDM A.10): 4-level walks, write-back
/// paging structures, INVEPT, and its all-context type.
const EPT_REQUIRED: [(u64, &str); 4] = [
    (1 << 6, "4-level EPT walk"),
    (1 << 14, "write-back EPT structures"),
    (1 << 20, "INVEPT"),
    (1 << 26, "INVEPT all-context"),
];

impl Capabilities {
    /// Reads every capability MSR l1-hv consults.
    ///
    /// # Safety
    /// CPUID.1:ECX.VMX must be set (the MSRs exist).
    pub unsafe fn read() -> Self {
        let basic = rdmsr(msr::IA32_VMX_BASIC);
        let truly = basic & BASIC_TRUE_CONTROLS != 0;
        let pick = |true_msr, msr| if truly { true_msr } else { msr };
        Self {
            basic,
            pin: Allowed::read(pick(
                msr::IA32_VMX_TRUE_PINBASED_CTLS,
                msr::IA32_VMX_PINBASED_CTLS,
            )),
            primary: Allowed::read(pick(
                msr::IA32_VMX_TRUE_PROCBASED_CTLS,
                msr::IA32_VMX_PROCBASED_CTLS,
            )),
            secondary: Allowed::read(msr::IA32_VMX_PROCBASED_CTLS2),
            exit: Allowed::read(pick(msr::IA32_VMX_TRUE_EXIT_CTLS, msr::IA32_VMX_EXIT_CTLS)),
            entry: Allowed::read(pick(
                msr::IA32_VMX_TRUE_ENTRY_CTLS,
                msr::IA32_VMX_ENTRY_CTLS,
            )),
            ept_vpid: rdmsr(msr::IA32_VMX_EPT_VPID_CAP),
            cr0_fixed: (
                rdmsr(msr::IA32_VMX_CR0_FIXED0),
                rdmsr(msr::IA32_VMX_CR0_FIXED1),
            ),
            cr4_fixed: (
                rdmsr(msr::IA32_VMX_CR4_FIXED0),
                rdmsr(msr::IA32_VMX_CR4_FIXED1),
            ),
        }
    }

    /// Every VMX capability MSR as it reads on this CPU, absent ones as 0: the input from which
    /// nvmx computes what a guest hypervisor is offered (`VmxCapabilities::for_guest`).
    ///
    /// # Safety
    /// CPUID.1:ECX.VMX must be set.
    pub unsafe fn raw_msrs(&self) -> nvmx::insn::VmxCapabilities {
        let truly = self.basic & BASIC_TRUE_CONTROLS != 0;
        let optional = |present: bool, index: u32| if present { rdmsr(index) } else { 0 };
        let procbased = rdmsr(msr::IA32_VMX_PROCBASED_CTLS);
        let secondary =
            procbased >> 32 & u64::from(PrimaryControls::SECONDARY_CONTROLS.bits()) != 0;
        nvmx::insn::VmxCapabilities {
            basic: self.basic,
            pinbased: rdmsr(msr::IA32_VMX_PINBASED_CTLS),
            procbased,
            exit: rdmsr(msr::IA32_VMX_EXIT_CTLS),
            entry: rdmsr(msr::IA32_VMX_ENTRY_CTLS),
            true_pinbased: optional(truly, msr::IA32_VMX_TRUE_PINBASED_CTLS),
            true_procbased: optional(truly, msr::IA32_VMX_TRUE_PROCBASED_CTLS),
            true_exit: optional(truly, msr::IA32_VMX_TRUE_EXIT_CTLS),
            true_entry: optional(truly, msr::IA32_VMX_TRUE_ENTRY_CTLS),
            misc: rdmsr(msr::IA32_VMX_MISC),
            cr0_fixed0: self.cr0_fixed.0,
            cr0_fixed1: self.cr0_fixed.1,
            cr4_fixed0: self.cr4_fixed.0,
            cr4_fixed1: self.cr4_fixed.1,
            vmcs_enum: rdmsr(msr::IA32_VMX_VMCS_ENUM),
            procbased2: optional(secondary, msr::IA32_VMX_PROCBASED_CTLS2),
            ept_vpid_cap: self.ept_vpid,
        }
    }

    /// Whether "VMCS shadowing" may be enabled (IA32_VMX_PROCBASED_CTLS2, SDM A.3.3).
    pub fn has_vmcs_shadowing(&self) -> bool {
        let shadowing = SecondaryControls::VMCS_SHADOWING.bits();
        self.secondary.may_be_1 & shadowing == shadowing
    }

    /// IA32_VMX_MISC.
    ///
    /// # Safety
    /// CPUID.1:ECX.VMX must be set.
    pub unsafe fn misc(&self) -> u64 {
        rdmsr(msr::IA32_VMX_MISC)
    }

    /// The VMCS revision identifier (IA32_VMX_BASIC bits 30:0).
    pub fn revision_id(&self) -> u32 {
        self.basic as u32 & 0x7fff_ffff
    }

    /// Pin-based controls: `required` or an error, plus whatever of `optional` is allowed.
    pub fn pin(&self, required: u32, optional: u32) -> Result<u32, Unsupported> {
        self.pin.adjust("pin-based", required, optional)
    }

    /// Primary processor-based controls.
    pub fn primary(&self, required: u32, optional: u32) -> Result<u32, Unsupported> {
        self.primary
            .adjust("primary processor-based", required, optional)
    }

    /// Secondary processor-based controls.
    pub fn secondary(&self, required: u32, optional: u32) -> Result<u32, Unsupported> {
        self.secondary
            .adjust("secondary processor-based", required, optional)
    }

    /// VM-exit controls.
    pub fn exit(&self, required: u32, optional: u32) -> Result<u32, Unsupported> {
        self.exit.adjust("VM-exit", required, optional)
    }

    /// VM-entry controls.
    pub fn entry(&self, required: u32, optional: u32) -> Result<u32, Unsupported> {
        self.entry.adjust("VM-entry", required, optional)
    }

    /// The first EPT feature l1-hv needs that the CPU lacks, if any.
    pub fn missing_ept_feature(&self) -> Option<&'static str> {
        EPT_REQUIRED
            .iter()
            .find(|(bit, _)| self.ept_vpid & bit == 0)
            .map(|(_, name)| *name)
    }

    /// `value` with the CR0 bits VMX operation fixes forced (SDM A.7).
    pub fn fix_cr0(&self, value: u64) -> u64 {
        (value | self.cr0_fixed.0) & self.cr0_fixed.1
    }

    /// `value` with the CR4 bits VMX operation fixes forced (SDM A.8).
    pub fn fix_cr4(&self, value: u64) -> u64 {
        (value | self.cr4_fixed.0) & self.cr4_fixed.1
    }
}

/// The VMX-preemption timer value that expires after about `tsc_ticks` TSC ticks: the timer
/// counts down once every 2^IA32_VMX_MISC[4:0] ticks (SDM 26.5.1, A.6), and the field is 32 bits.
/// Never 0, which would expire before the guest's first instruction.
pub fn preemption_timer_value(tsc_ticks: u64) -> u64 {
    // SAFETY: callers run l1-hv's guests, so VMX and its capability MSRs exist.
    let rate = unsafe { rdmsr(msr::IA32_VMX_MISC) } & 0x1f;
    (tsc_ticks >> rate).clamp(1, u64::from(u32::MAX))
}
