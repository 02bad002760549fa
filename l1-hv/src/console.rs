//! The serial console on COM1: every line l1-hv prints, and the verdict the runner reads.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::{backend::PioBackend, BaudRate, Config, Uart16550};

/// COM1's I/O base.
const COM1: u16 = 0x3f8;

static CONSOLE: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Programs COM1 for 115200 8-N-1 (slower rates make emulated runs visibly slower).
pub fn init() {
    // SAFETY: COM1 is a standard port and l1-hv is its only user.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.expect("COM1 is a valid port base");
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    // A machine without COM1 still runs; its output is lost.
    if uart.init(config).is_ok() {
        *CONSOLE.lock() = Some(uart);
    }
}

struct Writer<'a>(&'a mut Uart16550<PioBackend>);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.0.send_bytes_exact(b"\r");
            }
            self.0.send_bytes_exact(&[byte]);
        }
        Ok(())
    }
}

/// Writes formatted text to the console (used by `println!`).
pub fn print(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = Writer(uart).write_fmt(args);
    }
}

/// Waits until the UART has sent every byte (LSR.TEMT), so that powering off loses nothing.
pub fn flush() {
    if let Some(uart) = CONSOLE.lock().as_mut() {
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
