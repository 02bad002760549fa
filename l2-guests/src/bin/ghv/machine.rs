//! How every ghv image (ghv, ghv-bench, matrix-ghv, ghv-hostile) starts, turns VMX on and
//! ends on a panic: the same on each, so that their logs differ only where their work does.

use crate::log::Log;
use crate::platform::Platform;
use core::sync::atomic::{AtomicBool, Ordering};
use l1_vmx::bringup::enter_vmx_root;
use l1_vmx::capabilities::Capabilities;

/// One 4 KiB-aligned page of the image's .bss: a VMXON or VMCS region must be 4 KiB-aligned
/// (SDM 25.2), and .bss is identity-mapped in both modes, so its address is physical.
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

/// Set at entry: the platform the panic handler reports on.
static BARE: AtomicBool = AtomicBool::new(false);

/// The platform boot.s' `bare` argument names, quieted and remembered for the panic handler.
pub fn start(bare: u64) -> Platform {
    let platform = if bare != 0 {
        Platform::Bare
    } else {
        Platform::UnderL1hv
    };
    BARE.store(bare != 0, Ordering::Relaxed);
    platform.init();
    platform
}

/// Enters VMX root operation with `vmxon` as the VMXON region: the capabilities and the
/// region's physical address. If VMX cannot be entered, the run ends here with `(VMX: ...)`
/// after `log`.
///
/// # Safety
/// CPL 0 in 64-bit mode, identity-mapped; `vmxon` is never reused for anything else.
pub unsafe fn enter_vmx(platform: Platform, log: &Log, vmxon: &mut Page) -> (Capabilities, u64) {
    let vmxon_phys = vmxon.0.as_ptr() as u64;
    // SAFETY: CPL 0; identity-mapped, so the address is physical (the caller's contract).
    match unsafe { enter_vmx_root(&mut vmxon.0, vmxon_phys) } {
        Ok(caps) => (caps, vmxon_phys),
        Err(e) => platform.finish(log, false, format_args!("(VMX: {e})")),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let platform = if BARE.load(Ordering::Relaxed) {
        Platform::Bare
    } else {
        Platform::UnderL1hv
    };
    let mut log = Log::new();
    log.line(format_args!("PANIC: {info}"));
    platform.finish(&log, false, format_args!("(panic)"))
}
