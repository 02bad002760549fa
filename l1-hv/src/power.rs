//! Ending a run: flush the console, then power off with a status the runner can tell apart.

use x86::io::{outb, outw};

/// How a run ended. The runner reads the verdict line on the console; the status is a second,
/// coarser channel for emulators that can return it (QEMU's isa-debug-exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Every guest ran and met its expectation.
    Pass = 0x10,
    /// A guest, a comparison or l1-hv itself failed.
    Fail = 0x11,
    /// The CPU cannot run l1-hv (no VMX, VMX disabled by firmware).
    NoVmx = 0x12,
}

/// QEMU `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: QEMU exits with `(value << 1) | 1`.
const QEMU_DEBUG_EXIT: u16 = 0xf4;
/// Bochs' shutdown port: writing the bytes of "Shutdown" ends the emulator.
const BOCHS_SHUTDOWN: u16 = 0x8900;

/// Flushes the console and powers the machine off; on hardware without a known exit device it
/// halts with interrupts disabled.
pub fn exit(status: ExitStatus) -> ! {
    crate::console::flush();
    // SAFETY: writes to emulator exit devices; on other machines these ports are unused.
    unsafe {
        outb(QEMU_DEBUG_EXIT, status as u8);
        for byte in b"Shutdown" {
            outb(BOCHS_SHUTDOWN, *byte);
        }
        // QEMU without a debug-exit device: S5 through its PIIX4 PM1a control port.
        outw(0x604, 0x2000);
    }
    halt_forever()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: interrupts stay disabled; HLT just parks the CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}
