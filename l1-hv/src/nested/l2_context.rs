//! What VMX-instruction emulation sees of an L2 guest hypervisor: its registers (GPRs in the
//! saved register block, RSP in vmcs01), its mode, and its memory — guest-physical RAM, and
//! linear addresses translated through its own 4-level page tables (SDM 4.5).

use crate::memory::PhysPages;
use l1_vmx::GuestRegisters;
use nvmx::insn::{Fault, Gpr, GuestMemory, GuestMode, GuestOperands, MemOperand, NotRam, Segment};
use nvmx::nested::{ar, EFER_LMA};
use shadow_vmcs::Vmcs;
use x86::bits64::paging::{PDFlags, PTFlags};
use x86::controlregs::Cr0;
use x86::irq::PageFaultError;
use x86::vmx::vmcs::{control, guest};

/// An L2 vCPU's state while l1-hv emulates one of its instructions.
pub struct L2Context<'a, V: Vmcs> {
    /// The L2 guest's general-purpose registers.
    pub regs: &'a mut GuestRegisters,
    /// vmcs01: L2's RSP, segments, control registers.
    pub vmcs: &'a mut V,
    /// L2's RAM.
    pub memory: L2Memory<'a>,
}

/// L2's guest-physical memory: its RAM block (guest-physical 0 is the first byte); nothing else
/// is RAM.
pub struct L2Memory<'a>(pub &'a mut PhysPages);

const PRESENT: u64 = PTFlags::P.bits();
const WRITABLE: u64 = PTFlags::RW.bits();
const USER: u64 = PTFlags::US.bits();
const PAGE_SIZE: u64 = PDFlags::PS.bits();
/// Bits 51:12 of a paging-structure entry: the next table or the page (SDM 4.5; the `x86`
/// crate keeps its mask private).
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const CR0_WP: u64 = Cr0::CR0_WRITE_PROTECT.bits() as u64;
const CR0_PE: u64 = Cr0::CR0_PROTECTED_MODE.bits() as u64;
const CR0_PG: u64 = Cr0::CR0_ENABLE_PAGING.bits() as u64;
const AR_L: u64 = ar::L as u64;
/// #PF error-code bits (SDM 4.7).
const PF_PRESENT: u32 = PageFaultError::P.bits();
const PF_WRITE: u32 = PageFaultError::WR.bits();
const PF_USER: u32 = PageFaultError::US.bits();

impl<V: Vmcs> L2Context<'_, V> {
    /// L2's mode as VMX instructions see it: CR0 and CR4 through the read shadows for the bits
    /// l1-hv owns (a kernel's CR0.NE is l1-hv's: VMXON must #GP when the guest cleared it, as
    /// IA32_VMX_CR0_FIXED0 requires, SDM 24.8).
    pub fn mode(&self) -> GuestMode {
        let seen = |register, mask, shadow| {
            let mask = self.vmcs.read(mask);
            self.vmcs.read(register) & !mask | self.vmcs.read(shadow) & mask
        };
        let cr4 = seen(
            guest::CR4,
            control::CR4_GUEST_HOST_MASK,
            control::CR4_READ_SHADOW,
        );
        GuestMode {
            cr0: seen(
                guest::CR0,
                control::CR0_GUEST_HOST_MASK,
                control::CR0_READ_SHADOW,
            ),
            cr4,
            rflags: self.vmcs.read(guest::RFLAGS),
            long_mode_active: self.vmcs.read(guest::IA32_EFER_FULL) & EFER_LMA != 0,
            cs_long: self.vmcs.read(guest::CS_ACCESS_RIGHTS) & AR_L != 0,
            cpl: self.cpl(),
        }
    }

    /// CPL is SS.DPL (SDM 25.4.1).
    pub fn cpl(&self) -> u8 {
        ((self.vmcs.read(guest::SS_ACCESS_RIGHTS) >> 5) & 3) as u8
    }

    fn linear(&self, operand: &MemOperand) -> Result<u64, Fault> {
        let offset = operand.offset(|reg| self.register(reg));
        let base = match operand.segment {
            Segment::Fs => self.vmcs.read(guest::FS_BASE),
            Segment::Gs => self.vmcs.read(guest::GS_BASE),
            // 64-bit mode ignores the other bases; elsewhere they apply (limits are not checked:
            // l1-hv's guest hypervisors run in 64-bit mode).
            Segment::Es => self.base_outside_64bit(guest::ES_BASE),
            Segment::Cs => self.base_outside_64bit(guest::CS_BASE),
            Segment::Ss => self.base_outside_64bit(guest::SS_BASE),
            Segment::Ds => self.base_outside_64bit(guest::DS_BASE),
        };
        let linear = base.wrapping_add(offset);
        if !self.mode().is_64bit() {
            return Ok(linear & 0xffff_ffff);
        }
        // A non-canonical address faults with #SS for stack references, else #GP (SDM 6.15).
        if (linear as i64) << 16 >> 16 != linear as i64 {
            return Err(if operand.segment == Segment::Ss {
                Fault::Ss(0)
            } else {
                Fault::Gp(0)
            });
        }
        Ok(linear)
    }

    fn base_outside_64bit(&self, field: u32) -> u64 {
        if self.mode().is_64bit() {
            0
        } else {
            self.vmcs.read(field)
        }
    }

    /// Translates `linear` through L2's paging (4-level; 2 MiB and 1 GiB pages), checking the
    /// access like the CPU would for a supervisor or user access.
    fn translate(&self, linear: u64, write: bool) -> Result<u64, Fault> {
        let cr0 = self.vmcs.read(guest::CR0);
        if cr0 & (CR0_PE | CR0_PG) != (CR0_PE | CR0_PG) {
            return Ok(linear);
        }
        let user = self.cpl() == 3;
        let fault = |present: bool| Fault::Pf {
            linear,
            error_code: if present { PF_PRESENT } else { 0 }
                | if write { PF_WRITE } else { 0 }
                | if user { PF_USER } else { 0 },
        };
        let mut table = self.vmcs.read(guest::CR3) & ADDRESS_MASK;
        let (mut writable, mut user_ok) = (true, true);
        for level in (0..4).rev() {
            let index = (linear >> (12 + 9 * level)) & 0x1ff;
            let mut entry = [0u8; 8];
            self.memory
                .read(table + index * 8, &mut entry)
                .map_err(|_| fault(false))?;
            let entry = u64::from_le_bytes(entry);
            if entry & PRESENT == 0 {
                return Err(fault(false));
            }
            writable &= entry & WRITABLE != 0;
            user_ok &= entry & USER != 0;
            let leaf = level == 0 || (level < 3 && entry & PAGE_SIZE != 0);
            if leaf {
                let page_bits = 12 + 9 * level;
                let denied =
                    (user && !user_ok) || (write && !writable && (user || cr0 & CR0_WP != 0));
                if denied {
                    return Err(fault(true));
                }
                let frame = entry & ADDRESS_MASK & !((1 << page_bits) - 1);
                return Ok(frame | (linear & ((1 << page_bits) - 1)));
            }
            table = entry & ADDRESS_MASK;
        }
        unreachable!("level 0 is always a leaf")
    }

    fn access(&mut self, operand: &MemOperand, len: usize, write: bool) -> Result<u64, Fault> {
        let linear = self.linear(operand)?;
        let first = self.translate(linear, write)?;
        // Operands are at most 8 bytes; one crossing a page boundary needs both pages.
        let last = self.translate(linear + len as u64 - 1, write)?;
        if last != first + len as u64 - 1 {
            return Err(Fault::Gp(0));
        }
        Ok(first)
    }
}

impl<V: Vmcs> GuestOperands for L2Context<'_, V> {
    fn register(&self, reg: Gpr) -> u64 {
        let r = &self.regs;
        match reg {
            Gpr::Rax => r.rax,
            Gpr::Rcx => r.rcx,
            Gpr::Rdx => r.rdx,
            Gpr::Rbx => r.rbx,
            Gpr::Rsp => self.vmcs.read(guest::RSP),
            Gpr::Rbp => r.rbp,
            Gpr::Rsi => r.rsi,
            Gpr::Rdi => r.rdi,
            Gpr::R8 => r.r8,
            Gpr::R9 => r.r9,
            Gpr::R10 => r.r10,
            Gpr::R11 => r.r11,
            Gpr::R12 => r.r12,
            Gpr::R13 => r.r13,
            Gpr::R14 => r.r14,
            Gpr::R15 => r.r15,
        }
    }

    fn set_register(&mut self, reg: Gpr, value: u64) {
        let r = &mut self.regs;
        let slot = match reg {
            Gpr::Rax => &mut r.rax,
            Gpr::Rcx => &mut r.rcx,
            Gpr::Rdx => &mut r.rdx,
            Gpr::Rbx => &mut r.rbx,
            Gpr::Rsp => return self.vmcs.write(guest::RSP, value),
            Gpr::Rbp => &mut r.rbp,
            Gpr::Rsi => &mut r.rsi,
            Gpr::Rdi => &mut r.rdi,
            Gpr::R8 => &mut r.r8,
            Gpr::R9 => &mut r.r9,
            Gpr::R10 => &mut r.r10,
            Gpr::R11 => &mut r.r11,
            Gpr::R12 => &mut r.r12,
            Gpr::R13 => &mut r.r13,
            Gpr::R14 => &mut r.r14,
            Gpr::R15 => &mut r.r15,
        };
        *slot = value;
    }

    fn read_memory(&mut self, operand: &MemOperand, buf: &mut [u8]) -> Result<(), Fault> {
        let gpa = self.access(operand, buf.len(), false)?;
        // Memory that is not RAM reads as all ones, as unbacked physical memory does.
        if self.memory.read(gpa, buf).is_err() {
            buf.fill(0xff);
        }
        Ok(())
    }

    fn write_memory(&mut self, operand: &MemOperand, data: &[u8]) -> Result<(), Fault> {
        let gpa = self.access(operand, data.len(), true)?;
        // Writes to memory that is not RAM are dropped, as on unbacked physical memory.
        let _ = self.memory.write(gpa, data);
        Ok(())
    }
}

impl<V: Vmcs> GuestMemory for L2Context<'_, V> {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.memory.is_ram(gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        self.memory.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        self.memory.write(gpa, data)
    }
}

impl L2Memory<'_> {
    /// Host-physical address of L2-physical `gpa`, if it is RAM.
    pub fn host_phys(&self, gpa: u64) -> Option<u64> {
        self.is_ram(gpa, 1).then(|| self.0.phys() + gpa)
    }
}

impl GuestMemory for L2Memory<'_> {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.0.len() as u64)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        if !self.is_ram(gpa, buf.len() as u64) {
            return Err(NotRam);
        }
        // SAFETY: inside this guest's RAM block, which `self.0` owns.
        let source =
            unsafe { core::slice::from_raw_parts((self.0.phys() + gpa) as *const u8, buf.len()) };
        buf.copy_from_slice(source);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        if !self.is_ram(gpa, data.len() as u64) {
            return Err(NotRam);
        }
        self.0.bytes_mut()[gpa as usize..gpa as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
}
