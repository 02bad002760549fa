//! VMX capability MSRs (SDM Appendix A) as reported to a guest hypervisor: l1-hv's real values
//! cut down to what nvmx emulates.

use shadow_vmcs::{highest_index, VMCS12_REVISION_ID, VMCS_REGION_SIZE};
use x86::msr;
use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};

/// The VMX capability MSRs of one (real or virtual) processor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxCapabilities {
    /// IA32_VMX_BASIC.
    pub basic: u64,
    /// IA32_VMX_PINBASED_CTLS.
    pub pinbased: u64,
    /// IA32_VMX_PROCBASED_CTLS.
    pub procbased: u64,
    /// IA32_VMX_EXIT_CTLS.
    pub exit: u64,
    /// IA32_VMX_ENTRY_CTLS.
    pub entry: u64,
    /// IA32_VMX_TRUE_PINBASED_CTLS (valid if IA32_VMX_BASIC bit 55).
    pub true_pinbased: u64,
    /// IA32_VMX_TRUE_PROCBASED_CTLS (valid if IA32_VMX_BASIC bit 55).
    pub true_procbased: u64,
    /// IA32_VMX_TRUE_EXIT_CTLS (valid if IA32_VMX_BASIC bit 55).
    pub true_exit: u64,
    /// IA32_VMX_TRUE_ENTRY_CTLS (valid if IA32_VMX_BASIC bit 55).
    pub true_entry: u64,
    /// IA32_VMX_MISC.
    pub misc: u64,
    /// IA32_VMX_CR0_FIXED0: CR0 bits that must be 1 in VMX operation.
    pub cr0_fixed0: u64,
    /// IA32_VMX_CR0_FIXED1: CR0 bits that may be 1 in VMX operation.
    pub cr0_fixed1: u64,
    /// IA32_VMX_CR4_FIXED0: CR4 bits that must be 1 in VMX operation.
    pub cr4_fixed0: u64,
    /// IA32_VMX_CR4_FIXED1: CR4 bits that may be 1 in VMX operation.
    pub cr4_fixed1: u64,
    /// IA32_VMX_VMCS_ENUM.
    pub vmcs_enum: u64,
    /// IA32_VMX_PROCBASED_CTLS2 (valid if the primary controls allow bit 31).
    pub procbased2: u64,
    /// IA32_VMX_EPT_VPID_CAP (valid if EPT or VPID may be enabled).
    pub ept_vpid_cap: u64,
}

const BASIC_INS_OUTS_INFO: u64 = 1 << 54;
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;
/// IA32_VMX_BASIC bits 53:50 = 6: VMCS regions are write-back memory.
const BASIC_MEMORY_TYPE_WB: u64 = 6 << 50;

/// IA32_VMX_MISC bits kept from the host: 5 (EFER.LMA stored on exit), 6 (HLT activity state),
/// 29 (VMWRITE to exit-information fields), 30 (zero-length injection). Bits 27:25 (the MSR-list
/// size) are nvmx's own: l1-hv processes vmcs12's MSR areas in software, up to the size it
/// reports ([`crate::nested::MISC_MSR_LIST_SIZE`]).
const MISC_PASSED: u64 = 1 << 5 | 1 << 6 | 1 << 29 | 1 << 30;
/// IA32_VMX_MISC bits 4:0: the VMX-preemption timer counts down once every 2^rate TSC ticks
/// (SDM A.6). The guest hypervisor's timer runs on the processor's, at its rate.
const MISC_TIMER_RATE: u64 = 0x1F;
/// vmcs12 has four CR3-target value fields.
const MISC_CR3_TARGETS_MAX: u64 = 4;

/// IA32_VMX_EPT_VPID_CAP bits nvmx honours: 4-level walks (6), UC (8) and WB (14) paging-structure
/// memory types, 2 MiB (16) and 1 GiB (17) pages, INVEPT (20) single- (25) and all-context (26).
const EPT_CAPS: u64 = 1 << 6 | 1 << 8 | 1 << 14 | 1 << 16 | 1 << 17 | 1 << 20 | 1 << 25 | 1 << 26;
/// INVVPID (32) with the individual-address (40), single-context (41), all-context (42) and
/// single-context-retaining-globals (43) types.
const VPID_CAPS: u64 = 1 << 32 | 0xF << 40;

/// Whether a control-capability MSR (allowed-1 settings in bits 63:32) allows `bits` to be 1.
pub(crate) const fn allows(ctls: u64, bits: u32) -> bool {
    (ctls >> 32) as u32 & bits == bits
}

/// Keeps the host's must-be-1 bits and allows a bit to be 1 only if the host allows it and nvmx
/// emulates it (or it is must-be-1, i.e. a "default1" reserved bit).
const fn restrict(host: u64, emulated: u32) -> u64 {
    let must_be_one = host as u32;
    let may_be_one = (host >> 32) as u32 & (emulated | must_be_one);
    (may_be_one as u64) << 32 | must_be_one as u64
}

impl VmxCapabilities {
    /// The capabilities a guest hypervisor sees, from l1-hv's real ones (`self`).
    /// `offer_shadowing` says whether l1-hv emulates VMCS shadowing for the guest hypervisor's own
    /// guests; it is offered only if the hardware has it too.
    pub fn for_guest(&self, offer_shadowing: bool) -> VmxCapabilities {
        let mut pin = PinbasedControls::EXTERNAL_INTERRUPT_EXITING
            | PinbasedControls::NMI_EXITING
            | PinbasedControls::VIRTUAL_NMIS;
        // Every primary control the x86 crate names is emulated.
        let primary = PrimaryControls::all();
        let mut secondary = SecondaryControls::VIRTUALIZE_APIC
            | SecondaryControls::ENABLE_EPT
            | SecondaryControls::DTABLE_EXITING
            | SecondaryControls::ENABLE_RDTSCP
            | SecondaryControls::ENABLE_VPID
            | SecondaryControls::WBINVD_EXITING
            | SecondaryControls::UNRESTRICTED_GUEST
            | SecondaryControls::RDRAND_EXITING
            | SecondaryControls::ENABLE_INVPCID
            | SecondaryControls::RDSEED_EXITING;
        if offer_shadowing {
            secondary |= SecondaryControls::VMCS_SHADOWING;
        }
        let mut exit = ExitControls::SAVE_DEBUG_CONTROLS
            | ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::ACK_INTERRUPT_ON_EXIT
            | ExitControls::SAVE_IA32_PAT
            | ExitControls::LOAD_IA32_PAT
            | ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER;
        // The VMX-preemption timer is emulated on vmcs02's (nested::timer), which must save its
        // value at every exit to measure L3's time: offered only if the processor has both.
        let timer = allows(self.pinbased, PinbasedControls::VMX_PREEMPTION_TIMER.bits())
            && allows(self.exit, ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits());
        if timer {
            pin |= PinbasedControls::VMX_PREEMPTION_TIMER;
            exit |= ExitControls::SAVE_VMX_PREEMPTION_TIMER;
        }
        let misc_timer = if timer { MISC_TIMER_RATE } else { 0 };
        let entry = EntryControls::LOAD_DEBUG_CONTROLS
            | EntryControls::IA32E_MODE_GUEST
            | EntryControls::LOAD_IA32_PAT
            | EntryControls::LOAD_IA32_EFER;

        let true_controls = self.basic & BASIC_TRUE_CONTROLS != 0;
        let true_or_zero = |host: u64, emulated: u32| {
            if true_controls {
                restrict(host, emulated)
            } else {
                0
            }
        };
        let procbased2 = if allows(self.procbased, PrimaryControls::SECONDARY_CONTROLS.bits()) {
            restrict(self.procbased2, secondary.bits())
        } else {
            0
        };
        let mut ept_vpid_cap = 0;
        if allows(procbased2, SecondaryControls::ENABLE_EPT.bits()) {
            ept_vpid_cap |= self.ept_vpid_cap & EPT_CAPS;
        }
        if allows(procbased2, SecondaryControls::ENABLE_VPID.bits()) {
            ept_vpid_cap |= self.ept_vpid_cap & VPID_CAPS;
        }
        let cr3_targets = ((self.misc >> 16) & 0x1FF).min(MISC_CR3_TARGETS_MAX);

        VmxCapabilities {
            basic: u64::from(VMCS12_REVISION_ID)
                | (VMCS_REGION_SIZE as u64) << 32
                | BASIC_MEMORY_TYPE_WB
                | self.basic & (BASIC_INS_OUTS_INFO | BASIC_TRUE_CONTROLS),
            pinbased: restrict(self.pinbased, pin.bits()),
            procbased: restrict(self.procbased, primary.bits()),
            exit: restrict(self.exit, exit.bits()),
            entry: restrict(self.entry, entry.bits()),
            true_pinbased: true_or_zero(self.true_pinbased, pin.bits()),
            true_procbased: true_or_zero(self.true_procbased, primary.bits()),
            true_exit: true_or_zero(self.true_exit, exit.bits()),
            true_entry: true_or_zero(self.true_entry, entry.bits()),
            misc: self.misc & (MISC_PASSED | misc_timer)
                | cr3_targets << 16
                | crate::nested::MISC_MSR_LIST_SIZE << 25,
            cr0_fixed0: self.cr0_fixed0,
            cr0_fixed1: self.cr0_fixed1,
            cr4_fixed0: self.cr4_fixed0,
            cr4_fixed1: self.cr4_fixed1,
            vmcs_enum: u64::from(highest_index()) << 1,
            procbased2,
            ept_vpid_cap,
        }
    }

    /// The value RDMSR of `index` returns, or `None` if the MSR does not exist on this
    /// processor (RDMSR then raises #GP).
    pub fn msr(&self, index: u32) -> Option<u64> {
        let true_controls = self.basic & BASIC_TRUE_CONTROLS != 0;
        let secondary = allows(self.procbased, PrimaryControls::SECONDARY_CONTROLS.bits());
        let ept_or_vpid = secondary
            && (allows(self.procbased2, SecondaryControls::ENABLE_EPT.bits())
                || allows(self.procbased2, SecondaryControls::ENABLE_VPID.bits()));
        match index {
            msr::IA32_VMX_BASIC => Some(self.basic),
            msr::IA32_VMX_PINBASED_CTLS => Some(self.pinbased),
            msr::IA32_VMX_PROCBASED_CTLS => Some(self.procbased),
            msr::IA32_VMX_EXIT_CTLS => Some(self.exit),
            msr::IA32_VMX_ENTRY_CTLS => Some(self.entry),
            msr::IA32_VMX_MISC => Some(self.misc),
            msr::IA32_VMX_CR0_FIXED0 => Some(self.cr0_fixed0),
            msr::IA32_VMX_CR0_FIXED1 => Some(self.cr0_fixed1),
            msr::IA32_VMX_CR4_FIXED0 => Some(self.cr4_fixed0),
            msr::IA32_VMX_CR4_FIXED1 => Some(self.cr4_fixed1),
            msr::IA32_VMX_VMCS_ENUM => Some(self.vmcs_enum),
            msr::IA32_VMX_PROCBASED_CTLS2 if secondary => Some(self.procbased2),
            msr::IA32_VMX_EPT_VPID_CAP if ept_or_vpid => Some(self.ept_vpid_cap),
            msr::IA32_VMX_TRUE_PINBASED_CTLS if true_controls => Some(self.true_pinbased),
            msr::IA32_VMX_TRUE_PROCBASED_CTLS if true_controls => Some(self.true_procbased),
            msr::IA32_VMX_TRUE_EXIT_CTLS if true_controls => Some(self.true_exit),
            msr::IA32_VMX_TRUE_ENTRY_CTLS if true_controls => Some(self.true_entry),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plausible host: TRUE controls, shadowing, EPT and VPID, MISC bit 29.
    fn host() -> VmxCapabilities {
        VmxCapabilities {
            basic: 4 | 0x1000 << 32 | 1 << 49 | 6 << 50 | 1 << 54 | 1 << 55,
            pinbased: 0x0000_00FF_0000_0016,
            procbased: 0xFFF9_FFFE_0401_E172,
            exit: 0x03FF_FFFF_0003_6DFF,
            entry: 0x0003_FFFF_0000_11FF,
            true_pinbased: 0x0000_00FF_0000_0016,
            true_procbased: 0xFFF9_FFFE_0400_6172,
            true_exit: 0x03FF_FFFF_0003_6DFB,
            true_entry: 0x0003_FFFF_0000_11FB,
            misc: 1 << 29 | 8 << 16 | 1 << 15 | 1 << 7 | 1 << 6 | 1 << 5 | 5,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xFFFF_FFFF,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_27FF,
            vmcs_enum: 0x2E,
            procbased2: 0x00FF_FFFF_0000_0000,
            ept_vpid_cap: 0x0000_0F01_0673_4141,
        }
    }

    #[test]
    fn basic_reports_vmcs12_revision_size_and_no_dual_monitor() {
        let guest = host().for_guest(true);
        assert_eq!(guest.basic as u32, VMCS12_REVISION_ID);
        assert_eq!((guest.basic >> 32) & 0x1FFF, 4096);
        assert_eq!(guest.basic & 1 << 49, 0);
        assert_eq!((guest.basic >> 50) & 0xF, 6);
        assert_ne!(guest.basic & BASIC_TRUE_CONTROLS, 0);
    }

    #[test]
    fn unemulated_controls_are_hidden_but_default1_bits_stay() {
        let guest = host().for_guest(true);
        let posted = PinbasedControls::POSTED_INTERRUPTS.bits();
        assert!(allows(host().pinbased, posted));
        assert!(!allows(guest.pinbased, posted));
        // Bits 1, 2 and 4 are default1: must be 1, hence also allowed to be 1.
        assert_eq!(guest.pinbased as u32, 0x16);
        assert!(allows(
            guest.pinbased,
            0x16 | PinbasedControls::NMI_EXITING.bits()
        ));
        assert!(!allows(
            guest.entry,
            EntryControls::LOAD_IA32_PERF_GLOBAL_CTRL.bits()
        ));
        assert!(!allows(
            guest.procbased2,
            SecondaryControls::ENABLE_PML.bits()
        ));
        assert!(allows(
            guest.procbased2,
            SecondaryControls::ENABLE_EPT.bits()
        ));
    }

    #[test]
    fn vmcs_shadowing_needs_hardware_and_emulation() {
        let shadowing = SecondaryControls::VMCS_SHADOWING.bits();
        assert!(allows(host().for_guest(true).procbased2, shadowing));
        assert!(!allows(host().for_guest(false).procbased2, shadowing));
        let no_hw = VmxCapabilities {
            procbased2: host().procbased2 & !(u64::from(shadowing) << 32),
            ..host()
        };
        assert!(!allows(no_hw.for_guest(true).procbased2, shadowing));
    }

    #[test]
    fn ept_and_vpid_capabilities_follow_their_controls() {
        let guest = host().for_guest(false);
        assert_ne!(guest.ept_vpid_cap & 1 << 20, 0, "INVEPT");
        assert_ne!(guest.ept_vpid_cap & 1 << 32, 0, "INVVPID");
        assert_eq!(
            guest.ept_vpid_cap & 1 << 21,
            0,
            "accessed/dirty flags are not emulated"
        );
        let no_vpid_bit = u64::from(SecondaryControls::ENABLE_VPID.bits()) << 32;
        let no_vpid = VmxCapabilities {
            procbased2: host().procbased2 & !no_vpid_bit,
            ..host()
        }
        .for_guest(false);
        assert_eq!(no_vpid.ept_vpid_cap & VPID_CAPS, 0);
        assert_ne!(no_vpid.ept_vpid_cap & 1 << 20, 0);
    }

    #[test]
    fn misc_caps_cr3_targets_and_keeps_vmwrite_any_field() {
        let guest = host().for_guest(false);
        assert_eq!((guest.misc >> 16) & 0x1FF, 4);
        assert_ne!(guest.misc & 1 << 29, 0);
        assert_eq!(guest.misc & 1 << 15, 0);
        assert_eq!(guest.vmcs_enum, 0x2E);
        let big_lists = VmxCapabilities {
            misc: host().misc | 7 << 25,
            ..host()
        };
        assert_eq!(
            (big_lists.for_guest(false).misc >> 25) & 7,
            0,
            "the MSR-list size is nvmx's: 512 entries"
        );
    }

    #[test]
    fn preemption_timer_needs_the_timer_and_its_save_control_and_keeps_the_rate() {
        let timer = PinbasedControls::VMX_PREEMPTION_TIMER.bits();
        let save = ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits();
        let guest = host().for_guest(false);
        assert!(allows(guest.pinbased, timer) && allows(guest.true_pinbased, timer));
        assert!(allows(guest.exit, save) && allows(guest.true_exit, save));
        assert_eq!(guest.misc & 0x1F, 5, "the processor's rate");
        for (pin, exit) in [(timer, 0), (0, save)] {
            let without = VmxCapabilities {
                pinbased: host().pinbased & !(u64::from(pin) << 32),
                exit: host().exit & !(u64::from(exit) << 32),
                ..host()
            }
            .for_guest(false);
            assert!(!allows(without.pinbased, timer));
            assert!(!allows(without.exit, save));
            assert_eq!(without.misc & 0x1F, 0, "no timer, no rate");
        }
    }

    #[test]
    fn msr_reads_exist_only_where_the_sdm_says() {
        let guest = host().for_guest(false);
        assert_eq!(guest.msr(msr::IA32_VMX_BASIC), Some(guest.basic));
        assert_eq!(
            guest.msr(msr::IA32_VMX_TRUE_ENTRY_CTLS),
            Some(guest.true_entry)
        );
        assert_eq!(guest.msr(msr::IA32_VMX_VMFUNC), None);
        let plain = VmxCapabilities {
            basic: host().basic & !BASIC_TRUE_CONTROLS,
            procbased: 0x0401_E172,
            ..host()
        };
        let plain = plain.for_guest(false);
        assert_eq!(plain.msr(msr::IA32_VMX_TRUE_PINBASED_CTLS), None);
        assert_eq!(plain.msr(msr::IA32_VMX_PROCBASED_CTLS2), None);
        assert_eq!(plain.msr(msr::IA32_VMX_EPT_VPID_CAP), None);
    }
}
