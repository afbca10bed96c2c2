//! What a job will hold in memory, estimated from its sources' headers before any pixel is
//! decoded. The server admits a job only when this fits its memory budget (`--memory-budget`), so
//! requests that are each within the limits cannot together exhaust the machine.
//!
//! The estimate follows [`crate::run_into`]: every source is decoded before the steps run and
//! stays held until it is drawn, so their decoded sizes add up (a canvas resized to 200 px with
//! six 100 MP layers holds all six); on top of that, one more image of the largest size for the
//! decoder's conversion copy or a step's result, and one for the encoded output. Decoded pixels
//! count 4 bytes (RGBA), a JPEG at its shrink-on-load size, an animated canvas once per frame.
//! The checks the engine would fail on first (not an image, an unsupported format, a size over
//! the limits) fail here the same way, so such a request never waits for memory.

use imgbind_wire::{Error, Step};

use crate::codecs::{jpeg, png};
use crate::format::{self, Format};
use crate::{animation, decode, plan, Job, Limits, Source};

/// Bytes of one decoded pixel: RGBA, 8 bits per channel.
const BYTES_PER_PIXEL: u64 = 4;

/// What one text source may hold while it is rendered (its image is bounded by the pixel limits
/// like any other; typical captions are far smaller).
pub const TEXT_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes `job` is expected to hold at its peak (see the module documentation).
pub fn memory_needed(job: &Job, limits: &Limits) -> Result<u64, Error> {
    let mut held = 0u64;
    let mut largest = 0u64;
    // Every header once; the same plan the job will run with, for how far each JPEG shrinks on
    // load and which window it decodes.
    let headers: Vec<Option<Result<format::Header, Error>>> = job
        .sources
        .iter()
        .map(|s| match s {
            Source::Image(bytes) => Some(format::read_header(bytes)),
            Source::Text(_) => None,
        })
        .collect();
    let sizes: Vec<_> = headers
        .iter()
        .map(|h| match h {
            Some(Ok(header)) => Some(header.display_size()),
            _ => None,
        })
        .collect();
    let plan = plan::plan(&job.steps, &sizes, true);
    for (index, (source, header)) in job.sources.iter().zip(&headers).enumerate() {
        let (Source::Image(bytes), Some(header)) = (source, header) else {
            held = held.saturating_add(TEXT_SOURCE_BYTES);
            continue;
        };
        let header = header.clone()?;
        format::check_decodable(header.format)?;
        let (width, height) = header.display_size();
        limits.check_dimensions(width, height)?;
        let (width, height) = match decode::decoder_window(&header, plan.window[index]) {
            // Crop-on-load: the window and what the decoder reads around it.
            Some(w) if header.format == Format::Jpeg => (
                w.width.saturating_add(jpeg::WINDOW_SLACK).min(width),
                w.height.saturating_add(jpeg::WINDOW_SLACK).min(height),
            ),
            // The other format given a window is PNG: exact, but an interlaced or 16-bit PNG, or
            // one whose chunks do not check out, decodes whole (png.rs asks `decodes_window` too).
            Some(w) if png::decodes_window(bytes) => (w.width, w.height),
            _ => (width, height),
        };
        let (width, height) = if header.format == Format::Jpeg {
            let eighths = jpeg::scale_eighths(plan.min_scale[index]);
            let scaled = |side: u32| (u64::from(side) * eighths as u64).div_ceil(8);
            (scaled(width), scaled(height))
        } else {
            (u64::from(width), u64::from(height))
        };
        let image = width * height * BYTES_PER_PIXEL;
        let frames = match index {
            0 => animation::probe(bytes, header.format, limits)?.map_or(1, |p| u64::from(p.frames)),
            _ => 1,
        };
        held = held.saturating_add(image.saturating_mul(frames));
        largest = largest.max(image);
    }
    // A step may create an image larger than any source (an explicit box to enlarge into).
    let most = limits.max_output_pixels.saturating_mul(BYTES_PER_PIXEL);
    for step in &job.steps {
        if let Step::Transform(t) = step {
            if let (Some(w), Some(h)) = (t.width, t.height) {
                let created = (u64::from(w) * u64::from(h) * BYTES_PER_PIXEL).min(most);
                largest = largest.max(created);
            }
        }
    }
    Ok(held.saturating_add(largest.saturating_mul(2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgbind_wire::{parse_steps, OutputOptions};

    fn png(width: u32, height: u32) -> bytes::Bytes {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                &vec![0u8; (width * height) as usize],
                width,
                height,
                image::ExtendedColorType::L8,
            )
            .unwrap();
        out.into()
    }
    use image::ImageEncoder;

    fn job(sources: Vec<bytes::Bytes>, steps: &str) -> Job {
        Job {
            steps: parse_steps(steps, sources.len()).unwrap(),
            sources: sources.into_iter().map(Source::Image).collect(),
            output: OutputOptions::from_fields(&imgbind_wire::OutputFields {
                format: Some("image/png".into()),
                ..Default::default()
            })
            .unwrap(),
        }
    }

    #[test]
    fn every_source_counts_and_the_largest_twice_more() {
        let limits = Limits::default();
        let one = job(vec![png(100, 50)], "[]");
        assert_eq!(memory_needed(&one, &limits).unwrap(), 3 * 100 * 50 * 4);
        // Draw layers add up; a PNG layer counts only the window of it that lands (the 5×5
        // canvas's centre), as it is decoded (png.rs).
        let layers = job(
            vec![png(10, 10), png(1000, 1000), png(1000, 1000)],
            r#"[{"imageIndex":0,"width":5,"height":5},
                {"drawImageIndex":1,"targetImageIndex":0},
                {"drawImageIndex":2,"targetImageIndex":0}]"#,
        );
        assert_eq!(
            memory_needed(&layers, &limits).unwrap(),
            (100 + 2 * 25) * 4 + 2 * 100 * 4
        );
        // A layer that lands whole counts whole.
        let whole = job(
            vec![png(1000, 1000), png(300, 200)],
            r#"[{"drawImageIndex":1,"targetImageIndex":0}]"#,
        );
        assert_eq!(
            memory_needed(&whole, &limits).unwrap(),
            (1_000_000 + 300 * 200) * 4 + 2 * 1_000_000 * 4
        );
        // Enlarging into a box counts the box.
        let enlarge = job(
            vec![png(10, 10)],
            r#"[{"imageIndex":0,"width":2000,"height":1000,"fit":"squeeze"}]"#,
        );
        assert_eq!(
            memory_needed(&enlarge, &limits).unwrap(),
            (100 + 2 * 2_000_000) * 4
        );
    }

    #[test]
    fn what_the_engine_refuses_is_refused_before_decoding() {
        let limits = Limits::default();
        let bomb = job(vec![png(20_000, 10)], "[]");
        assert_eq!(
            memory_needed(&bomb, &limits).unwrap_err().code(),
            imgbind_wire::ErrorCode::TooManyPixels
        );
        let junk = job(vec![bytes::Bytes::from_static(b"not an image")], "[]");
        assert_eq!(
            memory_needed(&junk, &limits).unwrap_err().code(),
            imgbind_wire::ErrorCode::NotAnImage
        );
    }
}
