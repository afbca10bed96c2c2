//! What the decoder targets share: tight limits and one call into the engine.

#![allow(unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use imgbind_engine::{Job, Limits, Source};
use imgbind_wire::{parse_steps, OutputFormat, OutputOptions};

/// Small enough that one input never takes long or much memory, large enough for every seed.
pub fn tight_limits() -> Limits {
    Limits {
        max_input_bytes: 1024 * 1024,
        max_pixels: 2_000_000,
        max_side: 4096,
        max_frames: 64,
        max_output_pixels: 2_000_000,
        deadline: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// The `engine` target's fixed transform: resize with cover and auto gravity, rotate, blur, border.
#[allow(dead_code)]
pub const ENGINE_TRANSFORMS: &str = r##"[{"imageIndex":0,"width":24,"height":16,"fit":"cover","gravity":"auto","rotate":90,"blur":1,"border":{"color":"#f00","width":2}}]"##;

/// Runs `transforms` on `data` and encodes to `format`. Any coded error is fine; a panic, hang or
/// unbounded allocation is the finding.
pub fn run(data: &[u8], transforms: &str, format: OutputFormat) {
    let limits = tight_limits();
    let _ = imgbind_engine::info(data, &limits);
    let job = Job {
        sources: vec![Source::Image(Bytes::copy_from_slice(data))],
        steps: parse_steps(transforms, 1).expect("fixed transforms parse"),
        output: OutputOptions::new(format),
    };
    if let Ok(encoded) = imgbind_engine::run(job, &limits) {
        assert!(encoded.width > 0 && encoded.height > 0);
        assert!(u64::from(encoded.width) * u64::from(encoded.height) <= limits.max_output_pixels);
    }
}
