//! A VMCS kept in software: l1-hv's vmcs12 format, also the host tests' stand-in for a hardware
//! VMCS.
//!
//! Region layout (little-endian, SDM 24.2 fixes only the first 8 bytes):
//!
//! | offset | size | content                                                   |
//! |--------|------|-----------------------------------------------------------|
//! | 0      | 4    | bits 30:0 revision id [`VMCS12_REVISION_ID`], bit 31 shadow-VMCS indicator |
//! | 4      | 4    | VMX-abort indicator                                       |
//! | 8      | 4    | launch state: 0 clear, 1 launched                         |
//! | 12     | 4    | reserved, 0                                               |
//! | 16     | 8×N  | one u64 per [`SUPPORTED`] field, in that (ascending) order |
//!
//! Changing [`SUPPORTED`] changes the layout, so it must come with a new revision id.

use crate::access::Vmcs;
use crate::catalogue::{slot, SUPPORTED};
use crate::field::Field;
use core::mem::{offset_of, size_of};

/// The VMCS revision identifier of vmcs12 ("L1HV"), reported in the guest's IA32_VMX_BASIC.
/// Bit 31 is clear, as the SDM requires of a revision identifier.
pub const VMCS12_REVISION_ID: u32 = 0x4C31_4856;

/// Size of a VMCS region, reported in the guest's IA32_VMX_BASIC bits 44:32.
pub const VMCS_REGION_SIZE: usize = 4096;

/// Bit 31 of the first dword of a VMCS region: the VMCS is a shadow VMCS (SDM 25.2, 25.10).
/// The one definition for vmcs12 regions, the checks and l1-hv's own shadow VMCS.
pub const SHADOW_INDICATOR: u32 = 1 << 31;

/// Launch state of a VMCS (SDM 24.1): VMCLEAR makes it clear, a successful VMLAUNCH launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchState {
    /// Cleared: VMLAUNCH is allowed, VMRESUME is not.
    Clear,
    /// Launched: VMRESUME is allowed, VMLAUNCH is not.
    Launched,
}

/// The 16-byte header at the start of a vmcs12 region.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    revision: u32,
    abort: u32,
    launch_state: u32,
    reserved: u32,
}

/// A field name vmcs12 does not have (VM-instruction error 12 for VMREAD/VMWRITE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedField;

/// l1-hv's software VMCS, laid out as the region it is stored in (see the module doc).
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftVmcs {
    header: Header,
    fields: [u64; SUPPORTED.len()],
}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(offset_of!(SoftVmcs, fields) == size_of::<Header>());
const _: () = assert!(size_of::<SoftVmcs>() <= VMCS_REGION_SIZE);

impl Default for SoftVmcs {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftVmcs {
    /// A clear, ordinary (non-shadow) vmcs12 with every field 0.
    pub const fn new() -> Self {
        SoftVmcs {
            header: Header {
                revision: VMCS12_REVISION_ID,
                abort: 0,
                launch_state: 0,
                reserved: 0,
            },
            fields: [0; SUPPORTED.len()],
        }
    }

    /// Parses a region read from guest memory. The launch state word is trusted only as far as
    /// "1 means launched": the SDM leaves direct modification of a VMCS region undefined.
    pub fn from_region(region: &[u8; VMCS_REGION_SIZE]) -> Self {
        let dword = |i: usize| u32::from_le_bytes(region[i..i + 4].try_into().unwrap());
        let mut vmcs = SoftVmcs {
            header: Header {
                revision: dword(0),
                abort: dword(4),
                launch_state: u32::from(dword(8) == 1),
                reserved: 0,
            },
            fields: [0; SUPPORTED.len()],
        };
        let body = &region[size_of::<Header>()..];
        for (value, bytes) in vmcs.fields.iter_mut().zip(body.chunks_exact(8)) {
            *value = u64::from_le_bytes(bytes.try_into().unwrap());
        }
        vmcs
    }

    /// Serializes into a region for guest memory; bytes past the fields are zeroed.
    pub fn to_region(&self, region: &mut [u8; VMCS_REGION_SIZE]) {
        region.fill(0);
        let h = &self.header;
        for (i, word) in [h.revision, h.abort, h.launch_state, h.reserved]
            .iter()
            .enumerate()
        {
            region[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        let body = &mut region[size_of::<Header>()..];
        for (value, bytes) in self.fields.iter().zip(body.chunks_exact_mut(8)) {
            bytes.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Bits 30:0 of the first dword: the revision identifier.
    pub const fn revision_id(&self) -> u32 {
        self.header.revision & !SHADOW_INDICATOR
    }

    /// Bit 31 of the first dword: whether this is a shadow VMCS.
    pub const fn is_shadow(&self) -> bool {
        self.header.revision & SHADOW_INDICATOR != 0
    }

    /// The launch state.
    pub const fn launch_state(&self) -> LaunchState {
        match self.header.launch_state {
            0 => LaunchState::Clear,
            _ => LaunchState::Launched,
        }
    }

    /// Sets the launch state (VMCLEAR; successful VMLAUNCH).
    pub fn set_launch_state(&mut self, state: LaunchState) {
        self.header.launch_state = match state {
            LaunchState::Clear => 0,
            LaunchState::Launched => 1,
        };
    }

    /// VMREAD semantics: the field's value, zero-extended; a HIGH access yields bits 63:32.
    #[inline]
    pub fn get(&self, field: Field) -> Result<u64, UnsupportedField> {
        let value = self.fields[slot(field).ok_or(UnsupportedField)?];
        Ok(if field.is_high() { value >> 32 } else { value })
    }

    /// VMWRITE semantics: `value` truncated to the field's width; a HIGH access replaces bits
    /// 63:32 with bits 31:0 of `value` and keeps bits 31:0 (SDM 24.11.2).
    #[inline]
    pub fn set(&mut self, field: Field, value: u64) -> Result<(), UnsupportedField> {
        let stored = &mut self.fields[slot(field).ok_or(UnsupportedField)?];
        let value = value & field.access_mask();
        *stored = if field.is_high() {
            (*stored & u64::from(u32::MAX)) | (value << 32)
        } else {
            value
        };
        Ok(())
    }
}

/// A vmcs12 field (FULL access) resolved once to its place in [`SoftVmcs`], for the loops that
/// copy many fields between vmcs12 and a hardware VMCS on every nested exit and entry: an access
/// through it ([`SoftVmcs::read_resolved`], [`SoftVmcs::write_resolved`]) is an index and a mask
/// instead of decoding the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    encoding: u32,
    slot: u16,
    mask: u64,
}

impl Resolved {
    /// `encoding`, which must be the FULL access of a vmcs12 field (checked at compile time
    /// in a constant).
    pub const fn new(encoding: u32) -> Resolved {
        let Some(field) = Field::new(encoding as u64) else {
            panic!("not a VMCS field encoding");
        };
        assert!(!field.is_high(), "FULL accesses only");
        let Some(slot) = slot(field) else {
            panic!("not a vmcs12 field");
        };
        Resolved {
            encoding,
            slot: slot as u16,
            mask: field.access_mask(),
        }
    }

    /// [`Resolved::new`] for each of `encodings`.
    pub const fn all<const N: usize>(encodings: [u32; N]) -> [Resolved; N] {
        let mut resolved = [Resolved {
            encoding: 0,
            slot: 0,
            mask: 0,
        }; N];
        let mut i = 0;
        while i < N {
            resolved[i] = Resolved::new(encodings[i]);
            i += 1;
        }
        resolved
    }

    /// The field's encoding.
    pub const fn encoding(self) -> u32 {
        self.encoding
    }
}

impl SoftVmcs {
    /// The value of a resolved field (as [`Vmcs::read`]).
    #[inline]
    pub fn read_resolved(&self, field: Resolved) -> u64 {
        self.fields[usize::from(field.slot)]
    }

    /// Writes a resolved field, truncated to its width (as [`Vmcs::write`]).
    #[inline]
    pub fn write_resolved(&mut self, field: Resolved, value: u64) {
        self.fields[usize::from(field.slot)] = value & field.mask;
    }
}

/// Panics on a field vmcs12 lacks: through this trait that is a host bug (see [`Vmcs`]); guest
/// supplied encodings go through [`SoftVmcs::get`]/[`SoftVmcs::set`].
impl Vmcs for SoftVmcs {
    // Inlined so that a constant encoding folds to a load of its slot (the nested exit and
    // entry paths read vmcs12 by constant encodings).
    #[inline]
    fn read(&self, field: u32) -> u64 {
        Field::new(u64::from(field))
            .and_then(|f| self.get(f).ok())
            .unwrap_or_else(|| panic!("vmcs12 has no field {field:#x}"))
    }

    #[inline]
    fn write(&mut self, field: u32, value: u64) {
        Field::new(u64::from(field))
            .and_then(|f| self.set(f, value).ok())
            .unwrap_or_else(|| panic!("vmcs12 has no field {field:#x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{control, guest, ro};

    fn field(encoding: u32) -> Field {
        Field::new(u64::from(encoding)).unwrap()
    }

    #[test]
    fn writes_truncate_to_the_field_width() {
        let mut vmcs = SoftVmcs::new();
        vmcs.write(guest::CS_SELECTOR, 0x1234_5678);
        vmcs.write(guest::CS_LIMIT, 0xAAAA_BBBB_CCCC_DDDD);
        vmcs.write(guest::RIP, 0xFFFF_8000_0000_1000);
        assert_eq!(vmcs.read(guest::CS_SELECTOR), 0x5678);
        assert_eq!(vmcs.read(guest::CS_LIMIT), 0xCCCC_DDDD);
        assert_eq!(vmcs.read(guest::RIP), 0xFFFF_8000_0000_1000);
    }

    #[test]
    fn high_access_reads_and_writes_the_upper_half() {
        let mut vmcs = SoftVmcs::new();
        vmcs.write(control::TSC_OFFSET_FULL, 0x1111_2222_3333_4444);
        assert_eq!(vmcs.read(control::TSC_OFFSET_HIGH), 0x1111_2222);
        vmcs.write(control::TSC_OFFSET_HIGH, 0xFFFF_FFFF_9999_8888);
        assert_eq!(vmcs.read(control::TSC_OFFSET_FULL), 0x9999_8888_3333_4444);
    }

    #[test]
    fn resolved_fields_are_the_same_fields() {
        let mut vmcs = SoftVmcs::new();
        let [limit, rip] = Resolved::all([guest::CS_LIMIT, guest::RIP]);
        vmcs.write_resolved(limit, 0xAAAA_BBBB_CCCC_DDDD);
        vmcs.write(guest::RIP, 0x1000);
        assert_eq!(vmcs.read(guest::CS_LIMIT), 0xCCCC_DDDD);
        assert_eq!(vmcs.read_resolved(rip), 0x1000);
        assert_eq!(rip.encoding(), guest::RIP);
    }

    #[test]
    fn unsupported_fields_are_reported() {
        let mut vmcs = SoftVmcs::new();
        let pml = field(control::PML_ADDR_FULL);
        assert_eq!(vmcs.get(pml), Err(UnsupportedField));
        assert_eq!(vmcs.set(pml, 1), Err(UnsupportedField));
        assert_eq!(vmcs.get(field(ro::EXIT_REASON)), Ok(0));
    }

    #[test]
    fn region_round_trip_keeps_header_and_fields() {
        let mut vmcs = SoftVmcs::new();
        vmcs.write(guest::RSP, 0xDEAD_BEEF);
        vmcs.write(ro::EXIT_QUALIFICATION, 7);
        vmcs.set_launch_state(LaunchState::Launched);
        let mut region = [0xAAu8; VMCS_REGION_SIZE];
        vmcs.to_region(&mut region);
        assert_eq!(&region[0..4], &VMCS12_REVISION_ID.to_le_bytes());
        assert_eq!(&region[8..12], &1u32.to_le_bytes());
        assert_eq!(region[VMCS_REGION_SIZE - 1], 0);
        assert_eq!(SoftVmcs::from_region(&region), vmcs);
    }

    #[test]
    fn shadow_indicator_and_revision_are_separate_bits() {
        let mut region = [0u8; VMCS_REGION_SIZE];
        region[0..4].copy_from_slice(&(VMCS12_REVISION_ID | 1 << 31).to_le_bytes());
        region[8] = 5; // not a launch state the format knows: read as clear
        let vmcs = SoftVmcs::from_region(&region);
        assert!(vmcs.is_shadow());
        assert_eq!(vmcs.revision_id(), VMCS12_REVISION_ID);
        assert_eq!(vmcs.launch_state(), LaunchState::Clear);
        assert!(!SoftVmcs::new().is_shadow());
    }
}
