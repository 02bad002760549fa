//! One guest: its RAM, EPT, VMCS and registers, and the run loop that enters it until it ends.

use super::boot::{self, BootError, Extra};
use super::config::{Boot, GuestConfig};
use super::debug::{self, DebugStop, GuestDebug};
use super::ept::Ept;
use super::exits::{self, Next};
use super::fast_exit::{self, FastContext};
use super::machine::Machine;
use super::memory::AddressSpace;
use super::trace::TraceRing;
use super::vmcs_setup::{self, GuestSetup};
use crate::memory::PhysPages;
use crate::nested::{l3_exit, Nested, ShadowVmcs};
use crate::Host;
use alloc::vec::Vec;
use core::fmt;
use devices::power::PowerEvent;
use l1_vmx::capabilities::Unsupported;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::{self as vmx, instructions, Entry, GuestRegisters, HostRsp};
use shadow_vmcs::Vmcs;

/// What a guest's exception handler reported with the `Observe` hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Exception vector.
    pub vector: u64,
    /// Error code, or `None` if none was pushed.
    pub error_code: Option<u64>,
    /// CR2 as the handler read it (#PF), else 0.
    pub cr2: u64,
}

/// How a guest's run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The guest called `Done` with this code.
    Done(u64),
    /// The guest triple-faulted (a hardware exit, or a triple fault l1-hv's injection produced).
    TripleFault,
    /// The guest powered off, reset or exited through a machine device.
    Power(PowerEvent),
    /// l1-hv stopped the guest; the text says why in one line.
    Stopped(Stop),
    /// The guest stopped for l1-hv's debugger (only while one is attached); `run` resumes it.
    Debug(DebugStop),
}

/// Why l1-hv stopped a guest.
#[derive(Debug)]
pub enum Stop {
    /// An exit l1-hv does not handle (reason, guest RIP).
    Unhandled {
        reason: nvmx::exit_reason::ExitReason,
        rip: u64,
    },
    /// The guest touched guest-physical memory it does not have.
    EptViolation { gpa: u64, rip: u64 },
    /// The guest ran without a single exit for the whole runaway budget.
    Runaway { rip: u64 },
    /// A hypercall l1-hv does not know, or from CPL > 0.
    BadHypercall { number: u64, rip: u64 },
    /// VMLAUNCH/VMRESUME failed (VMfail or a VM-entry failure exit).
    EntryFailed { error: u64 },
    /// A pending NMI or interrupt was displaced by injection and cannot be re-queued.
    Displaced { vector: u8 },
    /// String I/O (INS/OUTS) to a port l1-hv emulates: its devices take single accesses.
    StringIo { port: u16, rip: u64 },
    /// An l1-hv invariant did not hold for this guest; the guest is stopped, l1-hv goes on.
    Internal(&'static str),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Unhandled { reason, rip } => {
                write!(
                    f,
                    "unhandled VM exit {} ({}) at rip={rip:#x}",
                    reason.basic(),
                    reason.name()
                )
            }
            Self::EptViolation { gpa, rip } => {
                write!(
                    f,
                    "access to guest-physical {gpa:#x} outside guest RAM at rip={rip:#x}"
                )
            }
            Self::Runaway { rip } => {
                write!(f, "no VM exit within the runaway budget, rip={rip:#x}")
            }
            Self::BadHypercall { number, rip } => {
                write!(f, "bad hypercall {number:#x} at rip={rip:#x}")
            }
            Self::EntryFailed { error } => write!(f, "VM entry failed (error {error:#x})"),
            Self::Displaced { vector } => write!(f, "displaced event {vector} cannot be re-queued"),
            Self::StringIo { port, rip } => {
                write!(
                    f,
                    "string I/O to emulated port {port:#x} at rip={rip:#x} (not supported)"
                )
            }
            Self::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

/// Why a guest could not be created.
pub enum CreateError {
    /// The image was refused.
    Image(BootError),
    /// Out of memory for RAM, EPT or VMCS.
    OutOfMemory,
    /// The CPU lacks a VMX control l1-hv needs.
    Unsupported(Unsupported),
    /// VMCLEAR/VMPTRLD of the new VMCS failed.
    VmcsLoad,
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "image refused: {e}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::Unsupported(u) => {
                write!(f, "CPU lacks {} controls {:#x}", u.control, u.missing)
            }
            Self::VmcsLoad => f.write_str("VMCLEAR/VMPTRLD of the guest's VMCS failed"),
        }
    }
}

/// Exit counts by basic exit reason (the reasons l1-hv can see are all below 80).
pub type ExitCounts = [u32; 80];

/// A guest and everything l1-hv keeps for it.
pub struct Guest<'a> {
    /// The run's configuration.
    pub config: GuestConfig<'a>,
    /// Guest RAM (guest-physical 0 is its first byte).
    pub(crate) ram: PhysPages,
    pub(crate) ept: Ept,
    /// The devices and pending events of a kernel guest's machine.
    pub(crate) machine: Option<Machine>,
    pub(crate) vmcs_region: PhysPages,
    pub(crate) regs: GuestRegisters,
    launched: bool,
    host_rsp: HostRsp,
    /// Hypercall `Observe` records, in order.
    pub observations: Vec<Observation>,
    /// Every injection l1-hv performed.
    pub trace: TraceRing,
    /// VM exits by basic reason.
    pub exits: ExitCounts,
    /// Virtual VMX state, for guests that are hypervisors themselves.
    pub(crate) nested: Nested,
    /// The VPID l1-hv runs this guest's L2 with (L3 gets `vpid + VPID_L3_OFFSET`).
    pub(crate) vpid: u16,
    /// Whether the CPU supports CET (an injected #CP then pushes an error code).
    pub(crate) cet: bool,
    /// The debugger's state while gdb is attached (`debug::run`).
    pub(crate) debug: Option<GuestDebug>,
}

impl<'a> Guest<'a> {
    /// Loads `image` (with `extras`, the modules or initrd that follow it) into a fresh address
    /// space and prepares a VMCS for it (left current).
    pub fn create(
        host: &Host,
        config: GuestConfig<'a>,
        image: &[u8],
        extras: &[Extra],
        vpid: u16,
    ) -> Result<Self, CreateError> {
        let space = match config.boot {
            Boot::Abi => AddressSpace::ram_only(config.ram_size),
            Boot::Kernel => AddressSpace::machine(config.ram_size, &host.areas),
        };
        let AddressSpace { mut ram, map, ept } = space.ok_or(CreateError::OutOfMemory)?;
        let mut regs = GuestRegisters::default();
        let entry = boot::load(&config, image, extras, &mut ram, &map, &mut regs)
            .map_err(CreateError::Image)?;
        let machine = match config.boot {
            Boot::Abi => None,
            Boot::Kernel => Some(
                Machine::new(&host.platform, vmcs_setup::drain_timer(&host.caps))
                    .ok_or(CreateError::OutOfMemory)?,
            ),
        };
        let mut vmcs_region = PhysPages::page().ok_or(CreateError::OutOfMemory)?;
        vmcs_region.bytes_mut()[..4].copy_from_slice(&host.caps.revision_id().to_le_bytes());
        // SAFETY: a fresh, revision-stamped VMCS region (SDM 25.11.3).
        unsafe {
            instructions::vmclear(vmcs_region.phys()).map_err(|_| CreateError::VmcsLoad)?;
            instructions::vmptrld(vmcs_region.phys()).map_err(|_| CreateError::VmcsLoad)?;
        }
        // SAFETY: the VMCS was just made current.
        let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };
        let setup = GuestSetup {
            boot: config.boot,
            forward: config.forward,
            entry,
            eptp: ept.pointer(),
            vpid,
            exception_bitmap: config.effective_exception_bitmap(),
            msr_bitmap: host.msr_bitmaps.of(config.boot).phys(),
            io_bitmaps: machine.as_ref().map(Machine::io_bitmaps),
        };
        vmcs_setup::write_vmcs(&mut vmcs, &host.caps, &setup).map_err(CreateError::Unsupported)?;
        // VMCS shadowing for the guest's VMREAD/VMWRITE, where the CPU has it and the run wants it.
        let shadow = match config.shadowing && host.caps.has_vmcs_shadowing() {
            true => Some(
                ShadowVmcs::new(host.caps.revision_id(), host.shadow_policy)
                    .ok_or(CreateError::OutOfMemory)?,
            ),
            false => None,
        };
        Ok(Self {
            config,
            ram,
            ept,
            machine,
            vmcs_region,
            regs,
            launched: false,
            host_rsp: HostRsp::default(),
            observations: Vec::new(),
            trace: TraceRing::new(),
            exits: [0; 80],
            nested: Nested::new(host.offered, host.phys_addr_bits, shadow),
            vpid,
            cet: host.cet,
            debug: None,
        })
    }

    /// Runs the guest until it ends. Its VMCS must be current (as `create` leaves it). For a
    /// guest hypervisor the vCPU alternates between L2 (vmcs01) and its L3 (vmcs02).
    pub fn run(&mut self, host: &Host) -> RunEnd {
        // SAFETY: `create` made this guest's VMCS current; every switch to vmcs02 and back
        // happens in the nested entry and exit paths, which leave the right one current.
        let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };
        loop {
            if self.nested.in_l3 && self.machine.as_ref().is_some_and(|m| !m.events.is_empty()) {
                if let l3_exit::Handled::End(end) = l3_exit::deliver_pending(host, self, &mut vmcs)
                {
                    return end;
                }
            }
            let step_origin = debug::step_origin(self, &vmcs);
            let in_l3 = self.nested.in_l3;
            let (launched, host_rsp) = match (in_l3, self.nested.l3.as_mut()) {
                (true, Some(l3)) => (&mut l3.launched, &mut l3.host_rsp),
                _ => (&mut self.launched, &mut self.host_rsp),
            };
            if let Some(machine) = self.machine.as_mut() {
                let mut inject_host = super::inject_host::VcpuInjectHost {
                    regs: &mut self.regs,
                    trace: &mut self.trace,
                    cet: self.cet,
                    debugger_breakpoint: false,
                };
                machine.before_entry(&mut vmcs, &mut inject_host, in_l3, self.debug.is_some());
            }
            // Exits are handled in the stub only where nothing has to run between them.
            let fast = !in_l3
                && self.machine.is_none()
                && self.debug.is_none()
                && !self.nested.engine.vmx().in_vmx_operation();
            let mut fast = fast.then_some(FastContext {
                exits: &mut self.exits,
                trace: &mut self.trace,
                cet: self.cet,
            });
            // SAFETY: the current VMCS is fully initialised and its host RIP is `vmx_exit_fast`.
            let entry = unsafe {
                vmx::enter_fast(
                    &mut self.regs,
                    *launched,
                    host_rsp,
                    fast_exit::handle,
                    fast.as_mut(),
                )
            };
            match entry {
                Entry::Exited => *launched = true,
                Entry::Failed(fail) if in_l3 => {
                    match l3_exit::entry_failed(self, &mut vmcs, fail) {
                        l3_exit::Handled::Resume => continue,
                        l3_exit::Handled::End(end) => return end,
                    }
                }
                Entry::Failed(fail) => {
                    let error = match fail {
                        instructions::VmFail::Valid => {
                            vmcs.read(x86::vmx::vmcs::ro::VM_INSTRUCTION_ERROR)
                        }
                        instructions::VmFail::Invalid => u64::MAX,
                    };
                    return RunEnd::Stopped(Stop::EntryFailed { error });
                }
            }
            let next = if in_l3 {
                match l3_exit::handle(host, self, &mut vmcs) {
                    l3_exit::Handled::Resume => continue,
                    l3_exit::Handled::End(end) => return end,
                }
            } else {
                self.nested.stats.l2_exit();
                exits::handle(host, self, &mut vmcs)
            };
            match next {
                Next::Resume if debug::step_retired(self, &mut vmcs, step_origin) => {
                    return RunEnd::Debug(DebugStop::Step)
                }
                Next::Resume => {}
                Next::End(end) => return end,
            }
        }
    }

    /// Guest RAM bytes `[gpa, gpa + len)`, if they are all inside guest RAM.
    pub(super) fn ram_slice(&mut self, gpa: u64, len: u64) -> Option<&[u8]> {
        let end = gpa.checked_add(len)?;
        let bytes = self.ram.bytes_mut();
        (end <= bytes.len() as u64).then(|| &bytes[gpa as usize..end as usize])
    }
}

impl Drop for Guest<'_> {
    fn drop(&mut self) {
        // A kernel programmed the machine's interrupt hardware: the next guest starts quiet.
        if self.machine.is_some() {
            super::platform::quiesce();
        }
        // SAFETY: flushes this guest's VMCS and every EPT-derived translation before the memory
        // behind them returns to the heap (SDM 25.11.1, 29.4.3.1).
        unsafe {
            let _ = instructions::vmclear(self.vmcs_region.phys());
            let _ = instructions::invept_all_contexts();
        }
    }
}
