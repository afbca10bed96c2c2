//! JPEG through libjpeg-turbo (`turbojpeg`, vendored): the header's size, decoding with DCT
//! scaling (shrink-on-load), CMYK/YCCK through the embedded profile or the naive formula, and
//! progressive encoding with optimised Huffman tables.

use imgbind_wire::Error;

use crate::codecs::{dimension, jpeg_window};
use crate::geometry::Rect;
use crate::icc;
use crate::raster::{buffer_len, try_alloc, Logical, Raster};

/// Stored width and height, from the header alone.
pub(crate) fn read_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    let h = turbojpeg::read_header(bytes).map_err(|e| Error::corrupt("JPEG", e))?;
    Ok((dimension(h.width)?, dimension(h.height)?))
}

/// The smallest n/8 (n = 1..8) that is at least `min_scale`: libjpeg-turbo's DCT scaling.
pub(crate) fn scale_eighths(min_scale: f64) -> usize {
    (1..=8usize)
        .find(|n| *n as f64 / 8.0 >= min_scale - 1e-9)
        .unwrap_or(8)
}

/// Decodes a JPEG, shrunk on load to the smallest n/8 of its size that is at least `min_scale`
/// (the original size is kept in `logical`); its ICC profile converted to sRGB. With a `window`
/// (stored coordinates) only the pixels covering it are decoded (`jpeg_window.rs`); the raster's
/// `logical` then places them in the whole image. At 1/8, a progressive JPEG is decoded from its
/// DC data without its AC scans (see `jpeg_dc.rs`), with the same result.
pub(crate) fn decode(bytes: &[u8], min_scale: f64, window: Option<Rect>) -> Result<Raster, Error> {
    decode_with(bytes, min_scale, window, true)
}

/// [`decode`], with the DC-only shortcut allowed or not (tests compare the two).
pub(super) fn decode_with(
    bytes: &[u8],
    min_scale: f64,
    window: Option<Rect>,
    dc_shortcut: bool,
) -> Result<Raster, Error> {
    use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};
    let tj = |e: turbojpeg::Error| Error::corrupt("JPEG", e);
    let mut decompressor = Decompressor::new().map_err(tj)?;
    let header = decompressor.read_header(bytes).map_err(tj)?;
    let eighths = if header.is_lossless {
        8
    } else {
        scale_eighths(min_scale)
    };
    let factor = ScalingFactor::new(eighths, 8);
    decompressor.set_scaling_factor(factor).map_err(tj)?;
    let scaled = header.scaled(factor);
    let croppable = !header.is_lossless && header.subsamp != turbojpeg::Subsamp::Unknown;
    let region = window.filter(|_| croppable).and_then(|w| {
        scaled_region(
            w,
            eighths,
            header.subsamp.mcu_width(),
            (
                dimension(scaled.width).ok()?,
                dimension(scaled.height).ok()?,
            ),
        )
    });
    let (width, height) = match region {
        Some(r) => (r.width, r.height),
        None => (dimension(scaled.width)?, dimension(scaled.height)?),
    };
    // libjpeg-turbo cannot convert CMYK/YCCK to RGB itself; decode as CMYK and convert below.
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let (format, channels) = if cmyk {
        (PixelFormat::CMYK, 4)
    } else {
        (PixelFormat::RGB, 3)
    };
    let mut pixels = try_alloc(buffer_len(width, height, channels)?)?;
    let dc_only = if dc_shortcut && eighths == 1 {
        super::jpeg_dc::rebuild(bytes)
    } else {
        None
    };
    let input = dc_only.as_deref().unwrap_or(bytes);
    let result = match region {
        Some(r) => jpeg_window::decompress(input, eighths, r, format as _, channels, &mut pixels),
        None => decompressor
            .decompress(
                input,
                Image {
                    pixels: pixels.as_mut_slice(),
                    width: scaled.width,
                    pitch: scaled.width * channels,
                    height: scaled.height,
                    format,
                },
            )
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        // TurboJPEG reports libjpeg warnings as errors. The only one we forgive is stray bytes
        // between segments, which leaves the image intact; anything else (notably "Premature end
        // of JPEG file") means the pixels are partly invented.
        if !e.contains("extraneous bytes before marker") {
            return Err(Error::corrupt("JPEG", e));
        }
    }
    let profile = icc::jpeg_profile(bytes);
    if cmyk {
        pixels = cmyk_to_rgb(
            pixels,
            width,
            height,
            adobe_inverted(bytes),
            profile.as_deref(),
        )?;
    }
    let mut raster = Raster::from_vec(width, height, false, pixels)?;
    if let (Some(profile), false) = (&profile, cmyk) {
        raster = icc::rgb_to_srgb(raster, profile)?;
    }
    let (full_width, full_height) = (dimension(header.width)?, dimension(header.height)?);
    if let Some(r) = region {
        let whole = Logical::whole(
            full_width,
            full_height,
            dimension(scaled.width)?,
            dimension(scaled.height)?,
        );
        raster.logical = Some(Logical {
            x: -f64::from(r.x),
            y: -f64::from(r.y),
            ..whole
        });
    } else if eighths != 8 {
        raster.logical = Some(Logical::whole(
            full_width,
            full_height,
            raster.width,
            raster.height,
        ));
    }
    Ok(raster)
}

/// Full-size pixels decoded beyond a window on every side (see [`scaled_region`]).
pub(crate) const WINDOW_MARGIN: u64 = 16;

/// How many full-size pixels a decoded window may exceed the asked one by, along either axis:
/// the margin on both sides, the left edge moved back by up to one iMCU (32 px at most, 4:1:1),
/// and rounding at the scaled edges.
pub(crate) const WINDOW_SLACK: u32 = 2 * WINDOW_MARGIN as u32 + 32 + 8;

/// The region of the image scaled by `eighths`/8 (`scaled` pixels) that covers `window` (full-size
/// pixels), its left edge moved back to a multiple of the scaled iMCU width as TurboJPEG requires;
/// `None` when that is the whole image.
fn scaled_region(
    window: Rect,
    eighths: usize,
    mcu_width: usize,
    scaled: (u32, u32),
) -> Option<Rect> {
    let e = eighths as u64;
    let mcu = (mcu_width as u64 * e).div_ceil(8).max(1);
    // One iMCU (at most 16 px at full size) of margin on every side: chroma upsampling near an
    // edge of the cropped region looks at its neighbours, so the kept pixels come out exactly
    // as a whole decode gives them.
    let margin = (WINDOW_MARGIN * e).div_ceil(8);
    let x0 = (u64::from(window.x) * e / 8).saturating_sub(margin) / mcu * mcu;
    let y0 = (u64::from(window.y) * e / 8).saturating_sub(margin);
    let x1 = ((u64::from(window.x) + u64::from(window.width)) * e).div_ceil(8) + margin;
    let y1 = ((u64::from(window.y) + u64::from(window.height)) * e).div_ceil(8) + margin;
    let x1 = x1.min(u64::from(scaled.0));
    let y1 = y1.min(u64::from(scaled.1));
    if x0 >= x1
        || y0 >= y1
        || (x0 == 0 && y0 == 0 && x1 == u64::from(scaled.0) && y1 == u64::from(scaled.1))
    {
        return None;
    }
    Some(Rect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    })
}

/// CMYK (YCCK is turned into CMYK by libjpeg-turbo) to sRGB. Photoshop and most tools write
/// "Adobe" JPEGs with inverted values (255 = no ink); others store ink amounts. With a CMYK
/// profile the conversion goes through it, else through the naive `(1 − c)(1 − k)` formula.
fn cmyk_to_rgb(
    mut cmyk: Vec<u8>,
    width: u32,
    height: u32,
    inverted: bool,
    profile: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    if let Some(profile) = profile {
        // Profiles take ink amounts (0 = none).
        if inverted {
            cmyk.iter_mut().for_each(|v| *v = 255 - *v);
        }
        if let Some(rgb) = icc::cmyk_to_srgb(&cmyk, width, height, profile)? {
            return Ok(rgb);
        }
        if inverted {
            cmyk.iter_mut().for_each(|v| *v = 255 - *v);
        }
    }
    let mut rgb = try_alloc(buffer_len(width, height, 3)?)?;
    let paper = |v: u8| u32::from(if inverted { v } else { 255 - v });
    for (d, s) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
        // Both as "amount of paper showing": inverted values already are.
        let k = paper(s[3]);
        for c in 0..3 {
            d[c] = crate::raster::div255(paper(s[c]) * k);
        }
    }
    Ok(rgb)
}

/// True when a JPEG has Adobe's APP14 segment, whose CMYK values are stored inverted.
fn adobe_inverted(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if marker == 0xEE && bytes.get(i + 4..i + 9) == Some(b"Adobe") {
            return true;
        }
        i += 2 + len;
    }
    false
}

/// Cloudflare serves progressive JPEG except for tiny (< 50 px) or huge (> 3000 px) sides, where
/// baseline is smaller or cheaper to decode.
pub(crate) fn is_progressive(width: u32, height: u32) -> bool {
    width.min(height) >= 50 && width.max(height) <= 3000
}

/// Encodes opaque RGB at `quality` (1–100), 4:2:0, progressive where [`is_progressive`] says.
pub(crate) fn encode(img: &Raster, quality: u8) -> Result<Vec<u8>, Error> {
    let fail = |e| Error::encode_failed("JPEG", e);
    let mut compressor = turbojpeg::Compressor::new().map_err(fail)?;
    compressor.set_quality(i32::from(quality)).map_err(fail)?;
    compressor
        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
        .map_err(fail)?;
    compressor
        .set_progressive(is_progressive(img.width, img.height))
        .map_err(fail)?;
    // Optimised Huffman tables: a few percent smaller for little time (sharp does the same).
    compressor.set_optimize(true).map_err(fail)?;
    let image = turbojpeg::Image {
        pixels: img.data.as_slice(),
        width: img.width as usize,
        pitch: img.stride(),
        height: img.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    compressor.compress_to_vec(image).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_decodes_the_same_pixels_as_the_whole_image() {
        // Detail everywhere, so a pixel taken from the wrong place or upsampled differently shows.
        let (w, h) = (333u32, 219u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = (x * 7 + y * 13) ^ (x * y);
                data.extend_from_slice(&[(v % 251) as u8, (v / 3 % 253) as u8, (x + y) as u8]);
            }
        }
        let jpeg = encode(&Raster::from_vec(w, h, false, data).unwrap(), 90).unwrap();
        let full = decode(&jpeg, 1.0, None).unwrap();
        for window in [
            Rect {
                x: 37,
                y: 41,
                width: 100,
                height: 80,
            },
            Rect {
                x: 200,
                y: 150,
                width: 133,
                height: 69,
            },
            Rect {
                x: 0,
                y: 0,
                width: 17,
                height: 9,
            },
        ] {
            let part = decode(&jpeg, 1.0, Some(window)).unwrap();
            // Fewer pixels decoded than the whole image, and no more than the memory estimate
            // (`cost.rs`) allows for.
            assert!(part.width * part.height < w * h, "{window:?}");
            assert!(part.width <= window.width + WINDOW_SLACK, "{window:?}");
            assert!(part.height <= window.height + WINDOW_SLACK, "{window:?}");
            let logical = part.logical.unwrap();
            assert_eq!((logical.width, logical.height), (w, h));
            let cut = crate::geometry::crop_logical(&part, logical, window).unwrap();
            assert_eq!(
                cut.data,
                crate::geometry::crop(&full, window).unwrap().data,
                "{window:?}"
            );
        }
    }

    #[test]
    fn scale_picks_smallest_sufficient_eighth() {
        assert_eq!(scale_eighths(0.01), 1);
        assert_eq!(scale_eighths(0.125), 1);
        assert_eq!(scale_eighths(0.13), 2);
        assert_eq!(scale_eighths(0.5), 4);
        assert_eq!(scale_eighths(0.9), 8);
        assert_eq!(scale_eighths(3.0), 8);
    }
}
