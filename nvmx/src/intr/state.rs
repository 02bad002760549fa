//! The guest state that decides whether an NMI or external interrupt can be delivered now:
//! interruptibility and activity state (SDM 25.4.2), RFLAGS.IF, the VM-entry interruption
//! information and the pin-based "virtual NMIs" control.

use crate::event::InterruptionInfo;
use bitflags::bitflags;
use shadow_vmcs::Vmcs;
use x86::bits64::rflags::RFlags;
use x86::vmx::vmcs::control::{self, PinbasedControls};
use x86::vmx::vmcs::guest;

bitflags! {
    /// The guest interruptibility-state field (SDM 25.4.2, Table 25-3); the `x86` crate has no
    /// bit set for it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Interruptibility: u32 {
        /// Bit 0: blocking by STI (for one instruction after STI set IF).
        const STI = 1 << 0;
        /// Bit 1: blocking by MOV SS / POP SS (for one instruction).
        const MOV_SS = 1 << 1;
        /// Bit 2: blocking by SMI (in SMM).
        const SMI = 1 << 2;
        /// Bit 3: blocking by NMI; virtual-NMI blocking when "virtual NMIs" is 1.
        const NMI = 1 << 3;
    }
}

impl Interruptibility {
    /// The guest interruptibility state of `vmcs`, with the bits this type does not name kept.
    pub fn read(vmcs: &impl Vmcs) -> Self {
        Self::from_bits_retain(vmcs.read(guest::INTERRUPTIBILITY_STATE) as u32)
    }

    /// Writes it back as the guest interruptibility state of `vmcs`.
    pub fn write(self, vmcs: &mut impl Vmcs) {
        vmcs.write(guest::INTERRUPTIBILITY_STATE, self.bits().into());
    }
}

/// The guest activity states l1-hv offers its guests (SDM 25.4.2; IA32_VMX_MISC bit 6 offers
/// HLT). Shutdown and wait-for-SIPI are never entered: a triple fault stops the guest instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ActivityState {
    /// 0: executing instructions.
    Active = 0,
    /// 1: halted by HLT; an unblocked NMI or an interrupt with IF = 1 ends it.
    Hlt = 1,
}

impl ActivityState {
    /// Decodes the guest activity-state field; `None` for shutdown, wait-for-SIPI and reserved.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        match bits {
            0 => Some(Self::Active),
            1 => Some(Self::Hlt),
            _ => None,
        }
    }

    /// The guest activity state of `vmcs`.
    pub fn read(vmcs: &impl Vmcs) -> Option<Self> {
        Self::from_bits(vmcs.read(guest::ACTIVITY_STATE))
    }

    /// Writes it as the guest activity state of `vmcs`.
    pub fn write(self, vmcs: &mut impl Vmcs) {
        vmcs.write(guest::ACTIVITY_STATE, self as u64);
    }
}

/// A snapshot of what gates NMI and interrupt delivery into the guest of one VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Gate {
    pub(super) blocking: Interruptibility,
    /// RFLAGS.IF.
    pub(super) interrupts_enabled: bool,
    pub(super) halted: bool,
    /// The VM-entry interruption-information field is valid: VM entry already injects an event.
    pub(super) entry_busy: bool,
    /// Pin-based "virtual NMIs": bit 3 of the interruptibility state is virtual-NMI blocking, and
    /// NMI-window exiting may be used (SDM 25.6.2).
    pub(super) virtual_nmis: bool,
}

impl Gate {
    pub(super) fn read(vmcs: &impl Vmcs) -> Self {
        let pin =
            PinbasedControls::from_bits_truncate(vmcs.read(control::PINBASED_EXEC_CONTROLS) as u32);
        let entry = InterruptionInfo(vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32);
        Self {
            blocking: Interruptibility::read(vmcs),
            interrupts_enabled: vmcs.read(guest::RFLAGS) & RFlags::FLAGS_IF.bits() != 0,
            halted: ActivityState::read(vmcs) == Some(ActivityState::Hlt),
            entry_busy: entry.valid(),
            virtual_nmis: pin.contains(PinbasedControls::VIRTUAL_NMIS),
        }
    }

    /// VM entry may inject an external interrupt: RFLAGS.IF = 1 and no blocking by STI or MOV SS
    /// (SDM 27.3.1.5, checks on the interruptibility state).
    pub(super) fn interrupt_open(&self) -> bool {
        self.interrupts_enabled
            && !self
                .blocking
                .intersects(Interruptibility::STI | Interruptibility::MOV_SS)
    }

    /// VM entry may inject an NMI, and the guest is ready for one. SDM 27.3.1.5 forbids MOV-SS
    /// blocking, and NMI blocking when "virtual NMIs" is 1; some processors also refuse STI
    /// blocking, so it is refused everywhere. Without virtual NMIs, bit 3 is the guest's real
    /// NMI blocking (it runs its NMI handler until IRET, SDM 6.7.1): injecting then would nest
    /// NMIs, which hardware never does.
    pub(super) fn nmi_open(&self) -> bool {
        !self
            .blocking
            .intersects(Interruptibility::STI | Interruptibility::MOV_SS | Interruptibility::NMI)
    }

    /// The only obstacle to an NMI is STI blocking. NMI-window exiting may ignore STI blocking
    /// (SDM 27.7.6: a processor *may* also hold the exit back for it), so the window could open
    /// before injection may; the interrupt window cannot (IF = 1 is implied, SDM 27.3.1.5) and
    /// opens one instruction later.
    pub(super) fn nmi_blocked_only_by_sti(&self) -> bool {
        self.blocking & (Interruptibility::STI | Interruptibility::MOV_SS | Interruptibility::NMI)
            == Interruptibility::STI
    }
}
