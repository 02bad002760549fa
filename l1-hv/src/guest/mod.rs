//! L2 guests: configuration, image loading, the vCPU with its run loop, and exit handling.

pub mod config;
mod cpu;
pub mod ept;
mod exits;
mod image;
pub mod inject_host;
pub mod trace;
mod vcpu;
pub mod vmcs_setup;

pub use vcpu::{ExitCounts, Guest, Observation, RunEnd, Stop};
