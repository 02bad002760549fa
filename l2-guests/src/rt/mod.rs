//! Guest start-up, exception dispatch and user mode.

pub mod paging;
pub mod tables;

use core::sync::atomic::{AtomicUsize, Ordering};

core::arch::global_asm!(include_str!("entry.s"));

/// What the exception stub pushed, followed by the CPU's interrupt frame (SDM 6.14.2).
#[repr(C)]
pub struct ExceptionFrame {
    /// Exception vector.
    pub vector: u64,
    /// Error code, or 0 for vectors that push none.
    pub error_code: u64,
    /// Return RIP (the faulting instruction for faults).
    pub rip: u64,
    /// Return CS.
    pub cs: u64,
    /// Saved RFLAGS.
    pub rflags: u64,
    /// Saved RSP.
    pub rsp: u64,
    /// Saved SS.
    pub ss: u64,
}

impl ExceptionFrame {
    /// The error code, if this vector pushes one in protected mode (SDM Table 6-1, as nvmx
    /// encodes it for every other path).
    pub fn pushed_error_code(&self) -> Option<u64> {
        nvmx::event::vector_has_error_code(self.vector as u8).then_some(self.error_code)
    }
}

/// A guest's exception handler: returns normally to retry/continue, or ends the guest.
pub type Handler = fn(&mut ExceptionFrame);

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Installs descriptor tables and paging, and routes every exception to `handler`.
pub fn init(handler: Handler) {
    HANDLER.store(handler as *const () as usize, Ordering::Relaxed);
    tables::init();
    paging::init();
}

#[no_mangle]
extern "C" fn guest_exception(frame: &mut ExceptionFrame) {
    let handler = HANDLER.load(Ordering::Relaxed);
    if handler == 0 {
        crate::hypercall::write("guest: exception before init");
        crate::hypercall::done(0xdead);
    }
    // SAFETY: only `init` stores into HANDLER, always a `Handler`.
    let handler: Handler = unsafe { core::mem::transmute(handler) };
    handler(frame);
}

extern "C" {
    fn run_user(entry: u64, user_stack: u64);
}

#[repr(C, align(16))]
struct UserStack([u8; 8192]);
static mut USER_STACK: UserStack = UserStack([0; 8192]);

/// Runs `entry` at CPL 3 on a user stack; `entry` must end with [`return_to_kernel`].
pub fn in_user_mode(entry: extern "C" fn() -> !) {
    // SAFETY: the user stack is only used while `entry` runs, and every page is user-accessible.
    unsafe {
        let top = &raw const USER_STACK as u64 + core::mem::size_of::<UserStack>() as u64;
        run_user(entry as *const () as u64, top);
    }
}

/// Leaves user mode: INT 0x80 through the DPL 3 gate back to `in_user_mode`'s caller.
pub fn return_to_kernel() -> ! {
    // SAFETY: the gate's handler never returns to this code.
    unsafe { core::arch::asm!("int 0x80", options(noreturn)) }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let message = info.message().as_str().unwrap_or("guest panic");
    crate::hypercall::write(message);
    crate::hypercall::done(0xbad)
}
