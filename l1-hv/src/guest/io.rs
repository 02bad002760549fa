//! Port I/O of a kernel guest to a port l1-hv traps (SDM 28.2.1 Table 28-5, the I/O exit
//! qualification): the machine's device bus answers it, relays console lines, ends the run on a
//! power-off or reset, or hands the access to the real port.

use super::exits::Next;
use super::platform;
use super::vcpu::{Guest, RunEnd, Stop};
use devices::bus::{AccessSize, Direction, IoAccess, IoOutcome};
use l1_vmx::current_vmcs::CurrentVmcs;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::{guest, ro};

/// One decoded I/O exit.
struct IoExit {
    port: u16,
    size: AccessSize,
    input: bool,
    string: bool,
}

impl IoExit {
    /// Bits 2:0 size − 1, bit 3 direction (1 = IN), bit 4 string instruction, bits 31:16 port.
    fn decode(qualification: u64) -> Option<Self> {
        let size = match qualification & 7 {
            0 => AccessSize::Byte,
            1 => AccessSize::Word,
            3 => AccessSize::Dword,
            _ => return None,
        };
        Some(Self {
            port: (qualification >> 16) as u16,
            size,
            input: qualification & 8 != 0,
            string: qualification & 16 != 0,
        })
    }
}

/// Handles the I/O exit just taken by `guest`.
pub fn handle(guest: &mut Guest, vmcs: &mut CurrentVmcs) -> Next {
    let rip = vmcs.read(guest::RIP);
    let Some(exit) = IoExit::decode(vmcs.read(ro::EXIT_QUALIFICATION)) else {
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
    let direction = match exit.input {
        true => Direction::In,
        false => Direction::Out(guest.regs.rax as u32 & exit.size.all_ones()),
    };
    let dispatch = machine.bus.access(IoAccess {
        port: exit.port,
        size: exit.size,
        direction,
    });
    if let Some(irq) = dispatch.raise_irq {
        platform::raise_isa_irq(irq.0);
    }
    match dispatch.outcome {
        IoOutcome::Read(value) => set_input(&mut guest.regs.rax, exit.size, value),
        IoOutcome::Written => {}
        IoOutcome::Line(line) => relay(guest.config.name, line.text),
        IoOutcome::Power(event) => return Next::End(RunEnd::Power(event)),
        IoOutcome::PassToHardware => pass_to_hardware(&exit, &mut guest.regs.rax),
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
fn pass_to_hardware(exit: &IoExit, rax: &mut u64) {
    // SAFETY: the guest owns the machine's devices; l1-hv only forwards its own access.
    unsafe {
        use x86::io::{inb, inl, inw, outb, outl, outw};
        match (exit.input, exit.size) {
            (true, AccessSize::Byte) => set_input(rax, exit.size, inb(exit.port).into()),
            (true, AccessSize::Word) => set_input(rax, exit.size, inw(exit.port).into()),
            (true, AccessSize::Dword) => set_input(rax, exit.size, inl(exit.port)),
            (false, AccessSize::Byte) => outb(exit.port, *rax as u8),
            (false, AccessSize::Word) => outw(exit.port, *rax as u16),
            (false, AccessSize::Dword) => outl(exit.port, *rax as u32),
        }
    }
}
