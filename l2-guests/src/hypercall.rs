//! The hypercall client (ABI in `l2-abi`).

use l2_abi::Hypercall;

/// Issues a VMCALL; returns RAX.
pub fn vmcall(call: Hypercall, a: u64, b: u64, c: u64) -> u64 {
    let status;
    // SAFETY: VMCALL in a guest of l1-hv always exits to l1-hv, which touches only RAX and RIP.
    unsafe {
        core::arch::asm!("vmcall", inlateout("rax") call as u64 => status,
                         in("rdi") a, in("rsi") b, in("rdx") c, options(nostack));
    }
    status
}

/// Prints a line on l1-hv's console.
pub fn write(text: &str) {
    vmcall(Hypercall::Write, text.as_ptr() as u64, text.len() as u64, 0);
}

/// Reports what an exception handler saw.
pub fn observe(vector: u8, error_code: Option<u64>, cr2: u64) {
    let error_code = error_code.unwrap_or(l2_abi::NO_ERROR_CODE);
    vmcall(Hypercall::Observe, u64::from(vector), error_code, cr2);
}

/// Ends the guest with `code` (0 = success). l1-hv does not resume it.
pub fn done(code: u64) -> ! {
    vmcall(Hypercall::Done, code, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}
