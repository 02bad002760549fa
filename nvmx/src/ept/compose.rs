//! EPT02 leaves: the composition of an EPT12 translation with l1-hv's EPT01 mapping.

use super::walk::{Permissions, Translation};

/// EPT memory type write-back.
const MEMORY_TYPE_WB: u8 = 6;
/// Qualification bits a reflected EPT violation takes from vmcs02's: 7 (guest linear address
/// valid), 8 (access to the translated address, not to a paging structure), 12 (NMI unblocking
/// due to IRET).
const HARDWARE_QUALIFICATION_BITS: u64 = 1 << 7 | 1 << 8 | 1 << 12;

/// How l1-hv's EPT01 maps one 4 KiB L2-physical page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMapping {
    /// Host-physical address of the page.
    pub host_phys: u64,
    /// EPT01's permissions for it (AND of its path).
    pub permissions: Permissions,
    /// EPT01's memory type for it.
    pub memory_type: u8,
    /// EPT01's "ignore PAT".
    pub ignore_pat: bool,
}

/// A 4 KiB EPT leaf entry: address, permissions, memory type, "ignore PAT".
pub fn leaf_entry(
    host_phys: u64,
    permissions: Permissions,
    memory_type: u8,
    ignore_pat: bool,
) -> u64 {
    host_phys & !0xFFF
        | u64::from(permissions.bits())
        | u64::from(memory_type & 7) << 3
        | u64::from(ignore_pat) << 6
}

/// The EPT02 leaf for the 4 KiB page containing the L3-physical address `translation` came
/// from: `lookup` gives EPT01's mapping of the L2-physical page (`None` if EPT01 does not map
/// it, then `None` here too). Permissions are the AND of both; the memory type is EPT12's
/// while EPT01 says write-back (ordinary RAM), else EPT01's, so that l1-hv's uncached mappings
/// stay uncached. As both permission sets are valid, the AND is valid: W implies R in both.
pub fn compose(
    translation: &Translation,
    lookup: impl FnOnce(u64) -> Option<HostMapping>,
) -> Option<u64> {
    let host = lookup(translation.l2_gpa & !0xFFF)?;
    let (memory_type, ignore_pat) = if host.memory_type == MEMORY_TYPE_WB {
        (translation.memory_type, translation.ignore_pat)
    } else {
        (host.memory_type, host.ignore_pat)
    };
    Some(leaf_entry(
        host.host_phys,
        translation.permissions & host.permissions,
        memory_type,
        ignore_pat,
    ))
}

/// The qualification of the EPT violation reflected to the guest hypervisor: the walk's bits
/// 0–5 and vmcs02's bits 7, 8 and 12 (the linear-address information and NMI unblocking are
/// facts of the access, not of the tables).
pub fn reflected_qualification(walk_qualification: u64, hardware_qualification: u64) -> u64 {
    walk_qualification & 0x3F | hardware_qualification & HARDWARE_QUALIFICATION_BITS
}
