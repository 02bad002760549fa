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
mod machine;
mod paging;
mod platform;
mod run;
mod scenarios;
mod setup;
mod vmcs;

use l1_vmx::GuestRegisters;
use l3::L3Memory;
use log::Log;
use run::End;
use scenarios::SCENARIOS;

core::arch::global_asm!(include_str!("boot.s"));

/// ghv's memory, all in its image's .bss: identity-mapped in both modes, so addresses are
/// physical. Only `ghv_main` touches these, once each, single-threaded.
static mut L3_MEMORY: L3Memory = L3Memory::new();
static mut LOG: Log = Log::new();

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = machine::start(bare);
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (l3, log) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(L3_MEMORY),
            &mut *core::ptr::addr_of_mut!(LOG),
        )
    };
    // SAFETY: CPL 0 in 64-bit mode, identity-mapped; ghv_main runs once.
    let (caps, mut vmcs) = unsafe { setup::bring_up(platform, log, l3::code(), l3.range()) };

    // The #PF scenarios' addresses depend on the image layout: say where the page is.
    log.line(format_args!("l3 unmapped page={:#x}", l3.unmapped_page()));
    let mut unexpected = 0;
    let mut state = run::VmcsState::default();
    for scenario in SCENARIOS {
        l3.reset();
        vmcs::write_scenario(&mut vmcs, &caps, l3, scenario);
        let mut regs = GuestRegisters {
            rsi: l3.unmapped_page(),
            rdx: l3.idtr().0,
            ..GuestRegisters::default()
        };
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
    platform.finish(
        log,
        false,
        format_args!("({unexpected} of {total} scenarios unexpected)"),
    )
}
