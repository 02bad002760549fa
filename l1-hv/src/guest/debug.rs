//! l1-hv's debugger: a gdb remote stub for one guest (module option `gdb=com2`), served on the
//! second serial port. The protocol is the `gdbstub` crate's and the target logic the
//! host-tested `guest-gdb` crate's; this file is the glue to the VMCS, guest RAM and the run
//! loop, plus the exit hooks that tell the debugger's events from the guest's own
//! (docs/debugging.md).
//!
//! While gdb is attached l1-hv intercepts #BP and #DB (exception bitmap), MOV DR (so the guest
//! keeps its own view of DR0–DR3/DR7 while the hardware holds the debugger's), and runs the
//! VMX-preemption timer so that a guest that never exits still lets l1-hv look for gdb's
//! Ctrl-C. Single steps use the monitor trap flag (SDM 26.5.2), which the guest cannot see;
//! where the CPU lacks it (Bochs 2.7's models) they fall back on RFLAGS.TF and the single-step
//! #DB it raises, which the guest could notice only by reading RFLAGS during that one step.
//! Detach undoes all of it.

use super::exits::Next;
use super::vcpu::{Guest, RunEnd, Stop};
use crate::nested::{L2Context, L2Memory};
use crate::{println, Host};
use devices::power::PowerEvent;
use guest_gdb::{
    Connection, ConnectionExt, DebugState, Debuggee, Paging, Ran, Resume, SegmentChanged, Session,
    SessionEnd, X86_64CoreRegs,
};
use l1_vmx::current_vmcs::CurrentVmcs;
use nvmx::event::{Event, InterruptionType};
use nvmx::exit::{DrDirection, MovDr};
use nvmx::insn::{Gpr, GuestOperands};
use shadow_vmcs::Vmcs;
use x86::bits64::rflags::RFlags;
use x86::controlregs::Cr4;
use x86::debugregs;
use x86::io::{inb, outb};
use x86::irq::{
    BREAKPOINT_VECTOR, DEBUG_VECTOR, GENERAL_PROTECTION_FAULT_VECTOR, INVALID_OPCODE_VECTOR,
};
use x86::vmx::vmcs::control::{EntryControls, ExitControls, PinbasedControls, PrimaryControls};
use x86::vmx::vmcs::{control, guest, ro};

/// Guest time between two looks at COM2 for gdb's Ctrl-C (TSC ticks; one instruction each on
/// Bochs): a quarter of a second at Bochs' 4 M instructions per second, a fraction of a
/// millisecond on hardware.
const POLL_TSC_TICKS: u64 = 1_000_000;

/// Why the vCPU stopped for the debugger (`RunEnd::Debug`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugStop {
    /// An INT3 of the debugger's: `nvmx::inject` paused instead of injecting the #BP.
    Breakpoint,
    /// A #DB from the debugger's debug registers (DR6-format bits of the exit qualification).
    Debug {
        /// B0–B3 as the exit qualification reports them (SDM 28.2.1).
        dr6: u64,
    },
    /// One instruction retired under the monitor trap flag (or was emulated by l1-hv).
    Step,
    /// The preemption timer expired: time to look for Ctrl-C.
    Tick,
}

/// What l1-hv keeps for a guest while gdb is attached.
#[derive(Debug, Default)]
pub struct GuestDebug {
    /// The debugger's breakpoints (shared with the stub).
    pub state: DebugState,
    /// The guest's own DR0–DR3 and DR7 (MOV DR exits read and write these; the hardware holds
    /// the debugger's while attached).
    guest_dr: [u64; 4],
    guest_dr7: u64,
    /// The control bits attach set, cleared again on detach, and the timer value before.
    added: Added,
    /// The CPU has the monitor trap flag; without it (Bochs 2.7) steps use RFLAGS.TF.
    mtf: bool,
    /// A step by RFLAGS.TF is under way: the guest's own TF before it.
    tf_step: Option<bool>,
}

/// Control words as attach found them (`Saved`), and the bits it set in them (`Added`): detach
/// clears only those, because l1-hv changes other bits while the guest runs (the IA-32e mode
/// guest entry control when a kernel enables long mode) and those must stay as they are.
#[derive(Debug, Default)]
struct Saved {
    exception_bitmap: u64,
    pin: u64,
    primary: u64,
    exit: u64,
    entry: u64,
    timer: u64,
}

type Added = Saved;

/// The control fields attach changes.
const CONTROL_FIELDS: [u32; 5] = [
    control::EXCEPTION_BITMAP,
    control::PINBASED_EXEC_CONTROLS,
    control::PRIMARY_PROCBASED_EXEC_CONTROLS,
    control::VMEXIT_CONTROLS,
    control::VMENTRY_CONTROLS,
];

impl Saved {
    fn words(&self) -> [u64; 5] {
        [
            self.exception_bitmap,
            self.pin,
            self.primary,
            self.exit,
            self.entry,
        ]
    }

    fn read(vmcs: &CurrentVmcs) -> Self {
        let [exception_bitmap, pin, primary, exit, entry] = CONTROL_FIELDS.map(|f| vmcs.read(f));
        Self {
            exception_bitmap,
            pin,
            primary,
            exit,
            entry,
            timer: vmcs.read(guest::VMX_PREEMPTION_TIMER_VALUE),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Exit hooks (called from exits.rs and vcpu.rs; all return quickly when no debugger is on).

/// Whether the #BP being injected is an INT3 of the debugger's at the guest's RIP (for a #BP
/// exit, RIP is the INT3's address: SDM 28.2.2 leaves RIP at the instruction that caused the
/// exception exit).
pub fn owns_breakpoint(guest: &Guest, vmcs: &CurrentVmcs, event: &Event) -> bool {
    guest.debug.as_ref().is_some_and(|d| {
        event.vector == BREAKPOINT_VECTOR
            && event.kind == InterruptionType::SoftwareException
            && d.state.owns_breakpoint(vmcs.read(guest::RIP))
    })
}

/// A #DB exit whose qualification names a debug register of the debugger's: stop for it
/// (nothing is injected, DR6 untouched: a #DB that exits does not write DR6, SDM 28.2.1).
/// Any other #DB (the guest's own TF or ICEBP) is re-injected as before.
/// A step by RFLAGS.TF ends with a #DB whose qualification has BS (SDM 18.3.1.4); it is the
/// debugger's, not the guest's.
pub fn debug_exception(guest: &Guest, vmcs: &CurrentVmcs) -> Option<Next> {
    let debug = guest.debug.as_ref()?;
    let event = Event::from_exit(vmcs)?;
    if !event.is_hardware(DEBUG_VECTOR) {
        return None;
    }
    let dr6 = vmcs.read(ro::EXIT_QUALIFICATION);
    if debug.state.hit(dr6).is_some() {
        return Some(Next::End(RunEnd::Debug(DebugStop::Debug { dr6 })));
    }
    (debug.tf_step.is_some() && dr6 & x86::debugregs::Dr6::BS.bits() as u64 != 0)
        .then_some(Next::End(RunEnd::Debug(DebugStop::Step)))
}

/// The monitor trap flag's exit: the step is done; MTF goes off again.
pub fn stepped(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    end_step(guest, vmcs);
    Next::End(RunEnd::Debug(DebugStop::Step))
}

/// The preemption timer expired while gdb is attached: rearm it and let the stub look at COM2.
pub fn tick(vmcs: &mut CurrentVmcs) -> Next {
    vmcs.write(guest::VMX_PREEMPTION_TIMER_VALUE, poll_ticks());
    Next::End(RunEnd::Debug(DebugStop::Tick))
}

/// Where a single step starts: RIP before the entry, when the debugger steps L2.
pub fn step_origin(guest: &Guest, vmcs: &CurrentVmcs) -> Option<u64> {
    let stepping = guest.debug.as_ref()?.state.stepping && !guest.nested.in_l3;
    stepping.then(|| vmcs.read(guest::RIP))
}

/// An instruction l1-hv emulated (CPUID, VMCALL, port I/O, …) retires without the guest
/// executing it, so no MTF exit follows it (SDM 26.5.2 counts only instructions the guest
/// executes): a RIP that moved while l1-hv handled the exit is the end of the step.
pub fn step_retired(guest: &mut Guest, vmcs: &mut CurrentVmcs, origin: Option<u64>) -> bool {
    let retired = origin.is_some_and(|rip| !guest.nested.in_l3 && vmcs.read(guest::RIP) != rip);
    if retired {
        end_step(guest, vmcs);
    }
    retired
}

/// Arms one step: MTF, or RFLAGS.TF (remembering the guest's own TF) without it.
fn begin_step(debug: &mut GuestDebug, vmcs: &mut CurrentVmcs) {
    debug.state.stepping = true;
    if debug.mtf {
        let primary = vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
        vmcs.write(
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            primary | u64::from(PrimaryControls::MONITOR_TRAP_FLAG.bits()),
        );
    } else {
        let rflags = vmcs.read(guest::RFLAGS);
        debug.tf_step = Some(rflags & TF != 0);
        vmcs.write(guest::RFLAGS, rflags | TF);
    }
}

const TF: u64 = RFlags::FLAGS_TF.bits();

/// Disarms a step, however it ended (MTF exit, TF trap, an emulated instruction, a breakpoint
/// or a tick on the way).
fn end_step(guest: &mut Guest, vmcs: &mut CurrentVmcs) {
    let Some(debug) = guest.debug.as_mut() else {
        return;
    };
    debug.state.stepping = false;
    if debug.mtf {
        let primary = vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
        vmcs.write(
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            primary & !u64::from(PrimaryControls::MONITOR_TRAP_FLAG.bits()),
        );
    }
    if let Some(guest_tf) = debug.tf_step.take() {
        let rflags = vmcs.read(guest::RFLAGS) & !TF;
        vmcs.write(guest::RFLAGS, rflags | if guest_tf { TF } else { 0 });
    }
}

/// MOV to or from a debug register while gdb is attached: DR0–DR3 and DR7 are the guest's own
/// copies, DR6 is the hardware's (the debugger's #DBs exit without writing it, SDM 28.2.1).
/// CPL and CR4.DE are checked as the instruction would (SDM vol. 2 "MOV—Move to/from Debug
/// Registers"): #GP at CPL > 0 is taken before the exit, #UD for DR4/DR5 with CR4.DE is ours.
pub fn mov_dr(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let q = MovDr::read(vmcs);
    let cr4 = vmcs.read(guest::CR4);
    let dr = match q.dr {
        4 | 5 if cr4 & Cr4::CR4_DEBUGGING_EXTENSIONS.bits() as u64 != 0 => {
            return super::exits::inject(
                guest,
                vmcs,
                Event::hardware_exception(INVALID_OPCODE_VECTOR, 0),
                None,
            )
        }
        4 => 6,
        5 => 7,
        n => n,
    };
    let mut cx = L2Context {
        regs: &mut guest.regs,
        vmcs,
        memory: L2Memory(&mut guest.ram),
    };
    // Outside 64-bit mode the operand is 32 bits (SDM vol. 2 "MOV DR").
    let mode = cx.mode();
    let wide = mode.long_mode_active && mode.cs_long;
    let debug = guest
        .debug
        .as_mut()
        .expect("MOV DR exiting only while attached");
    if q.direction == DrDirection::FromDr {
        let value = match dr {
            0..=3 => debug.guest_dr[usize::from(dr)],
            // SAFETY: reading DR6 has no side effect.
            6 => unsafe { debugregs::dr6() }.bits() as u64,
            _ => debug.guest_dr7,
        };
        let value = if wide { value } else { value & 0xffff_ffff };
        cx.set_register(q.gpr, value);
    } else {
        let value = cx.register(q.gpr);
        let value = if wide { value } else { value & 0xffff_ffff };
        match dr {
            0..=3 => debug.guest_dr[usize::from(dr)] = value,
            // Bits 63:32 of DR6 and DR7 must be zero (#GP otherwise).
            6 | 7 if value >> 32 != 0 => {
                return super::exits::inject(
                    guest,
                    vmcs,
                    Event::hardware_exception(GENERAL_PROTECTION_FAULT_VECTOR, 0),
                    None,
                )
            }
            // SAFETY: DR6 only records debug conditions; l1-hv never reads it for itself.
            6 => unsafe {
                debugregs::dr6_write(debugregs::Dr6::from_bits_truncate(value as usize))
            },
            _ => debug.guest_dr7 = value,
        }
    }
    let rip = vmcs.read(guest::RIP) + vmcs.read(ro::VMEXIT_INSTRUCTION_LEN);
    vmcs.write(guest::RIP, rip);
    Next::Resume
}

// ---------------------------------------------------------------------------------------
// The session.

/// Runs `guest` to its end; when its options name a debug port, it first stops at its first
/// instruction and serves gdb there until gdb detaches (the guest then runs on as usual),
/// kills it, or the guest ends.
pub fn run(host: &Host, guest: &mut Guest) -> RunEnd {
    if guest.config.debugger.is_none() {
        return guest.run(host);
    }
    // SAFETY: `Guest::create` left this guest's VMCS current.
    let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };
    attach(host, guest, &mut vmcs);
    println!(
        "l1-hv: guest {} {}: gdb: waiting on COM2 (stopped at rip={:#x})",
        guest.vpid,
        guest.config.name,
        vmcs.read(guest::RIP)
    );
    let mut com2 = Com2::init();
    let mut session = Session::new(L1Debuggee {
        host,
        guest,
        end: None,
        steps: 0,
        step_instructions: 0,
    });
    let how = guest_gdb::serve(&mut session, &mut com2);
    let L1Debuggee {
        guest,
        end,
        steps,
        step_instructions,
        ..
    } = session.into_inner();
    if let Some(each) = step_instructions.checked_div(steps) {
        println!(
            "l1-hv: guest {} {}: gdb: {steps} single steps, {each} instructions each from resume to stop",
            guest.vpid, guest.config.name
        );
    }
    // SAFETY: the session leaves L2's VMCS current (it runs the guest only through `run`).
    let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };
    detach(guest, &mut vmcs);
    println!(
        "l1-hv: guest {} {}: gdb: {}",
        guest.vpid,
        guest.config.name,
        match how {
            SessionEnd::Detached => "detached, the guest runs on",
            SessionEnd::Killed => "killed the guest",
            SessionEnd::Exited => "saw the guest end",
        }
    );
    match (how, end) {
        (_, Some(end)) => end,
        (SessionEnd::Killed, None) => RunEnd::Stopped(Stop::Internal("killed by the debugger")),
        _ => run_on(host, guest),
    }
}

/// After detach: the guest runs with the debugger's controls gone; a stop that was already on
/// its way (none is produced once `debug` is `None`) cannot happen.
fn run_on(host: &Host, guest: &mut Guest) -> RunEnd {
    loop {
        match guest.run(host) {
            RunEnd::Debug(_) => continue,
            end => return end,
        }
    }
}

/// The preemption timer's value for one poll interval.
fn poll_ticks() -> u64 {
    l1_vmx::capabilities::preemption_timer_value(POLL_TSC_TICKS)
}

fn attach(host: &Host, guest: &mut Guest, vmcs: &mut CurrentVmcs) {
    let saved = Saved::read(vmcs);
    // DR7 reaches the guest only through "load debug controls" (SDM 27.3.2.1), which is not a
    // default1 bit on every CPU (Bochs leaves it to the VMM); "save debug controls" keeps the
    // field current at exits (SDM 28.3.1).
    if let Ok(entry) = host.caps.entry(
        saved.entry as u32 | EntryControls::LOAD_DEBUG_CONTROLS.bits(),
        0,
    ) {
        vmcs.write(control::VMENTRY_CONTROLS, entry.into());
    }
    let exit = host
        .caps
        .exit(saved.exit as u32, ExitControls::SAVE_DEBUG_CONTROLS.bits())
        .unwrap_or(saved.exit as u32);
    vmcs.write(control::VMEXIT_CONTROLS, exit.into());
    vmcs.write(
        control::EXCEPTION_BITMAP,
        saved.exception_bitmap | 1 << DEBUG_VECTOR | 1 << BREAKPOINT_VECTOR,
    );
    vmcs.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        saved.primary | u64::from(PrimaryControls::MOV_DR_EXITING.bits()),
    );
    // The timer where the CPU has it, saved on exit so that it counts guest time across exits
    // (SDM 26.5.1) and a guest that exits often still reaches a tick.
    if let Ok(pin) = host.caps.pin(
        saved.pin as u32 | PinbasedControls::VMX_PREEMPTION_TIMER.bits(),
        0,
    ) {
        vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.into());
        vmcs.write(guest::VMX_PREEMPTION_TIMER_VALUE, poll_ticks());
        if let Ok(exit) = host
            .caps
            .exit(exit, ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits())
        {
            vmcs.write(control::VMEXIT_CONTROLS, exit.into());
        }
    }
    // SAFETY: reading debug registers has no side effect; they hold the guest's values.
    let guest_dr = unsafe {
        [
            debugregs::dr0() as u64,
            debugregs::dr1() as u64,
            debugregs::dr2() as u64,
            debugregs::dr3() as u64,
        ]
    };
    let mtf = host
        .caps
        .primary(
            saved.primary as u32 | PrimaryControls::MONITOR_TRAP_FLAG.bits(),
            0,
        )
        .is_ok();
    let now = Saved::read(vmcs).words();
    let [exception_bitmap, pin, primary, exit, entry] =
        core::array::from_fn(|i| now[i] & !saved.words()[i]);
    guest.debug = Some(GuestDebug {
        state: DebugState::default(),
        guest_dr,
        guest_dr7: vmcs.read(guest::DR7),
        added: Added {
            exception_bitmap,
            pin,
            primary,
            exit,
            entry,
            timer: saved.timer,
        },
        mtf,
        tf_step: None,
    });
}

fn detach(guest: &mut Guest, vmcs: &mut CurrentVmcs) {
    let Some(debug) = guest.debug.take() else {
        return;
    };
    for (field, added) in CONTROL_FIELDS.into_iter().zip(debug.added.words()) {
        vmcs.write(field, vmcs.read(field) & !added);
    }
    vmcs.write(guest::VMX_PREEMPTION_TIMER_VALUE, debug.added.timer);
    load_debug_registers(vmcs, debug.guest_dr, debug.guest_dr7);
}

/// DR0–DR3 are not part of the VMCS: the hardware registers are the guest's while it runs
/// (l1-hv itself never arms them; VM exit clears DR7, SDM 28.5.1). DR7 is a guest-state field.
fn load_debug_registers(vmcs: &mut CurrentVmcs, addrs: [u64; 4], dr7: u64) {
    // SAFETY: the addresses only take effect when DR7 enables them, which happens only in the
    // guest (VM exit loads DR7 with 0x400).
    unsafe {
        debugregs::dr0_write(addrs[0] as usize);
        debugregs::dr1_write(addrs[1] as usize);
        debugregs::dr2_write(addrs[2] as usize);
        debugregs::dr3_write(addrs[3] as usize);
    }
    vmcs.write(guest::DR7, dr7);
}

/// The stub's view of an l1-hv guest.
struct L1Debuggee<'h, 'g, 'a> {
    host: &'h Host,
    guest: &'g mut Guest<'a>,
    /// How the guest's run ended, if it did while gdb was attached.
    end: Option<RunEnd>,
    /// Single steps completed, and the TSC ticks (instructions, on Bochs) from the entry that
    /// started each to the exit that ended it, l1-hv's handling included.
    steps: u64,
    step_instructions: u64,
}

impl L1Debuggee<'_, '_, '_> {
    fn vmcs() -> CurrentVmcs {
        // SAFETY: the guest's VMCS (vmcs01) is current whenever the stub runs: stops are only
        // reported from L2 exits.
        unsafe { CurrentVmcs::assume_loaded() }
    }
}

/// gdb's register order: RAX, RBX, RCX, RDX, RSI, RDI, RBP, RSP, R8–R15.
const GDB_GPRS: [Gpr; 16] = [
    Gpr::Rax,
    Gpr::Rbx,
    Gpr::Rcx,
    Gpr::Rdx,
    Gpr::Rsi,
    Gpr::Rdi,
    Gpr::Rbp,
    Gpr::Rsp,
    Gpr::R8,
    Gpr::R9,
    Gpr::R10,
    Gpr::R11,
    Gpr::R12,
    Gpr::R13,
    Gpr::R14,
    Gpr::R15,
];

const SELECTORS: [u32; 6] = [
    guest::CS_SELECTOR,
    guest::SS_SELECTOR,
    guest::DS_SELECTOR,
    guest::ES_SELECTOR,
    guest::FS_SELECTOR,
    guest::GS_SELECTOR,
];

impl Debuggee for L1Debuggee<'_, '_, '_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) {
        let mut vmcs = Self::vmcs();
        let cx = L2Context {
            regs: &mut self.guest.regs,
            vmcs: &mut vmcs,
            memory: L2Memory(&mut self.guest.ram),
        };
        for (slot, gpr) in regs.regs.iter_mut().zip(GDB_GPRS) {
            *slot = cx.register(gpr);
        }
        regs.rip = vmcs.read(guest::RIP);
        regs.eflags = vmcs.read(guest::RFLAGS) as u32;
        let s = &mut regs.segments;
        for (slot, field) in [
            &mut s.cs, &mut s.ss, &mut s.ds, &mut s.es, &mut s.fs, &mut s.gs,
        ]
        .into_iter()
        .zip(SELECTORS)
        {
            *slot = vmcs.read(field) as u32;
        }
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> Result<(), SegmentChanged> {
        let mut vmcs = Self::vmcs();
        let s = &regs.segments;
        let changed = [s.cs, s.ss, s.ds, s.es, s.fs, s.gs]
            .into_iter()
            .zip(SELECTORS)
            .any(|(value, field)| u64::from(value) != vmcs.read(field));
        if changed {
            return Err(SegmentChanged);
        }
        let mut cx = L2Context {
            regs: &mut self.guest.regs,
            vmcs: &mut vmcs,
            memory: L2Memory(&mut self.guest.ram),
        };
        for (value, gpr) in regs.regs.iter().zip(GDB_GPRS) {
            cx.set_register(gpr, *value);
        }
        vmcs.write(guest::RIP, regs.rip);
        // RFLAGS bit 1 is fixed to 1 (VM entry checks it, SDM 27.3.1.4).
        vmcs.write(guest::RFLAGS, u64::from(regs.eflags) | 0x2);
        Ok(())
    }

    fn paging(&mut self) -> Paging {
        let vmcs = Self::vmcs();
        Paging {
            cr0: vmcs.read(guest::CR0),
            cr3: vmcs.read(guest::CR3),
            cr4: vmcs.read(guest::CR4),
            efer: vmcs.read(guest::IA32_EFER_FULL),
        }
    }

    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        match ram_range(self.guest, gpa, buf.len()) {
            Some(range) => {
                buf.copy_from_slice(&self.guest.ram.bytes_mut()[range]);
                true
            }
            None => false,
        }
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool {
        match ram_range(self.guest, gpa, data.len()) {
            Some(range) => {
                self.guest.ram.bytes_mut()[range].copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    fn state(&mut self) -> &mut DebugState {
        &mut self.guest.debug.as_mut().expect("attached").state
    }

    fn load_debug_registers(&mut self, addrs: [u64; 4], dr7: u64) {
        load_debug_registers(&mut Self::vmcs(), addrs, dr7);
    }

    fn run(&mut self, resume: Resume) -> Ran {
        let mut vmcs = Self::vmcs();
        if resume.step {
            begin_step(self.guest.debug.as_mut().expect("attached"), &mut vmcs);
        }
        if resume.resume_flag {
            let rflags = vmcs.read(guest::RFLAGS);
            vmcs.write(guest::RFLAGS, rflags | RFlags::FLAGS_RF.bits());
        }
        // SAFETY: RDTSC has no side effects; on Bochs it counts instructions.
        let start = unsafe { core::arch::x86_64::_rdtsc() };
        let end = self.guest.run(self.host);
        if resume.step && matches!(end, RunEnd::Debug(DebugStop::Step)) {
            // SAFETY: as above.
            self.step_instructions += unsafe { core::arch::x86_64::_rdtsc() } - start;
            self.steps += 1;
        }
        end_step(self.guest, &mut vmcs);
        match end {
            RunEnd::Debug(DebugStop::Breakpoint) => Ran::Breakpoint,
            RunEnd::Debug(DebugStop::Debug { dr6 }) => Ran::Debug { dr6 },
            RunEnd::Debug(DebugStop::Step) => Ran::Stepped,
            RunEnd::Debug(DebugStop::Tick) => Ran::Tick,
            end => {
                // gdb prints the code: the guest's own for `Done`, 0 for a clean power-off.
                let code = match &end {
                    RunEnd::Done(code) => *code as u8,
                    RunEnd::Power(PowerEvent::PoweredOff { .. }) => 0,
                    _ => 0xff,
                };
                self.end = Some(end);
                Ran::Ended { code }
            }
        }
    }
}

/// The RAM bytes `[gpa, gpa + len)`: guest RAM is guest-physical 0 onwards, identity-mapped
/// by EPT; anything else (device ranges a kernel guest sees through EPT) is not the debugger's
/// to touch.
fn ram_range(guest: &mut Guest, gpa: u64, len: usize) -> Option<core::ops::Range<usize>> {
    let start = usize::try_from(gpa).ok()?;
    let end = start.checked_add(len)?;
    (end <= guest.ram.len()).then_some(start..end)
}

// ---------------------------------------------------------------------------------------
// COM2.

/// COM2's I/O base (the PC's second serial port).
const COM2: u16 = 0x2f8;
/// 16550 registers (offsets from the base) and the LSR bits l1-hv uses.
const DATA: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// COM2, polled. A minimal driver rather than `uart_16550`'s `init`, which resets the FIFOs:
/// gdb's first packets may already be waiting in the UART (gdb connects while the machine
/// boots) and must not be thrown away. 115200 8N1, no FIFO, no interrupts.
struct Com2 {
    /// A byte `peek` took from the UART (a 16550 cannot look without taking), which the next
    /// `read` returns.
    peeked: Option<u8>,
}

/// COM2 has no error to report: a byte that cannot be sent waits.
#[derive(Debug)]
enum Never {}

impl Com2 {
    fn init() -> Self {
        // SAFETY: COM2's ports belong to l1-hv (kernel guests see no device there).
        unsafe {
            outb(COM2 + IER, 0);
            outb(COM2 + LCR, 0x80); // DLAB: the divisor follows
            outb(COM2 + DATA, 1); // 115200 baud
            outb(COM2 + IER, 0);
            outb(COM2 + LCR, 0x03); // 8 bits, no parity, 1 stop bit
            outb(COM2 + FCR, 0);
            outb(COM2 + MCR, 0x03); // DTR, RTS
        }
        Self { peeked: None }
    }

    fn lsr() -> u8 {
        // SAFETY: reading LSR has no side effect beyond clearing its error bits.
        unsafe { inb(COM2 + LSR) }
    }
}

impl Connection for Com2 {
    type Error = Never;

    fn write(&mut self, byte: u8) -> Result<(), Never> {
        while Self::lsr() & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        // SAFETY: as in `init`.
        unsafe { outb(COM2 + DATA, byte) };
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Never> {
        Ok(())
    }
}

impl ConnectionExt for Com2 {
    fn read(&mut self) -> Result<u8, Never> {
        if let Some(byte) = self.peeked.take() {
            return Ok(byte);
        }
        while Self::lsr() & LSR_DATA_READY == 0 {
            core::hint::spin_loop();
        }
        // SAFETY: as in `init`.
        Ok(unsafe { inb(COM2 + DATA) })
    }

    fn peek(&mut self) -> Result<Option<u8>, Never> {
        if self.peeked.is_none() && Self::lsr() & LSR_DATA_READY != 0 {
            // SAFETY: as in `init`.
            self.peeked = Some(unsafe { inb(COM2 + DATA) });
        }
        Ok(self.peeked)
    }
}
