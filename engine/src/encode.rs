//! Encode the finished image into an [`OutputSink`], each format through its codec (`codecs/`):
//! JPEG (libjpeg-turbo), PNG (the png crate's stream writer; with a `quality`, a palette PNG from
//! `palette.rs`), GIF (image-rs), WebP (libwebp), AVIF (libavif + aom), raw RGB/RGBA. No encoder
//! writes metadata; a JPEG's copyright tag is added afterwards (`metadata.rs`). Animation is not
//! kept here: `animation.rs` encodes animations.
//!
//! [`encode`] alone decides whether an output streams (PNG, raw) or goes as one block;
//! [`crate::run`] collects the same calls into an [`Encoded`], so both give identical bytes.

use std::num::NonZeroUsize;

use imgbind_wire::{Error, OutputFormat, OutputOptions, Rgba};

use crate::codecs::{avif, gif, jpeg, png, raw, webp};
use crate::output::{Encoded, OutputHead, OutputSink};
use crate::raster::Raster;
use crate::{metadata, palette, Clock};

/// Encodes `img` as `output` asks into `sink`. This is the one place that decides how an output
/// travels: truecolour PNG (no `quality`; with one it is a palette PNG, chosen from the whole
/// image) and raw pixels are written as the encoder produces them; every other format is encoded
/// whole, checked against the deadline, and handed over as one block with its length.
///
/// `output.background` flattens any transparency first; formats without alpha (JPEG, raw RGB)
/// flatten onto white when no background is given. `source` is the canvas's encoded input: a JPEG
/// output keeps its EXIF copyright (`metadata.rs`). WebP encodes on two threads when `threads`
/// (the job's allowance, [`crate::Limits::threads`]) allows, into the same bytes as on one; AVIF
/// stays on one (`codecs/avif.rs` says why).
pub(crate) fn encode(
    img: Raster,
    output: &OutputOptions,
    source: Option<&[u8]>,
    threads: NonZeroUsize,
    clock: &Clock,
    sink: &mut dyn OutputSink,
) -> Result<OutputHead, Error> {
    let img = match output.background {
        Some(bg) => img.flatten(bg)?,
        None => img,
    };
    let quality = output.quality_or_default().clamp(1, 100);
    let (width, height) = (img.width, img.height);
    let bytes = match output.format {
        // Bytes leave as they are produced: the caller checked the deadline just before (a
        // finished output is never turned into an error after its first byte).
        OutputFormat::Png if output.quality.is_none() => return png::encode(&img, sink),
        OutputFormat::Rgb => return raw::encode(img, false, opaque(output.background), sink),
        OutputFormat::Rgba => return raw::encode(img, true, Rgba::WHITE, sink),
        OutputFormat::Jpeg => {
            let jpeg = jpeg::encode(&img.flatten(opaque(output.background))?, quality)?;
            match source {
                Some(input) => metadata::keep_copyright(jpeg, input),
                None => jpeg,
            }
        }
        // An explicit quality asks for a palette PNG (Cloudflare's PNG8), `palette.rs`.
        OutputFormat::Png => palette::encode_png8(img, quality)?,
        OutputFormat::Webp => webp::encode(&img, quality, threads)?,
        OutputFormat::Gif => gif::encode(img)?,
        OutputFormat::Avif => avif::encode(&img, quality, NonZeroUsize::MIN)?,
    };
    clock.check()?;
    Encoded {
        bytes,
        format: output.format,
        width,
        height,
    }
    .write_to(sink)
}

/// [`encode`] collected whole, without a deadline or a source: for tests.
#[cfg(test)]
pub(crate) fn encode_whole(img: Raster, output: &OutputOptions) -> Result<Encoded, Error> {
    let mut encoded = Encoded::empty(output.format);
    let clock = Clock::start(&crate::Limits::default());
    encode(img, output, None, NonZeroUsize::MIN, &clock, &mut encoded)?;
    Ok(encoded)
}

/// The background a format without alpha flattens onto: the requested one made opaque, or white.
fn opaque(background: Option<Rgba>) -> Rgba {
    background.map_or(Rgba::WHITE, |c| Rgba { a: 255, ..c })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use imgbind_wire::ErrorCode;

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
        let header = crate::format::read_header(bytes).unwrap();
        let r = crate::decode::decode(
            bytes,
            &header,
            1.0,
            None,
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
                let out = encode_whole(sample(alpha), &options).unwrap();
                assert_eq!((out.width, out.height), (64, 48));
                assert_eq!(
                    decode_dims(&out.bytes),
                    (64, 48),
                    "{format:?} alpha={alpha}"
                );
                options.quality = Some(100);
                let lossless = encode_whole(sample(alpha), &options).unwrap();
                assert_eq!(decode_dims(&lossless.bytes), (64, 48));
            }
            let rgb = encode_whole(sample(alpha), &OutputOptions::new(OutputFormat::Rgb)).unwrap();
            assert_eq!(rgb.bytes.len(), 64 * 48 * 3);
            let rgba =
                encode_whole(sample(alpha), &OutputOptions::new(OutputFormat::Rgba)).unwrap();
            assert_eq!(rgba.bytes.len(), 64 * 48 * 4);
        }
    }

    #[test]
    fn raw_rgb_flattens_onto_background() {
        let clear = Raster::from_vec(1, 1, true, vec![0, 0, 0, 0]).unwrap();
        let white = encode_whole(clear.clone(), &OutputOptions::new(OutputFormat::Rgb)).unwrap();
        assert_eq!(white.bytes, vec![255, 255, 255]);
        let mut options = OutputOptions::new(OutputFormat::Rgb);
        options.background = Some(Rgba {
            r: 0,
            g: 0,
            b: 255,
            a: 255,
        });
        assert_eq!(
            encode_whole(clear, &options).unwrap().bytes,
            vec![0, 0, 255]
        );
    }

    #[test]
    fn jpeg_progressive_rule_and_markers() {
        assert!(jpeg::is_progressive(800, 450));
        assert!(!jpeg::is_progressive(49, 400));
        assert!(!jpeg::is_progressive(3001, 400));
        let big = Raster::filled(100, 60, false, Rgba::BLACK, &Limits::default()).unwrap();
        let progressive = encode_whole(big, &OutputOptions::new(OutputFormat::Jpeg)).unwrap();
        assert_eq!(frame_marker(&progressive.bytes), Some(0xC2));
        let small = Raster::filled(40, 40, false, Rgba::BLACK, &Limits::default()).unwrap();
        let baseline = encode_whole(small, &OutputOptions::new(OutputFormat::Jpeg)).unwrap();
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
                encode_whole(sample(false), &o).unwrap().bytes.len()
            };
            assert!(at(20) < at(95), "{format:?}: {} vs {}", at(20), at(95));
        }
    }

    /// [`encode`] into `sink`, with a fresh deadline and no source.
    fn encode_into(
        img: Raster,
        output: &OutputOptions,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        encode(
            img,
            output,
            None,
            NonZeroUsize::MIN,
            &crate::Clock::start(&Limits::default()),
            sink,
        )
    }

    /// Records what an incremental encode hands over, in order.
    #[derive(Default)]
    struct Recorder {
        head: Option<OutputHead>,
        writes: Vec<Vec<u8>>,
        fail_after: Option<usize>,
    }

    impl OutputSink for Recorder {
        fn begin(&mut self, head: &OutputHead) -> std::io::Result<()> {
            assert!(
                self.head.is_none() && self.writes.is_empty(),
                "begin once, first"
            );
            self.head = Some(*head);
            Ok(())
        }

        fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            assert!(self.head.is_some(), "bytes before the head");
            if self.fail_after.is_some_and(|n| self.writes.len() >= n) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the reader is gone",
                ));
            }
            self.writes.push(bytes.to_vec());
            Ok(())
        }
    }

    /// A gradient with some noise, big enough for many IDAT chunks (and compressible, so the
    /// pre-streaming encoder keeps its compressed stream rather than falling back to stored).
    fn large(alpha: bool) -> Raster {
        let mut img = Raster::filled(700, 500, alpha, Rgba::WHITE, &Limits::default()).unwrap();
        let mut x: u32 = 12345;
        for (i, b) in img.data.iter_mut().enumerate() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = ((i / 3 % 700 + i / 2100) / 5) as u8 ^ (x >> 30) as u8;
        }
        img
    }

    /// The concatenated IDAT payloads of a PNG (its zlib stream) and the number of IDAT chunks.
    fn zlib_stream(png: &[u8]) -> (Vec<u8>, usize) {
        let (mut i, mut out, mut count) = (8, Vec::new(), 0);
        while i + 12 <= png.len() {
            let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
            if &png[i + 4..i + 8] == b"IDAT" {
                out.extend_from_slice(&png[i + 8..i + 8 + len]);
                count += 1;
            }
            i += 12 + len;
        }
        (out, count)
    }

    #[test]
    fn png_streams_the_one_block_bytes_and_the_same_scanlines_as_before() {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::{ExtendedColorType, ImageEncoder};
        for alpha in [false, true] {
            let img = large(alpha);
            let mut recorder = Recorder::default();
            let head = encode_into(
                img.clone(),
                &OutputOptions::new(OutputFormat::Png),
                &mut recorder,
            )
            .unwrap();
            assert_eq!(recorder.head, Some(head));
            assert_eq!((head.length, head.incremental), (None, true));
            let streamed = recorder.writes.concat();
            // The one-block encode collects exactly the same stream.
            let one_block =
                encode_whole(img.clone(), &OutputOptions::new(OutputFormat::Png)).unwrap();
            assert!(
                one_block.bytes == streamed,
                "one-block and streamed PNG differ"
            );
            // Many IDAT chunks, handed over as they filled.
            let (zlib, chunks) = zlib_stream(&streamed);
            assert!(chunks > 4, "{chunks} IDAT chunks");
            assert!(
                recorder.writes.len() > chunks,
                "{} writes",
                recorder.writes.len()
            );
            // image-rs's encoder (the pre-streaming path) with the same settings: one IDAT
            // chunk, the same zlib stream, the same pixels.
            let mut before = Vec::new();
            PngEncoder::new_with_quality(&mut before, CompressionType::Fast, FilterType::Adaptive)
                .write_image(
                    &img.data,
                    img.width,
                    img.height,
                    if alpha {
                        ExtendedColorType::Rgba8
                    } else {
                        ExtendedColorType::Rgb8
                    },
                )
                .unwrap();
            let (zlib_before, chunks_before) = zlib_stream(&before);
            assert_eq!(chunks_before, 1);
            // The same filtered scanlines (same filter per row) through the same compressor;
            // fdeflate's output differs slightly where its writes are split, not in size.
            let inflate = |z: &[u8]| fdeflate::decompress_to_vec(z).unwrap();
            assert!(
                inflate(&zlib) == inflate(&zlib_before),
                "filtered scanlines differ (alpha={alpha})"
            );
            let (now, then) = (streamed.len() as f64, before.len() as f64);
            assert!((now - then).abs() / then < 0.005, "{now} vs {then} bytes");
            let decoded = image::load_from_memory(&streamed).unwrap();
            let pixels = if alpha {
                decoded.to_rgba8().into_raw()
            } else {
                decoded.to_rgb8().into_raw()
            };
            assert!(pixels == img.data, "decoded pixels differ");
        }
    }

    #[test]
    fn raw_streams_rows_with_the_length_up_front() {
        for (alpha_in, format) in [
            (false, OutputFormat::Rgb),
            (true, OutputFormat::Rgb),
            (false, OutputFormat::Rgba),
            (true, OutputFormat::Rgba),
        ] {
            let img = large(alpha_in);
            let options = OutputOptions::new(format);
            let mut recorder = Recorder::default();
            let head = encode_into(img.clone(), &options, &mut recorder).unwrap();
            let streamed = recorder.writes.concat();
            assert_eq!(head.length, Some(streamed.len() as u64));
            let expected = if format == OutputFormat::Rgba {
                img.into_rgba().unwrap().data
            } else {
                img.flatten(Rgba::WHITE).unwrap().data
            };
            assert!(streamed == expected, "{format:?} from alpha={alpha_in}");
            // A conversion goes out in row blocks; a buffer already in shape goes out whole.
            let converted = alpha_in != (format == OutputFormat::Rgba);
            assert_eq!(
                recorder.writes.len() > 1,
                converted,
                "{format:?} {alpha_in}"
            );
        }
    }

    #[test]
    fn a_failing_sink_stops_the_encoder_with_9523() {
        let mut recorder = Recorder {
            fail_after: Some(3),
            ..Recorder::default()
        };
        let error = encode_into(
            large(true),
            &OutputOptions::new(OutputFormat::Png),
            &mut recorder,
        )
        .unwrap_err();
        assert_eq!(error.code(), ErrorCode::Internal);
        assert!(error.message().contains("the reader is gone"), "{error}");
        assert_eq!(recorder.writes.len(), 3);
    }
}
