//! See `nvmx_fuzz::nested_ept` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |input: nvmx_fuzz::nested_ept::Input| nvmx_fuzz::nested_ept::check(&input)
);
