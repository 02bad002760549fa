//! The guest runtime shared by every l2-guests image: entry, descriptor tables, exception
//! dispatch, 4 KiB identity paging, user mode, and the hypercall client.
//!
//! It only makes sense inside a guest of l1-hv (or bare on VT-x for the guest hypervisor),
//! so it is built for `x86_64-unknown-none` only.
#![no_std]

pub mod hypercall;
pub mod rt;
