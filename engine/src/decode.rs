//! Decode an input whose header passed the limits: each format through its codec (`codecs/`;
//! JPEG with DCT shrink-on-load), embedded colour profiles converted to sRGB (`icc.rs`), and the
//! EXIF orientation applied, so every step sees the image upright, in sRGB.
//!
//! JPEG: libjpeg-turbo (RGB, greyscale, CMYK/YCCK). PNG: image-rs (8/16-bit, palette + tRNS, grey
//! + alpha; 16-bit is rounded to 8). WebP: libwebp. AVIF: libavif + aom. GIF: image-rs. SVG: resvg.
//!
//! Animated GIF and WebP inputs are decoded here to their first frame, through `animation.rs`,
//! after their frame count and frame-pixels passed the limits (the rest of a GIF is still scanned,
//! so a truncated file is an error, never a partial image). Keeping every frame is
//! `animation.rs`'s job.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use imgbind_wire::{Error, ErrorCode};

use crate::animation;
use crate::codecs::{avif, jpeg, png, svg, webp};
use crate::format::{Format, Header, HEIC_UNSUPPORTED};
use crate::geometry::{self, Rect};
use crate::icc;
use crate::raster::Raster;
use crate::text;
use crate::{Clock, Limits};

/// What step 3 of a job does with one source.
pub(crate) enum Work<'a> {
    /// Decode an image (see [`decode`]).
    Image {
        bytes: &'a [u8],
        header: &'a Header,
        min_scale: f64,
        window: Option<Rect>,
    },
    /// Render a text source (`text.rs`); `index` is its place in the job, for its errors.
    Text { json: &'a str, index: usize },
    /// Nothing now: the animated canvas, decoded frame by frame later (`animation.rs`).
    Later,
}

/// The most sources decoded at once. The memory estimate (`cost.rs`) counts every decoded source
/// plus two images of the largest size; one decode's conversion copy (ICC, alpha, orientation)
/// is at most one image of its size, so two decodes at once stay within it and three might not.
const CONCURRENT_DECODES: usize = 2;

/// Pixels a source must make its decoder read for a lane of its own to pay: a thread is not
/// started to decode a small logo beside a photo.
const CONCURRENT_DECODE_PIXELS: u64 = 1_000_000;

impl Work<'_> {
    /// Roughly the pixels the decoder reads: the whole image, or for a window decode every row
    /// down to the window's last (those above it are read too).
    fn pixels_read(&self) -> u64 {
        let Work::Image { header, window, .. } = self else {
            return 0;
        };
        let (width, height) = header.display_size();
        let rows = decoder_window(header, *window).map_or(height, |w| w.y.saturating_add(w.height));
        u64::from(width) * u64::from(rows.min(height))
    }
}

/// Does `work` in its order and returns one image per entry (`None` for [`Work::Later`]). When the
/// job may use a second core (`limits.threads` ≥ 2) and has two large sources to decode
/// ([`CONCURRENT_DECODE_PIXELS`]), two decode at once, each on half the job's allowance: a layer
/// decodes while the canvas does, so a job alone on the machine finishes sooner, and at full load
/// (one thread per job) nothing changes. The pixels are the same either way; so is the error, the
/// first in the sources' order (a source is started only in order and none after a failure, so
/// every source before a failed one ran).
pub(crate) fn sources(
    work: &[Work<'_>],
    limits: &Limits,
    clock: &Clock,
) -> Result<Vec<Option<Raster>>, Error> {
    let large = work
        .iter()
        .filter(|w| w.pixels_read() >= CONCURRENT_DECODE_PIXELS)
        .count();
    let lanes = limits.threads.get().min(CONCURRENT_DECODES).min(large);
    if lanes < 2 {
        return work.iter().map(|w| one(w, limits, clock)).collect();
    }
    let lane_limits = Limits {
        threads: NonZeroUsize::new(limits.threads.get() / lanes).unwrap_or(NonZeroUsize::MIN),
        ..limits.clone()
    };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Each entry's outcome, once its lane has it.
    let done: Vec<Mutex<Option<Outcome>>> = work.iter().map(|_| Mutex::new(None)).collect();
    let lane = || loop {
        if failed.load(Ordering::SeqCst) {
            break;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(w) = work.get(i) else { break };
        let result = one(w, &lane_limits, clock);
        if result.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        *done[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    };
    std::thread::scope(|scope| {
        // Without a second thread (the process is out of them) the lane below does it all.
        let _helper = std::thread::Builder::new()
            .name("imgbind-decode".into())
            .spawn_scoped(scope, lane);
        lane();
    });
    let mut images = Vec::with_capacity(work.len());
    for slot in done {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(result) => images.push(result?),
            // Sources start in order and stop only after a failure, whose error comes first.
            None => return Err(Error::internal("a source was skipped")),
        }
    }
    Ok(images)
}

/// What one entry of [`sources`] gives.
type Outcome = Result<Option<Raster>, Error>;

/// One entry of [`sources`], then the deadline.
fn one(work: &Work<'_>, limits: &Limits, clock: &Clock) -> Outcome {
    let image = match *work {
        Work::Image {
            bytes,
            header,
            min_scale,
            window,
        } => decode(bytes, header, min_scale, window, limits, clock)?,
        Work::Text { json, index } => text::render(json, index, limits)?,
        Work::Later => return Ok(None),
    };
    clock.check()?;
    Ok(Some(image))
}

/// Decodes an image whose header has been read and checked against the limits, then turns it
/// upright. `min_scale` (≤ 1) lets a JPEG shrink on load: the decoder may return any size at least
/// that fraction of the original, and records the original size in `logical`. `window` (upright
/// pixels) is all the steps will look at: a JPEG or PNG stored upright decodes only what covers
/// it.
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    min_scale: f64,
    window: Option<Rect>,
    limits: &Limits,
    clock: &Clock,
) -> Result<Raster, Error> {
    let raster = match header.format {
        Format::Jpeg => jpeg::decode(bytes, min_scale, decoder_window(header, window))?,
        Format::Png => png::decode(bytes, decoder_window(header, window))?,
        // Every GIF, and an animated WebP, goes through the animation reader: its frames are
        // counted (and a GIF checked to the end) before the first one is decoded.
        Format::Gif => animation::first_frame(bytes, header, limits, clock)?
            .ok_or_else(|| Error::corrupt("GIF", "no frames"))?,
        Format::Webp if webp::is_animated(bytes)? => {
            animation::first_frame(bytes, header, limits, clock)?
                .ok_or_else(|| Error::corrupt("WebP", "no frames"))?
        }
        Format::Webp => webp::decode(bytes)?,
        Format::Avif => {
            let avif = avif::decode(bytes, limits)?;
            match avif.icc {
                Some(profile) => icc::rgb_to_srgb(avif.raster, &profile)?,
                None => icc::cicp_to_srgb(avif.raster, avif.color_primaries, avif.transfer)?,
            }
        }
        Format::Heic => return Err(Error::new(ErrorCode::UnsupportedFormat, HEIC_UNSUPPORTED)),
        Format::Svg => svg::rasterise(bytes)?,
        Format::Other(mime) => {
            return Err(Error::new(
                ErrorCode::UnsupportedFormat,
                format!("Unsupported image type {mime}"),
            ))
        }
    };
    let raster = match header.format {
        Format::Webp => match icc::webp_profile(bytes) {
            Some(profile) => icc::rgb_to_srgb(raster, &profile)?,
            None => raster,
        },
        _ => raster,
    };
    let raster = raster.drop_opaque_alpha()?;
    geometry::apply_orientation(raster, header.orientation, limits)
}

/// The window the decoder of this file is given when the steps look only at `window` (upright
/// pixels), or `None` when it decodes the whole image: JPEGs and PNGs stored upright (a turned
/// file's window would have to be turned back into stored pixels first). A PNG decoder may still
/// decode whole (`png::decodes_window`). The memory estimate (`cost.rs`) asks the same question,
/// so it counts what is decoded.
pub(crate) fn decoder_window(header: &Header, window: Option<Rect>) -> Option<Rect> {
    match header.format {
        Format::Jpeg | Format::Png if header.orientation <= 1 => window,
        _ => None,
    }
}
