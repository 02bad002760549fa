//! The exits l1-hv handles inside the exit stub (`l1_vmx::enter_fast`), without storing the
//! whole register file or going back through the run loop: CPUID, the `Nop` hypercall and an
//! intercepted exception with nothing else in flight (`nvmx::inject::reinject_intercepted`), for a guest that has nothing to do
//! between exits (no machine to pump, no debugger, no nested state). Each uses the same rules as
//! the full path in `exits.rs`; anything else is declined before it is touched and takes the
//! full path.

use super::cpu;
use super::exits;
use super::inject_host;
use super::trace::TraceRing;
use super::vcpu::ExitCounts;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::ExitFrame;
use l2_abi::Hypercall;
use nvmx::exit_reason;
use nvmx::inject::{self, InjectHost, TraceRecord, TraceSink};
use nvmx::retire;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::ro;

/// What the fast handler may touch of its guest; the run loop gives one only to a guest whose
/// exits may be handled in the stub (see the module comment).
pub struct FastContext<'a> {
    /// The guest's exit counts: a handled exit counts as any other.
    pub exits: &'a mut ExitCounts,
    /// The guest's trace ring.
    pub trace: &'a mut TraceRing,
    /// Whether the CPU supports CET (#CP then pushes an error code).
    pub cet: bool,
}

/// The stub's handler ([`l1_vmx::FastHandler`]): true when the exit was handled. It stays
/// small so that declining costs little, and calls nothing on the way to a hypercall.
pub extern "C" fn handle(frame: &mut ExitFrame, cx: &mut FastContext) -> bool {
    // SAFETY: the stub calls this with the VMCS of the exit current.
    let vmcs = &mut unsafe { CurrentVmcs::assume_loaded() };
    // The full exit reason: a VM-entry failure (bit 31) matches none of these.
    match vmcs.read(ro::EXIT_REASON) as u32 {
        VMCALL => hypercall(frame, vmcs, cx),
        CPUID => cpuid(frame, vmcs, cx),
        EXCEPTION_OR_NMI => exception(vmcs, cx),
        _ => false,
    }
}

const VMCALL: u32 = exit_reason::VMCALL as u32;
const CPUID: u32 = exit_reason::CPUID as u32;
const EXCEPTION_OR_NMI: u32 = exit_reason::EXCEPTION_OR_NMI as u32;

/// `Nop`, the hypercall that needs nothing but the vCPU's registers.
#[inline(always)]
fn hypercall(frame: &mut ExitFrame, vmcs: &mut CurrentVmcs, cx: &mut FastContext) -> bool {
    let nop = frame.rax == Hypercall::Nop as u64;
    if !nop || exits::accepted_hypercall(frame.rax, vmcs).is_none() {
        return false;
    }
    frame.rax = exits::NOP_STATUS;
    retire::retire(vmcs);
    cx.exits[usize::from(exit_reason::VMCALL)] += 1;
    true
}

#[inline(always)]
fn cpuid(frame: &mut ExitFrame, vmcs: &mut CurrentVmcs, cx: &mut FastContext) -> bool {
    let r = cpu::cpuid(frame.rax as u32, frame.rcx as u32);
    (frame.rax, frame.rbx, frame.rcx, frame.rdx) =
        (r.eax.into(), r.ebx.into(), r.ecx.into(), r.edx.into());
    retire::retire(vmcs);
    cx.exits[usize::from(exit_reason::CPUID)] += 1;
    true
}

/// An intercepted exception in the common case `nvmx::inject::reinject_intercepted` takes (what
/// `exits::reinject` would do with it, proven equal there); NMIs and the rest take the full
/// path.
#[inline(never)]
fn exception(vmcs: &mut CurrentVmcs, cx: &mut FastContext) -> bool {
    let mut host = LiveCr2 {
        trace: cx.trace,
        cet: cx.cet,
    };
    if !inject::reinject_intercepted(vmcs, &mut host) {
        return false;
    }
    cx.exits[usize::from(exit_reason::EXCEPTION_OR_NMI)] += 1;
    true
}

/// The injection routine's view of a vCPU in the stub: its CR2 is the processor's (the stub
/// neither saved nor reloads it), no debugger is attached.
struct LiveCr2<'a> {
    trace: &'a mut TraceRing,
    cet: bool,
}

impl TraceSink for LiveCr2<'_> {
    fn record(&mut self, record: TraceRecord) {
        self.trace.record(record);
    }
}

impl InjectHost for LiveCr2<'_> {
    fn set_cr2(&mut self, cr2: u64) {
        // SAFETY: l1-hv never uses CR2; the guest's is loaded with it before the entry.
        unsafe { x86::controlregs::cr2_write(cr2) };
    }

    fn merge_dr6(&mut self, bits: u64) {
        inject_host::merge_dr6(bits);
    }

    fn debugger_attached(&self) -> bool {
        false
    }

    fn pause_for_debugger(&mut self) {}

    fn cet_supported(&self) -> bool {
        self.cet
    }
}
