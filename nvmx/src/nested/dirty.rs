//! Field groups of vmcs12 that a nested entry redoes work for only when they changed: the
//! guest hypervisor's VMWRITEs (emulated, or into the shadow VMCS) and VMPTRLD mark them; a
//! successful nested entry clears them.

use bitflags::bitflags;
use shadow_vmcs::{Field, FieldType};
use x86::vmx::vmcs::{control, guest};

bitflags! {
    /// vmcs12 field groups changed since the last successful nested entry.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Dirty: u8 {
        /// VM-execution, VM-exit and VM-entry controls other than event injection.
        const CONTROLS = 1 << 0;
        /// The VM-entry event-injection fields (interruption information, error code,
        /// instruction length; SDM 25.8.3): written before most re-entries.
        const INJECTION = 1 << 1;
        /// Host-state fields.
        const HOST = 1 << 2;
        /// Guest-state fields.
        const GUEST = 1 << 3;
    }
}

/// The VM-entry event-injection fields.
pub(crate) const INJECTION_FIELDS: [u32; 3] = [
    control::VMENTRY_INTERRUPTION_INFO_FIELD,
    control::VMENTRY_EXCEPTION_ERR_CODE,
    control::VMENTRY_INSTRUCTION_LEN,
];

impl Dirty {
    /// The group a write of `field` changes. Exit-information fields belong to none: no entry
    /// reads them; nor does the VMX-preemption timer value: every entry with the timer active
    /// reads it anyway (the count is consumed by the run, [`super::timer`]), and none checks it.
    pub const fn of(field: Field) -> Dirty {
        if field.encoding() == guest::VMX_PREEMPTION_TIMER_VALUE {
            return Dirty::empty();
        }
        match field.field_type() {
            FieldType::Control => {
                let full = field.full().encoding();
                if full == INJECTION_FIELDS[0]
                    || full == INJECTION_FIELDS[1]
                    || full == INJECTION_FIELDS[2]
                {
                    Dirty::INJECTION
                } else {
                    Dirty::CONTROLS
                }
            }
            FieldType::ExitInformation => Dirty::empty(),
            FieldType::GuestState => Dirty::GUEST,
            FieldType::HostState => Dirty::HOST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{host, ro};

    fn of(encoding: u32) -> Dirty {
        Dirty::of(Field::new(u64::from(encoding)).unwrap())
    }

    #[test]
    fn fields_fall_into_their_groups() {
        assert_eq!(
            of(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            Dirty::INJECTION
        );
        assert_eq!(of(control::VMENTRY_INSTRUCTION_LEN), Dirty::INJECTION);
        assert_eq!(of(control::EXCEPTION_BITMAP), Dirty::CONTROLS);
        assert_eq!(of(control::EPTP_HIGH), Dirty::CONTROLS);
        assert_eq!(of(guest::RIP), Dirty::GUEST);
        assert_eq!(of(host::RIP), Dirty::HOST);
        assert_eq!(of(ro::EXIT_REASON), Dirty::empty());
        assert_eq!(of(guest::VMX_PREEMPTION_TIMER_VALUE), Dirty::empty());
    }
}
