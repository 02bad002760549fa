//! See `nvmx_fuzz::route` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::route::Input| nvmx_fuzz::route::check(&input));
