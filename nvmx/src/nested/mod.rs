//! Nested VM entry and exit for a guest hypervisor (L2) running its own guest (L3) on l1-hv,
//! in the phases of a nested round trip (docs/nested-engine.md has the kernel's sequence):
//!
//! 1. [`check_vmcs12`]: the VM-entry checks on vmcs12 (SDM 27.2–27.3) after an emulated
//!    VMLAUNCH/VMRESUME returned [`crate::insn::Outcome::Enter`].
//! 2. [`prepare_vmcs02`]: vmcs12 and l1-hv's [`L1Needs`] composed into vmcs02; then VM entry.
//! 3. [`decide_l3_exit`]: for each exit of L3, whether l1-hv keeps it for itself, else whether
//!    the guest hypervisor asked for it.
//! 4. [`reflect_exit`] and [`load_l2_host_state`]: the virtual VM exit (SDM 28), also the tail
//!    of a failed entry (SDM 27.8); vmcs12's MSR areas around both transitions
//!    ([`load_entry_msrs`], [`store_exit_msrs`], [`load_exit_msrs`]).
//!
//! vmcs12 is the guest hypervisor's [`shadow_vmcs::SoftVmcs`], vmcs01 the real VMCS l1-hv runs
//! L2 with, vmcs02 the real VMCS it runs L3 with; all are reached through [`shadow_vmcs::Vmcs`].

mod arch;
mod checks;
mod controls;
mod dirty;
mod engine;
mod exit;
mod l3_policy;
mod msr;
mod msr_area;
mod pdpte;
mod reflect;
#[cfg(test)]
pub(crate) mod test_support;
mod timer;
mod vmcs02;

pub use arch::{ar, efer_after_wrmsr, guest_cpl, EFER_DEFINED, EFER_LMA, EFER_LME, EFER_NXE};
pub use checks::{check_vmcs12, EntryContext, EntryFailure};
pub use dirty::Dirty;
pub use engine::{Entry, NestedHardware, NestedVcpu, Vmcs02EntryBug};
pub use exit::{load_l2_host_state, reflect_exit, ExitFields, VmxAbort};
pub use l3_policy::{decide_l3_exit, Decision, L1Exit};
pub use msr::{
    l2_wrmsr, l3_msr, l3_rdmsr, l3_wrmsr, msr_bitmap_bit, L3Msr, MsrBus, MsrFault, VmcsMsr,
};
pub use msr_area::{
    load_entry_msrs, load_exit_msrs, store_exit_msrs, FailedEntry, MISC_MSR_LIST_SIZE, MSR_LIST_MAX,
};
pub use reflect::ExitFacts;
pub use vmcs02::{merge_exit_bitmaps, prepare_vmcs02, L1Needs, L2Inherited, Vmcs12Pages};
