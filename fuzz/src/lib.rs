//! Fuzz harnesses for nvmx, devices and the guest kernel loader: one module per cargo-fuzz
//! target, each with its structured input (derived with `arbitrary`), the properties it asserts
//! (SDM vol. 3 rules, the datasheet and ACPI rules for `devices`, the boot protocols for
//! `loader`, stated at the level of what the code promises, not restating it) and, for the nvmx
//! targets, a behaviour class used by the `seeds` binary to pick a corpus that covers every
//! class. The targets in `fuzz_targets/` are one-line wrappers around [`insn::check`],
//! [`intr::check`], [`nested_engine::check`],
//! [`nested_entry::check`], [`nested_ept::check`], [`route::check`],
//! [`devices::check`] and [`loader::check`].

pub mod config;
pub mod devices;
pub mod insn;
pub mod intr;
pub mod loader;
pub mod memory;
pub mod nested_engine;
pub mod nested_entry;
pub mod nested_ept;
pub mod route;
pub mod vmcs;
