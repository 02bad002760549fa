//! VMREAD and VMWRITE bitmaps (SDM 24.6.15): 4 KiB each, one bit per value of field-encoding bits
//! 14:0. A set bit makes the guest's VMREAD/VMWRITE of that encoding exit; a clear bit lets it
//! access the shadow VMCS. Encodings with bits 63:15 set always exit.

use crate::field::Field;
use core::mem::size_of;

/// One VMREAD or VMWRITE bitmap, page-aligned as its VMCS address field requires.
#[repr(C, align(4096))]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VmxBitmap([u8; 4096]);

const _: () = assert!(size_of::<VmxBitmap>() == 4096);

impl VmxBitmap {
    /// A bitmap under which every access exits to l1-hv.
    pub const fn all_exiting() -> Self {
        VmxBitmap([0xFF; 4096])
    }

    /// Lets accesses to `field` reach the shadow VMCS, both access types of a 64-bit field.
    pub fn pass_through(&mut self, field: Field) {
        for f in [Some(field.full()), field.full().high()]
            .into_iter()
            .flatten()
        {
            let bit = f.encoding() as usize & 0x7FFF;
            self.0[bit / 8] &= !(1 << (bit % 8));
        }
    }

    /// Whether an access to `encoding` exits under this bitmap.
    pub fn exits(&self, encoding: u64) -> bool {
        if encoding >> 15 != 0 {
            return true;
        }
        let bit = encoding as usize;
        self.0[bit / 8] & (1 << (bit % 8)) != 0
    }

    /// The bitmap's bytes, as placed in the page the VMCS address field points at.
    pub fn as_bytes(&self) -> &[u8; 4096] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs::{control, guest};

    #[test]
    fn pass_through_clears_exactly_the_field_bits() {
        let mut bitmap = VmxBitmap::all_exiting();
        bitmap.pass_through(Field::new(guest::RIP as u64).unwrap());
        assert!(!bitmap.exits(guest::RIP as u64));
        assert!(bitmap.exits(guest::RSP as u64));
        let cleared: u32 = bitmap.as_bytes().iter().map(|b| b.count_zeros()).sum();
        assert_eq!(cleared, 1);
    }

    #[test]
    fn sixty_four_bit_fields_pass_both_halves() {
        let mut bitmap = VmxBitmap::all_exiting();
        bitmap.pass_through(Field::new(control::TSC_OFFSET_HIGH as u64).unwrap());
        assert!(!bitmap.exits(control::TSC_OFFSET_FULL as u64));
        assert!(!bitmap.exits(control::TSC_OFFSET_HIGH as u64));
    }

    #[test]
    fn encodings_above_bit_14_always_exit() {
        let mut bitmap = VmxBitmap::all_exiting();
        bitmap.pass_through(Field::new(guest::RIP as u64).unwrap());
        assert!(bitmap.exits((1 << 32) | guest::RIP as u64));
    }
}
