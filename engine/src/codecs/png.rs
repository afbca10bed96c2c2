//! PNG: the size from IHDR, decoding through image-rs (any bit depth and colour type), a window
//! decode through the png crate's row reader (below), and truecolour encoding through the png
//! crate's stream writer, which hands each IDAT chunk to the sink as it fills. (A PNG with an
//! explicit `quality` is a palette PNG: `palette.rs`.)
//!
//! **Window decode.** When the steps look at only part of a PNG (a trim first, or a drawn layer
//! of which only part lands: `plan.rs`), the rows are inflated and unfiltered one at a time, the
//! window's columns of each row in it are kept, and reading stops after its last row. PNG data is
//! one deflate stream, so the rows above the window still cost their inflate; those below it and
//! every pixel outside the window cost nothing, and the raster is the window's size (a 15 MP layer
//! landing 200 px wide holds 90 KB, not 60 MB). The pixels are exactly those of the whole decode,
//! cut (tested below). Truncation is still an error: before decoding, every chunk up to `IEND` is
//! walked and its CRC checked, and a file that fails that is decoded whole, which reports it as
//! before, whether or not the cut is under the window. What a window decode does not see is
//! deflate damage below the window inside chunks whose CRCs match (a crafted file); it cannot
//! change the window's pixels.
//! Interlaced and 16-bit PNGs decode whole (Adam7 passes cover every row; 16-bit is rounded the
//! way image-rs rounds it) and the trim step cuts them.

use std::io::Cursor;

use image::DynamicImage;
use imgbind_wire::{Error, OutputFormat};

use crate::codecs::BLOCK;
use crate::geometry::Rect;
use crate::icc;
use crate::output::{OutputHead, OutputSink, SinkWriter};
use crate::raster::{buffer_len, try_alloc, Logical, Raster};

/// Stored width and height from IHDR, which is always the first chunk.
pub(crate) fn read_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    // IHDR: length 13, "IHDR", width, height (big-endian).
    if bytes.len() < 33 || &bytes[12..16] != b"IHDR" {
        return Err(Error::corrupt("PNG", "missing IHDR"));
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    Ok((w, h))
}

/// PNG of any bit depth and colour type (palette with tRNS and grey + alpha become RGBA; 16-bit
/// is rounded to 8), its iCCP profile converted to sRGB.
/// With a `window` (stored pixels, inside the image) only those pixels are decoded when the PNG
/// is 8-bit and not interlaced (see the module documentation); the raster's `logical` then places
/// them in the whole image.
pub(crate) fn decode(bytes: &[u8], window: Option<Rect>) -> Result<Raster, Error> {
    if let Some(window) = window {
        if let Some(raster) = decode_window(bytes, window)? {
            return Ok(raster);
        }
    }
    decode_whole(bytes)
}

fn decode_whole(bytes: &[u8]) -> Result<Raster, Error> {
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

/// The window's pixels, or `None` when this PNG must be decoded whole: interlaced, 16-bit, a
/// window that does not fit inside it, or a file whose header or chunks do not check out (the
/// whole decode then reports it exactly as it reports any such file, and decodes what it
/// forgives, such as a file without IEND, as before).
fn decode_window(bytes: &[u8], window: Rect) -> Result<Option<Raster>, Error> {
    if !decodes_window(bytes) {
        return Ok(None);
    }
    let corrupt = |e: &dyn std::fmt::Display| Error::corrupt("PNG", e);
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // The same expansion image-rs asks for: palette (+ tRNS) and low bit depths to 8-bit samples.
    decoder.set_transformations(png::Transformations::EXPAND);
    let Ok(mut reader) = decoder.read_info() else {
        return Ok(None);
    };
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let fits = window.width > 0
        && window.height > 0
        && u64::from(window.x) + u64::from(window.width) <= u64::from(width)
        && u64::from(window.y) + u64::from(window.height) <= u64::from(height);
    if !fits {
        return Ok(None);
    }
    // 8-bit samples after EXPAND: `decodes_window` saw a depth of at most 8 and no interlacing.
    let (samples, has_alpha) = match reader.output_color_type().0 {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (2, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (4, true),
        png::ColorType::Indexed => return Ok(None),
    };
    let profile = info.icc_profile.as_ref().map(|p| p.to_vec());
    let channels = if has_alpha { 4 } else { 3 };
    let mut pixels = try_alloc(buffer_len(window.width, window.height, channels)?)?;
    let row_len = window.width as usize * channels;
    let (left, right) = (
        window.x as usize * samples,
        (window.x + window.width) as usize * samples,
    );
    for y in 0..window.y + window.height {
        let row = reader
            .next_row()
            .map_err(|e| corrupt(&e))?
            .ok_or_else(|| corrupt(&"image data ends early"))?;
        if y < window.y {
            continue;
        }
        let source = row
            .data()
            .get(left..right)
            .ok_or_else(|| corrupt(&"short row"))?;
        let start = (y - window.y) as usize * row_len;
        let out = &mut pixels[start..start + row_len];
        // Grey is spread to RGB as image-rs's `into_rgb8`/`into_rgba8` spread it.
        match samples {
            1 => out
                .chunks_exact_mut(3)
                .zip(source)
                .for_each(|(o, &v)| o.fill(v)),
            2 => out
                .chunks_exact_mut(4)
                .zip(source.chunks_exact(2))
                .for_each(|(o, s)| o.copy_from_slice(&[s[0], s[0], s[0], s[1]])),
            _ => out.copy_from_slice(source),
        }
    }
    let mut raster = Raster::from_vec(window.width, window.height, has_alpha, pixels)?;
    raster.logical = Some(Logical {
        x: -f64::from(window.x),
        y: -f64::from(window.y),
        ..Logical::whole(width, height, width, height)
    });
    match profile {
        Some(profile) => icc::rgb_to_srgb(raster, &profile).map(Some),
        None => Ok(Some(raster)),
    }
}

/// Whether a window of this PNG decodes as only that window: 8-bit or fewer bits per sample (a
/// palette expands to 8), not interlaced, and every chunk whole ([`chunks_complete`]). The memory
/// estimate (`cost.rs`) asks the same question the decoder does.
pub(crate) fn decodes_window(bytes: &[u8]) -> bool {
    // IHDR data: width, height, bit depth (24), colour type (25), compression, filter,
    // interlace (28).
    bytes.len() >= 33
        && &bytes[12..16] == b"IHDR"
        && bytes[24] <= 8
        && bytes[28] == 0
        && chunks_complete(bytes)
}

/// Whether every chunk after the signature is whole, up to `IEND`, with a matching CRC: a file
/// cut short (or damaged in transit) anywhere is caught here, before a window decode stops
/// reading early.
fn chunks_complete(bytes: &[u8]) -> bool {
    let mut at = 8usize;
    loop {
        let Some(head) = bytes.get(at..at + 8) else {
            return false;
        };
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(end) = at
            .checked_add(12)
            .and_then(|n| n.checked_add(length))
            .filter(|&end| end <= bytes.len())
        else {
            return false;
        };
        if crc32fast::hash(&bytes[at + 4..end - 4]).to_be_bytes() != bytes[end - 4..end] {
            return false;
        }
        if &head[4..8] == b"IEND" {
            return true;
        }
        at = end;
    }
}

fn from_dynamic(image: DynamicImage) -> Result<Raster, Error> {
    let (w, h) = (image.width(), image.height());
    if image.color().has_alpha() {
        Raster::from_vec(w, h, true, image.into_rgba8().into_raw())
    } else {
        Raster::from_vec(w, h, false, image.into_rgb8().into_raw())
    }
}

/// PNG through the png crate's stream writer: the same settings as image-rs's `PngEncoder` with
/// `CompressionType::Fast` + `FilterType::Adaptive` (fdeflate, adaptive filters), so the filtered
/// scanlines are the same; the IDAT chunking differs (64 KiB chunks instead of one) and so, by a
/// few bytes, does the deflate stream (fdeflate's output depends on how its input is split).
pub(crate) fn encode(img: &Raster, sink: &mut dyn OutputSink) -> Result<OutputHead, Error> {
    use std::io::Write;
    let fail = |e: &dyn std::fmt::Display| Error::encode_failed("PNG", e);
    let head = OutputHead {
        format: OutputFormat::Png,
        width: img.width,
        height: img.height,
        length: None,
        incremental: true,
    };
    sink.begin(&head).map_err(|e| fail(&e))?;
    let mut encoder = png::Encoder::new(SinkWriter(sink), img.width, img.height);
    encoder.set_color(if img.has_alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    // Fast (fdeflate) compression: several times quicker than zlib level 6 for a modest size cost.
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(|e| fail(&e))?;
    let mut stream = writer
        .stream_writer_with_size(BLOCK)
        .map_err(|e| fail(&e))?;
    // The stream writer filters and compresses row by row and hands each full IDAT chunk on.
    stream.write_all(&img.data).map_err(|e| fail(&e))?;
    stream.finish().map_err(|e| fail(&e))?;
    // IEND.
    writer.finish().map_err(|e| fail(&e))?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::crop;

    /// A `width`×`height` PNG of the given type with a pattern in every sample (a palette of 256
    /// entries with graded transparency for `Indexed`).
    fn encode_test_png(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == png::ColorType::Indexed {
            let palette: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
            encoder.set_palette(palette);
            encoder.set_trns((0..=255u8).map(|i| i.wrapping_mul(7)).collect::<Vec<_>>());
        }
        let bits = depth as usize * color.samples();
        let row_bytes = (width as usize * bits).div_ceil(8);
        let data: Vec<u8> = (0..height as usize)
            .flat_map(|y| (0..row_bytes).map(move |x| (x * 31 + y * 17 + x * y / 5) as u8))
            .collect();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        out
    }

    fn window_equals_whole_cut(bytes: &[u8], window: Rect) {
        let whole = decode(bytes, None).unwrap();
        let part = decode(bytes, Some(window)).unwrap();
        if !decodes_window(bytes) {
            // Decoded whole; the trim step cuts it.
            assert!(part.logical.is_none() && part.data == whole.data);
            return;
        }
        let expected = crop(&whole, window).unwrap();
        assert_eq!(
            (part.width, part.height, part.has_alpha),
            (expected.width, expected.height, expected.has_alpha)
        );
        assert!(part.data == expected.data, "window pixels differ");
        let logical = part.logical.expect("a window is placed in the whole image");
        assert_eq!((logical.width, logical.height), (whole.width, whole.height));
        assert_eq!(
            (logical.x, logical.y),
            (-f64::from(window.x), -f64::from(window.y))
        );
    }

    #[test]
    fn a_window_is_the_whole_decode_cut_for_every_colour_type() {
        use png::{BitDepth, ColorType};
        let windows = [
            Rect {
                x: 0,
                y: 0,
                width: 97,
                height: 61,
            },
            Rect {
                x: 13,
                y: 20,
                width: 40,
                height: 7,
            },
            Rect {
                x: 96,
                y: 60,
                width: 1,
                height: 1,
            },
            Rect {
                x: 50,
                y: 0,
                width: 47,
                height: 61,
            },
        ];
        for (color, depth) in [
            (ColorType::Rgba, BitDepth::Eight),
            (ColorType::Rgb, BitDepth::Eight),
            (ColorType::Grayscale, BitDepth::Eight),
            (ColorType::GrayscaleAlpha, BitDepth::Eight),
            (ColorType::Grayscale, BitDepth::Two),
            (ColorType::Indexed, BitDepth::Eight),
            (ColorType::Indexed, BitDepth::Four),
            // These two decode whole, then are cut: the same pixels either way.
            (ColorType::Rgba, BitDepth::Sixteen),
            (ColorType::Grayscale, BitDepth::Sixteen),
        ] {
            let bytes = encode_test_png(97, 61, color, depth);
            assert_eq!(
                decodes_window(&bytes),
                depth != BitDepth::Sixteen,
                "{color:?} {depth:?}"
            );
            for window in windows {
                window_equals_whole_cut(&bytes, window);
            }
        }
    }

    #[test]
    fn an_embedded_profile_is_converted_in_a_window_too() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/formats/adobergb.png"
        ))
        .unwrap();
        assert!(decodes_window(&bytes));
        window_equals_whole_cut(
            &bytes,
            Rect {
                x: 5,
                y: 9,
                width: 30,
                height: 20,
            },
        );
    }

    #[test]
    fn an_interlaced_png_is_decoded_whole() {
        let mut bytes = encode_test_png(16, 16, png::ColorType::Rgb, png::BitDepth::Eight);
        assert!(decodes_window(&bytes));
        // IHDR's interlace method (Adam7), its CRC recomputed: the chunks are whole, the rows
        // are not in order, so no window decode.
        bytes[28] = 1;
        let crc = crc32fast::hash(&bytes[12..29]).to_be_bytes();
        bytes[29..33].copy_from_slice(&crc);
        assert!(!decodes_window(&bytes));
    }

    #[test]
    fn a_window_of_a_truncated_or_damaged_png_fails_like_the_whole_decode() {
        let bytes = encode_test_png(200, 300, png::ColorType::Rgb, png::BitDepth::Eight);
        let window = Rect {
            x: 10,
            y: 5,
            width: 50,
            height: 20,
        };
        assert!(decodes_window(&bytes));
        // Cut well below the window: the rows the window needs are all there, but the file is not.
        let cut = &bytes[..bytes.len() - 200];
        assert!(!decodes_window(cut));
        let err = decode(cut, Some(window)).unwrap_err();
        assert_eq!(err.code(), decode(cut, None).unwrap_err().code());
        // One flipped byte in the last IDAT chunk (a CRC mismatch), also below the window.
        let mut damaged = bytes.clone();
        let at = damaged.len() - 30;
        damaged[at] ^= 0x55;
        assert!(!decodes_window(&damaged));
        assert!(decode(&damaged, Some(window)).is_err());
    }
}
