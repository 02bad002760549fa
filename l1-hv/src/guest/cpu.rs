//! The instructions every L2 guest may execute that always exit (CPUID, XSETBV) or that l1-hv
//! makes exit (RDMSR/WRMSR of the MSRs it owns, MOV to CR0/CR4 touching a bit it owns),
//! emulated as a CPU offering VMX to its software would answer.

use crate::nested::{L2Context, GUEST_FEATURE_CONTROL};
use core::arch::x86_64::CpuidResult;
use l1_vmx::capabilities::Capabilities;
use l1_vmx::GuestRegisters;
use nvmx::event::Event;
use nvmx::exit::CrAccess;
use nvmx::insn::{GuestOperands, VmxCapabilities};
use nvmx::nested::{efer_after_wrmsr, EFER_LMA, EFER_LME};
use shadow_vmcs::Vmcs;
use x86::controlregs::Cr4;
use x86::msr::{IA32_EFER, IA32_FEATURE_CONTROL};
use x86::vmx::vmcs::{control, guest};

/// CPUID.1:ECX bits l1-hv changes: VMX (5) offered, hypervisor present (31), x2APIC (21)
/// hidden: a guest's way back from x2APIC to xAPIC mode goes through the APIC's global
/// disable, which l1-hv emulates over an APIC it keeps enabled (`devices::apic_base`), and that
/// emulation cannot leave the hardware's x2APIC mode (SDM 11.12.5: only a disable does).
const CPUID1_ECX_VMX: u32 = 1 << 5;
const CPUID1_ECX_X2APIC: u32 = 1 << 21;
const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// An emulated instruction either completes (RIP advances) or raises an exception in L2.
pub type Emulated = Result<(), Event>;

fn gp0() -> Event {
    Event::hardware_exception(x86::irq::GENERAL_PROTECTION_FAULT_VECTOR, 0)
}

/// CPUID of `leaf` and `subleaf`: the host's answer, with VMX offered, the hypervisor bit set
/// and x2APIC hidden in leaf 1.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let mut result = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    if leaf == 1 {
        result.ecx = (result.ecx | CPUID1_ECX_VMX | CPUID1_ECX_HYPERVISOR) & !CPUID1_ECX_X2APIC;
    }
    result
}

/// CPUID with its operands and results in `regs`.
pub fn cpuid_registers(regs: &mut GuestRegisters) -> Emulated {
    let r = cpuid(regs.rax as u32, regs.rcx as u32);
    (regs.rax, regs.rbx, regs.rcx, regs.rdx) =
        (r.eax.into(), r.ebx.into(), r.ecx.into(), r.edx.into());
    Ok(())
}

/// RDMSR of the MSRs a guest hypervisor needs: IA32_FEATURE_CONTROL, the VMX capability MSRs as
/// offered, IA32_EFER; any other MSR raises #GP(0), as a nonexistent MSR does.
pub fn rdmsr(index: u32, vmcs: &impl Vmcs, offered: &VmxCapabilities) -> Result<u64, Event> {
    match index {
        IA32_FEATURE_CONTROL => Ok(GUEST_FEATURE_CONTROL),
        IA32_EFER => Ok(vmcs.read(guest::IA32_EFER_FULL)),
        _ => offered.msr(index).ok_or_else(gp0),
    }
}

/// WRMSR: IA32_EFER may be rewritten as the processor allows (`efer_after_wrmsr`); nothing else
/// is writable.
pub fn wrmsr(index: u32, value: u64, vmcs: &mut impl Vmcs) -> Emulated {
    if index != IA32_EFER {
        return Err(gp0());
    }
    let efer = efer_after_wrmsr(
        vmcs.read(guest::IA32_EFER_FULL),
        value,
        vmcs.read(guest::CR0),
    )
    .ok_or_else(gp0)?;
    vmcs.write(guest::IA32_EFER_FULL, efer);
    Ok(())
}

/// A CR-access exit: MOV to CR0 or CR4 that changed a bit l1-hv owns (SDM 25.6.6).
pub fn mov_to_cr<V: Vmcs>(
    cx: &mut L2Context<'_, V>,
    caps: &Capabilities,
    in_vmx_operation: bool,
) -> Emulated {
    match CrAccess::read(cx.vmcs) {
        CrAccess::MovTo { cr: 0, gpr } => {
            let value = cx.register(gpr);
            mov_to_cr0(cx, caps, value)
        }
        CrAccess::MovTo { cr: 4, gpr } => {
            let value = cx.register(gpr);
            mov_to_cr4(cx, caps, in_vmx_operation, value)
        }
        // Only MOV to CR0/CR4 can exit with l1-hv's controls (no CR3, CR8, CLTS or LMSW exiting
        // beyond the owned bits, which LMSW/CLTS cannot clear: NE is not among LMSW's bits).
        _ => Err(gp0()),
    }
}

/// MOV to CR0 that changed a bit l1-hv owns (NE, which VMX operation fixes to 1): the guest's
/// value goes to the read shadow and the real CR0 keeps the fixed bits. An unrestricted guest
/// may toggle paging here too, so the long-mode transition the processor would make is made
/// (SDM 10.8.5: with EFER.LME set, setting CR0.PG activates IA-32e mode, clearing it leaves).
fn mov_to_cr0<V: Vmcs>(cx: &mut L2Context<'_, V>, caps: &Capabilities, value: u64) -> Emulated {
    const PG: u64 = x86::controlregs::Cr0::CR0_ENABLE_PAGING.bits() as u64;
    const PE: u64 = x86::controlregs::Cr0::CR0_PROTECTED_MODE.bits() as u64;
    // Bits 63:32 are reserved; PG without PE is invalid (SDM 2.5, MOV CR0 #GP conditions).
    if value >> 32 != 0 || (value & PG != 0 && value & PE == 0) {
        return Err(gp0());
    }
    let owned = cx.vmcs.read(control::CR0_GUEST_HOST_MASK);
    let old = cx.vmcs.read(guest::CR0);
    let real = (value & !owned | caps.cr0_fixed.0 & owned) & caps.cr0_fixed.1;
    let efer = cx.vmcs.read(guest::IA32_EFER_FULL);
    if (old ^ real) & PG != 0 && efer & EFER_LME != 0 {
        let long_mode = real & PG != 0;
        let entry = cx.vmcs.read(control::VMENTRY_CONTROLS);
        let ia32e = x86::vmx::vmcs::control::EntryControls::IA32E_MODE_GUEST.bits() as u64;
        cx.vmcs.write(
            guest::IA32_EFER_FULL,
            if long_mode {
                efer | EFER_LMA
            } else {
                efer & !EFER_LMA
            },
        );
        cx.vmcs.write(
            control::VMENTRY_CONTROLS,
            if long_mode {
                entry | ia32e
            } else {
                entry & !ia32e
            },
        );
    }
    cx.vmcs.write(guest::CR0, real);
    cx.vmcs.write(control::CR0_READ_SHADOW, value);
    Ok(())
}

/// MOV to CR4 that changed a bit l1-hv owns (VMXE): the guest's view goes to the read shadow,
/// the real CR4 keeps the bits VMX operation fixes.
fn mov_to_cr4<V: Vmcs>(
    cx: &mut L2Context<'_, V>,
    caps: &Capabilities,
    in_vmx_operation: bool,
    value: u64,
) -> Emulated {
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

/// XSETBV (always exits, SDM 26.1.2): XCR0 is not switched by VM entry or exit and l1-hv never
/// uses extended state, so the guest's value is loaded into the real register after the checks
/// the instruction makes (SDM Vol. 2D XSETBV, 13.3): ECX = 0, x87 state kept, AVX only with
/// SSE, no bit the processor does not support.
pub fn xsetbv(regs: &GuestRegisters, cpl: u8) -> Emulated {
    const X87: u64 = 1;
    const SSE: u64 = 1 << 1;
    const AVX: u64 = 1 << 2;
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let leaf = core::arch::x86_64::__cpuid_count(0xd, 0);
    let supported = u64::from(leaf.eax) | u64::from(leaf.edx) << 32;
    if cpl != 0
        || regs.rcx as u32 != 0
        || value & X87 == 0
        || value & !supported != 0
        || (value & AVX != 0 && value & SSE == 0)
    {
        return Err(gp0());
    }
    // SAFETY: the value passed the architectural checks; l1-hv set CR4.OSXSAVE at boot.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32)
    };
    Ok(())
}
