//! The fixed configurations the harnesses start from: a plausible VT-x host, the capabilities a
//! guest hypervisor sees on it, a vmcs12 that passes every entry check (64-bit, and a real-mode
//! guest under "unrestricted guest"), l1-hv's needs for vmcs02 and l1-hv's own host state.
//! The values are those of nvmx's unit tests (nvmx/src/nested/test_support.rs), which are
//! `#[cfg(test)]` there; starting from valid configurations keeps fuzzed inputs near-valid, so
//! mutations reach the deep checks instead of failing the first one.

use nvmx::insn::VmxCapabilities;
use nvmx::nested::{L1Needs, L2Inherited};
use shadow_vmcs::{SoftVmcs, Vmcs};
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{guest, host};

/// Physical-address width of the test host (l1-hv's MAXPHYADDR).
pub const HOST_PHYS_ADDR_BITS: u8 = 46;
/// Physical-address width the guest hypervisor sees.
pub const GUEST_PHYS_ADDR_BITS: u8 = 39;
/// CR4.CET (bit 23): whether it is allowed in VMX operation tells whether #CP exists.
pub const CR4_CET: u64 = 1 << 23;

/// Guest-physical layout of [`entry_ram`]: MSR and I/O bitmaps, the EPT PML4 vmcs12 names, the
/// virtual-APIC page, a PAE PDPT with valid entries and a shadow-VMCS region for the link
/// pointer.
pub const IO_BITMAP_A: u64 = 0x1000;
/// I/O bitmap B.
pub const IO_BITMAP_B: u64 = 0x2000;
/// MSR bitmap.
pub const MSR_BITMAP: u64 = 0x3000;
/// EPT PML4 of [`good_vmcs12`]'s EPTP.
pub const EPT_PML4: u64 = 0x5000;
/// Virtual-APIC page.
pub const VIRTUAL_APIC: u64 = 0x6000;
/// A PDPT whose four entries are valid.
pub const PDPT: u64 = 0x7000;
/// A region with vmcs12's revision and the shadow-VMCS indicator.
pub const SHADOW_REGION: u64 = 0x8000;
/// Size of [`entry_ram`].
pub const ENTRY_RAM_SIZE: usize = 0x10000;

/// A VT-x host with TRUE controls, EPT (4-level, UC/WB, 2M/1G pages, INVEPT), VPID with every
/// INVVPID type, VMCS shadowing, HLT activity, VMWRITE-any-field and 4 CR3 targets.
pub fn host_caps() -> VmxCapabilities {
    VmxCapabilities {
        basic: 4 | 0x1000 << 32 | 6 << 50 | 1 << 54 | 1 << 55,
        pinbased: 0x0000_00FF_0000_0016,
        procbased: 0xFFF9_FFFE_0401_E172,
        exit: 0x03FF_FFFF_0003_6DFF,
        entry: 0x0003_FFFF_0000_11FF,
        true_pinbased: 0x0000_00FF_0000_0016,
        true_procbased: 0xFFF9_FFFE_0400_6172,
        true_exit: 0x03FF_FFFF_0003_6DFB,
        true_entry: 0x0003_FFFF_0000_11FB,
        misc: 1 << 29 | 4 << 16 | 1 << 6 | 1 << 5,
        cr0_fixed0: 0x8000_0021,
        cr0_fixed1: 0xFFFF_FFFF,
        cr4_fixed0: 0x2000,
        cr4_fixed1: 0x0037_27FF,
        vmcs_enum: 0x2E,
        procbased2: 0x00FF_FFFF_0000_0000,
        ept_vpid_cap: 0x0000_0F01_0673_4141,
    }
}

/// The host of [`host_caps`] with CET (CR4.CET allowed in VMX operation), or without it.
pub fn host_caps_with_cet(cet: bool) -> VmxCapabilities {
    let mut caps = host_caps();
    if cet {
        caps.cr4_fixed1 |= CR4_CET;
    }
    caps
}

/// The guest's TRUE must-be-1 bits of a control capability MSR.
fn must_be_one(capability: u64) -> u64 {
    capability & 0xFFFF_FFFF
}

/// A vmcs12 that passes every check under `host_caps().for_guest(_)`: a 64-bit guest and host,
/// EPT, VPID, I/O and MSR bitmaps.
pub fn good_vmcs12() -> SoftVmcs {
    let caps = host_caps().for_guest(true);
    let mut v = SoftVmcs::new();
    let pin = PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING;
    let primary = PrimaryControls::HLT_EXITING
        | PrimaryControls::USE_IO_BITMAPS
        | PrimaryControls::USE_MSR_BITMAPS
        | PrimaryControls::SECONDARY_CONTROLS;
    let secondary = SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID;
    let exit = ExitControls::HOST_ADDRESS_SPACE_SIZE
        | ExitControls::SAVE_IA32_EFER
        | ExitControls::LOAD_IA32_EFER
        | ExitControls::ACK_INTERRUPT_ON_EXIT;
    let entry = EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_IA32_EFER;
    let controls = [
        (
            control::PINBASED_EXEC_CONTROLS,
            must_be_one(caps.true_pinbased) | u64::from(pin.bits()),
        ),
        (
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            must_be_one(caps.true_procbased) | u64::from(primary.bits()),
        ),
        (
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            secondary.bits().into(),
        ),
        (
            control::VMEXIT_CONTROLS,
            must_be_one(caps.true_exit) | u64::from(exit.bits()),
        ),
        (
            control::VMENTRY_CONTROLS,
            must_be_one(caps.true_entry) | u64::from(entry.bits()),
        ),
        (control::EPTP_FULL, EPT_PML4 | 3 << 3 | 6),
        (control::VPID, 1),
        (control::IO_BITMAP_A_ADDR_FULL, IO_BITMAP_A),
        (control::IO_BITMAP_B_ADDR_FULL, IO_BITMAP_B),
        (control::MSR_BITMAPS_ADDR_FULL, MSR_BITMAP),
    ];
    let host_state = [
        (host::CR0, 0x8000_0031),
        (host::CR3, 0x9000),
        (host::CR4, 0x2020),
        (host::IA32_EFER_FULL, 0x501),
        (host::CS_SELECTOR, 0x08),
        (host::SS_SELECTOR, 0x10),
        (host::DS_SELECTOR, 0x10),
        (host::ES_SELECTOR, 0x10),
        (host::TR_SELECTOR, 0x18),
        (host::TR_BASE, 0xFFFF_8000_0000_2000),
        (host::GDTR_BASE, 0xFFFF_8000_0000_1000),
        (host::IDTR_BASE, 0xFFFF_8000_0000_3000),
        (host::FS_BASE, 0x7000_0000),
        (host::RIP, 0xFFFF_FFFF_8000_1000),
        (host::RSP, 0xFFFF_FFFF_8000_8000),
    ];
    let guest_state = [
        (guest::CR0, 0x8000_0031),
        (guest::CR3, 0xA000),
        (guest::CR4, 0x2020),
        (guest::IA32_EFER_FULL, 0x500),
        (guest::DR7, 0x400),
        (guest::RFLAGS, 0x2),
        (guest::RIP, 0x40_1000),
        (guest::RSP, 0x40_8000),
        (guest::CS_SELECTOR, 0x08),
        (guest::CS_LIMIT, 0xFFFF_FFFF),
        (guest::CS_ACCESS_RIGHTS, 0xA09B),
        (guest::TR_SELECTOR, 0x18),
        (guest::TR_LIMIT, 0x67),
        (guest::TR_ACCESS_RIGHTS, 0x8B),
        (guest::LDTR_ACCESS_RIGHTS, 0x1_0000),
        (guest::GDTR_LIMIT, 0x27),
        (guest::IDTR_LIMIT, 0xFFF),
        (guest::LINK_PTR_FULL, u64::MAX),
    ];
    for (field, value) in controls.into_iter().chain(host_state).chain(guest_state) {
        v.write(field, value);
    }
    for (selector, limit, rights) in [
        (guest::SS_SELECTOR, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS),
        (guest::DS_SELECTOR, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS),
        (guest::ES_SELECTOR, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS),
        (guest::FS_SELECTOR, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS),
        (guest::GS_SELECTOR, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS),
    ] {
        v.write(selector, 0x10);
        v.write(limit, 0xFFFF_FFFF);
        v.write(rights, 0xC093);
    }
    v
}

/// [`good_vmcs12`] turned into a real-mode guest under "unrestricted guest" (CR0.PE = PG = 0),
/// where no exception pushes an error code.
pub fn real_mode_vmcs12() -> SoftVmcs {
    let mut v = good_vmcs12();
    let entry =
        v.read(control::VMENTRY_CONTROLS) & !u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    v.write(control::VMENTRY_CONTROLS, entry);
    v.write(
        control::SECONDARY_PROCBASED_EXEC_CONTROLS,
        (SecondaryControls::ENABLE_EPT
            | SecondaryControls::ENABLE_VPID
            | SecondaryControls::UNRESTRICTED_GUEST)
            .bits()
            .into(),
    );
    v.write(guest::CR0, 0x20);
    v.write(guest::CR4, 0x2000);
    v.write(guest::IA32_EFER_FULL, 0);
    v.write(guest::RIP, 0x7C00);
    for (selector, limit, rights) in [
        (guest::CS_SELECTOR, guest::CS_LIMIT, guest::CS_ACCESS_RIGHTS),
        (guest::SS_SELECTOR, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS),
        (guest::DS_SELECTOR, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS),
    ] {
        v.write(selector, 0);
        v.write(limit, 0xFFFF);
        v.write(rights, 0x93);
    }
    v
}

/// The guest hypervisor's memory for the entry checks: the pages [`good_vmcs12`] refers to,
/// valid PAE PDPTEs at [`PDPT`] and a shadow-VMCS region at [`SHADOW_REGION`].
pub fn entry_ram() -> crate::memory::Ram {
    let mut ram = crate::memory::Ram::new(ENTRY_RAM_SIZE);
    for (i, pdpte) in [0xB001u64, 0xC001, 0, 0xD001].into_iter().enumerate() {
        ram.put(PDPT + 8 * i as u64, &pdpte.to_le_bytes());
    }
    let shadow = shadow_vmcs::VMCS12_REVISION_ID | 1 << 31;
    ram.put(SHADOW_REGION, &shadow.to_le_bytes());
    ram
}

/// l1-hv's needs for vmcs02: interrupts and NMIs for itself, HLT exiting, a merged MSR bitmap,
/// CR4.VMXE owned, EPT02 and VPID 7, with L2's inherited registers `l2`.
pub fn l1_needs(l2: L2Inherited) -> L1Needs {
    let caps = host_caps();
    L1Needs {
        pin: PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING,
        primary: PrimaryControls::HLT_EXITING,
        secondary: SecondaryControls::empty(),
        exit: ExitControls::from_bits_truncate(must_be_one(caps.true_exit) as u32)
            | ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER
            | ExitControls::ACK_INTERRUPT_ON_EXIT,
        entry: EntryControls::from_bits_truncate(must_be_one(caps.true_entry) as u32)
            | EntryControls::LOAD_IA32_EFER,
        exception_bitmap: 0,
        cr0_mask: 0,
        cr4_mask: 1 << 13,
        tsc_offset: 0,
        eptp02: 0x0AB_C000 | 3 << 3 | 6,
        vpid02: 7,
        msr_bitmap: Some(0x55_5000),
        io_bitmaps: None,
        virtual_apic_page: 0,
        apic_access_page: 0,
        preemption_timer_value: 0,
        l2,
    }
}

/// l1-hv's own host state, which the kernel writes into every vmcs01 and vmcs02: 64-bit.
pub fn write_l1_host_state(vmcs: &mut impl Vmcs) {
    let v = good_vmcs12();
    for field in [
        host::CR0,
        host::CR3,
        host::CR4,
        host::IA32_EFER_FULL,
        host::CS_SELECTOR,
        host::SS_SELECTOR,
        host::DS_SELECTOR,
        host::ES_SELECTOR,
        host::TR_SELECTOR,
        host::TR_BASE,
        host::GDTR_BASE,
        host::IDTR_BASE,
        host::RIP,
        host::RSP,
    ] {
        vmcs.write(field, v.read(field));
    }
}
