//! Fuzz harnesses for nvmx and devices: one module per cargo-fuzz target, each with its
//! structured input (derived with `arbitrary`), the properties it asserts (SDM vol. 3 rules, or
//! the datasheet and ACPI rules for `devices`, stated at the level of what the code promises,
//! not restating it) and, for the nvmx targets, a behaviour class used by the `seeds` binary to
//! pick a corpus that covers every class (the `devices` seeds are hand-made). The targets in
//! `fuzz_targets/` are one-line wrappers around [`insn::check`], [`intr::check`],
//! [`nested_entry::check`], [`nested_ept::check`], [`route::check`] and [`devices::check`].

pub mod config;
pub mod devices;
pub mod insn;
pub mod intr;
pub mod memory;
pub mod nested_entry;
pub mod nested_ept;
pub mod route;
pub mod vmcs;
