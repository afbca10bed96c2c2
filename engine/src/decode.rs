//! Sniff the format, read the size from the header, decode (JPEG with DCT shrink-on-load), convert
//! embedded colour profiles to sRGB (`icc.rs`), and apply the EXIF orientation so every step sees
//! the image upright, in sRGB.
//!
//! JPEG: libjpeg-turbo (RGB, greyscale, CMYK/YCCK). PNG: image-rs (8/16-bit, palette + tRNS, grey
//! + alpha; 16-bit is rounded to 8). WebP: libwebp. AVIF: libavif + aom (`avif.rs`). GIF: image-rs.
//!
//! Animated GIF and WebP inputs are decoded here to their first frame, through `anim.rs`, after
//! their frame count and frame-pixels passed the limits (the rest of a GIF is still scanned, so a
//! truncated file is an error, never a partial image). Keeping every frame is `anim.rs`'s job.

use std::io::Cursor;

use image::DynamicImage;
use imgbind_wire::{Error, ErrorCode};

use crate::geometry;
use crate::icc;
use crate::raster::{buffer_len, try_alloc, Raster};
use crate::{Clock, Limits};

/// An input format we can recognise from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Avif,
    Heic,
    Svg,
    /// Recognised but never decoded (BMP, TIFF, ICO…): its MIME type.
    Other(&'static str),
}

impl Format {
    /// The MIME type `/info` reports.
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
            Format::Heic => "image/heic",
            Format::Svg => "image/svg+xml",
            Format::Other(mime) => mime,
        }
    }
}

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) format: Format,
    /// Stored width (before orientation).
    pub(crate) width: u32,
    /// Stored height (before orientation).
    pub(crate) height: u32,
    /// EXIF orientation 1–8 (1 = as stored).
    pub(crate) orientation: u8,
}

impl Header {
    /// Width and height as displayed, after the EXIF orientation.
    pub(crate) fn display_size(&self) -> (u32, u32) {
        if self.orientation >= 5 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Recognises the format from magic bytes; `None` means "not an image".
pub(crate) fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(Format::Webp);
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        // The major brand, then the compatible brands, name AVIF or HEIF.
        let box_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let brands = bytes.get(8..box_len.clamp(12, bytes.len()))?;
        let has = |b: &[u8]| brands.chunks(4).any(|c| c == b);
        if has(b"avif") || has(b"avis") {
            return Some(Format::Avif);
        }
        if [
            "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1",
        ]
        .iter()
        .any(|b| has(b.as_bytes()))
        {
            return Some(Format::Heic);
        }
        return None;
    }
    if bytes.starts_with(b"BM") && bytes.len() > 26 {
        return Some(Format::Other("image/bmp"));
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Some(Format::Other("image/tiff"));
    }
    if bytes.starts_with(&[0, 0, 1, 0]) && bytes.len() > 6 {
        return Some(Format::Other("image/x-icon"));
    }
    if looks_like_svg(bytes) {
        return Some(Format::Svg);
    }
    None
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let trimmed = head.trim_start_matches('\u{feff}').trim_start();
    (trimmed.starts_with("<?xml") || trimmed.starts_with("<svg") || trimmed.starts_with("<!"))
        && head.contains("<svg")
}

/// Reads format, stored size and orientation without decoding pixels. Errors are 9412
/// (not an image, or a damaged header) and 9520 (a format we recognise but cannot read).
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header, Error> {
    let format = sniff(bytes).ok_or_else(|| Error::not_an_image("Input is not an image"))?;
    let (width, height, orientation) = match format {
        Format::Jpeg => {
            let h = turbojpeg::read_header(bytes).map_err(|e| Error::corrupt("JPEG", e))?;
            let (w, h) = (to_u32(h.width)?, to_u32(h.height)?);
            (w, h, exif_orientation(Format::Jpeg, bytes))
        }
        Format::Png => {
            // IHDR is always the first chunk: length 13, "IHDR", width, height (big-endian).
            if bytes.len() < 33 || &bytes[12..16] != b"IHDR" {
                return Err(Error::corrupt("PNG", "missing IHDR"));
            }
            let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
            let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
            (w, h, exif_orientation(Format::Png, bytes))
        }
        Format::Gif => {
            if bytes.len() < 13 {
                return Err(Error::corrupt("GIF", "header cut short"));
            }
            let w = u32::from(u16::from_le_bytes([bytes[6], bytes[7]]));
            let h = u32::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            (w, h, 1)
        }
        Format::Webp => {
            let f = webp::BitstreamFeatures::new(bytes)
                .ok_or_else(|| Error::corrupt("WebP", "unreadable header"))?;
            (f.width(), f.height(), exif_orientation(Format::Webp, bytes))
        }
        Format::Avif => {
            let h = crate::avif::read_header(bytes)?;
            (h.width, h.height, h.orientation)
        }
        Format::Heic => {
            let (w, h) =
                isobmff_size(bytes).ok_or_else(|| Error::corrupt(format.mime(), "no size"))?;
            (w, h, 1)
        }
        Format::Svg => {
            let (w, h) = crate::svg::read_size(bytes)?;
            (w, h, 1)
        }
        Format::Other(mime) => {
            return Err(Error::new(
                ErrorCode::UnsupportedFormat,
                format!("Unsupported image type {mime}; expected JPEG, PNG, GIF, WebP or AVIF"),
            ))
        }
    };
    Ok(Header {
        format,
        width,
        height,
        orientation,
    })
}

fn to_u32(v: usize) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::not_an_image("Image dimensions overflow"))
}

/// 9520 for formats we recognise but cannot decode, before their dimensions are looked at.
pub(crate) fn check_decodable(format: Format) -> Result<(), Error> {
    let what = match format {
        Format::Jpeg | Format::Png | Format::Gif | Format::Webp | Format::Avif | Format::Svg => {
            return Ok(())
        }
        Format::Heic => HEIC_UNSUPPORTED,
        Format::Other(_) => "this image type is not supported",
    };
    Err(Error::new(ErrorCode::UnsupportedFormat, what))
}

/// HEIC needs an HEVC decoder; none is maintained on crates.io that builds from vendored source
/// under a licence we can ship, so HEIC is refused (as Cloudflare did before 2025).
const HEIC_UNSUPPORTED: &str =
    "HEIC input is not supported; convert it to JPEG, PNG, WebP or AVIF first";

/// Decodes an image whose header has been read and checked against the limits, then turns it
/// upright. `min_scale` (≤ 1) lets a JPEG shrink on load: the decoder may return any size at least
/// that fraction of the original, and records the original size in `logical_size`.
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    min_scale: f64,
    limits: &Limits,
    clock: &Clock,
) -> Result<Raster, Error> {
    let raster = match header.format {
        Format::Jpeg => decode_jpeg(bytes, min_scale)?,
        Format::Png => decode_png(bytes)?,
        // Every GIF goes through the animation reader: its frames are counted (and the file
        // checked to the end) before the first one is decoded.
        Format::Gif => crate::anim::first_frame(bytes, header, limits, clock)?
            .ok_or_else(|| Error::corrupt("GIF", "no frames"))?,
        Format::Webp => decode_webp(bytes, header, limits, clock)?,
        Format::Avif => {
            let avif = crate::avif::decode(bytes, limits)?;
            match avif.icc {
                Some(profile) => icc::rgb_to_srgb(avif.raster, &profile)?,
                None => icc::cicp_to_srgb(avif.raster, avif.color_primaries, avif.transfer)?,
            }
        }
        Format::Heic => return Err(Error::new(ErrorCode::UnsupportedFormat, HEIC_UNSUPPORTED)),
        Format::Svg => crate::svg::rasterise(bytes)?,
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
    let raster = drop_opaque_alpha(raster)?;
    apply_orientation(raster, header.orientation, limits)
}

/// The smallest n/8 (n = 1..8) that is at least `min_scale`: libjpeg-turbo's DCT scaling.
pub(crate) fn jpeg_scale_eighths(min_scale: f64) -> usize {
    (1..=8usize)
        .find(|n| *n as f64 / 8.0 >= min_scale - 1e-9)
        .unwrap_or(8)
}

fn decode_jpeg(bytes: &[u8], min_scale: f64) -> Result<Raster, Error> {
    use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};
    let tj = |e: turbojpeg::Error| Error::corrupt("JPEG", e);
    let mut decompressor = Decompressor::new().map_err(tj)?;
    let header = decompressor.read_header(bytes).map_err(tj)?;
    let eighths = if header.is_lossless {
        8
    } else {
        jpeg_scale_eighths(min_scale)
    };
    let factor = ScalingFactor::new(eighths, 8);
    decompressor.set_scaling_factor(factor).map_err(tj)?;
    let scaled = header.scaled(factor);
    let (width, height) = (to_u32(scaled.width)?, to_u32(scaled.height)?);
    // libjpeg-turbo cannot convert CMYK/YCCK to RGB itself; decode as CMYK and convert below.
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let (format, channels) = if cmyk {
        (PixelFormat::CMYK, 4)
    } else {
        (PixelFormat::RGB, 3)
    };
    let mut pixels = try_alloc(buffer_len(width, height, channels)?)?;
    let result = decompressor.decompress(
        bytes,
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
        raster.logical_size = Some((to_u32(header.width)?, to_u32(header.height)?));
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

/// PNG of any bit depth and colour type (palette with tRNS and grey + alpha become RGBA; 16-bit
/// is rounded to 8), its iCCP profile converted to sRGB.
fn decode_png(bytes: &[u8]) -> Result<Raster, Error> {
    use image::ImageDecoder;
    let mut decoder = image::codecs::png::PngDecoder::new(Cursor::new(bytes))
        .map_err(|e| Error::corrupt("PNG", e))?;
    let profile = decoder.icc_profile().ok().flatten();
    let raster =
        from_dynamic(DynamicImage::from_decoder(decoder).map_err(|e| Error::corrupt("PNG", e))?)?;
    match profile {
        Some(profile) => icc::rgb_to_srgb(raster, &profile),
        None => Ok(raster),
    }
}

fn decode_webp(
    bytes: &[u8],
    header: &Header,
    limits: &Limits,
    clock: &Clock,
) -> Result<Raster, Error> {
    let features = webp::BitstreamFeatures::new(bytes)
        .ok_or_else(|| Error::corrupt("WebP", "unreadable header"))?;
    if features.has_animation() {
        return crate::anim::first_frame(bytes, header, limits, clock)?
            .ok_or_else(|| Error::corrupt("WebP", "no frames"));
    }
    let image = webp::Decoder::new(bytes)
        .decode()
        .ok_or_else(|| Error::corrupt("WebP", "decoding failed"))?;
    let mut data = try_alloc(image.len())?;
    data.copy_from_slice(&image);
    Raster::from_vec(image.width(), image.height(), image.is_alpha(), data)
}

fn from_dynamic(image: DynamicImage) -> Result<Raster, Error> {
    let (w, h) = (image.width(), image.height());
    if image.color().has_alpha() {
        Raster::from_vec(w, h, true, image.into_rgba8().into_raw())
    } else {
        Raster::from_vec(w, h, false, image.into_rgb8().into_raw())
    }
}

/// RGBA whose alpha is 255 everywhere becomes RGB: cheaper to resize, and encoders need not flatten.
pub(crate) fn drop_opaque_alpha(raster: Raster) -> Result<Raster, Error> {
    if !raster.has_alpha || raster.data.chunks_exact(4).any(|p| p[3] != 255) {
        return Ok(raster);
    }
    let mut data = try_alloc(buffer_len(raster.width, raster.height, 3)?)?;
    for (d, s) in data.chunks_exact_mut(3).zip(raster.data.chunks_exact(4)) {
        d.copy_from_slice(&s[..3]);
    }
    Ok(Raster {
        data,
        has_alpha: false,
        ..raster
    })
}

/// Turns a decoded image upright according to its EXIF orientation (1–8).
pub(crate) fn apply_orientation(
    raster: Raster,
    orientation: u8,
    limits: &Limits,
) -> Result<Raster, Error> {
    use imgbind_wire::{Flip, Rotate};
    let rotate = |r, rot| geometry::rotate(r, rot, limits);
    let flip = |r, f| geometry::flip(r, f);
    match orientation {
        2 => flip(raster, Flip::Horizontal),
        3 => rotate(raster, Rotate::R180),
        4 => flip(raster, Flip::Vertical),
        // Transpose and transverse are a quarter turn plus a mirror.
        5 => flip(rotate(raster, Rotate::R90)?, Flip::Horizontal),
        6 => rotate(raster, Rotate::R90),
        7 => flip(rotate(raster, Rotate::R90)?, Flip::Vertical),
        8 => rotate(raster, Rotate::R270),
        _ => Ok(raster),
    }
}

/// EXIF orientation 1–8 from the input's EXIF block (1 when absent or unreadable).
fn exif_orientation(format: Format, bytes: &[u8]) -> u8 {
    crate::metadata::exif_block(format, bytes)
        .and_then(tiff_orientation)
        .unwrap_or(1)
}

/// Tag 0x0112 of IFD0 in a TIFF structure.
fn tiff_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        Some(if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|n| {
        let entry = ifd + 2 + n * 12;
        (u16_at(entry)? == 0x0112)
            .then(|| u16_at(entry + 8))
            .flatten()
            .filter(|v| (1..=8).contains(v))
            .map(|v| v as u8)
    })
}

/// Width and height from the first `ispe` property of an AVIF/HEIF file.
fn isobmff_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let head = &bytes[..bytes.len().min(256 * 1024)];
    let at = head.windows(4).position(|w| w == b"ispe")?;
    let b = head.get(at + 8..at + 16)?;
    Some((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(sniff(b"GIF89a......"), Some(Format::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(
            sniff(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1"),
            Some(Format::Avif)
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?><svg xmlns=\"...\"/>"),
            Some(Format::Svg)
        );
        assert_eq!(sniff(b"<html><body>hi</body></html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn png_header_sizes_are_read_without_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&65535u32.to_be_bytes());
        png.extend_from_slice(&65535u32.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        let h = read_header(&png).unwrap();
        assert_eq!((h.width, h.height), (65535, 65535));
        assert_eq!(
            Limits::default()
                .check_dimensions(h.width, h.height)
                .unwrap_err()
                .code(),
            ErrorCode::TooManyPixels
        );
    }

    #[test]
    fn reads_tiff_orientation_both_byte_orders() {
        // II, 42, IFD at 8, one entry: 0x0112 SHORT count 1 value 6.
        let le = [
            b'I', b'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0,
        ];
        assert_eq!(tiff_orientation(&le), Some(6));
        let be = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0,
        ];
        assert_eq!(tiff_orientation(&be), Some(8));
        assert_eq!(tiff_orientation(&le[..15]), None);
        assert_eq!(tiff_orientation(b"garbage"), None);
    }

    #[test]
    fn jpeg_scale_picks_smallest_sufficient_eighth() {
        assert_eq!(jpeg_scale_eighths(0.01), 1);
        assert_eq!(jpeg_scale_eighths(0.125), 1);
        assert_eq!(jpeg_scale_eighths(0.13), 2);
        assert_eq!(jpeg_scale_eighths(0.5), 4);
        assert_eq!(jpeg_scale_eighths(0.9), 8);
        assert_eq!(jpeg_scale_eighths(3.0), 8);
    }
}
