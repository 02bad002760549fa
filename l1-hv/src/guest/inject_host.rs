//! The vCPU state `nvmx::inject` may touch that is not in the VMCS: CR2, DR6, the trace ring.
//! One vCPU runs L2 or (for a guest hypervisor) L3; both share its registers, as on hardware,
//! where VM entry and exit switch neither CR2 nor DR6.

use super::trace::TraceRing;
use l1_vmx::GuestRegisters;
use nvmx::inject::{InjectHost, TraceRecord, TraceSink};

/// The injection routine's view of a vCPU.
pub struct VcpuInjectHost<'a> {
    /// The vCPU's registers (CR2 is one of them).
    pub regs: &'a mut GuestRegisters,
    /// Where injection trace records go.
    pub trace: &'a mut TraceRing,
    /// Whether the CPU supports CET (#CP then pushes an error code).
    pub cet: bool,
    /// The event being injected is an INT3 of l1-hv's debugger (`debug::owns_breakpoint`).
    pub debugger_breakpoint: bool,
}

impl TraceSink for VcpuInjectHost<'_> {
    fn record(&mut self, record: TraceRecord) {
        self.trace.record(record);
    }
}

impl InjectHost for VcpuInjectHost<'_> {
    fn set_cr2(&mut self, cr2: u64) {
        self.regs.cr2 = cr2;
    }

    fn merge_dr6(&mut self, bits: u64) {
        merge_dr6(bits);
    }

    // Attached, for the #BP being injected, means: the debugger set a breakpoint at its
    // address. A guest's own INT3 elsewhere is delivered as if no debugger were there.
    fn debugger_attached(&self) -> bool {
        self.debugger_breakpoint
    }

    // The pause is the caller's: `InjectOutcome::PausedForDebugger` ends the run with
    // `RunEnd::Debug` (exits.rs), and the stub reports the stop to gdb.
    fn pause_for_debugger(&mut self) {}

    fn cet_supported(&self) -> bool {
        self.cet
    }
}

/// Applies a delivered #DB's `bits` to DR6. l1-hv never uses the debug registers, so the
/// hardware DR6 is the guest's.
pub fn merge_dr6(bits: u64) {
    // SAFETY: DR6 is only observed by the guest.
    unsafe {
        x86::debugregs::dr6_write(x86::debugregs::Dr6::from_bits_truncate(
            nvmx::event::dr6_after_delivery(x86::debugregs::dr6().bits() as u64, bits) as usize,
        ))
    };
}
