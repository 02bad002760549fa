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
#[allow(dead_code)]
mod paging;
#[allow(dead_code)]
mod platform;
#[allow(dead_code)]
mod run;
#[allow(dead_code)]
mod scenarios;
#[allow(dead_code)]
mod vmcs;

mod bench;

use core::sync::atomic::{AtomicBool, Ordering};
use descriptors::DescriptorTables;
use l1_hv::vmx::bringup::enter_vmx_root;
use l1_hv::vmx::current_vmcs::CurrentVmcs;
use l1_hv::vmx::instructions::{vmclear, vmptrld};
use l3::L3Memory;
use log::Log;
use paging::Hierarchy;
use platform::Platform;
use scenarios::SCENARIOS;

core::arch::global_asm!(include_str!("boot.s"));

/// EPT permission bits and leaf memory type, as ghv's (SDM 29.3.2).
const EPT_READ: u64 = 1 << 0;
const EPT_WRITE: u64 = 1 << 1;
const EPT_EXECUTE: u64 = 1 << 2;
const EPT_MEMORY_TYPE_WB: u64 = 6 << 3;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// ghv-bench's memory, as ghv's: in .bss, identity-mapped, each borrowed once by `ghv_main`.
static mut VMXON_REGION: Page = Page([0; 4096]);
static mut VMCS_REGION: Page = Page([0; 4096]);
static mut HOST_DESCRIPTORS: DescriptorTables = DescriptorTables::new();
static mut EPT: Hierarchy = Hierarchy::new();
static mut L3_MEMORY: L3Memory = L3Memory::new();
/// The VMREAD/VMWRITE results, printed before L3 runs.
static mut VMCS_LOG: Log = Log::new();
/// L3's results, printed with the verdict.
static mut L3_LOG: Log = Log::new();

/// Set at entry: the platform the panic handler reports on.
static BARE: AtomicBool = AtomicBool::new(false);

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = if bare != 0 { Platform::Bare } else { Platform::UnderL1hv };
    BARE.store(bare != 0, Ordering::Relaxed);
    platform.init();
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (vmxon, vmcs_region, host, ept, l3, vmcs_log, log) = unsafe {
        (
            &mut *(&raw mut VMXON_REGION),
            &mut *(&raw mut VMCS_REGION),
            &mut *(&raw mut HOST_DESCRIPTORS),
            &mut *(&raw mut EPT),
            &mut *(&raw mut L3_MEMORY),
            &mut *(&raw mut VMCS_LOG),
            &mut *(&raw mut L3_LOG),
        )
    };
    host.build(0);
    let host: &'static DescriptorTables = host;
    // SAFETY: CPL 0 in 64-bit mode; a static, filled above.
    unsafe { host.load() };

    let vmxon_phys = vmxon.0.as_ptr() as u64;
    // SAFETY: CPL 0; identity-mapped, so the address is physical; the region is never reused.
    let caps = match unsafe { enter_vmx_root(&mut vmxon.0, vmxon_phys) } {
        Ok(caps) => caps,
        Err(e) => platform.finish(log, false, format_args!("(VMX: {e})")),
    };
    vmcs_region.0[..4].copy_from_slice(&caps.revision_id().to_le_bytes());
    let vmcs_phys = vmcs_region.0.as_ptr() as u64;
    // SAFETY: VMX root operation; the region is 4 KiB-aligned and carries the revision id.
    if unsafe { vmclear(vmcs_phys).and_then(|()| vmptrld(vmcs_phys)) }.is_err() {
        platform.finish(log, false, format_args!("(VMCLEAR/VMPTRLD of L3's VMCS failed)"));
    }
    // SAFETY: the VMCS was just made current and stays current until power-off.
    let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };
    ept.reset(EPT_READ | EPT_WRITE | EPT_EXECUTE);
    ept.map(l3::code(), EPT_READ | EPT_EXECUTE | EPT_MEMORY_TYPE_WB);
    ept.map(l3.range(), EPT_READ | EPT_WRITE | EPT_MEMORY_TYPE_WB);
    if let Err(e) = vmcs::write_controls_and_host(&mut vmcs, &caps, ept.root(), host) {
        platform.finish(log, false, format_args!("({} controls lack {:#x})", e.control, e.missing));
    }
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let platform = if BARE.load(Ordering::Relaxed) { Platform::Bare } else { Platform::UnderL1hv };
    let mut log = Log::new();
    log.line(format_args!("PANIC: {info}"));
    platform.finish(&log, false, format_args!("(panic)"))
}
