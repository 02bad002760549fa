//! IA32_APIC_BASE as a kernel guest sees it: the one MSR of the passed-through local APIC that
//! l1-hv keeps a view of, because Bochs 2.7 (the CI platform) cannot re-enable a local APIC once
//! software has cleared its global-enable bit. Its WRMSR ignores every write while the enable
//! bit is 0, so the common "disable, then enable again" reset (kvm-unit-tests' `reset_apic`,
//! at every test's start) leaves the APIC off for good and the test hangs. The SDM's state
//! diagram (11.12.5, Figure 11-27) lets software go from disabled back to xAPIC mode with
//! `IA32_APIC_BASE[11:10] = 10b`, as KVM and hardware of the modelled generation do.
//!
//! l1-hv hides x2APIC from its guests: the real APIC stays in xAPIC mode, the one mode a
//! disable can be undone in without writing the real MSR.
//!
//! So a guest's global disable is kept here (the guest reads it back) and applied to the real
//! APIC as a software disable only (SPIV bit 8 clear, the SPIV value after a global disable,
//! SDM 11.4.7.2); re-enabling writes the real MSR again. Every other write goes to the hardware
//! after the checks the processor makes (reserved bits, the invalid and illegal transitions of
//! Figure 11-27), so that l1-hv's own WRMSR never faults.

/// BSP flag (bit 8, read-only), x2APIC enable (EXTD, bit 10), global enable (EN, bit 11).
pub const BSP: u64 = 1 << 8;
pub const EXTD: u64 = 1 << 10;
pub const ENABLE: u64 = 1 << 11;
/// Bits 7:0 and 9 are reserved.
const RESERVED_LOW: u64 = 0x2ff;

/// The local APIC's mode as IA32_APIC_BASE[11:10] encodes it (SDM Table 11-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 00b.
    Disabled,
    /// 01b: EXTD without EN, never valid.
    Invalid,
    /// 10b.
    XApic,
    /// 11b.
    X2Apic,
}

impl Mode {
    /// The mode `value` of IA32_APIC_BASE selects.
    pub const fn of(value: u64) -> Self {
        match (value & ENABLE != 0, value & EXTD != 0) {
            (false, false) => Self::Disabled,
            (false, true) => Self::Invalid,
            (true, false) => Self::XApic,
            (true, true) => Self::X2Apic,
        }
    }
}

/// What l1-hv does for a guest's WRMSR to IA32_APIC_BASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The processor would raise #GP(0); nothing changes.
    Fault,
    /// Write this value to the real MSR.
    Hardware(u64),
    /// The guest disabled its APIC: software-disable the real one, leave the MSR enabled.
    SoftwareDisable,
}

/// The guest's IA32_APIC_BASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicBase {
    guest: u64,
}

impl ApicBase {
    /// The view of a guest that starts on the machine's APIC as it is (`hardware`).
    pub const fn new(hardware: u64) -> Self {
        Self { guest: hardware }
    }

    /// What the guest's RDMSR returns.
    pub const fn read(&self) -> u64 {
        self.guest
    }

    /// A guest's WRMSR of `value`, on a processor with `max_phys_bits` of physical address.
    pub fn write(&mut self, value: u64, max_phys_bits: u8) -> Write {
        let beyond_physical = !((1u64 << max_phys_bits.min(63)) - 1);
        if value & (RESERVED_LOW | beyond_physical) != 0 {
            return Write::Fault;
        }
        // l1-hv hides x2APIC (CPUID.1:ECX[21] = 0), so EXTD is a reserved bit to a guest that
        // is not already in x2APIC mode; from x2APIC mode the only way out is a disable, and
        // EXTD without EN is never valid (SDM 11.12.5, Figure 11-27).
        let (from, to) = (Mode::of(self.guest), Mode::of(value));
        let illegal = matches!(
            (from, to),
            (_, Mode::Invalid)
                | (Mode::X2Apic, Mode::XApic)
                | (Mode::Disabled | Mode::XApic, Mode::X2Apic)
        );
        if illegal {
            return Write::Fault;
        }
        // The BSP flag is read-only.
        self.guest = value & !BSP | self.guest & BSP;
        match to {
            Mode::Disabled => Write::SoftwareDisable,
            _ => Write::Hardware(self.guest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xfee0_0000;
    const XAPIC: u64 = BASE | BSP | ENABLE;

    #[test]
    fn disable_then_enable_again_reaches_the_hardware_enabled() {
        let mut msr = ApicBase::new(XAPIC);
        assert_eq!(msr.write(BASE | BSP, 36), Write::SoftwareDisable);
        assert_eq!(msr.read(), BASE | BSP);
        assert_eq!(msr.write(BASE | ENABLE, 36), Write::Hardware(XAPIC));
        assert_eq!(msr.read(), XAPIC);
    }

    #[test]
    fn the_bsp_flag_is_read_only() {
        let mut msr = ApicBase::new(XAPIC);
        assert_eq!(msr.write(BASE | ENABLE, 36), Write::Hardware(XAPIC));
        let mut ap = ApicBase::new(BASE | ENABLE);
        assert_eq!(ap.write(XAPIC, 36), Write::Hardware(BASE | ENABLE));
    }

    #[test]
    fn reserved_bits_and_illegal_transitions_fault_and_change_nothing() {
        let mut msr = ApicBase::new(XAPIC);
        for value in [XAPIC | 1, XAPIC | 1 << 9, XAPIC | 1 << 36, BASE | EXTD] {
            assert_eq!(msr.write(value, 36), Write::Fault, "{value:#x}");
        }
        assert_eq!(msr.read(), XAPIC);
        // x2APIC is not offered: EXTD is reserved from xAPIC and from disabled.
        assert_eq!(msr.write(XAPIC | EXTD, 36), Write::Fault);
        assert_eq!(msr.write(BASE, 36), Write::SoftwareDisable);
        assert_eq!(msr.write(BASE | ENABLE | EXTD, 36), Write::Fault);
        assert_eq!(msr.write(BASE | ENABLE, 36), Write::Hardware(XAPIC));
    }

    #[test]
    fn a_guest_started_in_x2apic_mode_leaves_it_only_by_a_disable() {
        let mut msr = ApicBase::new(XAPIC | EXTD);
        assert_eq!(msr.write(XAPIC, 36), Write::Fault);
        assert_eq!(msr.write(XAPIC | EXTD, 36), Write::Hardware(XAPIC | EXTD));
        assert_eq!(msr.write(BASE, 36), Write::SoftwareDisable);
    }
}
