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

use imgbind_wire::{Error, ErrorCode};

use crate::animation;
use crate::codecs::{avif, jpeg, png, svg, webp};
use crate::format::{Format, Header, HEIC_UNSUPPORTED};
use crate::geometry::{self, Rect};
use crate::icc;
use crate::raster::Raster;
use crate::{Clock, Limits};

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
