//! L2 guests: configuration, the address space and boot, the machine a kernel guest runs on,
//! the vCPU with its run loop, and exit handling.

mod boot;
pub mod config;
mod cpu;
pub mod debug;
pub mod ept;
mod exits;
mod fast_exit;
mod image;
pub mod inject_host;
mod io;
mod machine;
mod memory;
mod msr_bitmap;
mod platform;
pub mod trace;
mod vcpu;
pub mod vmcs_setup;

pub use boot::Extra;
pub(crate) use exits::{msr_instruction, KernelMsrs};
pub use machine::Forwarded;
pub use msr_bitmap::MsrBitmaps;
pub use platform::{end_of_interrupt, Platform};
pub use vcpu::{ExitCounts, Guest, Observation, RunEnd, Stop};

/// An I/O exit of L3 (a guest hypervisor's guest) on a port l1-hv traps but the guest hypervisor
/// lets through: L3 reaches the same device the guest hypervisor would, so the machine's bus
/// answers it as it answers L2. `Some` when the access ends the run (power-off, exit port).
pub(crate) fn l3_port_io(
    guest: &mut Guest,
    vmcs: &mut l1_vmx::current_vmcs::CurrentVmcs,
) -> Option<RunEnd> {
    match io::handle(guest, vmcs) {
        exits::Next::Resume => None,
        exits::Next::End(end) => Some(end),
    }
}
