//! What a job does with a second core against one thread: sources decoded two at once
//! (`decode::sources`), an animation's frames decoded a frame ahead (`animation.rs`) and mapped to
//! the GIF palette in parallel (`codecs/gif.rs`). The same output byte for byte, and the same
//! error when an input is bad.

mod common;

use std::num::NonZeroUsize;

use bytes::Bytes;
use common::{corpus, png};
use imgbind_engine::{run, Job, Limits, Source};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions};

fn job(sources: &[Bytes], steps: &str, format: OutputFormat) -> Job {
    Job {
        sources: sources.iter().cloned().map(Source::Image).collect(),
        steps: parse_steps(steps, sources.len()).unwrap(),
        output: OutputOptions::new(format),
    }
}

fn limits(threads: usize) -> Limits {
    Limits {
        threads: NonZeroUsize::new(threads).unwrap(),
        deadline: std::time::Duration::from_secs(120),
        ..Limits::default()
    }
}

/// The job on 1, 2 and 3 threads: the same pixels, or the same error (code and message).
fn same_on_any_allowance(sources: &[Bytes], steps: &str) -> Result<Vec<u8>, (ErrorCode, String)> {
    same_output_on_any_allowance(sources, steps, OutputFormat::Rgba)
}

fn same_output_on_any_allowance(
    sources: &[Bytes],
    steps: &str,
    format: OutputFormat,
) -> Result<Vec<u8>, (ErrorCode, String)> {
    let outcome = |threads| {
        run(job(sources, steps, format), &limits(threads))
            .map(|e| e.bytes)
            .map_err(|e| (e.code(), e.to_string()))
    };
    let one = outcome(1);
    for threads in [2, 3] {
        assert!(
            outcome(threads) == one,
            "{threads} threads differ from one: {steps}"
        );
    }
    one
}

#[test]
fn layers_decoded_beside_the_canvas_give_the_same_pixels() {
    // A JPEG canvas shrunk on load, a PNG layer decoded as a window, a WebP and an AVIF layer
    // decoded whole, and an EXIF-turned JPEG: every decoder runs beside another one.
    let sources = [
        corpus("photo-20mp-kleiber.jpg"),
        corpus("graphic-15mp-kay.png"),
        corpus("photo-6mp-life.webp"),
        corpus("photo-4mp-garden.avif"),
        corpus("photo-6mp-aitzgorri-exif6.jpg"),
    ];
    let steps = r#"[
        {"imageIndex": 0, "width": 400},
        {"drawImageIndex": 1, "targetImageIndex": 0, "opacity": 0.5},
        {"imageIndex": 2, "width": 120},
        {"drawImageIndex": 2, "targetImageIndex": 0, "top": 10, "left": 10},
        {"imageIndex": 3, "width": 90},
        {"drawImageIndex": 3, "targetImageIndex": 0, "bottom": 10, "right": 10},
        {"imageIndex": 4, "width": 60},
        {"drawImageIndex": 4, "targetImageIndex": 0, "top": 10, "right": 10}
    ]"#;
    let pixels = same_on_any_allowance(&sources, steps).expect("the job runs");
    assert!(!pixels.is_empty());
}

#[test]
fn the_first_bad_source_in_order_is_the_error_whoever_decodes_it() {
    let photo = corpus("photo-4mp-twowings.jpg");
    let layer = png(300, 200, |x, y| [x as u8, y as u8, 90, 255]);
    let cut = |b: &Bytes, keep: usize| b.slice(..keep);
    let draws = |n: usize| {
        let mut steps = vec![r#"{"imageIndex": 0, "width": 300}"#.to_string()];
        steps
            .extend((1..n).map(|i| format!(r#"{{"drawImageIndex": {i}, "targetImageIndex": 0}}"#)));
        format!("[{}]", steps.join(","))
    };
    // A truncated layer after a good one, and before another bad one of a different format.
    let sources = [
        photo.clone(),
        layer.clone(),
        cut(&layer, layer.len() / 2),
        cut(&photo, photo.len() / 3),
    ];
    let (code, message) = same_on_any_allowance(&sources, &draws(sources.len())).unwrap_err();
    assert!(message.contains("PNG"), "{code:?}: {message}");
    // The canvas itself bad, with a bad layer after it.
    let sources = [cut(&photo, 5000), cut(&layer, 100)];
    let (code, message) = same_on_any_allowance(&sources, &draws(sources.len())).unwrap_err();
    assert!(message.contains("JPEG"), "{code:?}: {message}");
}

#[test]
fn animations_decoded_a_frame_ahead_give_the_same_bytes() {
    let gif = corpus("anim-party-660x666.gif");
    let logo = corpus("overlay-logo-337x330.png");
    let steps = r#"[
        {"imageIndex": 1, "width": 60},
        {"imageIndex": 0, "width": 240, "rotate": 90},
        {"drawImageIndex": 1, "targetImageIndex": 0, "bottom": 4, "right": 4}
    ]"#;
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        let sources = [gif.clone(), logo.clone()];
        let bytes = same_output_on_any_allowance(&sources, steps, format).expect("the job runs");
        let info = imgbind_engine::info(&bytes, &Limits::default()).unwrap();
        assert_eq!(info.width, Some(240), "{format:?}");
    }
}

#[test]
fn a_bad_frame_is_the_same_error_whoever_decodes_it() {
    let gif = corpus("anim-party-660x666.gif");
    // Garbage in the middle of the frame data: the block scan still adds up, the pixels do not.
    let mut broken = gif.to_vec();
    let middle = broken.len() / 2;
    for b in &mut broken[middle..middle + 64] {
        *b = 0xFF;
    }
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        let outcome = same_output_on_any_allowance(
            &[Bytes::from(broken.clone())],
            r#"[{"imageIndex": 0, "width": 100}]"#,
            format,
        );
        let (code, message) = outcome.expect_err("a broken frame is an error");
        assert_eq!(code, ErrorCode::NotAnImage, "{message}");
    }
}
