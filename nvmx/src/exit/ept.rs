//! EPT violations (SDM 28.2.1, Table 28-7).

use crate::ept::{Access, Permissions};
use shadow_vmcs::Vmcs;

/// What the guest linear address field holds for an EPT violation (bits 7 and 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearAddress {
    /// Bit 7 = 0: the field is not valid (e.g. an access by MOV to CR3 or a PDPTE load).
    Invalid,
    /// Bits 7 and 8 = 1: the access was to the translation of that linear address. The
    /// advanced VM-exit information (bits 9–11) reads 0 where the processor does not report it
    /// (IA32_VMX_EPT_VPID_CAP bit 22).
    Translation {
        /// Bit 9: a user-mode linear address.
        user: bool,
        /// Bit 10: a read/write page.
        writable: bool,
        /// Bit 11: an execute-disable page.
        execute_disable: bool,
    },
    /// Bit 7 = 1, bit 8 = 0: the access was to a paging-structure entry while translating it.
    PagingStructure,
}

/// The EPT violation that caused the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolation {
    /// The access (bits 2:0: read, write, instruction fetch).
    pub access: Access,
    /// What the EPT paging-structure entries allowed (bits 5:3, the AND along the path).
    pub permitted: Permissions,
    /// Bit 6: user-mode execute allowed (mode-based execute control).
    pub user_execute: bool,
    /// The guest linear address field's meaning.
    pub linear: LinearAddress,
    /// Bit 12: NMI unblocking due to IRET (virtual-NMI blocking must be set again before a
    /// reflected or retried IRET, SDM 28.2.3).
    pub nmi_unblocking: bool,
    /// Bit 13: a shadow-stack access.
    pub shadow_stack: bool,
    /// Bit 14: a supervisor shadow-stack page.
    pub supervisor_shadow_stack: bool,
    /// Bit 15: guest-paging verification.
    pub guest_paging_verification: bool,
    /// Bit 16: asynchronous to instruction execution.
    pub asynchronous: bool,
}

impl EptViolation {
    /// Bits 16:0 are defined; 63:17 are reserved.
    pub const DEFINED: u64 = (1 << 17) - 1;

    /// Decodes qualification `q`.
    pub fn from_qualification(q: u64) -> Self {
        let bit = |n: u32| q & 1 << n != 0;
        EptViolation {
            access: Access {
                read: bit(0),
                write: bit(1),
                execute: bit(2),
            },
            permitted: Permissions::from_bits_truncate((q >> 3 & 7) as u8),
            user_execute: bit(6),
            linear: match (bit(7), bit(8)) {
                (false, _) => LinearAddress::Invalid,
                (true, false) => LinearAddress::PagingStructure,
                (true, true) => LinearAddress::Translation {
                    user: bit(9),
                    writable: bit(10),
                    execute_disable: bit(11),
                },
            },
            nmi_unblocking: bit(12),
            shadow_stack: bit(13),
            supervisor_shadow_stack: bit(14),
            guest_paging_verification: bit(15),
            asynchronous: bit(16),
        }
    }

    /// The EPT violation of the exit `vmcs` last recorded.
    pub fn read(vmcs: &impl Vmcs) -> Self {
        Self::from_qualification(super::qualification(vmcs))
    }
}
