//! Port I/O of a kernel guest to a port l1-hv traps (SDM 28.2.1 Table 28-5, the I/O exit
//! qualification): the machine's device bus answers it, relays console lines, ends the run on a
//! power-off or reset, or hands the access to the real port.

use super::exits::Next;
use super::platform;
use super::vcpu::{Guest, RunEnd, Stop};
use devices::bus::{AccessSize, Direction, IoAccess, IoOutcome};
use l1_vmx::current_vmcs::CurrentVmcs;
use nvmx::exit::{IoDirection, IoInstruction, IoSize};
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::guest;

/// The bus's size of an access of `size`.
fn access_size(size: IoSize) -> AccessSize {
    match size {
        IoSize::Byte => AccessSize::Byte,
        IoSize::Word => AccessSize::Word,
        IoSize::Dword => AccessSize::Dword,
    }
}

/// Handles the I/O exit just taken by `guest`.
pub fn handle(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let rip = vmcs.read(guest::RIP);
    let Some(exit) = IoInstruction::read(vmcs) else {
        return Next::End(RunEnd::Stopped(Stop::Internal(
            "I/O exit with a reserved access size",
        )));
    };
    if exit.string {
        return Next::End(RunEnd::Stopped(Stop::StringIo {
            port: exit.port,
            rip,
        }));
    }
    let Some(machine) = guest.machine.as_mut() else {
        return Next::End(RunEnd::Stopped(Stop::Internal(
            "I/O bitmap exit without a machine",
        )));
    };
    let size = access_size(exit.size);
    let direction = match exit.direction {
        IoDirection::In => Direction::In,
        IoDirection::Out => Direction::Out(guest.regs.rax as u32 & size.all_ones()),
    };
    let dispatch = machine.bus.access(IoAccess {
        port: exit.port,
        size,
        direction,
    });
    if let Some(irq) = dispatch.raise_irq {
        platform::raise_isa_irq(irq.0);
    }
    match dispatch.outcome {
        IoOutcome::Read(value) => set_input(&mut guest.regs.rax, size, value),
        IoOutcome::Written => {}
        IoOutcome::Line(line) => relay(guest.config.name, line.text),
        IoOutcome::Power(event) => return Next::End(RunEnd::Power(event)),
        IoOutcome::PassToHardware => {
            pass_to_hardware(exit.port, exit.direction, size, &mut guest.regs.rax)
        }
    }
    nvmx::retire::retire(vmcs);
    Next::Resume
}

/// Prints one line of the guest's console on l1-hv's, prefixed with its name (the guest's
/// bytes are shown as text; bytes that are not UTF-8 are replaced, as a terminal would).
pub fn relay(name: &str, text: &[u8]) {
    let mut rest = text;
    let mut line = alloc::string::String::new();
    while !rest.is_empty() {
        match core::str::from_utf8(rest) {
            Ok(valid) => {
                line.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                line.push_str(core::str::from_utf8(valid).unwrap_or_default());
                line.push('\u{fffd}');
                rest = &after[e.error_len().unwrap_or(after.len())..];
            }
        }
    }
    crate::println!("guest {name}: {line}");
}

/// IN writes AL or AX (the rest of RAX kept) or EAX (zero-extended into RAX, as every 32-bit
/// register write in 64-bit mode).
fn set_input(rax: &mut u64, size: AccessSize, value: u32) {
    let mask = u64::from(size.all_ones());
    *rax = match size {
        AccessSize::Dword => u64::from(value),
        _ => *rax & !mask | u64::from(value) & mask,
    };
}

/// Performs the access on the real port (a device the guest owns behind a port l1-hv watches).
fn pass_to_hardware(port: u16, direction: IoDirection, size: AccessSize, rax: &mut u64) {
    // SAFETY: the guest owns the machine's devices; l1-hv only forwards its own access.
    unsafe {
        use x86::io::{inb, inl, inw, outb, outl, outw};
        match (direction, size) {
            (IoDirection::In, AccessSize::Byte) => set_input(rax, size, inb(port).into()),
            (IoDirection::In, AccessSize::Word) => set_input(rax, size, inw(port).into()),
            (IoDirection::In, AccessSize::Dword) => set_input(rax, size, inl(port)),
            (IoDirection::Out, AccessSize::Byte) => outb(port, *rax as u8),
            (IoDirection::Out, AccessSize::Word) => outw(port, *rax as u16),
            (IoDirection::Out, AccessSize::Dword) => outl(port, *rax as u32),
        }
    }
}
