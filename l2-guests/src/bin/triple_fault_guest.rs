//! Triple-fault generator: with an empty IDT, #UD cannot be delivered (#GP), neither can that
//! #GP (#DF, SDM Table 6-5: contributory then contributory) nor the #DF: a triple fault.
#![no_std]
#![no_main]

use l2_guests::hypercall::{done, write};
use l2_guests::rt::{self, ExceptionFrame};

fn on_exception(_: &mut ExceptionFrame) {
    write("triple-fault-guest: an exception was delivered although the IDT is empty");
    done(1);
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    write("triple-fault-guest: loading an empty IDT, then UD2");
    rt::tables::load_empty_idt();
    // SAFETY: deliberately faults; nothing after it runs.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}
