//! PNG: the size from IHDR, decoding through image-rs (any bit depth and colour type), and
//! truecolour encoding through the png crate's stream writer, which hands each IDAT chunk to the
//! sink as it fills. (A PNG with an explicit `quality` is a palette PNG: `palette.rs`.)

use std::io::Cursor;

use image::DynamicImage;
use imgbind_wire::{Error, OutputFormat};

use crate::codecs::BLOCK;
use crate::icc;
use crate::output::{OutputHead, OutputSink, SinkWriter};
use crate::raster::Raster;

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
pub(crate) fn decode(bytes: &[u8]) -> Result<Raster, Error> {
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
