//! The VT-x hardware layer of l1-hv, as a library: VMX instructions with correct failure
//! reporting, capability MSRs and control adjustment, VMXON, the hardware `Vmcs`
//! implementation and the guest entry/exit stub. The kernel (`main.rs`) builds on it, and so
//! does the guest hypervisor `ghv` in `l2-guests`, which is written for real VT-x too.
#![no_std]

pub mod vmx;
