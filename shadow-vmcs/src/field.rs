//! VMCS field encodings taken apart: width, type, index and access type all come from the
//! encoding bits themselves (SDM Vol. 3C 24.11.2, "VMREAD, VMWRITE, and Encodings of VMCS
//! Fields"; Appendix B), so no per-field table is needed for them.

/// Width of a VMCS field (encoding bits 14:13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 16-bit field.
    Bits16,
    /// 64-bit field, with a FULL and a HIGH access encoding.
    Bits64,
    /// 32-bit field.
    Bits32,
    /// Natural-width field: 64 bits on the 64-bit processors l1-hv runs on.
    Natural,
}

/// Type of a VMCS field (encoding bits 11:10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// VM-execution, VM-exit and VM-entry control fields.
    Control,
    /// VM-exit information (read-only data) fields.
    ExitInformation,
    /// Guest-state fields.
    GuestState,
    /// Host-state fields.
    HostState,
}

/// A VMCS field encoding whose reserved bits are clear, i.e. one that *could* name a field.
///
/// Whether l1-hv's vmcs12 actually has the field is [`crate::is_supported`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field(u32);

/// Bit 0: access type, 1 = HIGH (bits 63:32 of a 64-bit field).
const ACCESS_HIGH: u32 = 1;
/// Bit 12 and bits 31:15 are reserved and must be 0.
const RESERVED: u32 = !0x6FFF;

impl Field {
    /// Validates `encoding` as the VMREAD/VMWRITE field operand: bits 63:15 and bit 12 must be
    /// clear, and the HIGH access type exists only for 64-bit fields.
    #[inline]
    pub const fn new(encoding: u64) -> Option<Field> {
        if encoding > u32::MAX as u64 || encoding as u32 & RESERVED != 0 {
            return None;
        }
        let field = Field(encoding as u32);
        if field.is_high() && !matches!(field.width(), Width::Bits64) {
            return None;
        }
        Some(field)
    }

    /// The raw encoding.
    pub const fn encoding(self) -> u32 {
        self.0
    }

    /// The field's width (of the whole field, not of a HIGH access).
    pub const fn width(self) -> Width {
        match (self.0 >> 13) & 3 {
            0 => Width::Bits16,
            1 => Width::Bits64,
            2 => Width::Bits32,
            _ => Width::Natural,
        }
    }

    /// The field's type.
    pub const fn field_type(self) -> FieldType {
        match (self.0 >> 10) & 3 {
            0 => FieldType::Control,
            1 => FieldType::ExitInformation,
            2 => FieldType::GuestState,
            _ => FieldType::HostState,
        }
    }

    /// The index within its width/type group (bits 9:1); IA32_VMX_VMCS_ENUM reports the highest.
    pub const fn index(self) -> u16 {
        ((self.0 >> 1) & 0x1FF) as u16
    }

    /// Whether this is the HIGH access encoding of a 64-bit field.
    pub const fn is_high(self) -> bool {
        self.0 & ACCESS_HIGH != 0
    }

    /// Whether the field is read-only: all VM-exit information fields are, and a VMWRITE to
    /// one fails unless IA32_VMX_MISC bit 29 is set (SDM 24.11.2).
    pub const fn is_read_only(self) -> bool {
        matches!(self.field_type(), FieldType::ExitInformation)
    }

    /// The FULL access encoding of the field (the field itself for non-64-bit fields).
    pub const fn full(self) -> Field {
        Field(self.0 & !ACCESS_HIGH)
    }

    /// The HIGH access encoding of a 64-bit field, `None` for other widths.
    pub const fn high(self) -> Option<Field> {
        match self.width() {
            Width::Bits64 => Some(Field(self.0 | ACCESS_HIGH)),
            _ => None,
        }
    }

    /// The bits an access with this encoding transfers: a HIGH access moves 32 bits.
    pub const fn access_mask(self) -> u64 {
        if self.is_high() {
            return u32::MAX as u64;
        }
        match self.width() {
            Width::Bits16 => u16::MAX as u64,
            Width::Bits32 => u32::MAX as u64,
            Width::Bits64 | Width::Natural => u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{control, guest, host, ro};

    #[test]
    fn width_and_type_come_from_the_encoding() {
        let vpid = Field::new(control::VPID as u64).unwrap();
        assert_eq!(
            (vpid.width(), vpid.field_type()),
            (Width::Bits16, FieldType::Control)
        );
        let eptp = Field::new(control::EPTP_FULL as u64).unwrap();
        assert_eq!(eptp.width(), Width::Bits64);
        let reason = Field::new(ro::EXIT_REASON as u64).unwrap();
        assert_eq!(
            (reason.width(), reason.field_type()),
            (Width::Bits32, FieldType::ExitInformation)
        );
        let rip = Field::new(guest::RIP as u64).unwrap();
        assert_eq!(
            (rip.width(), rip.field_type()),
            (Width::Natural, FieldType::GuestState)
        );
        let host_cr3 = Field::new(host::CR3 as u64).unwrap();
        assert_eq!(host_cr3.field_type(), FieldType::HostState);
        assert_eq!(
            Field::new(guest::IA32_SYSENTER_CS as u64).unwrap().index(),
            0x15
        );
    }

    #[test]
    fn read_only_is_exactly_exit_information() {
        assert!(Field::new(ro::EXIT_QUALIFICATION as u64)
            .unwrap()
            .is_read_only());
        assert!(Field::new(ro::GUEST_PHYSICAL_ADDR_HIGH as u64)
            .unwrap()
            .is_read_only());
        assert!(!Field::new(guest::CR0 as u64).unwrap().is_read_only());
        assert!(!Field::new(control::EXCEPTION_BITMAP as u64)
            .unwrap()
            .is_read_only());
    }

    #[test]
    fn reserved_bits_and_bad_high_accesses_are_rejected() {
        assert_eq!(Field::new(1 << 12), None);
        assert_eq!(Field::new(1 << 15), None);
        assert_eq!(Field::new((1 << 32) | guest::RIP as u64), None);
        // HIGH access of a natural-width field does not exist.
        assert_eq!(Field::new(guest::RIP as u64 | 1), None);
        let high = Field::new(control::TSC_OFFSET_HIGH as u64).unwrap();
        assert!(high.is_high());
        assert_eq!(high.full().encoding(), control::TSC_OFFSET_FULL);
        assert_eq!(high.access_mask(), 0xFFFF_FFFF);
    }

    #[test]
    fn access_masks_follow_width() {
        assert_eq!(
            Field::new(guest::CS_SELECTOR as u64).unwrap().access_mask(),
            0xFFFF
        );
        assert_eq!(
            Field::new(guest::CS_LIMIT as u64).unwrap().access_mask(),
            0xFFFF_FFFF
        );
        assert_eq!(
            Field::new(guest::RIP as u64).unwrap().access_mask(),
            u64::MAX
        );
        assert_eq!(Field::new(guest::CR0 as u64).unwrap().high(), None);
    }
}
