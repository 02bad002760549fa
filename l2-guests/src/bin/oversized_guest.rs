//! An image larger than guest RAM (its .bss alone exceeds `l2_abi::RAM_SIZE`): l1-hv must refuse
//! it with a clear message before copying a byte, and go on with the next guest.
#![no_std]
#![no_main]

use l2_guests::hypercall::done;

static mut TOO_BIG: [u8; l2_abi::RAM_SIZE as usize] = [0; l2_abi::RAM_SIZE as usize];

#[no_mangle]
extern "C" fn guest_main() -> ! {
    // SAFETY: never runs; the access keeps the array in the image.
    let first = unsafe { core::ptr::read_volatile(&raw const TOO_BIG[0]) };
    done(u64::from(first))
}
