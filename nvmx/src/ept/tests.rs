use super::*;
use crate::nested::test_support::Ram;

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
const RWX: u64 = 7;
const WB: u64 = 6 << 3;
/// 4-level walks, UC/WB, 2 MiB and 1 GiB pages (no execute-only).
const CAPS: u64 = 1 << 6 | 1 << 8 | 1 << 14 | 1 << 16 | 1 << 17;
const BITS: u8 = 39;
/// PML4 index 0, PDPT index 1, PD index 2, PT index 3, offset 0x678.
const GPA: u64 = 1 << 30 | 2 << 21 | 3 << 12 | 0x678;

const READ: Access = Access {
    read: true,
    write: false,
    execute: false,
};
const WRITE: Access = Access {
    read: false,
    write: true,
    execute: false,
};
const FETCH: Access = Access {
    read: false,
    write: false,
    execute: true,
};

fn ept(cap: u64) -> Ept12 {
    Ept12 {
        eptp: PML4 | 3 << 3 | 6,
        phys_addr_bits: BITS,
        ept_cap: cap,
    }
}

/// PML4E → PDPT → PD → PT, all RWX, the PTE for GPA mapping 0xABCDE000 write-back.
fn tables() -> Ram {
    let mut ram = Ram::new();
    ram.put_u64(PML4, PDPT | RWX);
    ram.put_u64(PDPT + 8, PD | RWX);
    ram.put_u64(PD + 2 * 8, PT | RWX);
    ram.put_u64(PT + 3 * 8, 0xABCD_E000 | WB | RWX);
    ram
}

fn violation(qualification: u64) -> Result<Translation, EptFault> {
    Err(EptFault::Violation { qualification })
}

#[test]
fn four_level_walk_to_a_4k_page() {
    let t = walk(&tables(), &ept(CAPS), GPA, READ).unwrap();
    assert_eq!(t.l2_gpa, 0xABCD_E678);
    assert_eq!(t.permissions, Permissions::all());
    assert_eq!(t.page_size, PageSize::Size4K);
    assert_eq!(t.memory_type, 6);
    assert!(!t.ignore_pat);
}

#[test]
fn permissions_are_anded_along_the_path() {
    let mut ram = tables();
    ram.put_u64(PML4, PDPT | 0b101); // R, X
    ram.put_u64(PT + 3 * 8, 0xABCD_E000 | WB | 0b011); // R, W
    let t = walk(&ram, &ept(CAPS), GPA, READ).unwrap();
    assert_eq!(t.permissions, Permissions::READ);
    // Write denied: access bit 1, readable (bit 3) only.
    assert_eq!(walk(&ram, &ept(CAPS), GPA, WRITE), violation(0b000_1010));
    assert_eq!(walk(&ram, &ept(CAPS), GPA, FETCH), violation(0b000_1100));
}

#[test]
fn not_present_at_each_level_is_a_violation_without_permissions() {
    for entry in [PML4, PDPT + 8, PD + 2 * 8, PT + 3 * 8] {
        let mut ram = tables();
        ram.put_u64(entry, 0xABCD_E000);
        assert_eq!(
            walk(&ram, &ept(CAPS), GPA, WRITE),
            violation(0b010),
            "{entry:#x}"
        );
        assert_eq!(
            walk(&ram, &ept(CAPS), GPA, READ),
            violation(0b001),
            "{entry:#x}"
        );
    }
}

#[test]
fn large_pages_map_2m_and_1g() {
    let mut ram = tables();
    ram.put_u64(PD + 2 * 8, 0x4020_0000 | 1 << 7 | 1 << 6 | WB | RWX);
    let t = walk(&ram, &ept(CAPS), GPA, WRITE).unwrap();
    assert_eq!(
        (t.l2_gpa, t.page_size, t.ignore_pat),
        (0x4020_0000 | 3 << 12 | 0x678, PageSize::Size2M, true)
    );
    ram.put_u64(PDPT + 8, 0x8000_0000 | 1 << 7 | WB | RWX);
    let t = walk(&ram, &ept(CAPS), GPA, FETCH).unwrap();
    assert_eq!(
        (t.l2_gpa, t.page_size),
        (0x8000_0000 | 2 << 21 | 3 << 12 | 0x678, PageSize::Size1G)
    );
}

#[test]
fn misaligned_or_unsupported_large_pages_are_misconfigured() {
    let mut ram = tables();
    ram.put_u64(PD + 2 * 8, 0x4020_1000 | 1 << 7 | WB | RWX);
    assert_eq!(
        walk(&ram, &ept(CAPS), GPA, READ),
        Err(EptFault::Misconfiguration),
        "2 MiB, bit 12"
    );
    let mut ram = tables();
    ram.put_u64(PDPT + 8, 0x8020_0000 | 1 << 7 | WB | RWX);
    assert_eq!(
        walk(&ram, &ept(CAPS), GPA, READ),
        Err(EptFault::Misconfiguration),
        "1 GiB, bit 21"
    );
    ram.put_u64(PDPT + 8, 0x8000_0000 | 1 << 7 | WB | RWX);
    assert_eq!(
        walk(&ram, &ept(CAPS & !(1 << 17)), GPA, READ),
        Err(EptFault::Misconfiguration),
        "no 1 GiB pages"
    );
}

#[test]
fn write_without_read_and_execute_only_are_misconfigured() {
    let mut ram = tables();
    ram.put_u64(PDPT + 8, PD | 0b010);
    assert_eq!(
        walk(&ram, &ept(CAPS), GPA, READ),
        Err(EptFault::Misconfiguration)
    );
    ram.put_u64(PDPT + 8, PD | 0b110);
    assert_eq!(
        walk(&ram, &ept(CAPS), GPA, FETCH),
        Err(EptFault::Misconfiguration)
    );
    ram.put_u64(PDPT + 8, PD | 0b100);
    assert_eq!(
        walk(&ram, &ept(CAPS), GPA, FETCH),
        Err(EptFault::Misconfiguration)
    );
    let t = walk(&ram, &ept(CAPS | 1), GPA, FETCH).unwrap();
    assert_eq!(
        t.permissions,
        Permissions::EXECUTE,
        "execute-only when supported"
    );
}

#[test]
fn reserved_bits_memory_types_and_address_width_are_misconfigurations() {
    for (entry, value) in [
        (PML4, PDPT | 1 << 7 | RWX),
        (PD + 2 * 8, PT | 1 << 3 | RWX),
        (PT + 3 * 8, 0xABCD_E000 | 2 << 3 | RWX),
        (PT + 3 * 8, 0xABCD_E000 | 7 << 3 | RWX),
        (PT + 3 * 8, 1 << BITS | WB | RWX),
        (PD + 2 * 8, 1 << 45 | PT | RWX),
    ] {
        let mut ram = tables();
        ram.put_u64(entry, value);
        assert_eq!(
            walk(&ram, &ept(CAPS), GPA, READ),
            Err(EptFault::Misconfiguration),
            "{entry:#x}: {value:#x}"
        );
    }
    // Bits 62:52 are ignored.
    let mut ram = tables();
    ram.put_u64(PT + 3 * 8, 1 << 60 | 0xABCD_E000 | WB | RWX);
    assert!(walk(&ram, &ept(CAPS), GPA, READ).is_ok());
}

#[test]
fn tables_outside_ram_read_as_ones() {
    let outside = Ept12 {
        eptp: 0x10_0000 | 3 << 3 | 6,
        ..ept(CAPS)
    };
    assert_eq!(
        walk(&tables(), &outside, GPA, READ),
        Err(EptFault::Misconfiguration)
    );
}

#[test]
fn addresses_beyond_the_width_are_not_mapped() {
    assert_eq!(
        walk(&tables(), &ept(CAPS), 1 << BITS, READ),
        violation(0b001)
    );
}

#[test]
fn composition_ands_permissions_and_keeps_uncached_host_memory_uncached() {
    let t = Translation {
        l2_gpa: 0xABCD_E678,
        permissions: Permissions::READ | Permissions::WRITE,
        page_size: PageSize::Size2M,
        memory_type: 4,
        ignore_pat: true,
    };
    let ram_page = |looked_up: u64| {
        assert_eq!(looked_up, 0xABCD_E000);
        Some(HostMapping {
            host_phys: 0x7_7700_0000,
            permissions: Permissions::all(),
            memory_type: 6,
            ignore_pat: false,
        })
    };
    assert_eq!(
        compose(&t, ram_page),
        Some(0x7_7700_0000 | 4 << 3 | 1 << 6 | 0b011)
    );
    let mmio = |_| {
        Some(HostMapping {
            host_phys: 0xFEE0_0000,
            permissions: Permissions::READ,
            memory_type: 0,
            ignore_pat: true,
        })
    };
    assert_eq!(
        compose(&t, mmio),
        Some(leaf_entry(0xFEE0_0000, Permissions::READ, 0, true))
    );
    assert_eq!(compose(&t, |_| None), None);
}

#[test]
fn reflected_qualification_takes_linear_address_bits_from_hardware() {
    assert_eq!(
        reflected_qualification(0b1010, 0b1_1000_0111 | 1 << 12 | 1 << 9),
        0b1_1000_1010 | 1 << 12
    );
}
