//! What VMX-instruction emulation needs from the guest hypervisor's vCPU: its mode, its
//! operands and its guest-physical memory.

use super::decode::{Gpr, MemOperand};
use super::outcome::Fault;

const CR0_PE: u64 = 1 << 0;
const CR4_VMXE: u64 = 1 << 13;
const RFLAGS_VM: u64 = 1 << 17;

/// The guest hypervisor's execution mode when it executed the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMode {
    /// CR0 as the guest sees it.
    pub cr0: u64,
    /// CR4 as the guest sees it.
    pub cr4: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// IA32_EFER.LMA.
    pub long_mode_active: bool,
    /// CS.L.
    pub cs_long: bool,
    /// Current privilege level.
    pub cpl: u8,
}

impl GuestMode {
    /// 64-bit mode: IA32_EFER.LMA = 1 and CS.L = 1.
    pub const fn is_64bit(&self) -> bool {
        self.long_mode_active && self.cs_long
    }

    /// The #UD conditions every VMX instruction shares: real mode (CR0.PE = 0), CR4.VMXE = 0,
    /// virtual-8086 mode, or compatibility mode (SDM 31.3 "Operation" sections).
    pub const fn vmx_undefined(&self) -> bool {
        self.cr0 & CR0_PE == 0
            || self.cr4 & CR4_VMXE == 0
            || self.rflags & RFLAGS_VM != 0
            || (self.long_mode_active && !self.cs_long)
    }

    /// Operand size in bytes of VMREAD/VMWRITE operands and INVEPT/INVVPID's type register:
    /// 8 in 64-bit mode, 4 otherwise.
    pub const fn operand_bytes(&self) -> usize {
        if self.is_64bit() {
            8
        } else {
            4
        }
    }
}

/// The memory did not exist as RAM at that guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRam;

/// The guest hypervisor's guest-physical memory (VMXON and VMCS regions live there).
pub trait GuestMemory {
    /// Whether `len` bytes at `gpa` are RAM (not MMIO, not absent).
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
    /// Reads `buf.len()` bytes at `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam>;
    /// Writes `data` at `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam>;

    /// Reads `buf.len()` bytes at `gpa` as the processor's bus answers: memory that is not RAM
    /// reads as all ones, as unbacked physical memory does (no device claims the access) and as
    /// l1-hv's bus answers L2. RAM comes in whole pages, so a read within one page is all RAM or
    /// none of it.
    fn read_or_ones(&self, gpa: u64, buf: &mut [u8]) {
        if self.read(gpa, buf).is_err() {
            buf.fill(0xFF);
        }
    }
}

/// The guest hypervisor's registers and the memory its instruction operands name.
///
/// Memory operands are segment:offset pairs: an implementation computes the offset with
/// [`MemOperand::offset`], applies segmentation and the guest's paging, and reports the fault
/// that access raises (#GP, #SS, #PF) exactly as the instruction would.
pub trait GuestOperands {
    /// The register's full 64-bit value.
    fn register(&self, reg: Gpr) -> u64;
    /// Sets the register to `value`.
    fn set_register(&mut self, reg: Gpr, value: u64);
    /// Reads `buf.len()` bytes from the memory operand.
    fn read_memory(&mut self, operand: &MemOperand, buf: &mut [u8]) -> Result<(), Fault>;
    /// Writes `data` to the memory operand.
    fn write_memory(&mut self, operand: &MemOperand, data: &[u8]) -> Result<(), Fault>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: GuestMode = GuestMode {
        cr0: 0x8000_0011,
        cr4: CR4_VMXE,
        rflags: 2,
        long_mode_active: true,
        cs_long: true,
        cpl: 0,
    };

    #[test]
    fn sixty_four_bit_mode_is_allowed_and_uses_eight_byte_operands() {
        assert!(!LONG.vmx_undefined());
        assert_eq!(LONG.operand_bytes(), 8);
        let protected = GuestMode {
            long_mode_active: false,
            cs_long: false,
            ..LONG
        };
        assert!(!protected.vmx_undefined());
        assert_eq!(protected.operand_bytes(), 4);
    }

    #[test]
    fn real_v8086_compat_and_vmxe_clear_are_undefined() {
        assert!(GuestMode { cr0: 0, ..LONG }.vmx_undefined());
        assert!(GuestMode { cr4: 0, ..LONG }.vmx_undefined());
        assert!(GuestMode {
            rflags: RFLAGS_VM | 2,
            long_mode_active: false,
            cs_long: false,
            ..LONG
        }
        .vmx_undefined());
        assert!(GuestMode {
            cs_long: false,
            ..LONG
        }
        .vmx_undefined());
    }
}
