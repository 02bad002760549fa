//! What VT-x *does*, as host-testable logic over the [`shadow_vmcs::Vmcs`] trait.
#![no_std]

#[cfg(feature = "explain")]
extern crate alloc;

pub mod event;
#[cfg(feature = "explain")]
pub mod explain;
pub mod exit_reason;
pub mod inject;
pub mod intr;
pub mod retire;
pub mod route;
pub mod insn;
pub mod nested;
pub mod ept;
