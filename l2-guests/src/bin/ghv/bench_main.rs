//! ghv-bench: ghv's benchmark mode (`test-matrix bench`, docs/benchmarks.md). The same boot
//! paths, VMX set-up and reflection path as ghv (its modules, shared), with `bench.rs`'s timed
//! paths instead of the scenario table. A separate image, because under l1-hv a guest has no
//! command line to choose a mode with, and ghv's default run must stay as it is.
//!
//! Flow: ghv's set-up → ghv's own VMREAD/VMWRITE timings, printed at once (they need no nested
//! VM entry, so they are there even where l1-hv cannot run L3 yet) → L3's #PF timings → the
//! verdict, `ghv: verdict PASS (bench)`.
#![no_std]
#![no_main]

// ghv's modules. Each image uses its own part of them (the scenario table and per-exit log
// lines are ghv's, the bench loops ghv-bench's), so items only ghv uses are not dead code.
#[allow(dead_code)]
mod descriptors;
#[allow(dead_code)]
mod event;
#[allow(dead_code)]
mod l3;
#[allow(dead_code)]
mod log;
mod machine;
#[allow(dead_code)]
mod paging;
#[allow(dead_code)]
mod platform;
#[allow(dead_code)]
mod run;
#[allow(dead_code)]
mod scenarios;
mod setup;
#[allow(dead_code)]
mod vmcs;

mod bench;

use l3::L3Memory;
use log::Log;
use scenarios::SCENARIOS;

core::arch::global_asm!(include_str!("boot.s"));

/// ghv-bench's memory, as ghv's: in .bss, identity-mapped, each borrowed once by `ghv_main`.
static mut L3_MEMORY: L3Memory = L3Memory::new();
/// The VMREAD/VMWRITE results, printed before L3 runs.
static mut VMCS_LOG: Log = Log::new();
/// L3's results, printed with the verdict.
static mut L3_LOG: Log = Log::new();

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = machine::start(bare);
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (l3, vmcs_log, log) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(L3_MEMORY),
            &mut *core::ptr::addr_of_mut!(VMCS_LOG),
            &mut *core::ptr::addr_of_mut!(L3_LOG),
        )
    };
    // SAFETY: CPL 0 in 64-bit mode, identity-mapped; ghv_main runs once.
    let (caps, mut vmcs) = unsafe { setup::bring_up(platform, log, l3::code(), l3.range()) };
    // A complete VMCS (L3's first scenario's state) for the VMREAD/VMWRITE timings.
    l3.reset();
    vmcs::write_scenario(&mut vmcs, &caps, l3, &SCENARIOS[0]);
    bench::vmcs_access(vmcs_log);
    platform.print(vmcs_log.lines());

    if let Err(why) = bench::L3Runs::default().run_all(&mut vmcs, &caps, l3, log) {
        platform.finish(log, false, format_args!("({why})"));
    }
    if log.overflowed() || vmcs_log.overflowed() {
        platform.finish(log, false, format_args!("(log overflowed)"));
    }
    platform.finish(log, true, format_args!("(bench)"))
}
