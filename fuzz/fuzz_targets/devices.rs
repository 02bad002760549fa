//! See `nvmx_fuzz::devices` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::devices::Input| nvmx_fuzz::devices::check(&input));
