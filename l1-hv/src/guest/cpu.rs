//! The instructions every L2 guest may execute that always exit (CPUID) or that l1-hv makes
//! exit (RDMSR/WRMSR through an all-ones MSR bitmap, MOV to CR4 touching VMXE), emulated as a
//! CPU offering VMX to its software would answer.

use crate::nested::{L2Context, GUEST_FEATURE_CONTROL};
use l1_vmx::capabilities::Capabilities;
use l1_vmx::GuestRegisters;
use nvmx::event::Event;
use nvmx::insn::{Gpr, GuestOperands, VmxCapabilities};
use nvmx::nested::{EFER_LMA, EFER_LME};
use shadow_vmcs::Vmcs;
use x86::controlregs::Cr4;
use x86::msr::{IA32_EFER, IA32_FEATURE_CONTROL};
use x86::vmx::vmcs::{control, guest, ro};

/// CPUID.1:ECX bits l1-hv changes: VMX (5) offered, hypervisor present (31).
const CPUID1_ECX_VMX: u32 = 1 << 5;
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// An emulated instruction either completes (RIP advances) or raises an exception in L2.
pub type Emulated = Result<(), Event>;

fn gp0() -> Event {
    Event::hardware_exception(x86::irq::GENERAL_PROTECTION_FAULT_VECTOR, 0)
}

/// CPUID: the host's answer, with VMX offered and the hypervisor bit set in leaf 1.
pub fn cpuid(regs: &mut GuestRegisters) -> Emulated {
    let result = core::arch::x86_64::__cpuid_count(regs.rax as u32, regs.rcx as u32);
    let mut ecx = result.ecx;
    if regs.rax as u32 == 1 {
        ecx |= CPUID1_ECX_VMX | CPUID1_ECX_HYPERVISOR;
    }
    (regs.rax, regs.rbx, regs.rcx, regs.rdx) =
        (result.eax.into(), result.ebx.into(), ecx.into(), result.edx.into());
    Ok(())
}

/// RDMSR of the MSRs a guest hypervisor needs: IA32_FEATURE_CONTROL, the VMX capability MSRs as
/// offered, IA32_EFER; any other MSR raises #GP(0), as a nonexistent MSR does.
pub fn rdmsr(regs: &mut GuestRegisters, vmcs: &impl Vmcs, offered: &VmxCapabilities) -> Emulated {
    let index = regs.rcx as u32;
    let value = match index {
        IA32_FEATURE_CONTROL => GUEST_FEATURE_CONTROL,
        IA32_EFER => vmcs.read(guest::IA32_EFER_FULL),
        _ => offered.msr(index).ok_or_else(gp0)?,
    };
    (regs.rax, regs.rdx) = (value & 0xffff_ffff, value >> 32);
    Ok(())
}

/// WRMSR: IA32_EFER may be rewritten with LMA unchanged (SDM 2.2.1); nothing else is writable.
pub fn wrmsr(regs: &GuestRegisters, vmcs: &mut impl Vmcs) -> Emulated {
    const EFER_WRITABLE: u64 = 1 | EFER_LME | EFER_LMA | 1 << 11; // SCE, LME, LMA, NXE
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let efer = vmcs.read(guest::IA32_EFER_FULL);
    if regs.rcx as u32 != IA32_EFER || value & !EFER_WRITABLE != 0 || (value ^ efer) & EFER_LMA != 0 {
        return Err(gp0());
    }
    vmcs.write(guest::IA32_EFER_FULL, value);
    Ok(())
}

/// MOV to CR4 that changed a bit l1-hv owns (VMXE, SDM 25.6.6): the guest's view goes to the
/// read shadow, the real CR4 keeps the bits VMX operation fixes.
pub fn mov_to_cr4<V: Vmcs>(cx: &mut L2Context<'_, V>, caps: &Capabilities, in_vmx_operation: bool) -> Emulated {
    let qualification = cx.vmcs.read(ro::EXIT_QUALIFICATION);
    let (cr, access, register) = (qualification & 0xf, (qualification >> 4) & 3, (qualification >> 8) & 0xf);
    if cr != 4 || access != 0 {
        return Err(gp0());
    }
    let value = cx.register(Gpr::from_number(register as u32));
    let vmxe = Cr4::CR4_ENABLE_VMX.bits() as u64;
    // Bits CR4_FIXED1 forbids raise #GP; so does clearing VMXE in VMX operation (SDM 24.8).
    if value & !caps.cr4_fixed.1 != 0 || (in_vmx_operation && value & vmxe == 0) {
        return Err(gp0());
    }
    cx.vmcs.write(guest::CR4, caps.fix_cr4(value));
    cx.vmcs.write(control::CR4_READ_SHADOW, value);
    // Paging-related CR4 bits may have changed: drop cached translations of every context.
    // SAFETY: CPL 0 in VMX root operation, INVEPT supported (checked at bring-up).
    let _ = unsafe { l1_vmx::instructions::invept_all_contexts() };
    Ok(())
}
