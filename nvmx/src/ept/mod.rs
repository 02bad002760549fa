//! Nested EPT. The guest hypervisor's EPT (EPT12, named by vmcs12's EPTP) translates
//! L3-physical to L2-physical addresses; l1-hv's own EPT for L2 (EPT01) translates L2-physical
//! to host-physical. The CPU walks one table, so l1-hv runs L3 on EPT02, a shadow it fills
//! lazily:
//!
//! 1. An EPT violation of vmcs02 at L3-physical address `gpa` (the exit's guest-physical address)
//!    with the access of its qualification: [`walk`] EPT12 for `gpa` through the guest
//!    hypervisor's memory.
//! 2. `Err(`[`EptFault::Violation`]`)`: reflect an EPT violation (reason 48) with that
//!    qualification, plus bits 7, 8 and 12 of vmcs02's ([`reflected_qualification`]);
//!    `Err(`[`EptFault::Misconfiguration`]`)`: reflect an EPT misconfiguration (reason 49).
//! 3. `Ok(translation)`: look the L2-physical page up in EPT01. Not mapped there: an access
//!    outside the guest hypervisor's memory, which l1-hv does not emulate (the kernel stops the
//!    guest). Mapped: install [`compose`]'s leaf for `gpa`'s 4 KiB page in EPT02 and resume L3.
//!
//! EPT02 holds only 4 KiB leaves, each permitting the AND of both levels' permissions, so any
//! access EPT02 allows, EPT12 and EPT01 both allow. The kernel owns the EPT02 tables. When the
//! guest hypervisor executes INVEPT (single- or all-context, [`crate::insn::Invalidation`]), or
//! l1-hv changes EPT01, the kernel drops EPT02 (and INVEPTs it): it refills on the next
//! violations.

mod compose;
#[cfg(test)]
mod tests;
mod walk;

pub use compose::{compose, leaf_entry, reflected_qualification, HostMapping};
pub use walk::{walk, Access, Ept12, EptFault, PageSize, Permissions, Translation};
