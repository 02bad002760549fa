//! VMX-instruction emulation for guest hypervisors: VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST,
//! VMREAD, VMWRITE, VMLAUNCH, VMRESUME, INVEPT and INVVPID, each checked in the SDM's order
//! (Vol. 3C chapter 31 "Operation" sections) and ending in a typed [`Outcome`].
//!
//! The kernel decodes operands from the exit ([`decode_pointer_operand`],
//! [`decode_field_access`], [`decode_invalidation`]), calls the [`NestedVmx`] method for the
//! instruction with the guest's [`GuestMode`] and its [`GuestOperands`]/[`GuestMemory`], then
//! applies the outcome: inject the fault, or set RFLAGS with [`Outcome::rflags`] and advance RIP,
//! or carry out the nested entry / invalidation first. Shadow-VMCS sync and the lazy copy of L3's
//! state around the instructions are the nested engine's ([`crate::nested::NestedVcpu`]).

mod caps;
mod decode;
mod entry;
mod field_access;
mod guest;
mod invalidate;
mod operation;
mod outcome;
mod paging;
mod pointer;
mod state;
#[cfg(test)]
pub(crate) mod test_guest;

pub use caps::VmxCapabilities;
pub use decode::{
    decode_field_access, decode_invalidation, decode_pointer_operand, AddressSize,
    FieldAccessOperands, Gpr, InvalidationOperands, MemOperand, Operand, Segment,
    UndefinedEncoding,
};
pub use guest::{GuestMemory, GuestMode, GuestOperands, NotRam};
pub use invalidate::eptp_valid;
pub use outcome::{Fault, Invalidation, Outcome, VmInstructionError};
pub use paging::{translate, Paging};
pub use state::NestedVmx;
