//! ghv: a small guest hypervisor, written for real VT-x, that runs an L3 payload through a table
//! of exception-forwarding scenarios and logs exactly what it received on each VM exit and what
//! L3's handlers saw. It boots bare (GRUB multiboot2, see boot.s) or as an L2 guest of l1-hv, and
//! prints the same log in both modes, so a faithful nested VT-x is one that reproduces the bare
//! log line for line. See docs/ghv.md.
//!
//! Flow: descriptor tables → VMXON → one VMCS for L3 with EPT and VPID → for each scenario:
//! fresh L3 memory and guest state, run until L3's final VMCALL → print the log, the verdict,
//! and power off (bare) or make the `Done` hypercall (under l1-hv).
#![no_std]
#![no_main]

mod descriptors;
mod event;
mod l3;
mod log;
mod paging;
mod platform;
mod run;
mod scenarios;
mod vmcs;

use core::sync::atomic::{AtomicBool, Ordering};
use descriptors::DescriptorTables;
use l1_hv::vmx::bringup::enter_vmx_root;
use l1_hv::vmx::current_vmcs::CurrentVmcs;
use l1_hv::vmx::instructions::{vmclear, vmptrld};
use l1_hv::vmx::GuestRegisters;
use l3::L3Memory;
use log::Log;
use paging::Hierarchy;
use platform::Platform;
use run::End;
use scenarios::SCENARIOS;

core::arch::global_asm!(include_str!("boot.s"));

/// EPT permission bits (SDM 29.3.2): read, write, execute; leaf memory type write-back.
const EPT_READ: u64 = 1 << 0;
const EPT_WRITE: u64 = 1 << 1;
const EPT_EXECUTE: u64 = 1 << 2;
const EPT_MEMORY_TYPE_WB: u64 = 6 << 3;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// ghv's memory, all in its image's .bss: identity-mapped in both modes, so addresses are
/// physical. Only `ghv_main` touches these, once each, single-threaded.
static mut VMXON_REGION: Page = Page([0; 4096]);
static mut VMCS_REGION: Page = Page([0; 4096]);
static mut HOST_DESCRIPTORS: DescriptorTables = DescriptorTables::new();
static mut EPT: Hierarchy = Hierarchy::new();
static mut L3_MEMORY: L3Memory = L3Memory::new();
static mut LOG: Log = Log::new();

/// Set at entry: the platform the panic handler reports on.
static BARE: AtomicBool = AtomicBool::new(false);

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = if bare != 0 { Platform::Bare } else { Platform::UnderL1hv };
    BARE.store(bare != 0, Ordering::Relaxed);
    platform.init();
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (vmxon, vmcs_region, host, ept, l3, log) = unsafe {
        (
            &mut *(&raw mut VMXON_REGION),
            &mut *(&raw mut VMCS_REGION),
            &mut *(&raw mut HOST_DESCRIPTORS),
            &mut *(&raw mut EPT),
            &mut *(&raw mut L3_MEMORY),
            &mut *(&raw mut LOG),
        )
    };
    host.build(0);
    // The GDT never changes once loaded: from here on it is only read.
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

    // EPT: L3-physical = ghv-physical for the payload's code (read/execute) and L3's memory
    // (read/write); nothing else of ghv is visible to L3.
    ept.reset(EPT_READ | EPT_WRITE | EPT_EXECUTE);
    ept.map(l3::code(), EPT_READ | EPT_EXECUTE | EPT_MEMORY_TYPE_WB);
    ept.map(l3.range(), EPT_READ | EPT_WRITE | EPT_MEMORY_TYPE_WB);
    if let Err(e) = vmcs::write_controls_and_host(&mut vmcs, &caps, ept.root(), host) {
        platform.finish(log, false, format_args!("({} controls lack {:#x})", e.control, e.missing));
    }

    // The #PF scenarios' addresses depend on the image layout: say where the page is.
    log.line(format_args!("l3 unmapped page={:#x}", l3.unmapped_page()));
    let mut unexpected = 0;
    let mut state = run::VmcsState::default();
    for scenario in SCENARIOS {
        l3.reset();
        vmcs::write_scenario(&mut vmcs, &caps, l3, scenario);
        let mut regs = GuestRegisters { rsi: l3.unmapped_page(), rdx: l3.idtr().0, ..GuestRegisters::default() };
        let outcome = run::run(&mut vmcs, &mut state, &mut regs, scenario.name, log);
        let expected_end = scenario.delivered.map_or(End::Completed, End::Delivered);
        if outcome.exits() != scenario.exits || outcome.end != expected_end {
            unexpected += 1;
            log.line(format_args!(
                "{} UNEXPECTED: exits {:?} then {:?}; the SDM says exits {:?} then {:?}",
                scenario.name,
                outcome.exits(),
                outcome.end,
                scenario.exits,
                expected_end
            ));
        }
        if let End::Broken(why) = outcome.end {
            platform.finish(log, false, format_args!("({}: {why})", scenario.name));
        }
    }
    let total = SCENARIOS.len();
    if log.overflowed() {
        platform.finish(log, false, format_args!("(log overflowed)"));
    }
    if unexpected == 0 {
        platform.finish(log, true, format_args!("({total} scenarios)"));
    }
    platform.finish(log, false, format_args!("({unexpected} of {total} scenarios unexpected)"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let platform = if BARE.load(Ordering::Relaxed) { Platform::Bare } else { Platform::UnderL1hv };
    let mut log = Log::new();
    log.line(format_args!("PANIC: {info}"));
    platform.finish(&log, false, format_args!("(panic)"))
}
