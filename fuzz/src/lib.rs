//! Fuzz harnesses for nvmx and the guest kernel loader: one module per cargo-fuzz target, each with its structured input
//! (derived with `arbitrary`), the properties it asserts (SDM vol. 3 rules, stated at the level
//! of what the emulator promises, not restating its code) and a behaviour class used by the
//! `seeds` binary to pick a corpus that covers every class. The targets in `fuzz_targets/` are
//! one-line wrappers around [`insn::check`], [`nested_entry::check`], [`nested_ept::check`],
//! [`route::check`] and [`loader::check`].

pub mod config;
pub mod insn;
pub mod loader;
pub mod memory;
pub mod nested_entry;
pub mod nested_ept;
pub mod route;
pub mod vmcs;
