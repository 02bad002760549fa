//! matrix-ghv: the system matrix's guest hypervisor (docs/matrix.md, "System matrix"). ghv's
//! boot paths, VMX set-up and host state (its modules, shared) with the matrix payload as L3:
//! for every scenario of `matrix_scenarios::scenarios()`, in order, a fresh world and guest
//! state, the scenario's exception bitmap and PFEC mask/match, one VM entry, and one log line
//! with what came first: L3's handler's report (`d`) or the VM exit (`x`). ghv stops a
//! scenario at its first exit: that exit is the routing decision the model predicts.
//!
//! Lines: `ghv: mx N` (the scenario count), then per scenario
//! `ghv: mx I d VECTOR ERROR CR2` or `ghv: mx I x REASON INFO ERROR QUAL IDT IDT_ERROR LEN`
//! (hex; `-` for an error code or vector that is absent), then `ghv: verdict PASS (N scenarios)`.
//! The verdict only says every scenario ran; test-matrix judges the outcomes.
#![no_std]
#![no_main]

// ghv's modules. This image uses their set-up and output parts (the scenario table, L3 payload
// and exit handler are ghv's), so items only ghv uses are not dead code.
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

/// The payload's report (payload.s' MX_REPORT): a VMCALL with RAX = [`DONE`], which always
/// exits to ghv (SDM 26.1.2).
macro_rules! report_asm {
    () => {
        ".macro MX_REPORT\n mov eax, 0x6d78d0e5\n vmcall\n.endm\n"
    };
}

#[path = "../matrix/report.rs"]
mod report;
#[path = "../matrix/world.rs"]
mod world;

use l1_vmx::flat64::{self, FlatGuest};
use l1_vmx::{enter, Entry, GuestRegisters, HostRsp};
use log::Log;
use matrix_scenarios::{scenarios, selectors};
use report::Observed;
use shadow_vmcs::Vmcs;
use world::World;
use x86::vmx::vmcs::{control, ro};

core::arch::global_asm!(include_str!("boot.s"));
/// RAX of the payload's report (written out in `report_asm!`).
const DONE: u32 = 0x6d78_d0e5;
/// Exit reason VMCALL (SDM Appendix C).
const VMCALL: u16 = 18;
/// Log lines between two prints (a line is under 100 bytes; ghv's log holds 16 KiB).
const BATCH: usize = 100;

/// matrix-ghv's memory, as ghv's: in .bss, identity-mapped, each borrowed once by `ghv_main`.
static mut WORLD: World = World::new();
static mut LOG: Log = Log::new();

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = machine::start(bare);
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (world, log) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(WORLD),
            &mut *core::ptr::addr_of_mut!(LOG),
        )
    };
    // L3 inherits EFER.NXE: without the "load IA32_EFER" entry control, VM entry changes only
    // EFER.LMA/LME (SDM 27.3.2.1). ghv itself has no execute-disable pages.
    // SAFETY: setting NXE changes nothing for ghv's own tables, which set no XD bit.
    unsafe {
        x86::msr::wrmsr(
            x86::msr::IA32_EFER,
            x86::msr::rdmsr(x86::msr::IA32_EFER) | nvmx::nested::EFER_NXE,
        )
    };
    // SAFETY: CPL 0 in 64-bit mode, identity-mapped; ghv_main runs once.
    let (caps, mut vmcs) = unsafe { setup::bring_up(platform, log, world::code(), world.range()) };

    let total = scenarios().count();
    log.line(format_args!("mx {total}"));
    let mut launched = false;
    let mut host_rsp = HostRsp::default();
    for (index, scenario) in scenarios().enumerate() {
        world.build(scenario.env);
        flat64::write_guest_state(
            &mut vmcs,
            &FlatGuest {
                cr0: caps.fix_cr0(world::CR0),
                cr3: world.cr3(),
                cr4: caps.fix_cr4(world::CR4),
                rip: world::entry(scenario.action),
                rsp: world.rsp(scenario.env),
                rflags: world::RFLAGS,
                code_selector: selectors::CODE,
                data_selector: selectors::DATA,
                tr_selector: selectors::TSS,
                tr_base: world.tss_base(),
                gdtr: world.gdtr(),
                idtr: world.idtr(),
            },
        );
        vmcs.write(
            control::EXCEPTION_BITMAP,
            scenario.controls.exception_bitmap.into(),
        );
        vmcs.write(
            control::PAGE_FAULT_ERR_CODE_MASK,
            scenario.controls.pfec_mask.into(),
        );
        vmcs.write(
            control::PAGE_FAULT_ERR_CODE_MATCH,
            scenario.controls.pfec_match.into(),
        );
        vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
        let mut regs = GuestRegisters {
            rdi: world.user_stack_top(),
            ..GuestRegisters::default()
        };
        // SAFETY: the VMCS is complete (controls and host state above, guest state here).
        if let Entry::Failed(_) = unsafe { enter(&mut regs, launched, &mut host_rsp) } {
            let error = vmcs.read(ro::VM_INSTRUCTION_ERROR);
            platform.finish(
                log,
                false,
                format_args!("(scenario {index}: VM entry failed, error {error})"),
            );
        }
        launched = true;
        let reason = vmcs.read(ro::EXIT_REASON) as u32;
        let observed = if reason as u16 == VMCALL && regs.rax as u32 == DONE {
            Observed::Delivered {
                vector: regs.rdi,
                error_code: regs.rsi,
                cr2: regs.rdx,
            }
        } else {
            Observed::Exit {
                reason,
                info: vmcs.read(ro::VMEXIT_INTERRUPTION_INFO) as u32,
                error_code: vmcs.read(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32,
                qualification: vmcs.read(ro::EXIT_QUALIFICATION),
                idt_info: vmcs.read(ro::IDT_VECTORING_INFO) as u32,
                idt_error_code: vmcs.read(ro::IDT_VECTORING_ERR_CODE) as u32,
                insn_len: vmcs.read(ro::VMEXIT_INSTRUCTION_LEN) as u32,
            }
        };
        log.line(format_args!("mx {index} {observed}"));
        if (index + 1) % BATCH == 0 {
            platform.print(log.lines());
            *log = Log::new();
        }
    }
    if log.overflowed() {
        platform.finish(log, false, format_args!("(log overflowed)"));
    }
    platform.finish(log, true, format_args!("({total} scenarios)"))
}
