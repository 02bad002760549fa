//! Host-test doubles, the crate's one of each: a VMCS holding any field (vmcs01/vmcs02 have
//! fields vmcs12 lacks; the event, inject and route tests use it too) and 64 KiB of
//! guest-hypervisor memory at guest-physical 0 (also the RAM of insn's `FakeGuest`).

use crate::insn::{GuestMemory, NotRam};
use shadow_vmcs::Vmcs;

/// A VMCS with up to 256 fields; unset fields read 0.
#[derive(Clone, Debug)]
pub(crate) struct AnyVmcs {
    fields: [(u32, u64); 256],
    len: usize,
}

impl AnyVmcs {
    pub(crate) fn new() -> Self {
        AnyVmcs {
            fields: [(0, 0); 256],
            len: 0,
        }
    }

    /// Whether both hold the same value in every field either has written (order aside).
    pub(crate) fn same_as(&self, other: &AnyVmcs) -> bool {
        self.fields[..self.len]
            .iter()
            .chain(&other.fields[..other.len])
            .all(|&(f, _)| self.read(f) == other.read(f))
    }

    /// Whether `field` was ever written.
    pub(crate) fn written(&self, field: u32) -> bool {
        self.fields[..self.len].iter().any(|&(f, _)| f == field)
    }
}

impl Vmcs for AnyVmcs {
    fn read(&self, field: u32) -> u64 {
        self.fields[..self.len]
            .iter()
            .find(|&&(f, _)| f == field)
            .map_or(0, |&(_, v)| v)
    }

    fn write(&mut self, field: u32, value: u64) {
        match self.fields[..self.len]
            .iter_mut()
            .find(|(f, _)| *f == field)
        {
            Some(slot) => slot.1 = value,
            None => {
                self.fields[self.len] = (field, value);
                self.len += 1;
            }
        }
    }
}

pub(crate) const RAM_SIZE: usize = 0x10000;

/// Guest-hypervisor memory: RAM at [0, 64 KiB), nothing above.
pub(crate) struct Ram {
    pub(crate) bytes: [u8; RAM_SIZE],
}

impl Ram {
    pub(crate) fn new() -> Self {
        Ram {
            bytes: [0; RAM_SIZE],
        }
    }

    pub(crate) fn put_u64(&mut self, gpa: u64, value: u64) {
        self.bytes[gpa as usize..gpa as usize + 8].copy_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn put_u32(&mut self, gpa: u64, value: u32) {
        self.bytes[gpa as usize..gpa as usize + 4].copy_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn set_bit(&mut self, page: u64, bit: u64) {
        self.bytes[(page + bit / 8) as usize] |= 1 << (bit % 8);
    }
}

impl GuestMemory for Ram {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= RAM_SIZE as u64)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        if !self.is_ram(gpa, buf.len() as u64) {
            return Err(NotRam);
        }
        buf.copy_from_slice(&self.bytes[gpa as usize..gpa as usize + buf.len()]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        if !self.is_ram(gpa, data.len() as u64) {
            return Err(NotRam);
        }
        self.bytes[gpa as usize..gpa as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
}

use crate::insn::VmxCapabilities;
use shadow_vmcs::SoftVmcs;
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{guest, host};

pub(crate) const PHYS_ADDR_BITS: u8 = 39;
pub(crate) const IO_BITMAP_A: u64 = 0x1000;
pub(crate) const IO_BITMAP_B: u64 = 0x2000;
pub(crate) const MSR_BITMAP: u64 = 0x3000;
pub(crate) const VMCS_REGION: u64 = 0x4000;
pub(crate) const EPT_PML4: u64 = 0x5000;
pub(crate) const VIRTUAL_APIC: u64 = 0x6000;
pub(crate) const PDPT: u64 = 0x7000;

/// A plausible VT-x host: TRUE controls, EPT, VPID, VMCS shadowing, MISC with HLT and
/// VMWRITE-any-field, 4 CR3 targets.
pub(crate) fn host_caps() -> VmxCapabilities {
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

/// What the guest hypervisor of the tests sees.
pub(crate) fn guest_caps() -> VmxCapabilities {
    host_caps().for_guest(true)
}

/// The guest's TRUE must-be-1 bits of a control word.
fn must_be_one(capability: u64) -> u64 {
    capability & 0xFFFF_FFFF
}

/// A vmcs12 that passes every check: a 64-bit guest and host, EPT, VPID, I/O and MSR bitmaps.
pub(crate) fn good_vmcs12() -> SoftVmcs {
    let caps = guest_caps();
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
    v.write(
        control::PINBASED_EXEC_CONTROLS,
        must_be_one(caps.true_pinbased) | u64::from(pin.bits()),
    );
    v.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        must_be_one(caps.true_procbased) | u64::from(primary.bits()),
    );
    v.write(
        control::SECONDARY_PROCBASED_EXEC_CONTROLS,
        secondary.bits().into(),
    );
    v.write(
        control::VMEXIT_CONTROLS,
        must_be_one(caps.true_exit) | u64::from(exit.bits()),
    );
    v.write(
        control::VMENTRY_CONTROLS,
        must_be_one(caps.true_entry) | u64::from(entry.bits()),
    );
    v.write(control::EPTP_FULL, EPT_PML4 | 3 << 3 | 6);
    v.write(control::VPID, 1);
    v.write(control::IO_BITMAP_A_ADDR_FULL, IO_BITMAP_A);
    v.write(control::IO_BITMAP_B_ADDR_FULL, IO_BITMAP_B);
    v.write(control::MSR_BITMAPS_ADDR_FULL, MSR_BITMAP);

    v.write(host::CR0, 0x8000_0031);
    v.write(host::CR3, 0x9000);
    v.write(host::CR4, 0x2020);
    v.write(host::IA32_EFER_FULL, 0x501);
    v.write(host::CS_SELECTOR, 0x08);
    for field in [host::SS_SELECTOR, host::DS_SELECTOR, host::ES_SELECTOR] {
        v.write(field, 0x10);
    }
    v.write(host::TR_SELECTOR, 0x18);
    v.write(host::TR_BASE, 0xFFFF_8000_0000_2000);
    v.write(host::GDTR_BASE, 0xFFFF_8000_0000_1000);
    v.write(host::IDTR_BASE, 0xFFFF_8000_0000_3000);
    v.write(host::FS_BASE, 0x7000_0000);
    v.write(host::RIP, 0xFFFF_FFFF_8000_1000);
    v.write(host::RSP, 0xFFFF_FFFF_8000_8000);

    v.write(guest::CR0, 0x8000_0031);
    v.write(guest::CR3, 0xA000);
    v.write(guest::CR4, 0x2020);
    v.write(guest::IA32_EFER_FULL, 0x500);
    v.write(guest::DR7, 0x400);
    v.write(guest::RFLAGS, 0x2);
    v.write(guest::RIP, 0x40_1000);
    v.write(guest::RSP, 0x40_8000);
    v.write(guest::CS_SELECTOR, 0x08);
    v.write(guest::CS_LIMIT, 0xFFFF_FFFF);
    v.write(guest::CS_ACCESS_RIGHTS, 0xA09B);
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
    v.write(guest::TR_SELECTOR, 0x18);
    v.write(guest::TR_LIMIT, 0x67);
    v.write(guest::TR_ACCESS_RIGHTS, 0x8B);
    v.write(guest::LDTR_ACCESS_RIGHTS, 0x1_0000);
    v.write(guest::GDTR_LIMIT, 0x27);
    v.write(guest::IDTR_LIMIT, 0xFFF);
    v.write(guest::LINK_PTR_FULL, u64::MAX);
    v
}

/// l1-hv's needs in the tests: interrupts and NMIs for itself, HLT exiting, a merged MSR bitmap,
/// CR4.VMXE owned, EPT02 and VPID 7.
pub(crate) fn l1_needs() -> super::L1Needs {
    let caps = host_caps();
    super::L1Needs {
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
        l2: super::L2Inherited {
            efer: 0xD01,
            pat: 0x0007_0406_0007_0406,
            dr7: 0x401,
            debugctl: 0,
        },
    }
}

/// vmcs02's host state: the kernel writes l1-hv's; the tests reuse vmcs12's 64-bit host values.
pub(crate) fn write_l1_host_state(vmcs02: &mut AnyVmcs) {
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
        vmcs02.write(field, v.read(field));
    }
}

/// The MSRs outside the VMCSs: a processor whose MSRs are those of the MSR bitmap's two ranges
/// (all others #GP), and l1-hv's emulation for L2: its bitmap makes IA32_APIC_BASE (1BH) and
/// the MSRs outside the ranges exit; IA32_APIC_BASE reads and writes `emulated`, the rest #GP.
pub(crate) struct FakeMsrs {
    low: [u64; 0x2000],
    high: [u64; 0x2000],
    pub(crate) emulated: u64,
    bitmap: [u8; 4096],
}

impl FakeMsrs {
    pub(crate) fn new() -> Self {
        let mut bitmap = [0u8; 4096];
        for write in [false, true] {
            let bit = super::msr_bitmap_bit(x86::msr::IA32_APIC_BASE, write).unwrap();
            bitmap[bit as usize / 8] |= 1 << (bit % 8);
        }
        FakeMsrs {
            low: [0; 0x2000],
            high: [0; 0x2000],
            emulated: 0,
            bitmap,
        }
    }

    /// The processor's MSR `msr`, if it has one.
    pub(crate) fn hardware(&mut self, msr: u32) -> Option<&mut u64> {
        match msr {
            0..=0x1FFF => Some(&mut self.low[msr as usize]),
            0xC000_0000..=0xC000_1FFF => Some(&mut self.high[(msr - 0xC000_0000) as usize]),
            _ => None,
        }
    }
}

impl super::MsrBus for FakeMsrs {
    fn l2_bitmap(&self) -> &[u8; 4096] {
        &self.bitmap
    }

    fn read_hardware(&mut self, msr: u32) -> Result<u64, super::MsrFault> {
        self.hardware(msr).map(|v| *v).ok_or(super::MsrFault)
    }

    fn write_hardware(&mut self, msr: u32, value: u64) -> Result<(), super::MsrFault> {
        *self.hardware(msr).ok_or(super::MsrFault)? = value;
        Ok(())
    }

    fn read_emulated(&mut self, msr: u32, _: &mut impl Vmcs) -> Result<u64, super::MsrFault> {
        (msr == x86::msr::IA32_APIC_BASE)
            .then_some(self.emulated)
            .ok_or(super::MsrFault)
    }

    fn write_emulated(
        &mut self,
        msr: u32,
        value: u64,
        _: &mut impl Vmcs,
    ) -> Result<(), super::MsrFault> {
        if msr != x86::msr::IA32_APIC_BASE {
            return Err(super::MsrFault);
        }
        self.emulated = value;
        Ok(())
    }
}
