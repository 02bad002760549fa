//! What VMX-instruction emulation sees of an L2 guest hypervisor: its registers (GPRs in the
//! saved register block, RSP in vmcs01), its mode, and its memory — guest-physical RAM, and
//! linear addresses translated through its own 4-level page tables (`nvmx::insn::translate`,
//! SDM 4.5).

use crate::memory::PhysPages;
use l1_vmx::GuestRegisters;
use nvmx::insn::{
    translate, Fault, Gpr, GuestMemory, GuestMode, GuestOperands, MemOperand, NotRam, Paging,
    Segment,
};
use nvmx::nested::{ar, EFER_LMA};
use shadow_vmcs::Vmcs;
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

const AR_L: u64 = ar::L as u64;

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
        nvmx::nested::guest_cpl(self.vmcs)
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

    /// Translates `linear` through L2's paging, for a supervisor or user access by its CPL.
    fn translate(&self, linear: u64, write: bool) -> Result<u64, Fault> {
        let paging = Paging {
            cr0: self.vmcs.read(guest::CR0),
            cr3: self.vmcs.read(guest::CR3),
            user: self.cpl() == 3,
        };
        translate(&self.memory, &paging, linear, write)
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
        self.memory.read_or_ones(gpa, buf);
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
