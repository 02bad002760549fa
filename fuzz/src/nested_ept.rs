//! Target `nested_ept`: arbitrary EPT12 tables in eight pages of guest-hypervisor memory
//! (entries as any u64: pointers to their own table, out of RAM or beyond the width, reserved
//! bits, large pages), then walks of arbitrary L3-physical addresses and accesses, and the
//! EPT02 leaf each successful walk composes with an arbitrary EPT01 mapping.
//!
//! Properties (SDM 29.3.2 translation, 29.3.3 violations and misconfigurations):
//! - no panic; the walk terminates (it reads at most four entries: a self-referencing table
//!   is read once per level);
//! - success: the permissions are a subset of every entry's on the path and include the access;
//!   the path ends in a leaf of the size reported, that page size is one the capabilities
//!   offer, no entry on the path is misconfigured, and the address is the leaf's frame plus the
//!   offset within the page;
//! - misconfiguration: some present entry on the path, before any non-present one, has reserved
//!   bits set, write without read, unsupported execute-only or a reserved memory type;
//! - violation: no entry on the path is misconfigured; the qualification has the access in bits
//!   2:0 and in bits 5:3 the AND of the path's permissions (0 if an entry was not present), and
//!   that AND lacks part of the access;
//! - [`compose`]: the EPT02 leaf allows only what both EPT12 and EPT01 allow, points into the
//!   host page it was given, sets no bit outside address, permissions, memory type and "ignore
//!   PAT", keeps a non-write-back EPT01 memory type, and asks EPT01 about the page of the walk's
//!   result; [`reflected_qualification`] keeps the walk's bits 5:0 and only bits 7, 8, 12 of the
//!   hardware's.

use crate::memory::Ram;
use arbitrary::Arbitrary;
use nvmx::ept::{
    compose, reflected_qualification, walk, Access, Ept12, EptFault, HostMapping, PageSize,
    Permissions, Translation,
};
use nvmx::insn::GuestMemory;

/// Eight pages of tables at guest-physical 0; nothing above is RAM.
pub const TABLE_PAGES: u64 = 8;
/// Bits 51:12 of an entry.
const ADDRESS_BITS: u64 = 0x000F_FFFF_FFFF_F000;
/// IA32_VMX_EPT_VPID_CAP bits the walk consults: execute-only (0), 2 MiB (16), 1 GiB (17).
const CAP_EXECUTE_ONLY: u64 = 1 << 0;
const CAP_2M: u64 = 1 << 16;
const CAP_1G: u64 = 1 << 17;
/// Valid EPT01 permission sets (write implies read) and memory types (SDM 29.3.7).
const HOST_RIGHTS: [u8; 5] = [1, 3, 4, 5, 7];
const MEMORY_TYPES: [u8; 5] = [0, 1, 4, 5, 6];

/// The whole input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Physical-address width: 32 + this % 21.
    pub phys_addr_bits: u8,
    /// Bit 0 execute-only, bit 1 2 MiB pages, bit 2 1 GiB pages.
    pub caps: u8,
    /// Which table page the EPTP names (% 8), with WB and a 4-level walk.
    pub eptp_page: u8,
    /// Table edits and walks, in order.
    pub ops: Vec<EptOp>,
}

/// One table edit or one walk.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptOp {
    /// Sets entry `index % 512` of table page `page % 8`.
    Entry {
        /// Table page.
        page: u8,
        /// Entry index.
        index: u16,
        /// The new entry.
        value: EntryValue,
    },
    /// Walks `l3` for `access` (bits 2:0 = R, W, X) and composes a successful result.
    Walk {
        /// L3-physical address.
        l3: L3Address,
        /// The access.
        access: u8,
        /// EPT01's mapping of the resulting page.
        host: HostInput,
    },
}

/// An EPT entry: built from parts so most are well-formed, or raw.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryValue {
    /// A non-leaf entry pointing at table page `page % 8` with `rights & 7`.
    Table {
        /// Table page.
        page: u8,
        /// Bits 2:0.
        rights: u8,
    },
    /// A leaf: frame `address`, `rights & 7`, memory type `memory_type & 7`, "ignore PAT", and
    /// bit 7 (a large page at levels 2 and 3).
    Leaf {
        /// Frame (bits 51:12 used).
        address: u64,
        /// Bits 2:0.
        rights: u8,
        /// Bits 5:3.
        memory_type: u8,
        /// Bit 6.
        ignore_pat: bool,
        /// Bit 7.
        large: bool,
    },
    /// Any 64-bit value.
    Raw(u64),
}

impl EntryValue {
    fn bits(self) -> u64 {
        match self {
            EntryValue::Table { page, rights } => {
                u64::from(page % TABLE_PAGES as u8) << 12 | u64::from(rights & 7)
            }
            EntryValue::Leaf {
                address,
                rights,
                memory_type,
                ignore_pat,
                large,
            } => {
                address & ADDRESS_BITS
                    | u64::from(rights & 7)
                    | u64::from(memory_type & 7) << 3
                    | u64::from(ignore_pat) << 6
                    | u64::from(large) << 7
            }
            EntryValue::Raw(raw) => raw,
        }
    }
}

/// An L3-physical address: by table indices (which the edits can reach), or raw.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Address {
    /// PML4, PDPT, PD, PT indices (% 512 each) and the page offset (% 4096).
    Indices([u16; 5]),
    /// Any 64-bit value.
    Raw(u64),
}

impl L3Address {
    fn bits(self) -> u64 {
        match self {
            L3Address::Indices([pml4, pdpt, pd, pt, offset]) => {
                let index = |i: u16| u64::from(i % 512);
                index(pml4) << 39
                    | index(pdpt) << 30
                    | index(pd) << 21
                    | index(pt) << 12
                    | u64::from(offset % 4096)
            }
            L3Address::Raw(raw) => raw,
        }
    }
}

/// EPT01's mapping of the page the walk produced; `mapped` false: EPT01 does not map it.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostInput {
    /// Host-physical address (bits 51:0 used: a host address is below 2^52).
    pub host_phys: u64,
    /// Index into the valid permission sets.
    pub rights: u8,
    /// Index into the valid memory types.
    pub memory_type: u8,
    /// "Ignore PAT".
    pub ignore_pat: bool,
    /// Whether EPT01 maps the page.
    pub mapped: bool,
    /// vmcs02's exit qualification for [`reflected_qualification`].
    pub hardware_qualification: u64,
}

impl HostInput {
    fn mapping(&self) -> Option<HostMapping> {
        self.mapped.then(|| HostMapping {
            host_phys: self.host_phys & ((1 << 52) - 1),
            permissions: Permissions::from_bits_truncate(
                HOST_RIGHTS[usize::from(self.rights) % HOST_RIGHTS.len()],
            ),
            memory_type: MEMORY_TYPES[usize::from(self.memory_type) % MEMORY_TYPES.len()],
            ignore_pat: self.ignore_pat,
        })
    }
}

/// Where entry `index % 512` of table page `page % 8` lives.
fn entry_address(page: u8, index: u16) -> u64 {
    (u64::from(page % TABLE_PAGES as u8) << 12) | (u64::from(index % 512) * 8)
}

fn ept12(input: &Input) -> Ept12 {
    let cap = |bit: u8, value: u64| if input.caps & 1 << bit != 0 { value } else { 0 };
    Ept12 {
        eptp: u64::from(input.eptp_page % TABLE_PAGES as u8) << 12 | 3 << 3 | 6,
        phys_addr_bits: 32 + input.phys_addr_bits % 21,
        ept_cap: cap(0, CAP_EXECUTE_ONLY) | cap(1, CAP_2M) | cap(2, CAP_1G),
    }
}

fn access(bits: u8) -> Access {
    Access {
        read: bits & 1 != 0,
        write: bits & 2 != 0,
        execute: bits & 4 != 0,
    }
}

/// Runs the edits and walks, checking every property.
pub fn check(input: &Input) {
    let ept = ept12(input);
    let mut ram = Ram::new((TABLE_PAGES * 4096) as usize);
    for op in &input.ops {
        match *op {
            EptOp::Entry { page, index, value } => {
                ram.put(entry_address(page, index), &value.bits().to_le_bytes());
            }
            EptOp::Walk {
                l3,
                access: bits,
                host,
            } => {
                let gpa = l3.bits();
                let result = walk(&ram, &ept, gpa, access(bits));
                check_walk(&ram, &ept, gpa, u64::from(bits & 7), &result);
                if let Ok(translation) = result {
                    check_compose(&translation, &host);
                }
                if let Err(EptFault::Violation { qualification }) = result {
                    let reflected =
                        reflected_qualification(qualification, host.hardware_qualification);
                    assert_eq!(reflected & 0x3F, qualification & 0x3F, "walk bits lost");
                    let hardware = host.hardware_qualification & (1 << 7 | 1 << 8 | 1 << 12);
                    assert_eq!(reflected & !0x3F, hardware, "qualification {reflected:#x}");
                }
            }
        }
    }
}

/// The outcome of a walk, for the `seeds` classes.
pub fn classify(input: &Input) -> String {
    let ept = ept12(input);
    let mut ram = Ram::new((TABLE_PAGES * 4096) as usize);
    let mut class = String::from("none");
    for op in &input.ops {
        match *op {
            EptOp::Entry { page, index, value } => {
                ram.put(entry_address(page, index), &value.bits().to_le_bytes());
            }
            EptOp::Walk {
                l3, access: bits, ..
            } => {
                class = match walk(&ram, &ept, l3.bits(), access(bits)) {
                    Ok(t) => format!("ok-{:?}-{}", t.page_size, t.permissions.bits()),
                    Err(EptFault::Misconfiguration) => "misconfig".into(),
                    Err(EptFault::Violation { qualification }) => {
                        format!("violation-{qualification:#x}")
                    }
                };
            }
        }
    }
    class
}

/// One entry on the walk's path, as this harness reads the tables.
struct Step {
    entry: u64,
    level: u32,
    leaf: bool,
}

/// The path a walk for `gpa` takes, stopping after the first non-present entry or the leaf.
fn path(ram: &Ram, ept: &Ept12, gpa: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut table = ept.eptp & ADDRESS_BITS;
    for level in (1..=4u32).rev() {
        let at = table + ((gpa >> (3 + 9 * level)) & 0x1FF) * 8;
        let mut bytes = [0u8; 8];
        // Tables outside RAM read as all ones (l1-hv's choice, see nvmx::ept::EptFault).
        let entry = match ram.read(at, &mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => u64::MAX,
        };
        let leaf = level == 1 || (matches!(level, 2 | 3) && entry & 1 << 7 != 0);
        steps.push(Step { entry, level, leaf });
        if entry & 7 == 0 || leaf {
            break;
        }
        table = entry & ADDRESS_BITS;
    }
    steps
}

/// SDM 29.3.3.1: whether a present entry causes an EPT misconfiguration.
fn misconfigured(step: &Step, ept: &Ept12) -> bool {
    let rights = step.entry & 7;
    let frame_beyond_width = (step.entry & ADDRESS_BITS) >> ept.phys_addr_bits != 0;
    let reserved = match (step.level, step.leaf) {
        // Bits 7:3 of a PML4E, of a PDPTE or PDE that references a table.
        (_, false) => step.entry & 0xF8 != 0,
        (3, true) => ept.ept_cap & CAP_1G == 0 || step.entry & 0x3FFF_F000 != 0,
        (2, true) => ept.ept_cap & CAP_2M == 0 || step.entry & 0x001F_F000 != 0,
        _ => false,
    };
    let memory_type = (step.entry >> 3) & 7;
    (rights & 2 != 0 && rights & 1 == 0)
        || (rights == 4 && ept.ept_cap & CAP_EXECUTE_ONLY == 0)
        || frame_beyond_width
        || reserved
        || (step.leaf && matches!(memory_type, 2 | 3 | 7))
}

fn check_walk(
    ram: &Ram,
    ept: &Ept12,
    gpa: u64,
    access: u64,
    result: &Result<Translation, EptFault>,
) {
    let beyond_width = gpa >> ept.phys_addr_bits != 0;
    let steps = path(ram, ept, gpa);
    let present: Vec<&Step> = steps.iter().take_while(|s| s.entry & 7 != 0).collect();
    let any_misconfigured = !beyond_width && present.iter().any(|s| misconfigured(s, ept));
    let and = present.iter().fold(7, |acc, s| acc & s.entry & 7);
    match *result {
        Ok(t) => {
            assert!(!beyond_width, "translated {gpa:#x} beyond the width");
            assert!(
                !any_misconfigured,
                "translated through a misconfigured entry"
            );
            let leaf = steps.last().expect("a walk reads an entry");
            assert!(
                leaf.leaf && present.len() == steps.len(),
                "translated without a leaf"
            );
            for s in &steps {
                let rights = Permissions::from_bits_truncate(s.entry as u8);
                assert!(
                    rights.contains(t.permissions),
                    "more than level {} allows",
                    s.level
                );
            }
            assert_eq!(
                u64::from(t.permissions.bits()) & access,
                access,
                "access not allowed"
            );
            let (size, offset_mask, offered) = match leaf.level {
                1 => (PageSize::Size4K, 0xFFF, true),
                2 => (PageSize::Size2M, 0x1F_FFFF, ept.ept_cap & CAP_2M != 0),
                _ => (PageSize::Size1G, 0x3FFF_FFFF, ept.ept_cap & CAP_1G != 0),
            };
            assert_eq!(t.page_size, size, "page size");
            assert!(offered, "a {size:?} page the capabilities do not offer");
            let frame = leaf.entry & ADDRESS_BITS & !offset_mask;
            assert_eq!(t.l2_gpa, frame | gpa & offset_mask, "translated address");
            assert_eq!(
                u64::from(t.memory_type),
                (leaf.entry >> 3) & 7,
                "memory type"
            );
        }
        Err(EptFault::Misconfiguration) => {
            assert!(
                any_misconfigured,
                "misconfiguration without a misconfigured entry"
            );
        }
        Err(EptFault::Violation { qualification }) => {
            assert!(
                !any_misconfigured,
                "violation where an entry is misconfigured"
            );
            let complete = present.len() == steps.len();
            let expected_rights = if beyond_width || !complete { 0 } else { and };
            assert_eq!(
                qualification,
                access | expected_rights << 3,
                "qualification"
            );
            assert!(
                beyond_width || !complete || access & !and != 0,
                "violation although the path allows the access"
            );
        }
    }
}

fn check_compose(t: &Translation, host: &HostInput) {
    let mapping = host.mapping();
    let mut asked = None;
    let entry = compose(t, |page| {
        asked = Some(page);
        mapping
    });
    assert_eq!(
        asked,
        Some(t.l2_gpa & !0xFFF),
        "EPT01 asked about another page"
    );
    let (Some(entry), Some(mapping)) = (entry, mapping) else {
        assert!(
            entry.is_none() && mapping.is_none(),
            "a leaf for a page EPT01 does not map"
        );
        return;
    };
    let rights = Permissions::from_bits_truncate(entry as u8);
    assert!(
        t.permissions.contains(rights),
        "EPT02 allows what EPT12 does not"
    );
    assert!(
        mapping.permissions.contains(rights),
        "EPT02 allows what EPT01 does not"
    );
    assert_eq!(
        entry & ADDRESS_BITS,
        mapping.host_phys & ADDRESS_BITS,
        "EPT02 frame"
    );
    assert_eq!(
        entry & !(ADDRESS_BITS | 0x7F),
        0,
        "EPT02 leaf {entry:#x} sets other bits"
    );
    let memory_type = ((entry >> 3) & 7) as u8;
    if mapping.memory_type != 6 {
        assert_eq!(
            memory_type, mapping.memory_type,
            "EPT02 overrides EPT01's memory type"
        );
    }
    assert!(
        MEMORY_TYPES.contains(&memory_type),
        "reserved memory type {memory_type}"
    );
}
