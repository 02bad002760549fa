//! What VT-x *does*, as host-testable logic over the [`shadow_vmcs::Vmcs`] trait.
#![no_std]
