//! Any input through `engine::info` and `engine::run` with a small fixed transform
//! (`common::ENGINE_TRANSFORMS`) and a PNG encode, under tight limits.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::run(
        data,
        common::ENGINE_TRANSFORMS,
        imgbind_wire::OutputFormat::Png,
    );
});
