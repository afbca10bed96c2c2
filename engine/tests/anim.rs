//! Animated GIF and WebP through whole jobs: frames, delays and loop counts survive round trips in
//! both formats, every frame gets the transforms and draws, `anim: false` and still outputs keep
//! the first frame, and the frame limits refuse oversized animations before decoding them.
//!
//! Fixtures are made here: GIFs with the `gif` crate, animated WebPs with the engine's own encoder
//! (from a GIF). Outputs are decoded with `image` (GIF) and `image-webp` (WebP), not the engine.

mod common;

use std::io::Cursor;
use std::time::Instant;

use bytes::Bytes;
use image::AnimationDecoder;
use imgbind_engine::{run, Encoded, Job, Limits, Source};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions};

use common::corpus;

/// One decoded frame: RGBA pixels of the whole canvas and the delay in milliseconds.
#[derive(Debug)]
struct Frame {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    delay_ms: u32,
}

impl Frame {
    fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

/// Loop count as stored: GIF NETSCAPE repeat (None = no block), WebP loop count (0 = forever).
#[derive(Debug, PartialEq, Eq)]
enum Loop {
    Gif(Option<gif::Repeat>),
    Webp(u16),
}

const COLOURS: [[u8; 3]; 6] = [
    [220, 30, 30],
    [30, 200, 40],
    [30, 60, 220],
    [230, 200, 20],
    [200, 30, 200],
    [20, 200, 200],
];

/// A `w`×`h` GIF whose frame n is a grey field with a 4×4 square of colour n moving right by 4 px
/// per frame, so consecutive frames always differ.
fn moving_square_gif(w: u16, h: u16, delays_cs: &[u16], repeat: Option<gif::Repeat>) -> Bytes {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).unwrap();
        if let Some(r) = repeat {
            encoder.set_repeat(r).unwrap();
        }
        for (n, delay) in delays_cs.iter().enumerate() {
            let mut rgb = vec![128u8; usize::from(w) * usize::from(h) * 3];
            let x0 = (n as u16 * 4) % (w - 4);
            for y in 2..6u16 {
                for x in x0..x0 + 4 {
                    let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 3;
                    rgb[i..i + 3].copy_from_slice(&COLOURS[n % COLOURS.len()]);
                }
            }
            let mut frame = gif::Frame::from_rgb(w, h, &rgb);
            frame.delay = *delay;
            encoder.write_frame(&frame).unwrap();
        }
    }
    Bytes::from(out)
}

fn decode_gif(bytes: &[u8]) -> (Vec<Frame>, Loop) {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    let mut scan = options.read_info(Cursor::new(bytes)).unwrap();
    while scan.read_next_frame().unwrap().is_some() {}
    let repeat = match scan.repeat() {
        gif::Repeat::Finite(0) => None,
        r => Some(r),
    };
    let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).unwrap();
    let frames = decoder
        .into_frames()
        .map(|f| {
            let f = f.unwrap();
            let (n, d) = f.delay().numer_denom_ms();
            let buffer = f.into_buffer();
            Frame {
                width: buffer.width(),
                height: buffer.height(),
                rgba: buffer.into_raw(),
                delay_ms: n / d,
            }
        })
        .collect();
    (frames, Loop::Gif(repeat))
}

fn decode_webp(bytes: &[u8]) -> (Vec<Frame>, Loop) {
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).unwrap();
    assert!(decoder.is_animated(), "not an animated WebP");
    // Dispose to transparent, as libwebp and browsers do (image-webp needs a colour for it).
    decoder.set_background_color([0, 0, 0, 0]).unwrap();
    let (width, height) = decoder.dimensions();
    let looping = match decoder.loop_count() {
        image_webp::LoopCount::Forever => 0,
        image_webp::LoopCount::Times(n) => n.get(),
    };
    let mut frames = Vec::new();
    for _ in 0..decoder.num_frames() {
        let mut buf = vec![0; decoder.output_buffer_size().unwrap()];
        let delay_ms = decoder.read_frame(&mut buf).unwrap();
        let rgba = if decoder.has_alpha() {
            buf
        } else {
            buf.chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect()
        };
        frames.push(Frame {
            width,
            height,
            rgba,
            delay_ms,
        });
    }
    (frames, Loop::Webp(looping))
}

fn decode(out: &Encoded) -> (Vec<Frame>, Loop) {
    match out.format {
        OutputFormat::Gif => decode_gif(&out.bytes),
        OutputFormat::Webp => decode_webp(&out.bytes),
        other => panic!("not an animation format: {other:?}"),
    }
}

fn job(images: &[&Bytes], transforms: &str, output: OutputOptions) -> Job {
    Job {
        sources: images.iter().map(|b| Source::Image((*b).clone())).collect(),
        steps: parse_steps(transforms, images.len()).unwrap(),
        output,
    }
}

fn run_ok(images: &[&Bytes], transforms: &str, output: OutputOptions) -> Encoded {
    run(job(images, transforms, output), &Limits::default())
        .unwrap_or_else(|e| panic!("{transforms}: {e}"))
}

fn out(format: OutputFormat) -> OutputOptions {
    OutputOptions::new(format)
}

fn lossless(format: OutputFormat) -> OutputOptions {
    OutputOptions {
        quality: Some(100),
        ..OutputOptions::new(format)
    }
}

/// Colours within `tolerance` per channel (quantisation and lossy coding move them a little).
fn near(a: [u8; 4], b: [u8; 4], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

fn opaque(rgb: [u8; 3]) -> [u8; 4] {
    [rgb[0], rgb[1], rgb[2], 255]
}

const DELAYS_CS: [u16; 5] = [10, 20, 5, 50, 7];

fn delays_ms() -> Vec<u32> {
    DELAYS_CS.iter().map(|d| u32::from(*d) * 10).collect()
}

#[test]
fn gif_to_gif_keeps_frames_delays_loops_and_pixels() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, Some(gif::Repeat::Finite(2)));
    let result = run_ok(&[&src], "[]", out(OutputFormat::Gif));
    assert_eq!((result.width, result.height), (40, 12));
    let (frames, looping) = decode(&result);
    assert_eq!(frames.len(), 5);
    assert_eq!(
        frames.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
        delays_ms()
    );
    assert_eq!(looping, Loop::Gif(Some(gif::Repeat::Finite(2))));
    for (n, frame) in frames.iter().enumerate() {
        let x = (n as u32 * 4) % 36;
        assert!(
            near(frame.pixel(x + 1, 3), opaque(COLOURS[n]), 8),
            "frame {n}"
        );
        assert!(
            near(frame.pixel(x + 5, 3), [128, 128, 128, 255], 8),
            "frame {n}"
        );
    }
    // No NETSCAPE block (plays once) and "forever" both survive.
    for repeat in [None, Some(gif::Repeat::Infinite)] {
        let src = moving_square_gif(40, 12, &DELAYS_CS, repeat);
        let (_, looping) = decode(&run_ok(&[&src], "[]", out(OutputFormat::Gif)));
        assert_eq!(looping, Loop::Gif(repeat));
    }
}

#[test]
fn gif_to_webp_and_back_keeps_frames_delays_and_loops() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, Some(gif::Repeat::Finite(2)));
    for output in [out(OutputFormat::Webp), lossless(OutputFormat::Webp)] {
        let webp = run_ok(&[&src], "[]", output);
        let (frames, looping) = decode(&webp);
        assert_eq!(frames.len(), 5);
        assert_eq!(
            frames.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
            delays_ms()
        );
        // GIF "repeat 2 more times" is WebP "play 3 times".
        assert_eq!(looping, Loop::Webp(3));
        // A lossy frame reaches libwebp as YUV 4:2:0, as libvips hands it over (webp_anim.rs):
        // the chroma of a 4 px square is upsampled and subsampled once more on the way, so its
        // colour moves by up to ~50 levels in one channel (sharp's output is the same).
        for (n, frame) in frames.iter().enumerate() {
            let x = (n as u32 * 4) % 36;
            assert!(
                near(frame.pixel(x + 1, 3), opaque(COLOURS[n]), 56),
                "frame {n}: {:?}",
                frame.pixel(x + 1, 3)
            );
        }

        // WebP → WebP and WebP → GIF.
        let webp_bytes = Bytes::from(webp.bytes.clone());
        let again = run_ok(&[&webp_bytes], "[]", lossless(OutputFormat::Webp));
        let (frames, looping) = decode(&again);
        assert_eq!(frames.len(), 5);
        assert_eq!(
            frames.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
            delays_ms()
        );
        assert_eq!(looping, Loop::Webp(3));
        let gif = run_ok(&[&webp_bytes], "[]", out(OutputFormat::Gif));
        let (frames, looping) = decode(&gif);
        assert_eq!(frames.len(), 5);
        assert_eq!(
            frames.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
            delays_ms()
        );
        assert_eq!(looping, Loop::Gif(Some(gif::Repeat::Finite(2))));
    }
}

#[test]
fn resize_applies_to_every_frame() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, None);
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        // Lossless, so the check below is about the resize, not lossy coding of a 2×2 patch.
        let result = run_ok(
            &[&src],
            r#"[{"imageIndex":0,"width":20}]"#,
            lossless(format),
        );
        assert_eq!((result.width, result.height), (20, 6));
        let (frames, _) = decode(&result);
        assert_eq!(frames.len(), 5, "{format:?}");
        for frame in &frames {
            assert_eq!((frame.width, frame.height), (20, 6), "{format:?}");
        }
        // Frame 3's square (x 12..16 at full size) is at x 6..8 after halving.
        assert!(
            near(frames[3].pixel(7, 2), opaque(COLOURS[3]), 60),
            "{format:?}: {:?}",
            frames[3].pixel(7, 2)
        );
    }
}

/// A `w`×`h` PNG filled with one colour.
fn solid_png(w: u32, h: u32, rgba: [u8; 4]) -> Bytes {
    let mut out = Vec::new();
    let pixels: Vec<u8> = (0..w * h).flat_map(|_| rgba).collect();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &pixels,
        w,
        h,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    Bytes::from(out)
}

#[test]
fn draw_and_nested_transforms_apply_to_every_frame() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, None);
    // A 20×20 white overlay, shrunk to 6×6 by its own step, drawn in the bottom-right corner.
    let overlay = solid_png(20, 20, [255, 255, 255, 255]);
    let steps = r#"[{"imageIndex":1,"width":6},
        {"drawImageIndex":1,"targetImageIndex":0,"bottom":0,"right":0},
        {"imageIndex":0,"rotate":180}]"#;
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        let result = run_ok(&[&src, &overlay], steps, lossless(format));
        let (frames, _) = decode(&result);
        assert_eq!(frames.len(), 5);
        for (n, frame) in frames.iter().enumerate() {
            assert_eq!((frame.width, frame.height), (40, 12));
            // Rotated half a turn after the draw: the overlay is now top-left.
            assert!(
                near(frame.pixel(2, 2), [255, 255, 255, 255], 4),
                "{format:?} frame {n}"
            );
            assert!(
                near(frame.pixel(7, 7), [128, 128, 128, 255], 4),
                "{format:?} frame {n}"
            );
            // The square, turned too: x0..x0+4 becomes 36-x0..40-x0, rows 6..10.
            let x = 39 - (n as u32 * 4) % 36 - 1;
            assert!(
                near(frame.pixel(x, 8), opaque(COLOURS[n]), 4),
                "{format:?} frame {n}: {:?}",
                frame.pixel(x, 8)
            );
        }
    }
}

#[test]
fn anim_false_and_still_outputs_keep_the_first_frame() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, None);
    let first_only = OutputOptions {
        anim: false,
        ..out(OutputFormat::Gif)
    };
    let result = run_ok(&[&src], "[]", first_only);
    let (frames, _) = decode(&result);
    assert_eq!(frames.len(), 1);
    assert!(near(frames[0].pixel(1, 3), opaque(COLOURS[0]), 8));
    let webp_first = OutputOptions {
        anim: false,
        ..out(OutputFormat::Webp)
    };
    let still = run_ok(&[&src], "[]", webp_first);
    let decoder = image_webp::WebPDecoder::new(Cursor::new(&still.bytes[..])).unwrap();
    assert!(!decoder.is_animated());
    for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Rgba] {
        let result = run_ok(&[&src], r#"[{"imageIndex":0,"width":20}]"#, out(format));
        assert_eq!((result.width, result.height), (20, 6), "{format:?}");
    }
    let rgba = run_ok(&[&src], "[]", out(OutputFormat::Rgba));
    let at = |x: usize, y: usize| {
        let i = (y * 40 + x) * 4;
        [
            rgba.bytes[i],
            rgba.bytes[i + 1],
            rgba.bytes[i + 2],
            rgba.bytes[i + 3],
        ]
    };
    assert_eq!(at(1, 3), opaque(COLOURS[0]));
}

#[test]
fn pixel_dependent_choices_are_made_once_for_all_frames() {
    // Frame 0 has a 2 px white border, frame 1 a 6 px one: `trim: border` cuts both like frame 0,
    // so the frames keep one size.
    let (w, h) = (30u16, 20u16);
    let mut gif_bytes = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut gif_bytes, w, h, &[]).unwrap();
        for border in [2u16, 6] {
            let mut rgb = vec![255u8; usize::from(w) * usize::from(h) * 3];
            for y in border..h - border {
                for x in border..w - border {
                    let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 3;
                    rgb[i..i + 3].copy_from_slice(&[200, 0, 0]);
                }
            }
            let mut frame = gif::Frame::from_rgb(w, h, &rgb);
            frame.delay = 10;
            encoder.write_frame(&frame).unwrap();
        }
    }
    let src = Bytes::from(gif_bytes);
    let trimmed = run_ok(
        &[&src],
        r#"[{"imageIndex":0,"trim":"border"}]"#,
        lossless(OutputFormat::Webp),
    );
    assert_eq!((trimmed.width, trimmed.height), (26, 16));
    let (frames, _) = decode(&trimmed);
    assert_eq!(frames.len(), 2);
    assert!(near(frames[1].pixel(0, 0), [255, 255, 255, 255], 2));
    assert!(near(frames[1].pixel(13, 8), [200, 0, 0, 255], 2));
    // An entropy crop picks its window on frame 0 and keeps it.
    let cropped = run_ok(
        &[&src],
        r#"[{"imageIndex":0,"width":10,"height":20,"fit":"crop","gravity":"entropy"}]"#,
        lossless(OutputFormat::Gif),
    );
    let (frames, _) = decode(&cropped);
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| (f.width, f.height) == (10, 20)));
}

#[test]
fn transparent_gif_frames_stay_transparent() {
    // A 3×3 opaque square moving over a fully transparent 24×8 canvas.
    let (w, h) = (24u16, 8u16);
    let mut gif_bytes = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut gif_bytes, w, h, &[]).unwrap();
        for n in 0..4u16 {
            let mut rgba = vec![0u8; usize::from(w) * usize::from(h) * 4];
            for y in 2..5u16 {
                for x in n * 5..n * 5 + 3 {
                    let i = (usize::from(y) * usize::from(w) + usize::from(x)) * 4;
                    rgba[i..i + 4].copy_from_slice(&[250, 120, 0, 255]);
                }
            }
            let mut frame = gif::Frame::from_rgba(w, h, &mut rgba);
            frame.delay = 8;
            frame.dispose = gif::DisposalMethod::Background;
            encoder.write_frame(&frame).unwrap();
        }
    }
    let src = Bytes::from(gif_bytes);
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        let (frames, _) = decode(&run_ok(&[&src], "[]", lossless(format)));
        assert_eq!(frames.len(), 4, "{format:?}");
        for (n, frame) in frames.iter().enumerate() {
            let x = n as u32 * 5;
            // (libwebp's lossless animation moves opaque colours by a unit at most.)
            assert!(
                near(frame.pixel(x + 1, 3), [250, 120, 0, 255], 1),
                "{format:?} {n}: {:?}",
                frame.pixel(x + 1, 3)
            );
            // Where the square was one frame earlier is transparent again.
            if n > 0 {
                assert_eq!(frame.pixel(x - 4, 3)[3], 0, "{format:?} {n}");
            }
            assert_eq!(frame.pixel(23, 7)[3], 0, "{format:?} {n}");
        }
    }
}

fn error(images: &[&Bytes], output: OutputOptions, limits: &Limits) -> (ErrorCode, String) {
    let e = run(job(images, "[]", output), limits).unwrap_err();
    (e.code(), e.message().to_string())
}

#[test]
fn frame_limits_refuse_before_decoding() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, None);
    let three_frames = Limits {
        max_frames: 3,
        ..Limits::default()
    };
    // The limit holds whatever the output: a still output would decode only frame 0, but the
    // input is still an animation over the limit.
    for format in [OutputFormat::Gif, OutputFormat::Webp, OutputFormat::Png] {
        let (code, message) = error(&[&src], out(format), &three_frames);
        assert_eq!(code, ErrorCode::TooManyPixels, "{format:?}: {message}");
        assert!(message.contains("at most 3"), "{message}");
    }
    // 5 frames × 40×12 = 2400 frame-pixels.
    let small = Limits {
        max_animation_pixels: 2399,
        ..Limits::default()
    };
    let (code, message) = error(&[&src], out(OutputFormat::Gif), &small);
    assert_eq!(code, ErrorCode::TooManyPixels, "{message}");
    assert!(message.contains("2400 pixels"), "{message}");
    let exact = Limits {
        max_animation_pixels: 2400,
        ..Limits::default()
    };
    assert!(run(job(&[&src], "[]", out(OutputFormat::Gif)), &exact).is_ok());
    // The result is bounded too: enlarging every frame past the budget is 9413.
    let e = run(
        job(
            &[&src],
            r#"[{"imageIndex":0,"width":400,"fit":"contain"}]"#,
            out(OutputFormat::Gif),
        ),
        &Limits {
            max_animation_pixels: 100_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooManyPixels, "{}", e.message());

    // The same limits apply to animated WebP, read from its chunk index.
    let webp = Bytes::from(run_ok(&[&src], "[]", out(OutputFormat::Webp)).bytes);
    let (code, _) = error(&[&webp], out(OutputFormat::Webp), &three_frames);
    assert_eq!(code, ErrorCode::TooManyPixels);
    let (code, _) = error(&[&webp], out(OutputFormat::Png), &small);
    assert_eq!(code, ErrorCode::TooManyPixels);
}

/// A GIF of `frames` 1×1 frames, written block by block (a few bytes each).
fn many_tiny_frames(frames: usize) -> Bytes {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, 1, 1, &[0, 0, 0, 255, 255, 255]).unwrap();
        for n in 0..frames {
            let mut frame =
                gif::Frame::from_palette_pixels(1, 1, [(n % 2) as u8], Vec::new(), None);
            frame.palette = None;
            encoder.write_frame(&frame).unwrap();
        }
    }
    Bytes::from(out)
}

#[test]
fn thousands_of_tiny_frames_are_refused_by_the_scan() {
    let src = many_tiny_frames(200_000);
    for format in [OutputFormat::Gif, OutputFormat::Webp, OutputFormat::Jpeg] {
        let started = Instant::now();
        let (code, message) = error(&[&src], out(format), &Limits::default());
        eprintln!(
            "200000-frame GIF ({} bytes) to {format:?}: {code:?} after {:?}",
            src.len(),
            started.elapsed()
        );
        assert_eq!(code, ErrorCode::TooManyPixels, "{message}");
        assert!(message.contains("at most 1000"), "{message}");
    }
    // Under the limit, every frame is kept.
    let fine = many_tiny_frames(1000);
    let (frames, _) = decode(&run_ok(&[&fine], "[]", out(OutputFormat::Gif)));
    assert_eq!(frames.len(), 1000);
}

#[test]
fn truncated_animations_are_not_images() {
    let src = moving_square_gif(40, 12, &DELAYS_CS, None);
    let webp = Bytes::from(run_ok(&[&src], "[]", out(OutputFormat::Webp)).bytes);
    for (what, bytes) in [("GIF", &src), ("WebP", &webp)] {
        let cut = bytes.slice(..bytes.len() * 2 / 3);
        for format in [OutputFormat::Gif, OutputFormat::Png] {
            let (code, message) = error(&[&cut], out(format), &Limits::default());
            assert_eq!(
                code,
                ErrorCode::NotAnImage,
                "{what} to {format:?}: {message}"
            );
        }
    }
}

#[test]
fn corpus_party_gif_resized_keeps_every_frame() {
    let src = corpus("anim-party-660x666.gif");
    let (original, _) = decode_gif(&src);
    for format in [OutputFormat::Gif, OutputFormat::Webp] {
        let started = Instant::now();
        let result = run_ok(&[&src], r#"[{"imageIndex":0,"width":320}]"#, out(format));
        eprintln!(
            "anim-party-660x666.gif ({} frames) -> 320 px {format:?}: {:?}, {} bytes",
            original.len(),
            started.elapsed(),
            result.bytes.len()
        );
        let (frames, _) = decode(&result);
        assert_eq!(frames.len(), original.len(), "{format:?}");
        assert_eq!((result.width, result.height), (320, 323));
        assert_eq!(
            frames.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
            original.iter().map(|f| f.delay_ms).collect::<Vec<_>>(),
            "{format:?}"
        );
    }
}
