//! What VT-x *does*, as host-testable logic over the [`shadow_vmcs::Vmcs`] trait.
#![no_std]

pub mod event;
pub mod exit_reason;
pub mod inject;
pub mod route;
pub mod insn;
pub mod nested;
pub mod ept;
