//! The EPT12 walk (SDM 29.3.2 translation, 29.3.3 violations and misconfigurations): four
//! levels at most, each entry read through the guest hypervisor's memory.

use crate::insn::GuestMemory;
use crate::insn::VmxCapabilities;
use bitflags::bitflags;

bitflags! {
    /// EPT access rights, bits 2:0 of an EPT entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Permissions: u8 {
        /// Reads allowed.
        const READ = 1 << 0;
        /// Writes allowed.
        const WRITE = 1 << 1;
        /// Instruction fetches allowed.
        const EXECUTE = 1 << 2;
    }
}

/// The access being translated (bits 0–2 of an EPT-violation qualification).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A data read.
    pub read: bool,
    /// A data write.
    pub write: bool,
    /// An instruction fetch.
    pub execute: bool,
}

impl Access {
    /// The access as qualification bits 2:0 (the same layout as [`Permissions`]).
    const fn bits(self) -> u8 {
        self.read as u8 | (self.write as u8) << 1 | (self.execute as u8) << 2
    }
}

/// Size of the page a translation ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB (a PTE).
    Size4K,
    /// 2 MiB (a PDE with bit 7).
    Size2M,
    /// 1 GiB (a PDPTE with bit 7).
    Size1G,
}

impl PageSize {
    const fn offset_mask(self) -> u64 {
        match self {
            PageSize::Size4K => (1 << 12) - 1,
            PageSize::Size2M => (1 << 21) - 1,
            PageSize::Size1G => (1 << 30) - 1,
        }
    }
}

/// A successful EPT12 translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The L2-physical address the L3-physical address maps to.
    pub l2_gpa: u64,
    /// The AND of the permissions of every entry on the path.
    pub permissions: Permissions,
    /// The size of the page mapped by the leaf.
    pub page_size: PageSize,
    /// The leaf's EPT memory type (bits 5:3).
    pub memory_type: u8,
    /// The leaf's "ignore PAT" bit (6).
    pub ignore_pat: bool,
}

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptFault {
    /// An EPT violation. `qualification` holds bits 0–2 (the access) and 3–5 (the permissions
    /// of the path, the AND of bits 0–2 of each entry read, 0 if an entry was not present);
    /// bits 7, 8 and 12 come from the hardware exit ([`super::reflected_qualification`]).
    Violation {
        /// Exit qualification bits 0–5.
        qualification: u64,
    },
    /// An EPT misconfiguration: a present entry with reserved bits set, write permission
    /// without read, execute-only without the capability, or a reserved memory type. A table
    /// that is not RAM reads as all ones, which is misconfigured.
    Misconfiguration,
}

/// The guest hypervisor's EPT and what its processor supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ept12 {
    /// vmcs12's EPT pointer (checked by [`crate::insn::eptp_valid`] at entry).
    pub eptp: u64,
    /// The guest hypervisor's physical-address width.
    pub phys_addr_bits: u8,
    /// The guest's IA32_VMX_EPT_VPID_CAP (execute-only, 2 MiB and 1 GiB pages).
    pub ept_cap: u64,
}

impl Ept12 {
    /// The EPT vmcs12 names, for a guest hypervisor with capabilities `caps`.
    pub fn new(eptp: u64, caps: &VmxCapabilities, phys_addr_bits: u8) -> Self {
        Ept12 {
            eptp,
            phys_addr_bits,
            ept_cap: caps.ept_vpid_cap,
        }
    }
}

/// IA32_VMX_EPT_VPID_CAP: execute-only translations (0), 2 MiB (16) and 1 GiB (17) pages.
const CAP_EXECUTE_ONLY: u64 = 1 << 0;
const CAP_2M: u64 = 1 << 16;
const CAP_1G: u64 = 1 << 17;
/// Entry bit 7: the entry maps a page (PDPTE, PDE).
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 51:12 of an entry (or EPTP): the physical address; bits 63:52 are ignored.
const ADDRESS_BITS: u64 = 0x000F_FFFF_FFFF_F000;
/// Reserved bits of non-leaf entries: 7:3 (PML4E, and PDPTE/PDE without bit 7).
const NON_LEAF_RESERVED: u64 = 0xF8;

/// Translates `l3_gpa` for `access` through EPT12. A `l3_gpa` beyond the physical-address width
/// cannot come from L3 and is reported as a violation with no permissions.
pub fn walk(
    mem: &impl GuestMemory,
    ept: &Ept12,
    l3_gpa: u64,
    access: Access,
) -> Result<Translation, EptFault> {
    let violation = |permissions: Permissions| EptFault::Violation {
        qualification: u64::from(access.bits()) | u64::from(permissions.bits()) << 3,
    };
    if l3_gpa >> ept.phys_addr_bits != 0 {
        return Err(violation(Permissions::empty()));
    }
    let mut table = ept.eptp & ADDRESS_BITS;
    let mut permissions = Permissions::all();
    for level in (1..=4u32).rev() {
        let index = (l3_gpa >> (12 + 9 * (level - 1))) & 0x1FF;
        let entry = read_entry(mem, table + index * 8);
        let rights = Permissions::from_bits_truncate(entry as u8);
        if rights.is_empty() {
            return Err(violation(Permissions::empty()));
        }
        let page_size = match level {
            3 if entry & PAGE_SIZE_BIT != 0 => Some(PageSize::Size1G),
            2 if entry & PAGE_SIZE_BIT != 0 => Some(PageSize::Size2M),
            1 => Some(PageSize::Size4K),
            _ => None,
        };
        if misconfigured(entry, rights, level, page_size, ept) {
            return Err(EptFault::Misconfiguration);
        }
        permissions &= rights;
        let Some(page_size) = page_size else {
            table = entry & ADDRESS_BITS;
            continue;
        };
        if !permissions.contains(Permissions::from_bits_truncate(access.bits())) {
            return Err(violation(permissions));
        }
        let offset = page_size.offset_mask();
        return Ok(Translation {
            l2_gpa: entry & ADDRESS_BITS & !offset | l3_gpa & offset,
            permissions,
            page_size,
            memory_type: ((entry >> 3) & 7) as u8,
            ignore_pat: entry & 1 << 6 != 0,
        });
    }
    unreachable!("level 1 always ends the walk")
}

/// One entry; memory that is not RAM reads as all ones.
fn read_entry(mem: &impl GuestMemory, gpa: u64) -> u64 {
    let mut bytes = [0; 8];
    mem.read_or_ones(gpa, &mut bytes);
    u64::from_le_bytes(bytes)
}

/// SDM 29.3.3.1: a present entry is misconfigured if it allows writes but not reads,
/// execute-only without support, sets reserved bits (address bits at or above the width; 7:3 of
/// a non-leaf entry; a large page the processor lacks; 29:12 of a 1 GiB or 20:12 of a 2 MiB
/// leaf), or, for a leaf, has memory type 2, 3 or 7.
fn misconfigured(
    entry: u64,
    rights: Permissions,
    level: u32,
    page_size: Option<PageSize>,
    ept: &Ept12,
) -> bool {
    let write_without_read =
        rights.contains(Permissions::WRITE) && !rights.contains(Permissions::READ);
    let execute_only = rights == Permissions::EXECUTE && ept.ept_cap & CAP_EXECUTE_ONLY == 0;
    let beyond_width = entry & ADDRESS_BITS & !((1u64 << ept.phys_addr_bits) - 1) != 0;
    let reserved = match page_size {
        None => entry & NON_LEAF_RESERVED != 0,
        Some(PageSize::Size1G) => ept.ept_cap & CAP_1G == 0 || entry & 0x3FFF_F000 != 0,
        Some(PageSize::Size2M) => ept.ept_cap & CAP_2M == 0 || entry & 0x1F_F000 != 0,
        Some(PageSize::Size4K) => false,
    };
    // A PML4E cannot map a page: bit 7 is among its reserved bits 7:3.
    let pml4_reserved = level == 4 && entry & NON_LEAF_RESERVED != 0;
    let memory_type_reserved = page_size.is_some() && matches!((entry >> 3) & 7, 2 | 3 | 7);
    write_without_read
        || execute_only
        || beyond_width
        || reserved
        || pml4_reserved
        || memory_type_reserved
}
