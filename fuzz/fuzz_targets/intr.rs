//! See `nvmx_fuzz::intr` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::intr::Input| nvmx_fuzz::intr::check(&input));
