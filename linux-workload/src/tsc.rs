//! `tsc LABEL`: prints `tsc: LABEL N`, N the time-stamp counter. On Bochs the TSC counts executed
//! instructions, so the difference of two such lines is the instructions run between them, by the
//! guest and by any hypervisor under it (l1-hv sets no TSC offset). Linux lets user mode execute
//! RDTSC (CR4.TSD clear) unless a process asks otherwise.

pub fn run(label: &str) -> Result<(), String> {
    // SAFETY: RDTSC has no side effects; only CR4.TSD could make it fault, and Linux leaves it clear.
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    println!("tsc: {label} {tsc}");
    Ok(())
}
