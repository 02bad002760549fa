//! Page-fault generator: a not-present read, a write to a read-only page, and a user-mode read
//! of a supervisor page. The #PF handler reports vector, error code and CR2 with `Observe`,
//! fixes the mapping and returns, so each access is retried and completes.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};
use l2_guests::hypercall::{done, observe, write};
use l2_guests::rt::{self, paging, paging::PageFlags, ExceptionFrame};

/// Three pages well above the image, one per fault kind.
const NOT_PRESENT: u64 = 0x60_0000;
const READ_ONLY: u64 = 0x60_1000;
const SUPERVISOR: u64 = 0x60_2000;
const PATTERN: u64 = 0x5a5a_1234_5678_9abc;

/// Page faults taken so far: more than a few means a fix did not take, so stop rather than loop.
static FAULTS: AtomicU32 = AtomicU32::new(0);

fn on_exception(frame: &mut ExceptionFrame) {
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() } as u64;
    let vector = frame.vector as u8;
    observe(
        vector,
        frame.pushed_error_code(),
        if vector == 14 { cr2 } else { 0 },
    );
    if vector != 14 || FAULTS.fetch_add(1, Ordering::Relaxed) > 8 {
        write("pf-guest: unexpected exception");
        done(u64::from(vector) + 0x100);
    }
    // Fix what the error code says is wrong (SDM 4.7): P=0 → map; W → writable; U → user.
    let mut flags = paging::page_flags(cr2);
    let error_code = frame.error_code;
    if error_code & 1 == 0 {
        flags |= PageFlags::P;
    } else if error_code & 2 != 0 {
        flags |= PageFlags::RW;
    } else if error_code & 4 != 0 {
        flags |= PageFlags::US;
    }
    paging::set_page_flags(cr2, flags);
}

extern "C" fn user_reads_supervisor_page() -> ! {
    // SAFETY: the page is identity-mapped RAM; the first access faults and is fixed.
    let value = unsafe { read_volatile(SUPERVISOR as *const u64) };
    if value != PATTERN {
        done(3);
    }
    rt::return_to_kernel()
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    write("pf-guest: start");
    let present = PageFlags::P | PageFlags::RW | PageFlags::US;
    // SAFETY: all three addresses are guest RAM, identity-mapped by `paging`.
    unsafe {
        write_volatile(NOT_PRESENT as *mut u64, PATTERN);
        write_volatile(SUPERVISOR as *mut u64, PATTERN);
        paging::set_page_flags(NOT_PRESENT, present - PageFlags::P);
        paging::set_page_flags(READ_ONLY, present - PageFlags::RW);
        paging::set_page_flags(SUPERVISOR, present - PageFlags::US);

        if read_volatile(NOT_PRESENT as *const u64) != PATTERN {
            done(1);
        }
        write_volatile(READ_ONLY as *mut u64, PATTERN);
        if read_volatile(READ_ONLY as *const u64) != PATTERN {
            done(2);
        }
    }
    rt::in_user_mode(user_reads_supervisor_page);
    write("pf-guest: all faults handled");
    done(0)
}
