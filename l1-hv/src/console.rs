//! The serial console on COM1: every line l1-hv prints (its own, and the console lines of its
//! guests that it relays), and the verdict the runner reads.
//!
//! Output is queued and sent as the UART's transmit FIFO empties, at every VM exit ([`pump`]),
//! rather than waited for byte by byte: at 115200 baud a byte takes as long as thousands of
//! instructions, and a guest whose console l1-hv relays should not wait for the wire while the
//! emulated UART it writes to is instantaneous. Only a full queue, [`flush`] (before powering
//! off) and a queue left over while the guest runs without exits (the VMX-preemption timer
//! brings it back, see `guest::vcpu`) make l1-hv wait.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::{backend::PioBackend, BaudRate, Config, Uart16550};

/// COM1's I/O base.
const COM1: u16 = 0x3f8;
/// Bytes queued before a print has to wait for the wire: enough for the bursts of a booting
/// kernel, small enough that the console trails the guest by at most ~0.35 s of its time at
/// 115200 baud (tests and debuggers act on what it printed).
const QUEUE: usize = 4 << 10;

/// The UART (absent on a machine without COM1: output is dropped) and the bytes waiting for it
/// (a ring: `len` bytes from `head`).
struct Console {
    uart: Option<Uart16550<PioBackend>>,
    queue: [u8; QUEUE],
    head: usize,
    len: usize,
}

impl Console {
    /// Sends what the transmit FIFO takes now; returns whether bytes are still queued.
    fn pump(&mut self) -> bool {
        let Some(uart) = self.uart.as_mut() else {
            self.len = 0;
            return false;
        };
        while self.len > 0 {
            let contiguous = (QUEUE - self.head).min(self.len);
            let sent = uart.send_bytes(&self.queue[self.head..self.head + contiguous]);
            if sent == 0 {
                break;
            }
            self.head = (self.head + sent) % QUEUE;
            self.len -= sent;
        }
        self.len > 0
    }

    fn push(&mut self, byte: u8) {
        while self.len == QUEUE {
            self.pump();
        }
        self.queue[(self.head + self.len) % QUEUE] = byte;
        self.len += 1;
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: None,
    queue: [0; QUEUE],
    head: 0,
    len: 0,
});

/// Programs COM1 for 115200 8-N-1 with its FIFO (slower rates make emulated runs visibly slower).
pub fn init() {
    // SAFETY: COM1 is a standard port and l1-hv is its only user.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.expect("COM1 is a valid port base");
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    // A machine without COM1 still runs; its output is lost.
    if uart.init(config).is_ok() {
        CONSOLE.lock().uart = Some(uart);
    }
}

struct Writer<'a>(&'a mut Console);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.0.push(b'\r');
            }
            self.0.push(byte);
        }
        Ok(())
    }
}

/// Queues formatted text for the console (used by `println!`).
pub fn print(args: fmt::Arguments) {
    let mut console = CONSOLE.lock();
    let _ = Writer(&mut console).write_fmt(args);
    console.pump();
}

/// Sends what the UART takes now without waiting; returns whether output is still queued.
pub fn pump() -> bool {
    CONSOLE.lock().pump()
}

/// Waits until the UART has sent every queued byte (LSR.TEMT), so that powering off loses
/// nothing.
pub fn flush() {
    let mut console = CONSOLE.lock();
    while console.pump() {
        core::hint::spin_loop();
    }
    if let Some(uart) = console.uart.as_mut() {
        while !uart
            .lsr()
            .contains(uart_16550::spec::registers::LSR::TRANSMITTER_EMPTY)
        {
            core::hint::spin_loop();
        }
    }
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
