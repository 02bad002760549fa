//! An exit of L3 (vmcs02 current): `nvmx::nested::decide_l3_exit` says whose it is, l1-hv's
//! needs first; this adapter acts on the decision — reflect it to the guest hypervisor as a
//! virtual VM exit, or handle it in l1-hv: an EPT violation in the composed EPT that the guest
//! hypervisor's EPT allows (fill EPT02), an exception only l1-hv intercepted (re-inject into
//! L3), an external interrupt or port I/O of the machine, an interrupt or NMI window l1-hv armed
//! for the machine's pending events, an RDMSR/WRMSR the guest hypervisor lets through (performed
//! for L3).

use super::{complete, L2Context, L2Memory, Nested};
use crate::guest::inject_host::VcpuInjectHost;
use crate::guest::{msr_instruction, Guest, KernelMsrs, RunEnd, Stop};
use crate::Host;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::instructions::VmFail;
use l1_vmx::GuestRegisters;
use nvmx::ept::{
    compose, reflected_qualification, walk, Ept12, EptFault, HostMapping, Permissions,
};
use nvmx::event::{Event, InterruptionInfo};
use nvmx::exit::EptViolation;
use nvmx::exit_reason::{self, ExitReason};
use nvmx::inject::{inject_event, redeliver, InjectOutcome, Running};
use nvmx::insn::Outcome;
use nvmx::intr::{self, AssistOutcome, L3Outcome};
use nvmx::nested::{decide_l3_exit, l3_rdmsr, l3_wrmsr, Decision, ExitFacts, ExitFields, L1Exit};
use nvmx::retire;
use nvmx::route::InterceptControls;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::control;
use x86::vmx::vmcs::{guest, ro};

/// What the run loop does after an L3 exit.
pub enum Handled {
    /// Enter the current VMCS's guest (L3 again, or L2 after a reflection).
    Resume,
    /// The guest cannot go on.
    End(RunEnd),
}

/// Handles the exit L3 just took; vmcs02 is current.
// Not inlined into the run loop or the L2 exit dispatch: the nested paths inline many vmcs12
// accesses, which would otherwise weigh on every other exit path.
#[inline(never)]
pub fn handle(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs) -> Handled {
    let reason = ExitReason(vmcs.read(ro::EXIT_REASON) as u32);
    if let Some(count) = g.nested.stats.l3_exits.get_mut(usize::from(reason.basic())) {
        *count += 1;
    }
    let mut facts = ExitFacts::from_vmcs02(vmcs, || gprs(&g.regs, vmcs));
    g.nested.engine.l3_ran(vmcs, &mut facts);
    let memory = L2Memory(&mut g.ram);
    let Some(vmcs12) = g.nested.engine.vmx().current_vmcs12() else {
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "L3 ran without a current vmcs12",
        )));
    };
    match decide_l3_exit(&facts, vmcs12, &memory) {
        // A VM-entry failure of vmcs02 (reason bit 31) too: the processor checks vmcs02's guest
        // state itself (the engine does not re-check the state an exit saved), and the guest
        // hypervisor gets the failure as the processor reports it (SDM 27.8).
        Decision::ReflectToL2 => reflect(host, g, vmcs, ExitFields::FromVmcs02),
        Decision::L1Handles(L1Exit::Exception) => reinject(host, g, vmcs),
        Decision::L1Handles(L1Exit::Ept02Violation) => ept_violation(host, g, vmcs),
        // A kernel guest's interrupt goes into its pending events (acknowledged on exit, it
        // must not be lost); a test image's is a stray one, ended and dropped.
        Decision::L1Handles(L1Exit::ExternalInterrupt) => {
            redeliver_interrupted(vmcs);
            let info = InterruptionInfo(vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32);
            match g.machine.as_mut() {
                Some(machine) if info.valid() => {
                    machine.events.raise_interrupt(info.vector());
                }
                _ => crate::guest::end_of_interrupt(),
            }
            Handled::Resume
        }
        // A window l1-hv armed for its own pending events is open: the assist acts on it now,
        // also when the queue has emptied since (it then clears the window).
        Decision::L1Handles(L1Exit::Window) => deliver_pending(host, g, vmcs),
        Decision::L1Handles(L1Exit::Msr) => {
            msr(host, g, vmcs, reason.basic() == exit_reason::WRMSR)
        }
        Decision::L1Handles(L1Exit::PortIo) if g.machine.is_some() => {
            match crate::guest::l3_port_io(g, vmcs) {
                None => Handled::Resume,
                Some(end) => Handled::End(end),
            }
        }
        // l1-hv's runaway guard (`entry::enter_l3`), on L3's time.
        Decision::L1Handles(L1Exit::PreemptionTimer) => {
            Handled::End(RunEnd::Stopped(Stop::Runaway {
                rip: vmcs.read(guest::RIP),
            }))
        }
        // L3 ran on l1-hv's EPT for L2: the address is outside what L2 has.
        Decision::L1Handles(L1Exit::L2EptViolation) => {
            Handled::End(RunEnd::Stopped(Stop::EptViolation {
                gpa: vmcs.read(ro::GUEST_PHYSICAL_ADDR_FULL),
                rip: vmcs.read(guest::RIP),
            }))
        }
        Decision::L1Handles(L1Exit::PortIo | L1Exit::Other) => {
            Handled::End(RunEnd::Stopped(Stop::Unhandled {
                reason,
                rip: vmcs.read(guest::RIP),
            }))
        }
    }
}

/// The processor failed the VM entry of vmcs02 (still current). VMfailValid of the guest
/// hypervisor's VMLAUNCH/VMRESUME: the instruction completes as VMfailValid with the
/// processor's error number (SDM 31.2) and L2 continues after it. VMfailInvalid, or a failed
/// re-entry after l1-hv handled an exit of L3, is l1-hv's bug: the guest stops.
#[inline(never)]
pub fn entry_failed(g: &mut Guest, vmcs: &mut CurrentVmcs, fail: VmFail) -> Handled {
    if matches!(fail, VmFail::Invalid) {
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "VMfailInvalid entering vmcs02",
        )));
    }
    let error = vmcs.read(ro::VM_INSTRUCTION_ERROR);
    let vmcs01_phys = g.vmcs_region.phys();
    // SAFETY: vmcs02 is current: its entry failed.
    let mut hw = unsafe { g.nested.hardware(vmcs01_phys) };
    match g.nested.engine.vmcs02_entry_failed(&mut hw, error) {
        Ok(error) => {
            g.nested.in_l3 = false;
            let mut cx = L2Context {
                regs: &mut g.regs,
                vmcs,
                memory: L2Memory(&mut g.ram),
            };
            complete(&mut cx, Outcome::FailValid(error));
            Handled::Resume
        }
        Err(_) => Handled::End(RunEnd::Stopped(Stop::EntryFailed { error })),
    }
}

/// An exception vmcs12 does not intercept, which l1-hv intercepted for itself: deliver it to
/// L3 as the hardware would have.
fn reinject(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs) -> Handled {
    let (Some(event), during) = (Event::from_exit(vmcs), Event::from_idt_vectoring(vmcs)) else {
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "exception exit without valid interruption information",
        )));
    };
    deliver(host, g, vmcs, event, during)
}

/// RDMSR/WRMSR (`write`) of L3 that vmcs12 does not intercept: performed for L3 where
/// `nvmx::nested::l3_msr` says its MSR is, then retired on vmcs02 (RIP, interrupt shadow,
/// single-step); a #GP(0) the access raises is delivered to L3 instead (SDM 26.1.3: the
/// instruction runs as it would without the guest hypervisor).
fn msr(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs, write: bool) -> Handled {
    let Some(mut msrs) = KernelMsrs::new(host, g.config.boot, g.machine.as_mut()) else {
        return Handled::End(RunEnd::Stopped(Stop::Internal("MSR bitmap is not a page")));
    };
    let done = msr_instruction(&mut g.regs, |index, value| match write {
        true => l3_wrmsr(index, value, vmcs, &mut msrs).map(|()| None),
        false => l3_rdmsr(index, vmcs, &mut msrs).map(Some),
    });
    if let Some(why) = msrs.internal {
        return Handled::End(RunEnd::Stopped(Stop::Internal(why)));
    }
    match done {
        Ok(()) => {
            retire::retire(vmcs);
            Handled::Resume
        }
        Err(fault) => deliver(host, g, vmcs, fault, None),
    }
}

/// Delivers `event` (its delivery having interrupted `during`) to L3 as the hardware would
/// have, through the routing core with the guest hypervisor's controls: a virtual VM exit where
/// vmcs12 intercepts it.
fn deliver(
    host: &Host,
    g: &mut Guest,
    vmcs: &mut CurrentVmcs,
    event: Event,
    during: Option<Event>,
) -> Handled {
    let Some(vmcs12) = g.nested.engine.vmx().current_vmcs12() else {
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "L3 ran without a current vmcs12",
        )));
    };
    let controls = InterceptControls::from_vmcs(vmcs12);
    let mut inject_host = VcpuInjectHost {
        regs: &mut g.regs,
        trace: &mut g.trace,
        cet: g.cet,
        // l1-hv's debugger works in L2's address space; L3's INT3s go by vmcs12 as before.
        debugger_breakpoint: false,
    };
    match inject_event(
        vmcs,
        &mut inject_host,
        Running::L3(&controls),
        event,
        during,
    ) {
        InjectOutcome::Injected { requeue: None } | InjectOutcome::PausedForDebugger => {
            Handled::Resume
        }
        InjectOutcome::Injected {
            requeue: Some(displaced),
        } => Handled::End(RunEnd::Stopped(Stop::Displaced {
            vector: displaced.vector,
        })),
        InjectOutcome::Reflected(info) => reflect(host, g, vmcs, ExitFields::Event(info)),
        InjectOutcome::TripleFault => reflect(
            host,
            g,
            vmcs,
            ExitFields::Event(nvmx::route::triple_fault_exit()),
        ),
    }
}

/// An EPT violation in EPT02: walk the guest hypervisor's EPT for the address; where it maps
/// the page, compose the mapping into EPT02 and retry, else reflect its violation or
/// misconfiguration (SDM 29.3.3).
fn ept_violation(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs) -> Handled {
    let qualification = vmcs.read(ro::EXIT_QUALIFICATION);
    let access = EptViolation::from_qualification(qualification).access;
    let l3_gpa = vmcs.read(ro::GUEST_PHYSICAL_ADDR_FULL);
    let memory = L2Memory(&mut g.ram);
    let nested: &mut Nested = &mut g.nested;
    let Some(vmcs12) = nested.engine.vmx().current_vmcs12() else {
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "L3 ran without a current vmcs12",
        )));
    };
    let ept12 = Ept12::new(
        vmcs12.read(control::EPTP_FULL),
        &host.offered,
        host.phys_addr_bits,
    );
    match walk(&memory, &ept12, l3_gpa, access) {
        Ok(translation) => {
            // EPT01 as L2 has it: its RAM, and for a kernel guest the machine's firmware and
            // device pages l1-hv passes through (an L3 that its guest hypervisor lets reach
            // L2's local APIC reaches the real one, as L2 would).
            let lookup = |l2_gpa: u64| {
                g.ept
                    .translate(l2_gpa)
                    .map(|(host_phys, memory_type)| HostMapping {
                        host_phys,
                        permissions: Permissions::all(),
                        memory_type,
                        ignore_pat: false,
                    })
            };
            let Some(leaf) = compose(&translation, lookup) else {
                return Handled::End(RunEnd::Stopped(Stop::EptViolation {
                    gpa: translation.l2_gpa,
                    rip: vmcs.read(guest::RIP),
                }));
            };
            let Some(l3) = nested.l3.as_mut() else {
                return Handled::End(RunEnd::Stopped(Stop::Internal("L3 ran without vmcs02")));
            };
            if l3.ept02.map_entry(l3_gpa, leaf).is_err() {
                return Handled::End(RunEnd::Stopped(Stop::Internal("out of memory for EPT02")));
            }
            redeliver_interrupted(vmcs);
            Handled::Resume
        }
        Err(EptFault::Violation {
            qualification: walked,
        }) => {
            let fields = ExitFields::Rewritten {
                reason: exit_reason::EPT_VIOLATION.into(),
                qualification: reflected_qualification(walked, qualification),
            };
            reflect(host, g, vmcs, fields)
        }
        Err(EptFault::Misconfiguration) => {
            let fields = ExitFields::Rewritten {
                reason: exit_reason::EPT_MISCONFIGURATION.into(),
                qualification: 0,
            };
            reflect(host, g, vmcs, fields)
        }
    }
}

/// The virtual VM exit: L3's state and the exit information into vmcs12, vmcs01 current again
/// with the guest hypervisor's host state, the shadow VMCS refreshed (SDM 28).
fn reflect(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs, fields: ExitFields) -> Handled {
    let vmcs01_phys = g.vmcs_region.phys();
    // The vector of an exception or NMI exit, for the per-vector counts of exits it cost.
    let exception = match &fields {
        ExitFields::FromVmcs02
            if vmcs.read(ro::EXIT_REASON) as u16 == exit_reason::EXCEPTION_OR_NMI =>
        {
            Some(InterruptionInfo(vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32).vector())
        }
        ExitFields::Event(info) if info.reason == nvmx::route::ExitReason::ExceptionOrNmi => {
            Some(info.interruption_info.vector())
        }
        _ => None,
    };
    let mut memory = L2Memory(&mut g.ram);
    let Some(mut msrs) = KernelMsrs::new(host, g.config.boot, g.machine.as_mut()) else {
        return Handled::End(RunEnd::Stopped(Stop::Internal("MSR bitmap is not a page")));
    };
    // SAFETY: L3 exited, so vmcs02 is current.
    let mut hw = unsafe { g.nested.hardware(vmcs01_phys) };
    let nested: &mut Nested = &mut g.nested;
    let exited =
        nested
            .engine
            .l3_exit(&mut hw, fields, &mut memory, host.phys_addr_bits, &mut msrs);
    if let Some(why) = msrs.internal {
        return Handled::End(RunEnd::Stopped(Stop::Internal(why)));
    }
    if exited.is_err() {
        // l1-hv does not write the abort indicator: the guest hypervisor stops (SDM 28.7).
        return Handled::End(RunEnd::Stopped(Stop::Internal(
            "VMX abort on a nested VM exit",
        )));
    }
    nested.in_l3 = false;
    nested.stats.reflected(exception);
    Handled::Resume
}

/// An exit l1-hv handled itself may have interrupted an event's delivery: deliver it again.
fn redeliver_interrupted(vmcs: &mut CurrentVmcs) {
    if let Some(event) = Event::from_idt_vectoring(vmcs) {
        redeliver(vmcs, &event);
    }
}

/// L3's general-purpose registers in `Gpr` order (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8–R15).
fn gprs(r: &GuestRegisters, vmcs: &CurrentVmcs) -> [u64; 16] {
    [
        r.rax,
        r.rcx,
        r.rdx,
        r.rbx,
        vmcs.read(guest::RSP),
        r.rbp,
        r.rsi,
        r.rdi,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
    ]
}

/// Before entering L3: the machine's pending NMIs and interrupts go where the guest
/// hypervisor's controls send them (`nvmx::intr::assist_l3`): a virtual VM exit to the guest
/// hypervisor when vmcs12 intercepts them, else injection into L3.
pub fn deliver_pending(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs) -> Handled {
    let (Some(vmcs12), Some(machine)) =
        (g.nested.engine.vmx().current_vmcs12(), g.machine.as_mut())
    else {
        return Handled::Resume;
    };
    // Interrupts and NMIs only: never the debugger's INT3.
    let mut inject_host = VcpuInjectHost {
        regs: &mut g.regs,
        trace: &mut g.trace,
        cet: g.cet,
        debugger_breakpoint: false,
    };
    match intr::assist_l3(vmcs, vmcs12, &mut inject_host, &mut machine.events) {
        L3Outcome::VmExit(info) => reflect(host, g, vmcs, ExitFields::Event(info)),
        L3Outcome::Assist(AssistOutcome::Injected { event, .. }) => {
            machine.forwarded.count(&event);
            Handled::Resume
        }
        L3Outcome::Assist(_) => Handled::Resume,
    }
}
