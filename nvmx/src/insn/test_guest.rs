//! Host-test double of a guest hypervisor vCPU: 64 KiB of RAM at guest-physical 0, flat
//! segments and identity paging for memory operands, sixteen registers.

use super::decode::{AddressSize, Gpr, MemOperand, Segment};
use super::guest::{GuestMemory, GuestMode, GuestOperands, NotRam};
use super::outcome::Fault;
use super::{NestedVmx, VmxCapabilities};
use crate::nested::test_support::Ram;
use shadow_vmcs::VMCS12_REVISION_ID;

pub const VMXON_REGION: u64 = 0x1000;
pub const VMCS_A: u64 = 0x2000;
pub const VMCS_B: u64 = 0x3000;
/// Where memory operands live: `[rbx]` with RBX = this.
pub const SCRATCH: u64 = 0x8000;
/// Page-aligned, within 39 address bits, not RAM.
pub const MMIO: u64 = 0x10_0000;
pub const PHYS_ADDR_BITS: u8 = 39;

pub const LONG_MODE: GuestMode = GuestMode {
    cr0: 0x8000_0031,
    cr4: 0x2020,
    rflags: 2,
    long_mode_active: true,
    cs_long: true,
    cpl: 0,
};
/// IA32_FEATURE_CONTROL locked with VMX outside SMX enabled.
pub const FEATURE_CONTROL: u64 = 0b101;

pub struct FakeGuest {
    pub regs: [u64; 16],
    /// The 64 KiB of RAM, shared with the nested tests' double.
    pub ram: Ram,
}

impl FakeGuest {
    /// RAM with vmcs12 revision ids at VMXON_REGION, VMCS_A and VMCS_B.
    pub fn new() -> Self {
        let mut guest = FakeGuest {
            regs: [0; 16],
            ram: Ram::new(),
        };
        for region in [VMXON_REGION, VMCS_A, VMCS_B] {
            guest.put_u32(region, VMCS12_REVISION_ID);
        }
        guest.regs[Gpr::Rbx as usize] = SCRATCH;
        guest
    }

    pub fn put_u32(&mut self, gpa: u64, value: u32) {
        self.ram.put_u32(gpa, value);
    }

    pub fn u32_at(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(
            self.ram.bytes[gpa as usize..gpa as usize + 4]
                .try_into()
                .unwrap(),
        )
    }

    /// Puts `value` at the scratch location `[rbx]` points at.
    pub fn put_operand(&mut self, value: u64) {
        self.ram.put_u64(SCRATCH, value);
    }

    pub fn operand(&self) -> u64 {
        u64::from_le_bytes(
            self.ram.bytes[SCRATCH as usize..SCRATCH as usize + 8]
                .try_into()
                .unwrap(),
        )
    }
}

/// `[rbx]`, DS, 64-bit addressing.
pub const AT_RBX: MemOperand = MemOperand {
    segment: Segment::Ds,
    base: Some(Gpr::Rbx),
    index: None,
    displacement: 0,
    address_size: AddressSize::Bits64,
};

/// The guest's memory is its [`Ram`]: guest-physical = linear (identity paging).
impl GuestMemory for FakeGuest {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.ram.is_ram(gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        self.ram.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        self.ram.write(gpa, data)
    }
}

impl GuestOperands for FakeGuest {
    fn register(&self, reg: Gpr) -> u64 {
        self.regs[reg as usize]
    }

    fn set_register(&mut self, reg: Gpr, value: u64) {
        self.regs[reg as usize] = value;
    }

    fn read_memory(&mut self, operand: &MemOperand, buf: &mut [u8]) -> Result<(), Fault> {
        let linear = operand.offset(|r| self.regs[r as usize]);
        GuestMemory::read(self, linear, buf).map_err(|_| Fault::Pf {
            linear,
            error_code: 0,
        })
    }

    fn write_memory(&mut self, operand: &MemOperand, data: &[u8]) -> Result<(), Fault> {
        let linear = operand.offset(|r| self.regs[r as usize]);
        GuestMemory::write(self, linear, data).map_err(|_| Fault::Pf {
            linear,
            error_code: 2,
        })
    }
}

/// Guest capabilities with VMWRITE-any-field, EPT with INVEPT (both types), VPID with all
/// INVVPID types, and VMCS shadowing; CR0.PE/NE/PG and CR4.VMXE fixed to 1.
pub fn guest_caps() -> VmxCapabilities {
    VmxCapabilities {
        basic: u64::from(VMCS12_REVISION_ID) | 0x1000 << 32 | 6 << 50,
        procbased: 0x8000_0000 << 32,
        procbased2: (1 << 1 | 1 << 5 | 1 << 14) << 32,
        ept_vpid_cap: 1 << 6 | 1 << 14 | 1 << 20 | 1 << 25 | 1 << 26 | 1 << 32 | 0xF << 40,
        misc: 1 << 29,
        cr0_fixed0: 0x8000_0021,
        cr0_fixed1: 0xFFFF_FFFF,
        cr4_fixed0: 0x2000,
        cr4_fixed1: 0x0037_27FF,
        ..VmxCapabilities::default()
    }
}

/// A vCPU after a successful VMXON at VMXON_REGION.
pub fn in_vmx_operation(guest: &mut FakeGuest) -> NestedVmx {
    let mut vmx = NestedVmx::new(guest_caps(), PHYS_ADDR_BITS);
    guest.put_operand(VMXON_REGION);
    assert_eq!(
        vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, guest, &AT_RBX),
        super::Outcome::Succeed
    );
    vmx
}

/// A vCPU in VMX operation with VMCS_A current.
pub fn with_current(guest: &mut FakeGuest) -> NestedVmx {
    let mut vmx = in_vmx_operation(guest);
    guest.put_operand(VMCS_A);
    assert_eq!(
        vmx.vmptrld(&LONG_MODE, guest, &AT_RBX),
        super::Outcome::Succeed
    );
    vmx
}
