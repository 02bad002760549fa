//! Running L3 until its final VMCALL, and ghv's exit handler: the reflection path.
//!
//! On this path ghv touches only VMCS fields that l1-hv shadows (docs/vmcs12.md), so that under
//! l1-hv with VMCS shadowing a reflected exception costs exactly two exits to L1 (L3's exception
//! and ghv's VMRESUME). The entry stub writes host RSP only when it changed (never, after the
//! first entry: `run` is always called from the same frame). The handler VMREADs the exit reason, exit qualification, exit interruption
//! information and error code, IDT-vectoring information and error code, exit instruction
//! length, guest RIP and interruptibility state, and VMWRITEs the VM-entry interruption
//! information, exception error code and instruction length, guest RIP and interruptibility
//! state. It logs into memory only: no VMCALL, no port I/O.

use crate::event::{self, Combined, Event, Kind, ERROR_CODE_VALID};
use crate::l3;
use crate::log::Log;
use core::fmt;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::{enter, HostRsp};
use l1_vmx::{Entry, GuestRegisters};
use nvmx::exit_reason::{self, ExitReason};
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::{control, guest, ro};

/// More exits than this in one scenario means ghv is not making progress.
const MAX_EXITS: usize = 4;
/// Basic exit reasons ghv handles (SDM Appendix C).
const EXCEPTION: u16 = exit_reason::EXCEPTION_OR_NMI;
const TRIPLE_FAULT: u16 = exit_reason::TRIPLE_FAULT;
const CPUID: u16 = 10;
const HLT: u16 = 12;
const VMCALL: u16 = exit_reason::VMCALL;
const IO: u16 = 30;
/// What ghv's CPUID returns to L3 for every leaf: a hypervisor leaf 0x4000_0000 answer,
/// "ghvghvghvghv" (ghv exposes nothing of the CPU it runs on).
const CPUID_ANSWER: [u64; 4] = [0x4000_0000, 0x7668_6776, 0x7667_6876, 0x7668_6776];
/// Interruptibility state bits 0–1: blocking by STI and by MOV SS, which end with the
/// instruction ghv skips (SDM 25.4.2).
const BLOCKING_BY_STI_OR_MOV_SS: u64 = 0b11;

/// How a scenario's run of L3 ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// L3's handler received this vector.
    Delivered(u8),
    /// L3 finished its action without an exception.
    Completed,
    /// L3 shut down (exit reason 2, or ghv combined a fault during #DF delivery).
    TripleFault,
    /// ghv could not go on (the reason).
    Broken(&'static str),
}

/// The exits of one scenario and how it ended.
pub struct Outcome {
    exits: [u16; MAX_EXITS],
    exit_count: usize,
    /// How L3's run ended.
    pub end: End,
}

impl Outcome {
    /// The basic exit reasons seen, in order (L3's final VMCALL not included).
    pub fn exits(&self) -> &[u16] {
        &self.exits[..self.exit_count]
    }
}

/// The exit information, read from the VMCS once per exit (also by ghv-bench's exit loop, which
/// times this path).
pub struct ExitInfo {
    /// The exit-reason field.
    pub reason: ExitReason,
    interruption: u32,
    interruption_error: Option<u32>,
    qualification: u64,
    idt_vectoring: u32,
    idt_vectoring_error: Option<u32>,
    /// The VM-exit instruction length where the SDM defines it (SDM 28.2.5: exits caused by
    /// an instruction, by a software exception or interrupt, or during the delivery of one),
    /// else 0 (the field is then not read).
    instruction_length: u32,
}

impl ExitInfo {
    /// Reads the fields ghv's exit handler reads on every exit.
    pub fn read(vmcs: &CurrentVmcs) -> Self {
        let reason = ExitReason(vmcs.read(ro::EXIT_REASON) as u32);
        let interruption = vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32;
        let interruption_error = error_code(vmcs, interruption, ro::VMEXIT_INTERRUPTION_ERR_CODE);
        let qualification = vmcs.read(ro::EXIT_QUALIFICATION);
        let idt_vectoring = vmcs.read(ro::IDT_VECTORING_INFO) as u32;
        let idt_vectoring_error = error_code(vmcs, idt_vectoring, ro::IDT_VECTORING_ERR_CODE);
        let software =
            |info: u32| Event::decode(info, None).is_some_and(|e| e.kind() == Kind::Software);
        let defined = matches!(reason.basic(), CPUID | HLT | VMCALL | IO)
            || (reason.basic() == EXCEPTION && software(interruption))
            || software(idt_vectoring);
        let instruction_length = if defined {
            vmcs.read(ro::VMEXIT_INSTRUCTION_LEN) as u32
        } else {
            0
        };
        Self {
            reason,
            interruption,
            interruption_error,
            qualification,
            idt_vectoring,
            idt_vectoring_error,
            instruction_length,
        }
    }
}

fn error_code(vmcs: &CurrentVmcs, info: u32, field: u32) -> Option<u32> {
    (info & ERROR_CODE_VALID != 0).then(|| vmcs.read(field) as u32)
}

/// `0x..` or `none`.
struct Hex(Option<u64>);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:#x}"),
            None => f.write_str("none"),
        }
    }
}

/// What ghv keeps about its one VMCS across scenarios.
#[derive(Default)]
pub struct VmcsState {
    /// The VMCS has been launched (enter with VMRESUME).
    launched: bool,
    /// The host RSP written into it.
    host_rsp: HostRsp,
}

/// Runs L3 (entered with `regs`) until its final VMCALL, handling and logging every exit.
pub fn run(
    vmcs: &mut CurrentVmcs,
    state: &mut VmcsState,
    regs: &mut GuestRegisters,
    name: &str,
    log: &mut Log,
) -> Outcome {
    let mut outcome = Outcome {
        exits: [0; MAX_EXITS],
        exit_count: 0,
        end: End::Broken("too many exits"),
    };
    loop {
        // SAFETY: the VMCS was fully written by `vmcs::write_*`, with host RIP =
        // vmx_exit; `state` is this VMCS's.
        if let Entry::Failed(_) = unsafe { enter(regs, state.launched, &mut state.host_rsp) } {
            let error = vmcs.read(ro::VM_INSTRUCTION_ERROR);
            log.line(format_args!(
                "{name} VM entry failed: VM-instruction error {error}"
            ));
            outcome.end = End::Broken("VM entry failed");
            return outcome;
        }
        state.launched = true;
        let exit = ExitInfo::read(vmcs);
        let basic = exit.reason.basic();
        if basic == VMCALL && regs.rax == l3::DONE {
            outcome.end = report(regs, name, log);
            return outcome;
        }
        log.line(format_args!(
            "{name} exit reason={} intr_info={:#x} intr_error={} qual={:#x} idt_info={:#x} idt_error={} insn_len={}",
            exit.reason.0,
            exit.interruption,
            Hex(exit.interruption_error.map(u64::from)),
            exit.qualification,
            exit.idt_vectoring,
            Hex(exit.idt_vectoring_error.map(u64::from)),
            exit.instruction_length,
        ));
        if outcome.exit_count == MAX_EXITS {
            return outcome;
        }
        outcome.exits[outcome.exit_count] = basic;
        outcome.exit_count += 1;
        if exit.reason.is_entry_failure() {
            outcome.end = End::Broken("VM-entry failure exit");
            return outcome;
        }
        match basic {
            EXCEPTION => {
                if let Some(end) = reflect(vmcs, regs, &exit) {
                    if end == End::TripleFault {
                        log.line(format_args!("{name} triple fault"));
                    }
                    outcome.end = end;
                    return outcome;
                }
            }
            CPUID => {
                [regs.rax, regs.rbx, regs.rcx, regs.rdx] = CPUID_ANSWER;
                skip(vmcs, exit.instruction_length);
            }
            HLT | IO | VMCALL => skip(vmcs, exit.instruction_length),
            TRIPLE_FAULT => {
                outcome.end = End::TripleFault;
                return outcome;
            }
            _ => {
                outcome.end = End::Broken("unexpected exit reason");
                return outcome;
            }
        }
    }
}

/// L3's final VMCALL: what its handler received, if anything.
fn report(regs: &GuestRegisters, name: &str, log: &mut Log) -> End {
    if regs.rdi == l3::NONE {
        log.line(format_args!("{name} completed without exception"));
        return End::Completed;
    }
    let error_code = (regs.rsi != l3::NONE).then_some(regs.rsi);
    log.line(format_args!(
        "{name} delivered vector={} error_code={} cr2={:#x}",
        regs.rdi,
        Hex(error_code),
        regs.rdx
    ));
    End::Delivered(regs.rdi as u8)
}

/// Gives an intercepted exception back to L3 exactly as the CPU would have delivered it,
/// combined with an event whose delivery it interrupted. Returns `Some` if L3 shuts down.
pub fn reflect(vmcs: &mut CurrentVmcs, regs: &mut GuestRegisters, exit: &ExitInfo) -> Option<End> {
    let Some(exception) = Event::decode(exit.interruption, exit.interruption_error) else {
        return Some(End::Broken(
            "exception exit without valid interruption information",
        ));
    };
    if exception.vector() == 14 {
        // The CPU loads CR2 when it detects a #PF, before delivery (SDM 6.15, Interrupt 14);
        // the exit left it untouched, so ghv does it: `enter` moves it to CR2 before entry.
        regs.cr2 = exit.qualification;
    }
    let during = Event::decode(exit.idt_vectoring, exit.idt_vectoring_error);
    let event = match event::combine(during, exception) {
        Combined::Deliver(event) => event,
        Combined::TripleFault => return Some(End::TripleFault),
    };
    vmcs.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        event.entry_info().into(),
    );
    if let Some(code) = event.error_code {
        vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, code.into());
    }
    if event.kind() == Kind::Software {
        // The delivered frame's RIP is the next instruction's (SDM 27.6.1.1).
        vmcs.write(
            control::VMENTRY_INSTRUCTION_LEN,
            exit.instruction_length.into(),
        );
    }
    None
}

/// Moves L3 past the instruction that exited, as if it had executed.
fn skip(vmcs: &mut CurrentVmcs, length: u32) {
    let rip = vmcs.read(guest::RIP);
    vmcs.write(guest::RIP, rip + u64::from(length));
    let interruptibility = vmcs.read(guest::INTERRUPTIBILITY_STATE);
    if interruptibility & BLOCKING_BY_STI_OR_MOV_SS != 0 {
        vmcs.write(
            guest::INTERRUPTIBILITY_STATE,
            interruptibility & !BLOCKING_BY_STI_OR_MOV_SS,
        );
    }
}
