//! The gdb remote stub's target logic for one l1-hv guest, behind the small [`Debuggee`]
//! trait: registers, memory by guest-virtual address through the guest's own page tables,
//! software breakpoints (INT3 in guest memory), hardware breakpoints and watchpoints (DR0–DR3),
//! single-step and continue. The protocol itself is the `gdbstub` crate's; l1-hv supplies the
//! connection (COM2) and the [`Debuggee`] (VMCS, guest RAM, the run loop). Host-tested with a
//! fake guest (`tests.rs`).
#![no_std]

extern crate alloc;

pub mod breakpoints;
pub mod walk;

#[cfg(test)]
mod tests;

pub use breakpoints::{DebugState, HwKind, HwSlot, SwBreakpoint, INT3};
pub use gdbstub::conn::{Connection, ConnectionExt};
pub use gdbstub_arch::x86::reg::X86_64CoreRegs;
pub use walk::{Paging, WalkError};

use core::marker::PhantomData;
use gdbstub::common::Signal;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint as SwBreakpointExt, SwBreakpointOps, WatchKind,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;

/// How the guest is to run until its next stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Execute one instruction (the monitor trap flag, SDM 26.5.2).
    pub step: bool,
    /// Enter with RFLAGS.RF set: the guest stopped on an instruction breakpoint of the
    /// debugger's, which must not fire again for the instruction it is resumed at (SDM
    /// 18.3.1.1).
    pub resume_flag: bool,
}

/// Why [`Debuggee::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// The guest executed an INT3 of the debugger's (nothing was injected).
    Breakpoint,
    /// A #DB of the debugger's debug registers; the DR6-format bits (B0–B3) say which.
    Debug {
        /// DR6-format bits from the #DB exit's qualification.
        dr6: u64,
    },
    /// The single step is done.
    Stepped,
    /// The guest ran a while without a debug event: the caller looks for a Ctrl-C.
    Tick,
    /// The guest's run is over; gdb is told it exited with this code.
    Ended {
        /// Exit code gdb reports (`[Inferior 1 (Remote target) exited with code NN]`).
        code: u8,
    },
}

/// Why the debugger cannot read or write guest memory at an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// The guest's page tables do not map it.
    Unmapped(WalkError),
    /// It maps to guest-physical memory outside the guest's RAM (EPT maps nothing there, or
    /// only a device).
    OutsideRam {
        /// The guest-physical address.
        gpa: u64,
    },
}

/// gdb tried to change a segment selector, which the debugger does not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentChanged;

/// What the stub needs from l1-hv to debug one guest.
pub trait Debuggee {
    /// The guest's registers in gdb's x86-64 layout (x87/SSE state reads as zero).
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs);
    /// Sets the guest's general registers, RIP and RFLAGS; refused if a segment selector
    /// changed (a selector cannot be loaded without its descriptor cache).
    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> Result<(), SegmentChanged>;
    /// The registers that select the guest's paging mode.
    fn paging(&mut self) -> Paging;
    /// Reads guest-physical memory; `false` if any byte is outside guest RAM.
    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Writes guest-physical memory; `false` (and nothing written) if any byte is outside
    /// guest RAM.
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool;
    /// The debugger's breakpoint state, kept with the guest (its exit handlers read it).
    fn state(&mut self) -> &mut DebugState;
    /// Loads DR0–DR3 and DR7 for the debugger's hardware breakpoints.
    fn load_debug_registers(&mut self, addrs: [u64; 4], dr7: u64);
    /// Runs the guest until a debug event, a tick or its end.
    fn run(&mut self, resume: Resume) -> Ran;
}

/// The bytes of guest-virtual `[addr, addr + len)` that lie in one page, and their
/// guest-physical address.
fn translate(debuggee: &mut impl Debuggee, addr: u64) -> Result<u64, MemoryError> {
    struct Entries<'d, D>(&'d mut D);
    impl<D: Debuggee> walk::ReadEntry for Entries<'_, D> {
        fn read_entry(&mut self, gpa: u64, width: usize) -> Option<u64> {
            let mut bytes = [0; 8];
            self.0
                .read_phys(gpa, &mut bytes[..width])
                .then(|| u64::from_le_bytes(bytes))
        }
    }
    let paging = debuggee.paging();
    walk::translate(&paging, &mut Entries(debuggee), addr).map_err(MemoryError::Unmapped)
}

/// Reads guest-virtual memory, page by page (consecutive pages need not be contiguous in
/// guest-physical memory).
pub fn read_virtual(
    debuggee: &mut impl Debuggee,
    addr: u64,
    buf: &mut [u8],
) -> Result<(), MemoryError> {
    let mut done = 0;
    while done < buf.len() {
        let at = addr.wrapping_add(done as u64);
        let chunk = page_chunk(at, buf.len() - done);
        let gpa = translate(debuggee, at)?;
        if !debuggee.read_phys(gpa, &mut buf[done..done + chunk]) {
            return Err(MemoryError::OutsideRam { gpa });
        }
        done += chunk;
    }
    Ok(())
}

/// Writes guest-virtual memory, page by page; every page is translated before any byte is
/// written, so a write that fails changes nothing.
pub fn write_virtual(
    debuggee: &mut impl Debuggee,
    addr: u64,
    data: &[u8],
) -> Result<(), MemoryError> {
    let mut done = 0;
    while done < data.len() {
        let at = addr.wrapping_add(done as u64);
        translate(debuggee, at)?;
        done += page_chunk(at, data.len() - done);
    }
    let mut done = 0;
    while done < data.len() {
        let at = addr.wrapping_add(done as u64);
        let chunk = page_chunk(at, data.len() - done);
        let gpa = translate(debuggee, at)?;
        if !debuggee.write_phys(gpa, &data[done..done + chunk]) {
            return Err(MemoryError::OutsideRam { gpa });
        }
        done += chunk;
    }
    Ok(())
}

/// How many of `left` bytes from `addr` lie in `addr`'s 4 KiB page.
fn page_chunk(addr: u64, left: usize) -> usize {
    let in_page = 0x1000 - (addr & 0xfff) as usize;
    in_page.min(left)
}

/// Puts back every INT3 and frees every debug register: the guest runs on as if no debugger
/// had been attached (called on detach, kill and a lost connection).
pub fn remove_all(debuggee: &mut impl Debuggee) {
    let sw = core::mem::take(&mut debuggee.state().sw);
    for breakpoint in sw.iter().rev() {
        debuggee.write_phys(breakpoint.gpa, &[breakpoint.original]);
    }
    let state = debuggee.state();
    state.hw = [None; 4];
    state.stepping = false;
}

/// The gdbstub [`Target`]: a [`Debuggee`] and how it was last stopped.
pub struct Session<D> {
    debuggee: D,
    resume: Resume,
    /// The last stop was an instruction breakpoint of the debugger's at the current RIP.
    on_instruction_breakpoint: bool,
}

impl<D: Debuggee> Session<D> {
    /// A session stopped at the guest's current instruction.
    pub fn new(debuggee: D) -> Self {
        Self {
            debuggee,
            resume: Resume::default(),
            on_instruction_breakpoint: false,
        }
    }

    /// The debuggee back.
    pub fn into_inner(self) -> D {
        self.debuggee
    }

    fn reload_debug_registers(&mut self) {
        let (addrs, dr7) = self.debuggee.state().debug_registers();
        self.debuggee.load_debug_registers(addrs, dr7);
    }
}

/// gdbstub's view of a fatal target error: none exists, every failure is reported to gdb.
#[derive(Debug)]
pub enum Never {}

impl<D: Debuggee> Target for Session<D> {
    type Arch = X86_64_SSE;
    type Error = Never;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    // Acks stay on: after a malformed packet the session restarts, and an ack-less link
    // would need both sides to agree on that again.
    fn use_no_ack_mode(&self) -> bool {
        false
    }
}

impl<D: Debuggee> SingleThreadBase for Session<D> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        self.debuggee.read_registers(regs);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        self.debuggee
            .write_registers(regs)
            .map_err(|SegmentChanged| TargetError::NonFatal)
    }

    fn read_addrs(&mut self, start_addr: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        // A read that starts mapped and runs into an unmapped page returns what it could
        // (gdb asks again from there and then gets the error).
        let mut done = 0;
        while done < data.len() {
            let at = start_addr.wrapping_add(done as u64);
            let chunk = page_chunk(at, data.len() - done);
            match read_virtual(&mut self.debuggee, at, &mut data[done..done + chunk]) {
                Ok(()) => done += chunk,
                Err(_) if done > 0 => break,
                // EFAULT: gdb prints "Cannot access memory at address ...".
                Err(_) => return Err(TargetError::Errno(14)),
            }
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start_addr: u64, data: &[u8]) -> TargetResult<(), Self> {
        write_virtual(&mut self.debuggee, start_addr, data).map_err(|_| TargetError::Errno(14))
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SingleThreadResume for Session<D> {
    // A signal gdb asks to deliver is ignored: the guest takes no signals, and an exception
    // the debugger stopped at was the debugger's own.
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume = Resume {
            step: false,
            resume_flag: self.on_instruction_breakpoint,
        };
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SingleThreadSingleStep for Session<D> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume = Resume {
            step: true,
            resume_flag: self.on_instruction_breakpoint,
        };
        Ok(())
    }
}

impl<D: Debuggee> Breakpoints for Session<D> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SwBreakpointExt for Session<D> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.debuggee.state().owns_breakpoint(addr) {
            return Ok(true);
        }
        let gpa = translate(&mut self.debuggee, addr).map_err(|_| TargetError::Errno(14))?;
        let mut original = [0];
        if !self.debuggee.read_phys(gpa, &mut original) || !self.debuggee.write_phys(gpa, &[INT3]) {
            return Err(TargetError::Errno(14));
        }
        self.debuggee.state().sw.push(SwBreakpoint {
            addr,
            gpa,
            original: original[0],
        });
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let sw = &mut self.debuggee.state().sw;
        let Some(index) = sw.iter().position(|b| b.addr == addr) else {
            return Ok(false);
        };
        let breakpoint = sw.remove(index);
        self.debuggee
            .write_phys(breakpoint.gpa, &[breakpoint.original]);
        Ok(true)
    }
}

impl<D: Debuggee> HwBreakpoint for Session<D> {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let slot = HwSlot {
            addr,
            kind: HwKind::Execute,
            len: 1,
        };
        let added = self.debuggee.state().add_hw(slot);
        self.reload_debug_registers();
        Ok(added)
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let slot = HwSlot {
            addr,
            kind: HwKind::Execute,
            len: 1,
        };
        let removed = self.debuggee.state().remove_hw(slot);
        self.reload_debug_registers();
        Ok(removed)
    }
}

/// x86 data breakpoints fire on writes, or on reads and writes (SDM 18.2.4): a read
/// watchpoint (`rwatch`) is not offered, gdb then uses a software one.
fn data_kind(kind: WatchKind) -> Option<HwKind> {
    match kind {
        WatchKind::Write => Some(HwKind::Write),
        WatchKind::ReadWrite => Some(HwKind::ReadWrite),
        WatchKind::Read => None,
    }
}

impl<D: Debuggee> HwWatchpoint for Session<D> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        let (Some(kind), Ok(len)) = (data_kind(kind), u8::try_from(len)) else {
            return Ok(false);
        };
        let added = self.debuggee.state().add_hw(HwSlot { addr, kind, len });
        self.reload_debug_registers();
        Ok(added)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        let (Some(kind), Ok(len)) = (data_kind(kind), u8::try_from(len)) else {
            return Ok(false);
        };
        let removed = self.debuggee.state().remove_hw(HwSlot { addr, kind, len });
        self.reload_debug_registers();
        Ok(removed)
    }
}

/// The blocking event loop: the guest runs inside `wait_for_stop_reason`, and every tick
/// (l1-hv's preemption-timer exit while a debugger is attached) looks at the connection for
/// gdb's Ctrl-C.
struct EventLoop<D, C>(PhantomData<(D, C)>);

impl<D: Debuggee, C: ConnectionExt> BlockingEventLoop for EventLoop<D, C> {
    type Target = Session<D>;
    type Connection = C;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Session<D>,
        conn: &mut C,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<Never, C::Error>> {
        let mut resume = target.resume;
        target.on_instruction_breakpoint = false;
        loop {
            let ran = target.debuggee.run(resume);
            // RF covers only the first instruction of this run (SDM 18.3.1.1).
            resume.resume_flag = false;
            let reason = match ran {
                Ran::Breakpoint => SingleThreadStopReason::SwBreak(()),
                Ran::Stepped => SingleThreadStopReason::DoneStep,
                Ran::Ended { code } => SingleThreadStopReason::Exited(code),
                Ran::Debug { dr6 } => match target.debuggee.state().hit(dr6) {
                    Some((_, slot)) if slot.kind == HwKind::Execute => {
                        target.on_instruction_breakpoint = true;
                        SingleThreadStopReason::HwBreak(())
                    }
                    Some((_, slot)) => SingleThreadStopReason::Watch {
                        tid: (),
                        kind: match slot.kind {
                            HwKind::Write => WatchKind::Write,
                            _ => WatchKind::ReadWrite,
                        },
                        addr: slot.addr,
                    },
                    // l1-hv reports only the debugger's own #DB; a stray one still stops.
                    None => SingleThreadStopReason::Signal(Signal::SIGTRAP),
                },
                Ran::Tick => match conn.peek().map_err(WaitForStopReasonError::Connection)? {
                    Some(_) => {
                        let byte = conn.read().map_err(WaitForStopReasonError::Connection)?;
                        return Ok(Event::IncomingData(byte));
                    }
                    None => continue,
                },
            };
            return Ok(Event::TargetStopped(reason));
        }
    }

    fn on_interrupt(_target: &mut Session<D>) -> Result<Option<Self::StopReason>, Never> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// How a debugging session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// gdb detached (or the connection failed): the guest runs on, breakpoints removed.
    Detached,
    /// gdb killed the guest.
    Killed,
    /// The guest's run ended while gdb watched.
    Exited,
}

/// gdb's error reply (`E NN`) to a packet the protocol layer could not parse, acked first.
const MALFORMED_REPLY: &[u8] = b"+$E01#a6";

/// Serves gdb on `conn` until it detaches or kills the guest or the guest ends. The guest is
/// stopped at its current instruction when this is called (gdb's first `?` says SIGTRAP). A
/// malformed packet gets gdb's error reply and the protocol layer starts over, the guest still
/// stopped and every breakpoint kept. On return no breakpoint of the debugger's is left in the
/// guest.
pub fn serve<D: Debuggee, C: ConnectionExt>(session: &mut Session<D>, conn: &mut C) -> SessionEnd {
    type Dyn<'c, E> = &'c mut dyn ConnectionExt<Error = E>;
    let end = loop {
        let stub = GdbStub::<_, Dyn<C::Error>>::new(conn);
        match stub.run_blocking::<EventLoop<D, Dyn<C::Error>>>(session) {
            Ok(DisconnectReason::Disconnect) => break SessionEnd::Detached,
            Ok(DisconnectReason::Kill) => break SessionEnd::Killed,
            Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
                break SessionEnd::Exited
            }
            Err(e) if e.is_connection_error() => break SessionEnd::Detached,
            // A packet the protocol layer rejected (bad checksum, malformed command, an
            // unexpected nack): answer with an error and serve the next one.
            Err(_) => {
                if conn
                    .write_all(MALFORMED_REPLY)
                    .and_then(|()| conn.flush())
                    .is_err()
                {
                    break SessionEnd::Detached;
                }
            }
        }
    };
    remove_all(&mut session.debuggee);
    session.reload_debug_registers();
    end
}
