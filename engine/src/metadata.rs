//! Metadata policy, as Cloudflare documents for the default `metadata: copyright`: a JPEG result
//! keeps only the EXIF Copyright tag of the input; every other output carries no metadata at all
//! (our encoders write none: no EXIF, XMP, ICC or text chunks).
//!
//! EXIF is read and written with `kamadak-exif`; the result's APP1 segment holds a TIFF structure
//! with IFD0 containing the Copyright tag alone (no GPS, camera, thumbnail or orientation: the
//! pixels are already upright).

use std::io::Cursor;

use exif::{Field, In, Tag, Value};

use crate::decode::Format;

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

/// The EXIF Copyright tag of an input, if it has a non-empty one.
pub(crate) fn copyright(format: Format, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let tiff = exif_block(format, bytes)?;
    let exif = exif::Reader::new().read_raw(tiff.to_vec()).ok()?;
    let field = exif.get_field(Tag::Copyright, In::PRIMARY)?;
    match &field.value {
        Value::Ascii(parts) if parts.iter().any(|p| !p.is_empty()) => Some(parts.clone()),
        _ => None,
    }
}

/// The JPEG result of a job whose canvas was `input`: with the input's copyright tag, if any.
pub(crate) fn keep_copyright(jpeg: Vec<u8>, input: &[u8]) -> Vec<u8> {
    let copyright = crate::decode::sniff(input).and_then(|format| copyright(format, input));
    match copyright {
        Some(copyright) => jpeg_with_copyright(jpeg, &copyright),
        None => jpeg,
    }
}

/// Inserts an APP1 segment holding only `copyright` into an encoded JPEG, after SOI and any
/// JFIF APP0 (where readers expect EXIF). Returns the JPEG unchanged if the tag cannot be
/// written (it would not fit in one segment).
pub(crate) fn jpeg_with_copyright(jpeg: Vec<u8>, copyright: &[Vec<u8>]) -> Vec<u8> {
    let field = Field {
        tag: Tag::Copyright,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(copyright.to_vec()),
    };
    let mut writer = exif::experimental::Writer::new();
    writer.push_field(&field);
    let mut tiff = Cursor::new(Vec::new());
    if writer.write(&mut tiff, false).is_err() {
        return jpeg;
    }
    let tiff = tiff.into_inner();
    let Ok(len) = u16::try_from(2 + 6 + tiff.len()) else {
        return jpeg;
    };
    // After SOI, skip an APP0 (JFIF) segment if present.
    let mut at = 2;
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0]) {
        if let Some(l) = jpeg.get(4..6) {
            at = 4 + usize::from(u16::from_be_bytes([l[0], l[1]]));
        }
    }
    if at > jpeg.len() {
        return jpeg;
    }
    let mut out = Vec::with_capacity(jpeg.len() + usize::from(len) + 2);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyright_round_trips_through_a_jpeg() {
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xD9];
        let out = jpeg_with_copyright(jpeg, &[b"(c) Someone".to_vec()]);
        assert_eq!(&out[..8], &[0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2]);
        assert_eq!(&out[8..10], &[0xFF, 0xE1]);
        assert_eq!(
            copyright(Format::Jpeg, &out),
            Some(vec![b"(c) Someone".to_vec()])
        );
        let exif = exif::Reader::new()
            .read_raw(jpeg_exif(&out).unwrap().to_vec())
            .unwrap();
        assert_eq!(exif.fields().count(), 1, "the copyright tag alone");
    }

    #[test]
    fn missing_or_damaged_exif_gives_nothing() {
        assert_eq!(copyright(Format::Jpeg, &[0xFF, 0xD8, 0xFF, 0xD9]), None);
        let mut bad = vec![0xFF, 0xD8, 0xFF, 0xE1, 0, 12];
        bad.extend_from_slice(b"Exif\0\0MM\0*");
        bad.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(copyright(Format::Jpeg, &bad), None);
        assert_eq!(copyright(Format::Gif, b"GIF89a"), None);
    }
}
