//! The VM-execution, VM-exit and VM-entry control words of a VMCS, read once per phase.

use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};

/// The five control words as the bits the `x86` crate names; bits it does not name are
/// rejected by the checks, which read the raw words ([`RawControls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Controls {
    pub(crate) pin: PinbasedControls,
    pub(crate) primary: PrimaryControls,
    /// As the processor applies them: 0 unless "activate secondary controls" is 1 (SDM 25.6.2).
    pub(crate) secondary: SecondaryControls,
    pub(crate) exit: ExitControls,
    pub(crate) entry: EntryControls,
}

impl Controls {
    pub(crate) fn read(vmcs: &impl Vmcs) -> Self {
        let primary = PrimaryControls::from_bits_truncate(
            vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32,
        );
        let secondary = if primary.contains(PrimaryControls::SECONDARY_CONTROLS) {
            SecondaryControls::from_bits_truncate(
                vmcs.read(control::SECONDARY_PROCBASED_EXEC_CONTROLS) as u32,
            )
        } else {
            SecondaryControls::empty()
        };
        Controls {
            pin: PinbasedControls::from_bits_truncate(
                vmcs.read(control::PINBASED_EXEC_CONTROLS) as u32
            ),
            primary,
            secondary,
            exit: ExitControls::from_bits_truncate(vmcs.read(control::VMEXIT_CONTROLS) as u32),
            entry: EntryControls::from_bits_truncate(vmcs.read(control::VMENTRY_CONTROLS) as u32),
        }
    }

    /// "IA-32e mode guest".
    pub(crate) fn ia32e_guest(&self) -> bool {
        self.entry.contains(EntryControls::IA32E_MODE_GUEST)
    }

    /// "Unrestricted guest".
    pub(crate) fn unrestricted_guest(&self) -> bool {
        self.secondary
            .contains(SecondaryControls::UNRESTRICTED_GUEST)
    }

    /// "Enable EPT".
    pub(crate) fn ept(&self) -> bool {
        self.secondary.contains(SecondaryControls::ENABLE_EPT)
    }
}

/// The raw control words, for the reserved-bit checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawControls {
    pub(crate) pin: u32,
    pub(crate) primary: u32,
    /// 0 unless "activate secondary controls" is 1.
    pub(crate) secondary: u32,
    pub(crate) exit: u32,
    pub(crate) entry: u32,
}

impl RawControls {
    pub(crate) fn read(vmcs: &impl Vmcs) -> Self {
        let primary = vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32;
        let secondary = if primary & PrimaryControls::SECONDARY_CONTROLS.bits() != 0 {
            vmcs.read(control::SECONDARY_PROCBASED_EXEC_CONTROLS) as u32
        } else {
            0
        };
        RawControls {
            pin: vmcs.read(control::PINBASED_EXEC_CONTROLS) as u32,
            primary,
            secondary,
            exit: vmcs.read(control::VMEXIT_CONTROLS) as u32,
            entry: vmcs.read(control::VMENTRY_CONTROLS) as u32,
        }
    }
}
