//! The VT-x hardware layer l1-hv is built on: VMX instructions with correct failure reporting,
//! capability MSRs and control adjustment, VMXON, the hardware `Vmcs` implementation, flat
//! 64-bit VMCS state and the guest entry/exit stub. Nothing here is specific to l1-hv's guests:
//! the guest hypervisor `ghv` (`l2-guests`), written for real VT-x too, uses it as well. It is a
//! crate of its own so that ghv links only this, not the kernel's other dependencies.
#![no_std]

pub mod bringup;
pub mod capabilities;
pub mod current_vmcs;
pub mod flat64;
pub mod instructions;

core::arch::global_asm!(include_str!("enter.s"));

/// The guest's general-purpose registers and CR2, which VM entry and exit do not switch
/// (SDM 27.3: only RSP, RIP and RFLAGS are in the VMCS). Layout is shared with `enter.s`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegisters {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// CR2 is not switched by VMX: l1-hv loads the guest's value before every entry.
    pub cr2: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegisters>() == 128);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, cr2) == 120);

/// The guest registers a fast exit handler sees (see [`enter_fast`]): those a call may clobber,
/// and RBX, which CPUID writes. The others stay in the processor while the handler runs. Layout
/// is the push order of `vmx_exit_fast` in `enter.s`.
#[repr(C)]
#[derive(Debug)]
pub struct ExitFrame {
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
}

const _: () = assert!(core::mem::size_of::<ExitFrame>() == 80);

/// A fast exit handler: called by the exit stub with the guest's [`ExitFrame`] and the context
/// given to [`enter_fast`], with the VMCS of the exit current. It returns true when it has
/// handled the exit completely (the guest is resumed at once), false, having changed nothing,
/// to leave the exit to the caller of [`enter_fast`].
pub type FastHandler<C> = extern "C" fn(&mut ExitFrame, &mut C) -> bool;

extern "C" {
    fn vmx_enter(regs: *mut GuestRegisters, launched: u64, host_rsp: *mut u64) -> u64;
    fn vmx_enter_fast(
        regs: *mut GuestRegisters,
        launched: u64,
        host_rsp: *mut u64,
        handler: *const (),
        context: *mut (),
    ) -> u64;
    /// The VMCS host RIP to use with [`enter`].
    pub fn vmx_exit();
    /// The VMCS host RIP to use with [`enter_fast`].
    pub fn vmx_exit_fast();
}

/// The host RSP last written into one VMCS: keep one per VMCS, starting from
/// `HostRsp::default()` (nothing written yet).
#[derive(Debug, Default)]
pub struct HostRsp(u64);

/// How a VMLAUNCH/VMRESUME ended.
#[derive(Debug)]
pub enum Entry {
    /// The guest ran and a VM exit occurred (possibly a VM-entry failure exit, SDM 26.8).
    Exited,
    /// The instruction failed: VMfailInvalid or VMfailValid (see the VM-instruction error).
    Failed(instructions::VmFail),
}

/// Enters the guest of the current VMCS and returns at its next VM exit; writes the VMCS host
/// RSP only if it differs from `host_rsp`, which is updated.
///
/// # Safety
/// The current VMCS must be fully initialised with host RIP = [`vmx_exit`], and `host_rsp`
/// must belong to it.
pub unsafe fn enter(regs: &mut GuestRegisters, launched: bool, host_rsp: &mut HostRsp) -> Entry {
    entry_result(vmx_enter(regs, u64::from(launched), &mut host_rsp.0))
}

/// As [`enter`], but each VM exit is first offered to `handler` (with `context`, if there is
/// one), and the guest runs on for as long as the handler handles its exits; this returns at the
/// first exit the handler declines. A VMRESUME that fails after a handled exit leaves `regs` as of the last
/// exit this returned.
///
/// # Safety
/// As for [`enter`], with host RIP = [`vmx_exit_fast`].
pub unsafe fn enter_fast<C>(
    regs: &mut GuestRegisters,
    launched: bool,
    host_rsp: &mut HostRsp,
    handler: FastHandler<C>,
    context: Option<&mut C>,
) -> Entry {
    let context = context.map_or(core::ptr::null_mut(), |c| (c as *mut C).cast());
    entry_result(vmx_enter_fast(
        regs,
        u64::from(launched),
        &mut host_rsp.0,
        handler as *const (),
        context,
    ))
}

fn entry_result(flags: u64) -> Entry {
    const ZF: u64 = x86::bits64::rflags::RFlags::FLAGS_ZF.bits();
    match flags {
        0 => Entry::Exited,
        _ if flags & ZF != 0 => Entry::Failed(instructions::VmFail::Valid),
        // CF (VMfailInvalid); a failed VMLAUNCH/VMRESUME sets one of the two.
        _ => Entry::Failed(instructions::VmFail::Invalid),
    }
}
