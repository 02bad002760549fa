//! bench-guest: times l1-hv's exit paths from inside an L2 guest, for `test-matrix bench`
//! (docs/benchmarks.md).
//!
//! Each path is [`ITERATIONS`] timed regions `lfence; rdtsc; <event>; lfence; rdtsc`. On Bochs the
//! TSC advances one tick per executed instruction, l1-hv's included, and not for VM exit or entry
//! themselves, so a region's delta is the exact number of instructions executed in it. The paths:
//! - `floor`: an empty region (what the runner subtracts from the others);
//! - `vmcall`: a hypercall round trip. l2-abi has no no-op hypercall yet, so this is a `Write`
//!   whose buffer lies outside guest RAM: l1-hv decodes it, checks it, answers
//!   `STATUS_BAD_ARGUMENT` and prints nothing;
//! - `cpuid`: CPUID leaf 0, which exits and l1-hv emulates;
//! - `pf`: a read of a not-present page. The #PF handler fixes nothing: it resumes after the read,
//!   so every iteration faults and does the same work whether l1-hv intercepts #PF or not (the
//!   runner boots this guest with `exceptions=none` and `exceptions=pf`).
//!
//! Each path ends in one line `bench path=P n=N median=M min=A max=B` (raw ticks, integers: the
//! target has no floating point), written with the `Write` hypercall.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};
use l2_guests::hypercall::{done, write};
use l2_guests::rt::{self, paging, paging::PageFlags, ExceptionFrame};

/// Timed regions per path (the issue asks for at least 1,000).
const ITERATIONS: usize = 1000;
/// A page well above the image, left not present for the whole #PF path.
const NOT_PRESENT: u64 = 0x60_0000;
/// The #PF vector.
const PAGE_FAULT: u64 = 14;

// The timed regions, one function each (System V: arguments in RDI/RSI, delta in EAX). Only the
// low halves of the TSC are kept: a delta is far below 2^32, and 32-bit wrapping subtraction is
// exact for it. LFENCE before each RDTSC keeps RDTSC from running ahead of what it times.
core::arch::global_asm!(
    ".section .text",
    // An empty region.
    ".global bench_floor",
    "bench_floor:",
    "    lfence",
    "    rdtsc",
    "    mov r8d, eax",
    "    lfence",
    "    rdtsc",
    "    sub eax, r8d",
    "    ret",
    // A `Nop` hypercall (4): l1-hv only sets RAX and RIP.
    ".global bench_vmcall",
    "bench_vmcall:",
    "    lfence",
    "    rdtsc",
    "    mov r8d, eax",
    "    mov eax, 4",
    "    vmcall",
    "    lfence",
    "    rdtsc",
    "    sub eax, r8d",
    "    ret",
    // CPUID leaf 0 (ECX is set before the region; EAX is RDTSC's output, so it is set inside).
    // RBX is callee-saved and CPUID writes it: kept in R9 around the region.
    ".global bench_cpuid",
    "bench_cpuid:",
    "    mov r9, rbx",
    "    xor ecx, ecx",
    "    lfence",
    "    rdtsc",
    "    mov r8d, eax",
    "    xor eax, eax",
    "    cpuid",
    "    lfence",
    "    rdtsc",
    "    sub eax, r8d",
    "    mov rbx, r9",
    "    ret",
    // A read of the not-present page at RDI; the #PF handler resumes at bench_pf_resume.
    ".global bench_pf",
    "bench_pf:",
    "    lfence",
    "    rdtsc",
    "    mov r8d, eax",
    ".global bench_pf_fault",
    "bench_pf_fault:",
    "    mov rcx, [rdi]",
    ".global bench_pf_resume",
    "bench_pf_resume:",
    "    lfence",
    "    rdtsc",
    "    sub eax, r8d",
    "    ret",
);

extern "C" {
    fn bench_floor() -> u32;
    fn bench_vmcall() -> u32;
    fn bench_cpuid() -> u32;
    fn bench_pf(address: u64) -> u32;
    fn bench_pf_fault();
    fn bench_pf_resume();
}

/// Page faults the handler resumed: must equal the #PF path's iterations.
static FAULTS: AtomicU32 = AtomicU32::new(0);

/// Resumes after the timed read; anything else ends the guest (the numbers would be wrong).
fn on_exception(frame: &mut ExceptionFrame) {
    if frame.vector != PAGE_FAULT || frame.rip != bench_pf_fault as *const () as u64 {
        write("bench-guest: unexpected exception");
        done(0x100 + frame.vector);
    }
    FAULTS.fetch_add(1, Ordering::Relaxed);
    frame.rip = bench_pf_resume as *const () as u64;
}

/// A `Write` line built on the stack (no allocator in the guest).
struct Line {
    text: [u8; 128],
    len: usize,
}

impl core::fmt::Write for Line {
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

/// Runs `timed` [`ITERATIONS`] times and reports `bench path=NAME n=.. median=.. min=.. max=..`.
/// The median is the upper one (element n/2 of the sorted deltas).
fn measure(name: &str, mut timed: impl FnMut() -> u32) {
    let mut samples = [0u32; ITERATIONS];
    for sample in samples.iter_mut() {
        *sample = timed();
    }
    samples.sort_unstable();
    let mut line = Line {
        text: [0; 128],
        len: 0,
    };
    let (min, median, max) = (samples[0], samples[ITERATIONS / 2], samples[ITERATIONS - 1]);
    if write!(
        line,
        "bench path={name} n={ITERATIONS} median={median} min={min} max={max}"
    )
    .is_err()
    {
        done(0x200);
    }
    // Only `write_str` filled the buffer, with whole `str`s: it is UTF-8.
    write(core::str::from_utf8(&line.text[..line.len]).unwrap_or("bench-guest: bad line"));
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    rt::init(on_exception);
    // SAFETY (all four): the regions only execute the instructions above; the #PF one reads a
    // page of guest RAM that `paging` maps not-present, and the handler resumes after the read.
    measure("floor", || unsafe { bench_floor() });
    measure("vmcall", || unsafe { bench_vmcall() });
    measure("cpuid", || unsafe { bench_cpuid() });
    let present = PageFlags::P | PageFlags::RW | PageFlags::US;
    paging::set_page_flags(NOT_PRESENT, present - PageFlags::P);
    measure("pf", || unsafe { bench_pf(NOT_PRESENT) });
    if FAULTS.load(Ordering::Relaxed) as usize != ITERATIONS {
        write("bench-guest: a timed read did not fault");
        done(1);
    }
    done(0)
}
