//! Encode the finished image: JPEG (libjpeg-turbo), PNG and GIF (image-rs), WebP (libwebp), AVIF
//! (libavif + aom, `avif.rs`), raw RGB/RGBA. No encoder writes metadata; a JPEG's copyright tag
//! is added afterwards (`metadata.rs`). Animation is not kept: the output is one frame.

use imgbind_wire::{Error, ErrorCode, OutputFormat, OutputOptions, Rgba};

use crate::raster::Raster;
use crate::Encoded;

fn encode_error(format: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("{format} encoding failed: {e}"),
    )
}

/// Encodes `img` as `output` asks. `output.background` flattens any transparency first; formats
/// without alpha (JPEG, raw RGB) flatten onto white when no background is given.
pub(crate) fn encode(img: Raster, output: &OutputOptions) -> Result<Encoded, Error> {
    let img = match output.background {
        Some(bg) => img.flatten(bg)?,
        None => img,
    };
    let quality = output.quality_or_default().clamp(1, 100);
    let (width, height) = (img.width, img.height);
    let bytes = match output.format {
        OutputFormat::Jpeg => jpeg(&img.flatten(opaque(output.background))?, quality)?,
        // An explicit quality asks for a palette PNG (Cloudflare's PNG8), `palette.rs`.
        OutputFormat::Png => match output.quality {
            Some(q) => crate::palette::encode_png8(img, q)?,
            None => png(&img)?,
        },
        OutputFormat::Webp => webp(&img, quality)?,
        OutputFormat::Gif => gif(img)?,
        OutputFormat::Rgb => img.flatten(opaque(output.background))?.data,
        OutputFormat::Rgba => img.into_rgba()?.data,
        OutputFormat::Avif => crate::avif::encode(&img, quality)?,
    };
    Ok(Encoded {
        bytes,
        format: output.format,
        width,
        height,
    })
}

/// The background a format without alpha flattens onto: the requested one made opaque, or white.
fn opaque(background: Option<Rgba>) -> Rgba {
    background.map_or(Rgba::WHITE, |c| Rgba { a: 255, ..c })
}

/// Cloudflare serves progressive JPEG except for tiny (< 50 px) or huge (> 3000 px) sides, where
/// baseline is smaller or cheaper to decode.
pub(crate) fn jpeg_is_progressive(width: u32, height: u32) -> bool {
    width.min(height) >= 50 && width.max(height) <= 3000
}

fn jpeg(img: &Raster, quality: u8) -> Result<Vec<u8>, Error> {
    let fail = |e| encode_error("JPEG", e);
    let mut compressor = turbojpeg::Compressor::new().map_err(fail)?;
    compressor.set_quality(i32::from(quality)).map_err(fail)?;
    compressor
        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
        .map_err(fail)?;
    compressor
        .set_progressive(jpeg_is_progressive(img.width, img.height))
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

fn png(img: &Raster) -> Result<Vec<u8>, Error> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::{ExtendedColorType, ImageEncoder};
    let mut out = Vec::new();
    // Fast (fdeflate) compression: several times quicker than zlib level 6 for a modest size cost.
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
    let colour = if img.has_alpha {
        ExtendedColorType::Rgba8
    } else {
        ExtendedColorType::Rgb8
    };
    encoder
        .write_image(&img.data, img.width, img.height, colour)
        .map_err(|e| encode_error("PNG", e))?;
    Ok(out)
}

fn webp(img: &Raster, quality: u8) -> Result<Vec<u8>, Error> {
    if img.width > 16_383 || img.height > 16_383 {
        return Err(Error::new(
            ErrorCode::ProcessingLimit,
            format!(
                "WebP cannot be larger than 16383x16383 (image is {}x{})",
                img.width, img.height
            ),
        ));
    }
    let mut config = webp::WebPConfig::new().map_err(|()| encode_error("WebP", "bad config"))?;
    // Quality 100 means lossless, as Cloudflare documents.
    config.lossless = i32::from(quality == 100);
    config.quality = f32::from(quality);
    config.alpha_compression = i32::from(quality != 100);
    let layout = if img.has_alpha {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let memory = webp::Encoder::new(&img.data, layout, img.width, img.height)
        .encode_advanced(&config)
        .map_err(|e| encode_error("WebP", format!("{e:?}")))?;
    Ok(memory.to_vec())
}

fn gif(img: Raster) -> Result<Vec<u8>, Error> {
    use image::codecs::gif::GifEncoder;
    let (w, h) = (img.width, img.height);
    let rgba = img.into_rgba()?;
    let buffer = image::RgbaImage::from_raw(w, h, rgba.data)
        .ok_or_else(|| encode_error("GIF", "buffer size"))?;
    let mut out = Vec::new();
    {
        // Speed 10 of 30: NeuQuant quality is still good and large frames stay fast.
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        encoder
            .encode_frame(image::Frame::new(buffer))
            .map_err(|e| encode_error("GIF", e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn sample(alpha: bool) -> Raster {
        let mut img = Raster::filled(64, 48, alpha, Rgba::WHITE, &Limits::default()).unwrap();
        let c = img.channels();
        // Some texture, so quality and format differences show in the size.
        for (i, p) in img.data.chunks_exact_mut(c).enumerate() {
            p[0] = (i * 7 % 251) as u8;
            p[1] = (i / 64 * 5) as u8;
            if alpha {
                p[3] = (i % 64 * 4) as u8;
            }
        }
        img
    }

    fn decode_dims(bytes: &[u8]) -> (u32, u32) {
        let header = crate::decode::read_header(bytes).unwrap();
        let r = crate::decode::decode(
            bytes,
            &header,
            1.0,
            &Limits::default(),
            &crate::Clock::start(&Limits::default()),
        )
        .unwrap();
        (r.width, r.height)
    }

    #[test]
    fn every_format_round_trips() {
        for alpha in [false, true] {
            for format in [
                OutputFormat::Jpeg,
                OutputFormat::Png,
                OutputFormat::Webp,
                OutputFormat::Gif,
                OutputFormat::Avif,
            ] {
                let mut options = OutputOptions::new(format);
                let out = encode(sample(alpha), &options).unwrap();
                assert_eq!((out.width, out.height), (64, 48));
                assert_eq!(
                    decode_dims(&out.bytes),
                    (64, 48),
                    "{format:?} alpha={alpha}"
                );
                options.quality = Some(100);
                let lossless = encode(sample(alpha), &options).unwrap();
                assert_eq!(decode_dims(&lossless.bytes), (64, 48));
            }
            let rgb = encode(sample(alpha), &OutputOptions::new(OutputFormat::Rgb)).unwrap();
            assert_eq!(rgb.bytes.len(), 64 * 48 * 3);
            let rgba = encode(sample(alpha), &OutputOptions::new(OutputFormat::Rgba)).unwrap();
            assert_eq!(rgba.bytes.len(), 64 * 48 * 4);
        }
    }

    #[test]
    fn raw_rgb_flattens_onto_background() {
        let clear = Raster::from_vec(1, 1, true, vec![0, 0, 0, 0]).unwrap();
        let white = encode(clear.clone(), &OutputOptions::new(OutputFormat::Rgb)).unwrap();
        assert_eq!(white.bytes, vec![255, 255, 255]);
        let mut options = OutputOptions::new(OutputFormat::Rgb);
        options.background = Some(Rgba {
            r: 0,
            g: 0,
            b: 255,
            a: 255,
        });
        assert_eq!(encode(clear, &options).unwrap().bytes, vec![0, 0, 255]);
    }

    #[test]
    fn jpeg_progressive_rule_and_markers() {
        assert!(jpeg_is_progressive(800, 450));
        assert!(!jpeg_is_progressive(49, 400));
        assert!(!jpeg_is_progressive(3001, 400));
        let big = Raster::filled(100, 60, false, Rgba::BLACK, &Limits::default()).unwrap();
        let progressive = encode(big, &OutputOptions::new(OutputFormat::Jpeg)).unwrap();
        assert_eq!(frame_marker(&progressive.bytes), Some(0xC2));
        let small = Raster::filled(40, 40, false, Rgba::BLACK, &Limits::default()).unwrap();
        let baseline = encode(small, &OutputOptions::new(OutputFormat::Jpeg)).unwrap();
        assert_eq!(frame_marker(&baseline.bytes), Some(0xC0));
    }

    /// The SOFn marker of a JPEG, found by walking its segments.
    pub(crate) fn frame_marker(jpeg: &[u8]) -> Option<u8> {
        let mut i = 2;
        while i + 4 <= jpeg.len() {
            let marker = jpeg[i + 1];
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                return Some(marker);
            }
            i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        }
        None
    }

    #[test]
    fn quality_changes_size() {
        for format in [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif] {
            let at = |q| {
                let mut o = OutputOptions::new(format);
                o.quality = Some(q);
                encode(sample(false), &o).unwrap().bytes.len()
            };
            assert!(at(20) < at(95), "{format:?}: {} vs {}", at(20), at(95));
        }
    }
}
