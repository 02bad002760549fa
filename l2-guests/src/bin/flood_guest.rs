//! Exit flood: raises #UD (UD2) `FLOOD_EXCEPTIONS` times in a loop; its handler counts each one
//! and skips the instruction. Run with `exceptions=all`, every #UD is a VM exit that l1-hv
//! re-injects, so l1-hv's exit counter for the run must equal the number reported here
//! (test-matrix/tests/hostile.rs). The count is fixed when the image is built (a guest has no
//! command line): 1 000 000 (about 15 s of Bochs), or `FLOOD_EXCEPTIONS=N` in the environment of
//! the build for another flood (docs/hostile.md has the timings).
#![no_std]
#![no_main]

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use l2_guests::hypercall::{done, write};
use l2_guests::rt::{self, ExceptionFrame};

/// How many #UD the guest raises.
const COUNT: u64 = match option_env!("FLOOD_EXCEPTIONS") {
    Some(digits) => parse_decimal(digits),
    None => 1_000_000,
};
/// UD2's length: the handler resumes after it.
const UD2_LENGTH: u64 = 2;
const UD: u64 = 6;

/// #UDs the handler received.
static HANDLED: AtomicU64 = AtomicU64::new(0);

const fn parse_decimal(digits: &str) -> u64 {
    let bytes = digits.as_bytes();
    let mut value = 0u64;
    let mut i = 0;
    while i < bytes.len() {
        assert!(
            bytes[i].is_ascii_digit(),
            "FLOOD_EXCEPTIONS must be a decimal number"
        );
        value = value * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    value
}

fn on_exception(frame: &mut ExceptionFrame) {
    if frame.vector != UD {
        write("flood-guest: an exception other than #UD");
        done(0x100 + frame.vector);
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
    frame.rip += UD2_LENGTH;
}

/// A line on the stack (no allocator).
struct Line {
    text: [u8; 128],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self
            .text
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    for _ in 0..COUNT {
        // SAFETY: the handler skips the UD2 and returns here.
        unsafe { core::arch::asm!("ud2") };
    }
    let handled = HANDLED.load(Ordering::Relaxed);
    let mut line = Line {
        text: [0; 128],
        len: 0,
    };
    let _ = write!(
        line,
        "flood-guest: raised {COUNT} #UD, handler received {handled}"
    );
    write(core::str::from_utf8(&line.text[..line.len]).unwrap_or("flood-guest: ?"));
    done(u64::from(handled != COUNT))
}
