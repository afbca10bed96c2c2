//! Metadata policy, as Cloudflare documents for the default `metadata: copyright`: a JPEG result
//! keeps only the EXIF Copyright tag of the input; every other output carries no metadata at all
//! (our encoders write none: no EXIF, XMP, ICC or text chunks).
//!
//! EXIF is found in its container by `format.rs`, read and written with `kamadak-exif`; the result's APP1 segment holds a TIFF structure
//! with IFD0 containing the Copyright tag alone (no GPS, camera, thumbnail or orientation: the
//! pixels are already upright).

use std::io::Cursor;

use exif::{Field, In, Tag, Value};

use crate::format::{exif_block, sniff, Format};

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
    let copyright = sniff(input).and_then(|format| copyright(format, input));
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
            .read_raw(exif_block(Format::Jpeg, &out).unwrap().to_vec())
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
