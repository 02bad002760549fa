//! VM-exit dispatch for L2 guests: re-inject intercepted exceptions, queue the interrupts and
//! NMIs of a kernel guest's machine, emulate its device ports, serve the test images'
//! hypercalls, and contain everything else by stopping the guest with a one-line reason.

use super::config::Boot;
use super::cpu;
use super::debug::{self, DebugStop};
use super::inject_host::VcpuInjectHost;
use super::io;
use super::machine::Machine;
use super::platform;
use super::vcpu::{Guest, Observation, RunEnd, Stop};
use crate::arch;
use crate::nested::{self, entry, InstructionEnd, L2Context, L2Memory};
use crate::Host;
use devices::apic_base::Write as ApicWrite;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::GuestRegisters;
use l2_abi::{Hypercall, MAX_WRITE, NO_ERROR_CODE, STATUS_BAD_ARGUMENT, STATUS_OK};
use nvmx::event::{Event, InfoFlags, InterruptionInfo, InterruptionType};
use nvmx::exit_reason::{self, ExitReason};
use nvmx::inject::{self, InjectOutcome, Running};
use nvmx::insn::VmxCapabilities;
use nvmx::intr::{self, ActivityState, Interruptibility};
use nvmx::nested::{guest_cpl, MsrBus, MsrFault};
use nvmx::retire;
use shadow_vmcs::Vmcs;
use x86::msr::IA32_APIC_BASE;
use x86::vmx::vmcs::{guest, ro};

/// What the run loop does after an exit.
pub enum Next {
    /// Enter the guest again.
    Resume,
    /// The guest's run is over.
    End(RunEnd),
}

/// Handles the exit just taken by `guest`, whose VMCS is `vmcs`.
pub fn handle(host: &Host, guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let reason = ExitReason(vmcs.read(ro::EXIT_REASON) as u32);
    if let Some(count) = guest.exits.get_mut(usize::from(reason.basic())) {
        *count += 1;
    }
    // An NMI or interrupt whose delivery this exit interrupted goes back into the queue, any
    // other event is delivered again (SDM 28.2.4); an exception exit combines with it instead.
    if reason.basic() != exit_reason::EXCEPTION_OR_NMI {
        if let Some(machine) = guest.machine.as_mut() {
            if let Some(event) = intr::requeue_interrupted(&mut machine.events, vmcs) {
                inject::redeliver(vmcs, &event);
            }
        }
    }
    match reason.basic() {
        // VM-entry failures report these basic reasons, always with bit 31 (SDM 27.8).
        exit_reason::ENTRY_FAILURE_GUEST_STATE
        | exit_reason::ENTRY_FAILURE_MSR_LOADING
        | exit_reason::ENTRY_FAILURE_MACHINE_CHECK => {
            Next::End(RunEnd::Stopped(Stop::EntryFailed {
                error: u64::from(reason.0),
            }))
        }
        exit_reason::EXCEPTION_OR_NMI => {
            debug::debug_exception(guest, vmcs).unwrap_or_else(|| reinject(guest, vmcs))
        }
        exit_reason::EXTERNAL_INTERRUPT => external_interrupt(guest, vmcs),
        // The assist before the next entry injects what the guest can now take.
        exit_reason::INTERRUPT_WINDOW | exit_reason::NMI_WINDOW => Next::Resume,
        exit_reason::HLT if guest.machine.is_some() => halt(guest, vmcs),
        exit_reason::IO_INSTRUCTION if guest.machine.is_some() => io::handle(guest, vmcs),
        exit_reason::XSETBV => emulated(guest, vmcs, |g, v| cpu::xsetbv(&g.regs, guest_cpl(v))),
        exit_reason::TRIPLE_FAULT => Next::End(RunEnd::TripleFault),
        exit_reason::VMCALL => hypercall(guest, vmcs),
        exit_reason::CPUID => emulated(guest, vmcs, |g, _| cpu::cpuid_registers(&mut g.regs)),
        // Only the MSRs l1-hv emulates exit (its bitmap passes the rest through).
        exit_reason::RDMSR | exit_reason::WRMSR => {
            let write = reason.basic() == exit_reason::WRMSR;
            let Some(mut msrs) = KernelMsrs::new(host, guest.config.boot, guest.machine.as_mut())
            else {
                return Next::End(RunEnd::Stopped(Stop::Internal("MSR bitmap is not a page")));
            };
            let done = msr_instruction(&mut guest.regs, |index, value| match write {
                true => msrs.write_emulated(index, value, vmcs).map(|()| None),
                false => msrs.read_emulated(index, vmcs).map(Some),
            });
            if let Some(why) = msrs.internal {
                return Next::End(RunEnd::Stopped(Stop::Internal(why)));
            }
            match done {
                Ok(()) => {
                    retire::retire(vmcs);
                    Next::Resume
                }
                Err(event) => inject(guest, vmcs, event, None),
            }
        }
        exit_reason::CR_ACCESS => emulated(guest, vmcs, |g, v| {
            let in_vmx = g.nested.engine.vmx().in_vmx_operation();
            cpu::mov_to_cr(
                &mut L2Context {
                    regs: &mut g.regs,
                    vmcs: v,
                    memory: L2Memory(&mut g.ram),
                },
                &host.caps,
                in_vmx,
            )
        }),
        exit_reason::VMXON
        | exit_reason::VMCLEAR
        | exit_reason::VMPTRLD
        | exit_reason::VMPTRST
        | exit_reason::VMREAD
        | exit_reason::VMWRITE
        | exit_reason::VMXOFF
        | exit_reason::VMLAUNCH
        | exit_reason::VMRESUME
        | exit_reason::INVEPT
        | exit_reason::INVVPID => vmx_instruction(host, guest, vmcs, reason.basic()),
        exit_reason::EPT_VIOLATION => {
            let gpa = vmcs.read(ro::GUEST_PHYSICAL_ADDR_FULL);
            Next::End(RunEnd::Stopped(Stop::EptViolation {
                gpa,
                rip: vmcs.read(guest::RIP),
            }))
        }
        exit_reason::MONITOR_TRAP_FLAG if guest.debug.is_some() => debug::stepped(guest, vmcs),
        exit_reason::MOV_DR if guest.debug.is_some() => debug::mov_dr(guest, vmcs),
        exit_reason::PREEMPTION_TIMER if guest.debug.is_some() => debug::tick(vmcs),
        // A kernel's timer only brings it back to drain l1-hv's console (`Machine::before_entry`).
        exit_reason::PREEMPTION_TIMER if guest.machine.is_some() => Next::Resume,
        exit_reason::PREEMPTION_TIMER => Next::End(RunEnd::Stopped(Stop::Runaway {
            rip: vmcs.read(guest::RIP),
        })),
        _ => Next::End(RunEnd::Stopped(Stop::Unhandled {
            reason,
            rip: vmcs.read(guest::RIP),
        })),
    }
}

/// An exception l1-hv intercepted for itself: put it back, exactly as hardware would have
/// delivered it, combined with an event whose delivery it interrupted (SDM 27.2.4, Table 6-5).
/// An NMI exit (NMI exiting, a kernel guest forwarding everything) queues the NMI instead.
fn reinject(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let Some(event) = Event::from_exit(vmcs) else {
        return Next::End(RunEnd::Stopped(Stop::Internal(
            "exception exit without valid interruption information",
        )));
    };
    if event.kind == InterruptionType::Nmi {
        if let Some(machine) = guest.machine.as_mut() {
            crate::arch::idt::unblock_nmis();
            machine.events.raise_nmi();
            return Next::Resume;
        }
    }
    // A fault in an IRET that had unblocked NMIs: the handler it returns from is still running
    // when the fault is re-delivered, so virtual-NMI blocking is restored (SDM 28.2.3, 27.7.1.2).
    let info = InterruptionInfo(vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32);
    if guest.machine.is_some()
        && info.0 & InfoFlags::NMI_UNBLOCKING_DUE_TO_IRET.bits() != 0
        && !event.is_hardware(x86::irq::DOUBLE_FAULT_VECTOR)
    {
        (Interruptibility::read(vmcs) | Interruptibility::NMI).write(vmcs);
    }
    let during = Event::from_idt_vectoring(vmcs);
    inject(guest, vmcs, event, during)
}

/// An external interrupt, acknowledged on exit (its vector in the exit interruption
/// information): a kernel guest's goes into its queue; a test image takes no interrupts, so one
/// left over by an earlier guest's devices is ended and dropped.
fn external_interrupt(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let info = InterruptionInfo(vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32);
    match guest.machine.as_mut() {
        Some(machine) if info.valid() => {
            machine.events.raise_interrupt(info.vector());
        }
        _ => platform::end_of_interrupt(),
    }
    Next::Resume
}

/// HLT of a kernel guest: it has retired; with an event the guest can take now, that event
/// ends the halt at this very entry, otherwise the guest waits in the HLT activity state for
/// the next interrupt or NMI, which exits to l1-hv and is injected (SDM 27.7.1 "HLT").
/// Retiring HLT ends an STI shadow it ran in (`sti; hlt` is how a kernel idles), which VM entry
/// requires for the HLT activity state (SDM 27.3.1.5).
fn halt(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    retire::retire(vmcs);
    let Some(machine) = guest.machine.as_ref() else {
        return Next::Resume;
    };
    if !intr::wakes_from_hlt(&machine.events, vmcs) {
        ActivityState::Hlt.write(vmcs);
    }
    Next::Resume
}

/// An instruction l1-hv emulates for L2: on success it retires (RIP moves past it, with the
/// single-step trap and interrupt-shadow effects of `nvmx::retire`), else its exception is
/// delivered to L2 (through the same injection routine as every other event).
fn emulated(
    guest: &mut Guest,
    vmcs: &mut CurrentVmcs,
    emulate: impl FnOnce(&mut Guest, &mut CurrentVmcs) -> Result<(), Event>,
) -> Next {
    match emulate(guest, vmcs) {
        Ok(()) => {
            retire::retire(vmcs);
            Next::Resume
        }
        Err(event) => inject(guest, vmcs, event, None),
    }
}

/// The MSRs outside the VMCSs, as nvmx's MSR placement asks for them (`nvmx::nested::MsrBus`):
/// the processor's, and those l1-hv's MSR bitmap makes L2 exit on — IA32_APIC_BASE of a kernel
/// guest in its machine (`devices::apic_base`), the rest as `cpu::rdmsr`/`cpu::wrmsr` answer.
/// One view for L2's own accesses, L3's that its guest hypervisor lets through, and vmcs12's
/// MSR areas: all see the same machine.
pub(crate) struct KernelMsrs<'a> {
    bitmap: &'a [u8; 4096],
    offered: &'a VmxCapabilities,
    machine: Option<&'a mut Machine>,
    /// Why an access could not be carried out (reported to nvmx as #GP): the guest stops.
    pub(crate) internal: Option<&'static str>,
}

impl<'a> KernelMsrs<'a> {
    /// The MSRs of a guest of kind `boot` with `machine`; `None` if its MSR bitmap is not a page.
    pub(crate) fn new(
        host: &'a Host,
        boot: Boot,
        machine: Option<&'a mut Machine>,
    ) -> Option<Self> {
        Some(KernelMsrs {
            bitmap: host.msr_bitmaps.of(boot).bytes().try_into().ok()?,
            offered: &host.offered,
            machine,
            internal: None,
        })
    }
}

impl MsrBus for KernelMsrs<'_> {
    fn l2_bitmap(&self) -> &[u8; 4096] {
        self.bitmap
    }

    fn read_hardware(&mut self, msr: u32) -> Result<u64, MsrFault> {
        arch::msr::read(msr).map_err(|_| MsrFault)
    }

    fn write_hardware(&mut self, msr: u32, value: u64) -> Result<(), MsrFault> {
        // SAFETY: L2 may write this MSR directly (l1-hv's bitmap passes it through), so it is
        // none that l1-hv depends on.
        unsafe { arch::msr::write(msr, value) }.map_err(|_| MsrFault)
    }

    fn read_emulated(&mut self, msr: u32, vmcs: &mut impl Vmcs) -> Result<u64, MsrFault> {
        match self.machine.as_deref() {
            Some(machine) if msr == IA32_APIC_BASE => Ok(machine.apic_base.read()),
            _ => cpu::rdmsr(msr, vmcs, self.offered).map_err(|_| MsrFault),
        }
    }

    fn write_emulated(
        &mut self,
        msr: u32,
        value: u64,
        vmcs: &mut impl Vmcs,
    ) -> Result<(), MsrFault> {
        let Some(machine) = self
            .machine
            .as_deref_mut()
            .filter(|_| msr == IA32_APIC_BASE)
        else {
            return cpu::wrmsr(msr, value, vmcs).map_err(|_| MsrFault);
        };
        // CPUID.80000008H:EAX[7:0] is the physical-address width.
        let max_phys_bits = core::arch::x86_64::__cpuid(0x8000_0008).eax as u8;
        match machine.apic_base.write(value, max_phys_bits) {
            ApicWrite::Fault => Err(MsrFault),
            ApicWrite::SoftwareDisable => {
                platform::software_disable_apic();
                Ok(())
            }
            ApicWrite::Hardware(value) if platform::set_apic_base(value) => Ok(()),
            ApicWrite::Hardware(_) => {
                self.internal =
                    Some("the machine cannot return its APIC from x2APIC to xAPIC mode");
                Err(MsrFault)
            }
        }
    }
}

/// RDMSR/WRMSR with ECX and EDX:EAX in `regs`, carried out by `access` (the MSR's index, the
/// value a WRMSR writes; `Ok(Some)`: the value an RDMSR read, into EDX:EAX). `Err`: the #GP(0)
/// the instruction raises instead; the caller retires the instruction or delivers the fault.
pub(crate) fn msr_instruction(
    regs: &mut GuestRegisters,
    access: impl FnOnce(u32, u64) -> Result<Option<u64>, MsrFault>,
) -> Result<(), Event> {
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    match access(regs.rcx as u32, value) {
        Ok(read) => {
            if let Some(read) = read {
                (regs.rax, regs.rdx) = (read & 0xffff_ffff, read >> 32);
            }
            Ok(())
        }
        Err(MsrFault) => Err(Event::hardware_exception(
            x86::irq::GENERAL_PROTECTION_FAULT_VECTOR,
            0,
        )),
    }
}

/// A VMX instruction of an L2 guest hypervisor.
fn vmx_instruction(host: &Host, guest: &mut Guest, vmcs: &mut CurrentVmcs, reason: u16) -> Next {
    let vmcs01_phys = guest.vmcs_region.phys();
    let mut cx = L2Context {
        regs: &mut guest.regs,
        vmcs,
        memory: L2Memory(&mut guest.ram),
    };
    match nested::emulate_instruction(&mut guest.nested, &mut cx, reason, vmcs01_phys) {
        // The nested engine moved RIP past the instruction.
        InstructionEnd::Resume => {
            retire::complete(vmcs);
            Next::Resume
        }
        InstructionEnd::Fault(event) => inject(guest, vmcs, event, None),
        InstructionEnd::Enter { launch } => match entry::enter_l3(host, guest, vmcs, launch) {
            entry::Entered::Resume => Next::Resume,
            entry::Entered::End(end) => Next::End(end),
        },
    }
}

/// Delivers `event` to L2 through `nvmx::inject`, combined with `during` (Table 6-5).
pub(super) fn inject(
    guest: &mut Guest,
    vmcs: &mut CurrentVmcs,
    event: Event,
    during: Option<Event>,
) -> Next {
    let debugger_breakpoint = debug::owns_breakpoint(guest, vmcs, &event);
    let mut host = VcpuInjectHost {
        regs: &mut guest.regs,
        trace: &mut guest.trace,
        cet: guest.cet,
        debugger_breakpoint,
    };
    let outcome = inject::inject_event(vmcs, &mut host, Running::L2, event, during);
    if let (InjectOutcome::Injected { .. }, Some(machine)) = (outcome, guest.machine.as_mut()) {
        machine
            .forwarded
            .count(&Event::from_entry(vmcs).unwrap_or(event));
    }
    match outcome {
        InjectOutcome::Injected { requeue: None } => Next::Resume,
        InjectOutcome::PausedForDebugger => Next::End(RunEnd::Debug(DebugStop::Breakpoint)),
        // A displaced NMI or interrupt is never lost: the machine's queue delivers it later.
        InjectOutcome::Injected {
            requeue: Some(displaced),
        } => match guest.machine.as_mut().map(|m| m.events.requeue(displaced)) {
            Some(Ok(())) => Next::Resume,
            _ => Next::End(RunEnd::Stopped(Stop::Displaced {
                vector: displaced.vector,
            })),
        },
        InjectOutcome::TripleFault => Next::End(RunEnd::TripleFault),
        InjectOutcome::Reflected(_) => {
            Next::End(RunEnd::Stopped(Stop::Internal("L2 event reflected")))
        }
    }
}

/// The VMCALL hypercall ABI of `l2-abi`.
fn hypercall(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let number = guest.regs.rax;
    let Some(call) = accepted_hypercall(number, vmcs) else {
        let rip = vmcs.read(guest::RIP);
        return Next::End(RunEnd::Stopped(Stop::BadHypercall { number, rip }));
    };
    let status = match call {
        Hypercall::Nop => NOP_STATUS,
        Hypercall::Done => return Next::End(RunEnd::Done(guest.regs.rdi)),
        Hypercall::Write => {
            let (gpa, len) = (guest.regs.rdi, guest.regs.rsi);
            let name = guest.config.name;
            match guest.ram_slice(gpa, len.min(MAX_WRITE)) {
                Some(bytes) => {
                    let text = core::str::from_utf8(bytes).unwrap_or("<not UTF-8>");
                    crate::println!("guest {name}: {text}");
                    STATUS_OK
                }
                None => STATUS_BAD_ARGUMENT,
            }
        }
        Hypercall::Observe => {
            let regs = &guest.regs;
            let error_code = (regs.rsi != NO_ERROR_CODE).then_some(regs.rsi);
            guest.observations.push(Observation {
                vector: regs.rdi,
                error_code,
                cr2: regs.rdx,
            });
            STATUS_OK
        }
    };
    guest.regs.rax = status;
    retire::retire(vmcs);
    Next::Resume
}

/// The hypercall numbered `number`, if it is one and the caller may make it: only the guest
/// kernel may call l1-hv.
pub(super) fn accepted_hypercall(number: u64, vmcs: &CurrentVmcs) -> Option<Hypercall> {
    Hypercall::from_number(number).filter(|_| guest_cpl(vmcs) == 0)
}

/// What `Nop` answers: it does nothing else.
pub(super) const NOP_STATUS: u64 = STATUS_OK;
