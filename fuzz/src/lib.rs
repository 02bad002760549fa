//! Fuzz harnesses for nvmx: one module per cargo-fuzz target, each with its structured input
//! (derived with `arbitrary`), the properties it asserts (SDM vol. 3 rules, stated at the level
//! of what the emulator promises, not restating its code) and a behaviour class used by the
//! `seeds` binary to pick a corpus that covers every class. The targets in `fuzz_targets/` are
//! one-line wrappers around [`insn::check`], [`nested_engine::check`], [`nested_entry::check`], [`nested_ept::check`] and
//! [`route::check`].

pub mod config;
pub mod insn;
pub mod memory;
pub mod nested_engine;
pub mod nested_entry;
pub mod nested_ept;
pub mod route;
pub mod vmcs;
