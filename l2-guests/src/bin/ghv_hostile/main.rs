//! ghv-hostile: a guest hypervisor that attacks its VMX implementation. It issues VMX operations
//! the SDM says must fail, fault or exit (ops.rs), logs one line per operation with the
//! architectural result it observed, and checks each against the SDM's answer. It boots bare
//! (the hardware reference) and under l1-hv exactly as ghv does, with ghv's boot paths, log and
//! output (shared modules), and the two logs must be identical but for the differences
//! docs/hostile.md lists.
//!
//! Flow: own GDT/TSS/IDT and page tables → VMXON → for each operation: a fresh VMCS where it
//! needs one, the operation, the line `NAME -> ANSWER`, and `NAME UNEXPECTED: ...` on a mismatch
//! → counts and the verdict.
#![no_std]
#![no_main]

#[path = "../ghv/log.rs"]
mod log;
#[path = "../ghv/machine.rs"]
mod machine;
#[path = "../ghv/platform.rs"]
mod platform;

mod host;
mod l3;
mod ops;
mod vmcs;

use host::{HostTables, Probed};
use l1_vmx::instructions::{vmclear, vmptrld, vmread, VmFail};
use log::Log;
use machine::Page;
use ops::{Answer, Misc, OPERATIONS};
use vmcs::World;

core::arch::global_asm!(include_str!("../ghv/boot.s"));

/// ghv-hostile's memory, in its image's .bss (identity-mapped: addresses are physical).
static mut VMXON_REGION: Page = Page([0; 4096]);
static mut VMCS_REGION: Page = Page([0; 4096]);
static mut WRONG_REVISION: Page = Page([0; 4096]);
static mut SHADOW_VMCS: Page = Page([0; 4096]);
static mut SCRATCH: Page = Page([0; 4096]);
static mut HOST_TABLES: HostTables = HostTables::new();
static mut TABLES: l3::Tables = l3::Tables::new();
static mut EPT: l3::Ept = l3::Ept::new();
static mut LOG: Log = Log::new();

/// IA32_VMX_MISC bits 29 and 30 (SDM A.6).
const MISC_VMWRITE_ANY_FIELD: u64 = 1 << 29;
const MISC_INJECT_LENGTH_0: u64 = 1 << 30;
/// The VM-instruction error field (SDM 25.9.5).
const VM_INSTRUCTION_ERROR: u32 = 0x4400;

#[no_mangle]
extern "C" fn ghv_main(bare: u64) -> ! {
    let platform = machine::start(bare);
    // SAFETY: single-threaded; each static is borrowed once, here, for the rest of the run.
    let (vmxon, vmcs_region, wrong, shadow, scratch, host, tables, ept, log) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(VMXON_REGION),
            &mut *core::ptr::addr_of_mut!(VMCS_REGION),
            &mut *core::ptr::addr_of_mut!(WRONG_REVISION),
            &mut *core::ptr::addr_of_mut!(SHADOW_VMCS),
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(HOST_TABLES),
            &mut *core::ptr::addr_of_mut!(TABLES),
            &mut *core::ptr::addr_of_mut!(EPT),
            &mut *core::ptr::addr_of_mut!(LOG),
        )
    };
    // SAFETY: CPL 0 in 64-bit mode; statics that stay in place. The new page tables map what
    // the boot tables mapped of ghv-hostile (its 8 MiB), user-accessible.
    let host = unsafe { host.load() };
    let cr3 = tables.build();
    // SAFETY: as above; identity-mapped, so the code keeps running.
    unsafe { x86::controlregs::cr3_write(cr3) };
    ept.build();

    // SAFETY: CPL 0; identity-mapped; the region is never reused.
    let (caps, vmxon_phys) = unsafe { machine::enter_vmx(platform, log, vmxon) };
    let revision = caps.revision_id();
    vmcs_region.0[..4].copy_from_slice(&revision.to_le_bytes());
    wrong.0[..4].copy_from_slice(&(revision ^ 1).to_le_bytes());
    shadow.0[..4].copy_from_slice(&(revision | shadow_vmcs::SHADOW_INDICATOR).to_le_bytes());
    // SAFETY: VMX operation is on (enter_vmx_root succeeded).
    let misc_msr = unsafe { caps.misc() };
    let misc = Misc {
        vmwrite_any_field: misc_msr & MISC_VMWRITE_ANY_FIELD != 0,
        inject_length_0: misc_msr & MISC_INJECT_LENGTH_0 != 0,
        vmcs_shadowing: caps.has_vmcs_shadowing(),
    };
    log.line(format_args!(
        "vmx-misc vmwrite-any-field={} inject-length-0={} vmcs-shadowing={}",
        u8::from(misc.vmwrite_any_field),
        u8::from(misc.inject_length_0),
        u8::from(misc.vmcs_shadowing)
    ));
    let width = x86::cpuid::CpuId::new()
        .get_processor_capacity_feature_info()
        .map_or(36, |c| c.physical_address_bits());
    let mut world = World {
        caps,
        host,
        cr3,
        ept,
        vmxon: vmxon_phys,
        vmcs: vmcs_region.0.as_ptr() as u64,
        wrong_revision: wrong.0.as_ptr() as u64,
        shadow_vmcs: shadow.0.as_ptr() as u64,
        scratch: scratch.0.as_ptr() as u64,
        beyond_width: 1 << width,
    };

    let mut unexpected = 0;
    for operation in OPERATIONS {
        let (answer, detail) = match vmcs::run(&mut world, operation.kind) {
            Ok(outcome) => outcome,
            Err(why) => platform.finish(log, false, format_args!("({}: {why})", operation.name)),
        };
        log.line(format_args!("{} -> {answer}{detail}", operation.name));
        let expected = operation.expected(misc);
        if !operation.permits(answer, misc) {
            unexpected += 1;
            log.line(format_args!(
                "{} UNEXPECTED: {answer}; the SDM says {expected}",
                operation.name
            ));
        }
    }
    let total = OPERATIONS.len();
    log.line(format_args!(
        "hostile operations tried={total} architectural={}",
        total - unexpected
    ));
    if log.overflowed() {
        platform.finish(log, false, format_args!("(log overflowed)"));
    }
    if unexpected == 0 {
        platform.finish(log, true, format_args!("({total} operations)"));
    }
    platform.finish(
        log,
        false,
        format_args!("({unexpected} of {total} operations unexpected)"),
    )
}

/// The answer of a VMX instruction that completed with `rflags` (SDM 31.2): CF → VMfailInvalid,
/// ZF → VMfailValid with the VM-instruction error field.
pub fn vmx_answer(result: Result<(), VmFail>) -> Answer {
    match result {
        Ok(()) => Answer::Succeed,
        Err(VmFail::Invalid) => Answer::FailInvalid,
        // SAFETY: VMfailValid means a VMCS is current.
        Err(VmFail::Valid) => {
            Answer::FailValid(unsafe { vmread(VM_INSTRUCTION_ERROR) }.unwrap_or(u64::MAX) as u32)
        }
    }
}

/// A probe's answer.
pub fn probed_answer(probed: Probed) -> Answer {
    const CF: u64 = 1;
    const ZF: u64 = 1 << 6;
    match probed {
        Probed::Exception(vector, error) => Answer::Exception(vector, error),
        Probed::Completed(rflags) if rflags & CF != 0 => vmx_answer(Err(VmFail::Invalid)),
        Probed::Completed(rflags) if rflags & ZF != 0 => vmx_answer(Err(VmFail::Valid)),
        Probed::Completed(_) => Answer::Succeed,
    }
}

/// VMCLEAR then VMPTRLD of `phys`: a clear, current VMCS.
///
/// # Safety
/// VMX root operation; `phys` is a VMCS region with the revision identifier.
pub unsafe fn fresh_vmcs(phys: u64) -> Result<(), &'static str> {
    vmclear(phys)
        .and_then(|()| vmptrld(phys))
        .map_err(|_| "VMCLEAR/VMPTRLD of the VMCS failed")
}
