//! What a VMCS *is*, independent of any CPU: the access trait every VMCS user goes through.
//!
//! Field encodings come from `x86::vmx::vmcs`; nothing here needs VMX hardware, so the crate is
//! `no_std` and unit-tested on the host.
#![no_std]

mod access;

pub use access::Vmcs;
