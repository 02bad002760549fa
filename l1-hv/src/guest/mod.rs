//! L2 guests: configuration, the address space and boot, the machine a kernel guest runs on,
//! the vCPU with its run loop, and exit handling.

mod boot;
pub mod config;
mod cpu;
pub mod debug;
pub mod ept;
mod exits;
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
pub use machine::Forwarded;
pub use msr_bitmap::MsrBitmaps;
pub use platform::{end_of_interrupt, Platform};
pub use vcpu::{ExitCounts, Guest, Observation, RunEnd, Stop};
