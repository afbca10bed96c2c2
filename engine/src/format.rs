//! What an input is, from its first bytes and its header alone: the [`Format`] (sniffed from magic
//! bytes), and the [`Header`] (stored size and EXIF orientation), read before any pixel buffer
//! exists so the limits can be checked first. Below `decode.rs`, `animation.rs` and
//! `metadata.rs`, which all start from here; each format's own header reader is in `codecs/`.

use imgbind_wire::{Error, ErrorCode};

use crate::codecs::{avif, gif, jpeg, png, svg, webp};

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
    let ((width, height), orientation) = match format {
        Format::Jpeg => (jpeg::read_size(bytes)?, exif_orientation(format, bytes)),
        Format::Png => (png::read_size(bytes)?, exif_orientation(format, bytes)),
        Format::Gif => (gif::read_size(bytes)?, 1),
        Format::Webp => (webp::read_size(bytes)?, exif_orientation(format, bytes)),
        Format::Avif => {
            let h = avif::read_header(bytes)?;
            ((h.width, h.height), h.orientation)
        }
        Format::Heic => (
            isobmff_size(bytes).ok_or_else(|| Error::corrupt(format.mime(), "no size"))?,
            1,
        ),
        Format::Svg => (svg::read_size(bytes)?, 1),
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
pub(crate) const HEIC_UNSUPPORTED: &str =
    "HEIC input is not supported; convert it to JPEG, PNG, WebP or AVIF first";

/// The raw TIFF structure of an input's EXIF block (JPEG APP1, PNG eXIf, WebP EXIF).
pub(crate) fn exif_block(format: Format, bytes: &[u8]) -> Option<&[u8]> {
    match format {
        Format::Jpeg => jpeg_exif(bytes),
        Format::Png => png_exif(bytes),
        Format::Webp => webp_exif(bytes),
        _ => None,
    }
}

fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // start of scan / end of image: no more metadata
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let segment = bytes.get(i + 4..i + 2 + len)?;
        if marker == 0xE1 {
            if let Some(tiff) = segment.strip_prefix(b"Exif\0\0") {
                return Some(tiff);
            }
        }
        i += 2 + len;
    }
    None
}

fn png_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 8;
    while let Some(head) = bytes.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        if kind == b"eXIf" {
            return bytes.get(i + 8..i + 8 + len);
        }
        i = i.saturating_add(12).saturating_add(len);
    }
    None
}

fn webp_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 12;
    while let Some(head) = bytes.get(i..i + 8) {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if &head[..4] == b"EXIF" {
            let data = bytes.get(i + 8..i + 8 + len)?;
            return Some(data.strip_prefix(b"Exif\0\0").unwrap_or(data));
        }
        i = i.saturating_add(8).saturating_add(len + (len & 1));
    }
    None
}

/// EXIF orientation 1–8 from the input's EXIF block (1 when absent or unreadable).
fn exif_orientation(format: Format, bytes: &[u8]) -> u8 {
    exif_block(format, bytes)
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
    use crate::Limits;

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
}
