//! See `nvmx_fuzz::nested_engine` for the input and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: nvmx_fuzz::nested_engine::Input| {
    nvmx_fuzz::nested_engine::check(&input)
});
