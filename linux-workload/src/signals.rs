//! `signals`: five faults taken in user mode and handled by our own SA_SIGINFO handler, which
//! records what the kernel reported and resumes by moving the saved RIP in the ucontext past the
//! faulting instruction (no siglongjmp, no child process). What reaches the handler is the
//! end of the path an exception takes through the hypervisors: hardware (or l1-hv's
//! re-injection) → the guest kernel's IDT → the kernel's signal delivery.
//!
//! The faulting instructions use fixed registers, so their lengths are known (3 or 2 bytes), and
//! the #PF addresses are fixed with MAP_FIXED_NOREPLACE, so nothing printed depends on ASLR: code
//! addresses are compared with the instruction's own address, not printed.

use crate::memory::yes_no;
use std::arch::asm;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering::SeqCst};

/// Two pages at a fixed address, far below where a static-pie program and its stack go: the first
/// is unmapped again (SEGV_MAPERR), the second read-only (SEGV_ACCERR).
const BASE: usize = 0x1000_0000;
const PAGE: usize = 4096;

/// si_code values (include/uapi/asm-generic/siginfo.h), which the libc crate does not define.
mod si_code {
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const ILL_ILLOPN: i32 = 2;
    pub const TRAP_BRKPT: i32 = 1;
    /// What x86 Linux reports for a user INT3 (do_int3_user → do_trap).
    pub const SI_KERNEL: i32 = 0x80;
}

/// What the handler saw last.
static SIGNO: AtomicI32 = AtomicI32::new(0);
static CODE: AtomicI32 = AtomicI32::new(0);
static ADDR: AtomicUsize = AtomicUsize::new(0);
static RIP: AtomicUsize = AtomicUsize::new(0);
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// Bytes the handler adds to the saved RIP: the faulting instruction's length for faults, 0 for
/// INT3 (a trap: RIP already points past it).
static SKIP: AtomicUsize = AtomicUsize::new(0);

extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: SA_SIGINFO handlers get a valid siginfo_t and ucontext_t; only atomics are touched
    // (async-signal-safe).
    unsafe {
        SIGNO.store(signo, SeqCst);
        CODE.store((*info).si_code, SeqCst);
        ADDR.store((*info).si_addr() as usize, SeqCst);
        let rip =
            &mut (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize];
        RIP.store(*rip as usize, SeqCst);
        *rip += SKIP.load(SeqCst) as i64;
    }
    TAKEN.fetch_add(1, SeqCst);
}

/// A faulting instruction: returns its address and the address after it.
type Fault = fn() -> (usize, usize);

/// One case: what the handler must have seen.
struct Expected {
    what: &'static str,
    signo: i32,
    code: i32,
    /// `Some(address)`: si_addr must be the faulting data address; `None`: the instruction's.
    data_addr: Option<usize>,
}

pub fn run() -> Result<(), String> {
    install()?;
    prepare_pages()?;
    let cases: [(Expected, Fault); 5] = [
        (
            Expected {
                what: "read of an unmapped page",
                signo: libc::SIGSEGV,
                code: si_code::SEGV_MAPERR,
                data_addr: Some(BASE),
            },
            read_unmapped,
        ),
        (
            Expected {
                what: "write to a read-only page",
                signo: libc::SIGSEGV,
                code: si_code::SEGV_ACCERR,
                data_addr: Some(BASE + PAGE),
            },
            write_read_only,
        ),
        (
            Expected {
                what: "integer divide by zero",
                signo: libc::SIGFPE,
                code: si_code::FPE_INTDIV,
                data_addr: None,
            },
            divide_by_zero,
        ),
        (
            Expected {
                what: "int3",
                signo: libc::SIGTRAP,
                code: si_code::SI_KERNEL,
                data_addr: None,
            },
            breakpoint,
        ),
        (
            Expected {
                what: "ud2",
                signo: libc::SIGILL,
                code: si_code::ILL_ILLOPN,
                data_addr: None,
            },
            undefined_opcode,
        ),
    ];
    let mut good = 0;
    for (expected, fault) in cases {
        let taken = TAKEN.load(SeqCst);
        let (insn, next) = fault();
        let line = report(&expected, TAKEN.load(SeqCst) - taken, insn, next);
        good += usize::from(line.ends_with(": ok"));
        println!("{line}");
    }
    println!("signals: {good} of 5 faults handled in user mode");
    if good == 5 {
        Ok(())
    } else {
        Err("signals: a fault was not reported as expected".into())
    }
}

/// `signals: WHAT: SIGNAL CODE si_addr=... rip=...: ok|WRONG`.
fn report(e: &Expected, taken: u32, insn: usize, next: usize) -> String {
    let (signo, code, addr, rip) = (
        SIGNO.load(SeqCst),
        CODE.load(SeqCst),
        ADDR.load(SeqCst),
        RIP.load(SeqCst),
    );
    if taken != 1 {
        return format!("signals: {}: {taken} signals taken: WRONG", e.what);
    }
    let addr_text = match e.data_addr {
        Some(_) => format!(" si_addr={addr:#x}"),
        // A trap reports no address (SI_KERNEL): only faults name their instruction.
        None if e.signo == libc::SIGTRAP => String::new(),
        None => format!(" si_addr=instruction:{}", yes_no(addr == insn)),
    };
    // Faults report the faulting instruction, traps the one after.
    let rip_ok = if e.signo == libc::SIGTRAP {
        rip == next
    } else {
        rip == insn
    };
    let rip_text = if e.signo == libc::SIGTRAP {
        "after-instruction"
    } else {
        "instruction"
    };
    let ok = signo == e.signo
        && code == e.code
        && rip_ok
        && match e.data_addr {
            Some(want) => addr == want,
            None => e.signo == libc::SIGTRAP || addr == insn,
        };
    format!(
        "signals: {}: {} {}{addr_text} rip={rip_text}:{}: {}",
        e.what,
        signal_name(signo),
        code_name(signo, code),
        yes_no(rip_ok),
        if ok { "ok" } else { "WRONG" }
    )
}

fn install() -> Result<(), String> {
    for signo in [libc::SIGSEGV, libc::SIGFPE, libc::SIGTRAP, libc::SIGILL] {
        // SAFETY: a zeroed sigaction with our handler and an empty mask is valid.
        let ok = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signo, &action, std::ptr::null_mut()) == 0
        };
        if !ok {
            return Err(format!(
                "sigaction({signo}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Maps BASE..BASE+2 pages, unmaps the first and makes the second (present, written once)
/// read-only.
fn prepare_pages() -> Result<(), String> {
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the pages are ours.
    unsafe {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
        let p = libc::mmap(
            BASE as *mut _,
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        );
        if p as usize != BASE {
            return Err(os("mmap at 0x10000000"));
        }
        ((BASE + PAGE) as *mut u64).write_volatile(0x5a5a);
        if libc::munmap(BASE as *mut _, PAGE) != 0 {
            return Err(os("munmap"));
        }
        if libc::mprotect((BASE + PAGE) as *mut _, PAGE, libc::PROT_READ) != 0 {
            return Err(os("mprotect"));
        }
    }
    Ok(())
}

fn read_unmapped() -> (usize, usize) {
    let (insn, next): (usize, usize);
    SKIP.store(3, SeqCst);
    // SAFETY: the read faults; the handler resumes after it (48 8b 07: 3 bytes).
    unsafe {
        asm!("lea {i}, [rip + 2f]", "lea {n}, [rip + 3f]", "2: mov rax, qword ptr [rdi]", "3:",
             i = out(reg) insn, n = out(reg) next, in("rdi") BASE, out("rax") _);
    }
    (insn, next)
}

fn write_read_only() -> (usize, usize) {
    let (insn, next): (usize, usize);
    SKIP.store(3, SeqCst);
    // SAFETY: the write faults; the handler resumes after it (48 89 07: 3 bytes).
    unsafe {
        asm!("lea {i}, [rip + 2f]", "lea {n}, [rip + 3f]", "2: mov qword ptr [rdi], rax", "3:",
             i = out(reg) insn, n = out(reg) next, in("rdi") BASE + PAGE, in("rax") 1u64);
    }
    (insn, next)
}

fn divide_by_zero() -> (usize, usize) {
    let (insn, next): (usize, usize);
    SKIP.store(3, SeqCst);
    // SAFETY: #DE; the handler resumes after the division (48 f7 f1: 3 bytes).
    unsafe {
        asm!("lea {i}, [rip + 2f]", "lea {n}, [rip + 3f]", "2: div rcx", "3:",
             i = out(reg) insn, n = out(reg) next, in("rcx") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
    }
    (insn, next)
}

fn breakpoint() -> (usize, usize) {
    let (insn, next): (usize, usize);
    SKIP.store(0, SeqCst);
    // SAFETY: #BP is a trap: the saved RIP is already past the INT3.
    unsafe {
        asm!("lea {i}, [rip + 2f]", "lea {n}, [rip + 3f]", "2: int3", "3:", i = out(reg) insn, n = out(reg) next);
    }
    (insn, next)
}

fn undefined_opcode() -> (usize, usize) {
    let (insn, next): (usize, usize);
    SKIP.store(2, SeqCst);
    // SAFETY: #UD; the handler resumes after the UD2 (0f 0b: 2 bytes).
    unsafe {
        asm!("lea {i}, [rip + 2f]", "lea {n}, [rip + 3f]", "2: ud2", "3:", i = out(reg) insn, n = out(reg) next);
    }
    (insn, next)
}

fn signal_name(signo: i32) -> String {
    match signo {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGTRAP => "SIGTRAP".into(),
        libc::SIGILL => "SIGILL".into(),
        other => format!("signal {other}"),
    }
}

/// si_code names (they overlap between signals: 1 is SEGV_MAPERR and FPE_INTDIV).
fn code_name(signo: i32, code: i32) -> String {
    let name = match (signo, code) {
        (libc::SIGSEGV, si_code::SEGV_MAPERR) => "SEGV_MAPERR",
        (libc::SIGSEGV, si_code::SEGV_ACCERR) => "SEGV_ACCERR",
        (libc::SIGFPE, si_code::FPE_INTDIV) => "FPE_INTDIV",
        (libc::SIGILL, si_code::ILL_ILLOPN) => "ILL_ILLOPN",
        (_, si_code::SI_KERNEL) => "SI_KERNEL",
        (libc::SIGTRAP, si_code::TRAP_BRKPT) => "TRAP_BRKPT",
        _ => return format!("si_code={code}"),
    };
    name.into()
}
