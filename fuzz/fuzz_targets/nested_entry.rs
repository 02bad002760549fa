//! See `nvmx_fuzz::nested_entry` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |input: nvmx_fuzz::nested_entry::Input| nvmx_fuzz::nested_entry::check(&input)
);
