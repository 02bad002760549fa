//! The VMX set-up ghv, ghv-bench and matrix-ghv share: ghv's host descriptor tables, VMXON,
//! L3's one VMCS made current, an EPT that shows L3 its code and memory, and the controls and
//! host state (vmcs.rs). Guest state is each image's own.

use crate::descriptors::DescriptorTables;
use crate::log::Log;
use crate::machine::{self, Page};
use crate::paging::Hierarchy;
use crate::platform::Platform;
use crate::vmcs;
use core::ops::Range;
use l1_vmx::capabilities::Capabilities;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::instructions::{vmclear, vmptrld};

/// EPT permission bits (SDM 29.3.2): read, write, execute; leaf memory type write-back.
const EPT_READ: u64 = 1 << 0;
const EPT_WRITE: u64 = 1 << 1;
const EPT_EXECUTE: u64 = 1 << 2;
const EPT_MEMORY_TYPE_WB: u64 = 6 << 3;

/// The set-up's memory, in the image's .bss (identity-mapped: addresses are physical). Only
/// [`bring_up`] touches these, once each.
static mut VMXON_REGION: Page = Page([0; 4096]);
static mut VMCS_REGION: Page = Page([0; 4096]);
static mut HOST_DESCRIPTORS: DescriptorTables = DescriptorTables::new();
static mut EPT: Hierarchy = Hierarchy::new();

/// Loads ghv's descriptor tables, enters VMX root operation, makes L3's VMCS current and writes
/// its controls and host state, with an EPT mapping `l3_code` read/execute and `l3_memory`
/// read/write (L3-physical = ghv-physical; nothing else of ghv is visible to L3). What fails
/// ends the run with its reason after `log`. Returns the capabilities and the current VMCS.
///
/// # Safety
/// CPL 0 in 64-bit mode, identity-mapped; called once, single-threaded (it borrows the statics
/// above for the rest of the run).
pub unsafe fn bring_up(
    platform: Platform,
    log: &Log,
    l3_code: Range<u64>,
    l3_memory: Range<u64>,
) -> (Capabilities, CurrentVmcs) {
    // SAFETY: called once, so these are the statics' only borrows.
    let (vmxon, vmcs_region, host, ept) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(VMXON_REGION),
            &mut *core::ptr::addr_of_mut!(VMCS_REGION),
            &mut *core::ptr::addr_of_mut!(HOST_DESCRIPTORS),
            &mut *core::ptr::addr_of_mut!(EPT),
        )
    };
    host.build(0);
    // The GDT never changes once loaded: from here on it is only read.
    let host: &'static DescriptorTables = host;
    // SAFETY: CPL 0 in 64-bit mode; a static, filled above.
    unsafe { host.load() };

    // SAFETY: CPL 0, identity-mapped (this function's contract); the region is never reused.
    let (caps, _) = unsafe { machine::enter_vmx(platform, log, vmxon) };
    vmcs_region.0[..4].copy_from_slice(&caps.revision_id().to_le_bytes());
    let vmcs_phys = vmcs_region.0.as_ptr() as u64;
    // SAFETY: VMX root operation; the region is 4 KiB-aligned and carries the revision id.
    if unsafe { vmclear(vmcs_phys).and_then(|()| vmptrld(vmcs_phys)) }.is_err() {
        platform.finish(
            log,
            false,
            format_args!("(VMCLEAR/VMPTRLD of L3's VMCS failed)"),
        );
    }
    // SAFETY: the VMCS was just made current and stays current until power-off.
    let mut vmcs = unsafe { CurrentVmcs::assume_loaded() };

    ept.reset(EPT_READ | EPT_WRITE | EPT_EXECUTE);
    ept.map(l3_code, EPT_READ | EPT_EXECUTE | EPT_MEMORY_TYPE_WB);
    ept.map(l3_memory, EPT_READ | EPT_WRITE | EPT_MEMORY_TYPE_WB);
    if let Err(e) = vmcs::write_controls_and_host(&mut vmcs, &caps, ept.root(), host) {
        platform.finish(
            log,
            false,
            format_args!("({} controls lack {:#x})", e.control, e.missing),
        );
    }
    (caps, vmcs)
}
