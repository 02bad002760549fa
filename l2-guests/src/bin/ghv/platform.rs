//! What ghv runs on, told by the entry path it came in by, and how it prints and ends there:
//! bare (GRUB) → COM1 and Bochs' shutdown port; under l1-hv → the `Write` and `Done`
//! hypercalls of `l2-abi` (port I/O would make l1-hv stop ghv).

use crate::log::Log;
use l2_abi::{Hypercall, MAX_WRITE};
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};
use x86::io::outb;

/// COM1's I/O base.
const COM1: u16 = 0x3f8;
/// Bochs' shutdown port: writing the bytes of "Shutdown" ends the emulator.
const BOCHS_SHUTDOWN: u16 = 0x8900;
/// The legacy PICs' data ports (interrupt masks).
const PIC_MASKS: [u16; 2] = [0x21, 0xa1];

/// Where ghv runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Booted by GRUB on the (emulated) machine itself.
    Bare,
    /// An L2 guest of l1-hv.
    UnderL1hv,
}

impl Platform {
    /// Quiets the machine: bare, the legacy PICs are masked, so that nothing GRUB left running
    /// can interrupt ghv (ghv runs with interrupts disabled and has no IDT of its own).
    pub fn init(self) {
        if self == Self::Bare {
            // SAFETY: masking the PICs only affects interrupt delivery, which ghv does not use.
            unsafe {
                for port in PIC_MASKS {
                    outb(port, 0xff);
                }
            }
        }
    }

    /// Prints every line of `log`, then `ghv: verdict <verdict>`, and ends the run: bare, powers
    /// off (Bochs); under l1-hv, the `Done` hypercall (0 for PASS).
    pub fn finish(self, log: &Log, pass: bool, verdict: core::fmt::Arguments) -> ! {
        let mut last = Log::new();
        last.line(format_args!(
            "verdict {} {verdict}",
            if pass { "PASS" } else { "FAIL" }
        ));
        self.print(log.lines().chain(last.lines()));
        match self {
            Self::Bare => {
                // SAFETY: Bochs' shutdown port; on other machines it is unused.
                unsafe {
                    for byte in b"Shutdown" {
                        outb(BOCHS_SHUTDOWN, *byte);
                    }
                }
            }
            Self::UnderL1hv => hypercall(Hypercall::Done, u64::from(!pass), 0),
        }
        loop {
            // SAFETY: nothing is left to do; HLT with interrupts disabled parks the CPU.
            unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
        }
    }
}

impl Platform {
    /// Prints `lines` now: bare on COM1 (returning once every byte has left the UART), under
    /// l1-hv with one `Write` hypercall each. ghv prints only at the end (`finish`); ghv-bench
    /// also prints results before a step that may not come back.
    pub fn print<'a>(self, lines: impl Iterator<Item = &'a str>) {
        match self {
            Self::Bare => {
                let mut uart = com1();
                for line in lines {
                    if let Some(uart) = uart.as_mut() {
                        uart.send_bytes_exact(line.as_bytes());
                        uart.send_bytes_exact(b"\r\n");
                    }
                }
                if let Some(uart) = uart.as_mut() {
                    // LSR.TEMT: every byte has left the UART, so powering off loses nothing.
                    while !uart
                        .lsr()
                        .contains(uart_16550::spec::registers::LSR::TRANSMITTER_EMPTY)
                    {
                        core::hint::spin_loop();
                    }
                }
            }
            Self::UnderL1hv => {
                for line in lines {
                    let text = &line.as_bytes()[..line.len().min(MAX_WRITE as usize)];
                    hypercall(Hypercall::Write, text.as_ptr() as u64, text.len() as u64);
                }
            }
        }
    }
}

/// COM1 at 115200 8-N-1, if the machine has it.
fn com1() -> Option<Uart16550<PioBackend>> {
    // SAFETY: COM1 is a standard port and ghv is its only user.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    uart.init(config).ok()?;
    Some(uart)
}

/// A VMCALL to l1-hv (ABI in `l2-abi`; ghv is identity-mapped, so pointers are guest-physical).
fn hypercall(call: Hypercall, a: u64, b: u64) {
    // SAFETY: under l1-hv a VMCALL exits to l1-hv, which changes only RAX and RIP.
    unsafe {
        core::arch::asm!("vmcall", inlateout("rax") call as u64 => _, in("rdi") a, in("rsi") b,
                         in("rdx") 0u64, options(nostack));
    }
}
