//! VMX-instruction emulation: see `nvmx_fuzz::insn` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::insn::Input| nvmx_fuzz::insn::check(&input));
