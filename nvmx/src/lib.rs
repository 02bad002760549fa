//! What VT-x *does*, as host-testable logic over the [`shadow_vmcs::Vmcs`] trait.
#![no_std]

#[cfg(feature = "explain")]
extern crate alloc;

pub mod ept;
pub mod event;
pub mod exit;
pub mod exit_reason;
#[cfg(feature = "explain")]
pub mod explain;
pub mod inject;
pub mod insn;
pub mod intr;
pub mod nested;
pub mod retire;
pub mod route;
