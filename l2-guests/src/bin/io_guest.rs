//! Port I/O, which l1-hv never passes through or emulates: it must stop this guest with a
//! one-line reason ("unhandled VM exit 30 (I/O instruction)") and go on with the next one.
#![no_std]
#![no_main]

use l2_guests::hypercall::{done, write};
use l2_guests::rt::{self, ExceptionFrame};

fn on_exception(_: &mut ExceptionFrame) {
    done(1);
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    write("io-guest: writing port 0x80");
    // SAFETY: the write exits to l1-hv; it never reaches a device.
    unsafe { x86::io::outb(0x80, 0x42) };
    write("io-guest: the port write returned: l1-hv did not stop this guest");
    done(2)
}
