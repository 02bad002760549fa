//! See `nvmx_fuzz::loader` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::loader::Input| nvmx_fuzz::loader::check(&input));
