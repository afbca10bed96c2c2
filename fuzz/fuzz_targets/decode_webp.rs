//! The WEBP decoder path: sniff, header check, full decode (raw RGBA out, so no encoder cost).
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Other formats belong to their own targets; the seeds keep the mutator on this one.
    if !data.starts_with(b"RIFF") {
        return;
    }
    common::run(data, "[]", imgbind_wire::OutputFormat::Rgba);
});
