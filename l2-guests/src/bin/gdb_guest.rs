//! The guest l1-hv's debugger is tested against (test-matrix/tests/gdb.rs, docs/debugging.md):
//! a function to break on (`gdb_tick`), a variable to watch (`GDB_COUNTER`), an INT3 of its own
//! that must reach its handler as if no debugger were attached, and a known end.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use l2_guests::hypercall::{done, write};
use l2_guests::rt::{self, ExceptionFrame};

/// What `gdb_tick` adds to: the test watches it.
#[no_mangle]
static GDB_COUNTER: AtomicU64 = AtomicU64::new(0);
/// #BPs the guest's own handler received.
static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);

const BP: u64 = 3;

fn on_exception(frame: &mut ExceptionFrame) {
    if frame.vector != BP {
        write("gdb-guest: unexpected exception");
        done(0x100 + frame.vector);
    }
    // INT3 is a trap: the frame's RIP is already past it.
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
}

/// Adds `step` to the counter and returns the new total.
#[no_mangle]
#[inline(never)]
extern "C" fn gdb_tick(step: u64) -> u64 {
    let total = GDB_COUNTER.load(Ordering::Relaxed) + step;
    GDB_COUNTER.store(total, Ordering::Relaxed);
    total
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    write("gdb-guest: start");
    // SAFETY: INT3 only raises #BP, which `on_exception` counts.
    unsafe { core::arch::asm!("int3") };
    let mut total = 0;
    for step in 1..=3 {
        total = gdb_tick(step);
    }
    let own_breakpoints = BREAKPOINTS.load(Ordering::Relaxed);
    if total != 6 || own_breakpoints != 1 {
        write("gdb-guest: wrong total or lost #BP");
        done(1);
    }
    write("gdb-guest: counted to 6, own #BP handled");
    done(0)
}
