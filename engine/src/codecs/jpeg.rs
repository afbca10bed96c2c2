//! JPEG through libjpeg-turbo (`turbojpeg`, vendored): the header's size, decoding with DCT
//! scaling (shrink-on-load), CMYK/YCCK through the embedded profile or the naive formula, and
//! progressive encoding with optimised Huffman tables.

use imgbind_wire::Error;

use crate::codecs::dimension;
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
/// (the original size is kept in `logical`); its ICC profile converted to sRGB. At 1/8, a
/// progressive JPEG is decoded from its DC data without its AC scans (see `jpeg_dc.rs`), with the
/// same result.
pub(crate) fn decode(bytes: &[u8], min_scale: f64) -> Result<Raster, Error> {
    decode_with(bytes, min_scale, true)
}

/// [`decode`], with the DC-only shortcut allowed or not (tests compare the two).
pub(super) fn decode_with(
    bytes: &[u8],
    min_scale: f64,
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
    let (width, height) = (dimension(scaled.width)?, dimension(scaled.height)?);
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
    let result = decompressor.decompress(
        dc_only.as_deref().unwrap_or(bytes),
        Image {
            pixels: pixels.as_mut_slice(),
            width: scaled.width,
            pitch: scaled.width * channels,
            height: scaled.height,
            format,
        },
    );
    if let Err(e) = result {
        // TurboJPEG reports libjpeg warnings as errors. The only one we forgive is stray bytes
        // between segments, which leaves the image intact; anything else (notably "Premature end
        // of JPEG file") means the pixels are partly invented.
        if !e.to_string().contains("extraneous bytes before marker") {
            return Err(tj(e));
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
    if eighths != 8 {
        raster.logical = Some(Logical::whole(
            dimension(header.width)?,
            dimension(header.height)?,
            raster.width,
            raster.height,
        ));
    }
    Ok(raster)
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
    fn scale_picks_smallest_sufficient_eighth() {
        assert_eq!(scale_eighths(0.01), 1);
        assert_eq!(scale_eighths(0.125), 1);
        assert_eq!(scale_eighths(0.13), 2);
        assert_eq!(scale_eighths(0.5), 4);
        assert_eq!(scale_eighths(0.9), 8);
        assert_eq!(scale_eighths(3.0), 8);
    }
}
