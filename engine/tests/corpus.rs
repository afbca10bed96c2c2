//! Whole jobs on the real images in `shared/corpus` (or `$IMGBIND_CORPUS`): decode, steps, encode,
//! and hostile variants of them (truncated, empty, random).

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use imgbind_engine::{info, run, Encoded, Job, Limits, Source};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions, Step, TransformStep};

fn corpus_dir() -> PathBuf {
    std::env::var_os("IMGBIND_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

fn read(name: &str) -> Bytes {
    let path = corpus_dir().join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn job(images: &[&Bytes], transforms: &str, format: OutputFormat) -> Job {
    Job {
        sources: images.iter().map(|b| Source::Image((*b).clone())).collect(),
        steps: parse_steps(transforms, images.len()).unwrap(),
        output: OutputOptions::new(format),
    }
}

fn run_ok(images: &[&Bytes], transforms: &str, format: OutputFormat) -> Encoded {
    run(job(images, transforms, format), &Limits::default())
        .unwrap_or_else(|e| panic!("{transforms}: {e}"))
}

fn code(images: &[&Bytes], transforms: &str) -> ErrorCode {
    run(
        job(images, transforms, OutputFormat::Png),
        &Limits::default(),
    )
    .unwrap_err()
    .code()
}

/// Decodes an engine output back to its size and pixels (RGBA) with the engine itself.
fn decoded(out: &Encoded) -> (u32, u32, Vec<u8>) {
    let back = run_ok(&[&Bytes::from(out.bytes.clone())], "[]", OutputFormat::Rgba);
    (back.width, back.height, back.bytes)
}

#[test]
fn twenty_megapixel_jpeg_to_800px_uses_dct_scaling_and_is_fast() {
    let photo = read("photo-20mp-kleiber.jpg");
    let steps = r#"[{"imageIndex":0,"width":800}]"#;
    // Warm up once (page faults, CPU feature detection), then time.
    run_ok(&[&photo], steps, OutputFormat::Jpeg);
    let started = Instant::now();
    let out = run_ok(&[&photo], steps, OutputFormat::Jpeg);
    let elapsed = started.elapsed();
    eprintln!(
        "20 MP JPEG -> 800 px JPEG: {elapsed:?}, {} bytes",
        out.bytes.len()
    );
    assert_eq!((out.width, out.height), (800, 450)); // 6028x3391, aspect kept
    let (w, h, _) = decoded(&out);
    assert_eq!((w, h), (800, 450));
    assert!(out.bytes.len() > 10_000);
    // A sanity bound only: tests share two cores with each other, so timing is noisy. Unit tests
    // in lib.rs check that the shrink-on-load factor is chosen (2/8 here); `time_job` measures.
    assert!(elapsed.as_millis() < 2_000, "took {elapsed:?}");
}

#[test]
fn dct_scaled_decode_gives_exact_dimensions_for_every_fit() {
    let photo = read("photo-4mp-eveningglow.jpg"); // 2560x1600
    let cases = [
        (r#"{"width":300}"#, (300, 188)),
        (r#"{"height":123}"#, (197, 123)),
        (r#"{"width":333,"height":333,"fit":"cover"}"#, (333, 333)),
        (
            r#"{"width":333,"height":100,"fit":"crop","gravity":"left"}"#,
            (333, 100),
        ),
        (r#"{"width":400,"height":400,"fit":"pad"}"#, (400, 400)),
        (r#"{"width":401,"height":99,"fit":"squeeze"}"#, (401, 99)),
        (r#"{"width":300,"rotate":90}"#, (300, 480)),
        (r#"{"width":5000}"#, (2560, 1600)), // scale-down never enlarges
        (r#"{"width":5000,"fit":"contain"}"#, (5000, 3125)),
    ];
    for (transform, want) in cases {
        let steps = format!(
            r#"[{{"imageIndex":0,{}}}]"#,
            &transform[1..transform.len() - 1]
        );
        let out = run_ok(&[&photo], &steps, OutputFormat::Png);
        assert_eq!((out.width, out.height), want, "{transform}");
    }
}

#[test]
fn dct_scaled_result_matches_full_decode() {
    // The same resize with and without the shrink-on-load path (a no-op trim first disables it)
    // must look alike.
    let photo = read("photo-4mp-twowings.jpg");
    let fast = run_ok(
        &[&photo],
        r#"[{"imageIndex":0,"width":200}]"#,
        OutputFormat::Rgb,
    );
    let full = run_ok(
        &[&photo],
        r#"[{"imageIndex":0,"trim":{"top":0}},{"imageIndex":0,"width":200}]"#,
        OutputFormat::Rgb,
    );
    assert_eq!((fast.width, fast.height), (full.width, full.height));
    let diff: u64 = fast
        .bytes
        .iter()
        .zip(&full.bytes)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let mean = diff as f64 / fast.bytes.len() as f64;
    assert!(mean < 4.0, "mean channel difference {mean}");
}

#[test]
fn exif_rotated_photo_comes_out_upright() {
    // Stored sideways as 2056x3088 (SOF) with Orientation=6; upright it is a 3088x2056 landscape.
    let photo = read("photo-6mp-aitzgorri-exif6.jpg");
    let i = info(&photo, &Limits::default()).unwrap();
    assert_eq!((i.width, i.height), (Some(3088), Some(2056)));
    let out = run_ok(&[&photo], "[]", OutputFormat::Jpeg);
    assert_eq!((out.width, out.height), (3088, 2056));
    let small = run_ok(
        &[&photo],
        r#"[{"imageIndex":0,"width":200}]"#,
        OutputFormat::Rgb,
    );
    assert_eq!((small.width, small.height), (200, 133));
    // Mountains under a sky: the top rows are brighter than the bottom rows when upright.
    let row_luma = |y: usize| -> f64 {
        let row = &small.bytes[y * 200 * 3..(y + 1) * 200 * 3];
        row.iter().map(|&v| f64::from(v)).sum::<f64>() / row.len() as f64
    };
    let top: f64 = (0..20).map(row_luma).sum();
    let bottom: f64 = (113..133).map(row_luma).sum();
    assert!(
        top > bottom,
        "sky should be on top: top {top} bottom {bottom}"
    );
}

#[test]
fn every_corpus_input_decodes_or_is_a_coded_error() {
    let expectations = [
        ("anim-party-660x666.gif", Some((660, 666))),
        ("graphic-15mp-kay.png", Some((5120, 2880))),
        ("graphic-17mp-adwaita-lossy.webp", Some((4096, 4096))),
        ("graphic-3mp-emerald-alpha.png", Some((1689, 1800))),
        ("overlay-logo-337x330.png", Some((337, 330))),
        ("photo-16mp-seeding-progressive.jpg", Some((5312, 2988))),
        ("photo-4mp-grey-grayscale.jpg", Some((2560, 1600))),
        ("photo-6mp-life.webp", Some((3088, 2056))),
        ("photo-4mp-garden.avif", Some((2560, 1600))),
    ];
    for (name, dims) in expectations {
        let bytes = read(name);
        let i = info(&bytes, &Limits::default()).unwrap();
        let result = run(
            job(
                &[&bytes],
                r#"[{"imageIndex":0,"width":100}]"#,
                OutputFormat::Webp,
            ),
            &Limits::default(),
        );
        match dims {
            Some((w, h)) => {
                assert_eq!((i.width, i.height), (Some(w), Some(h)), "{name}");
                let out = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(out.width, 100, "{name}");
            }
            None => assert_eq!(result.unwrap_err().code(), ErrorCode::UnsupportedFormat),
        }
    }
}

#[test]
fn truncated_files_are_errors_not_partial_images() {
    for name in [
        "photo-4mp-grey-grayscale.jpg",
        "photo-16mp-seeding-progressive.jpg",
        "overlay-logo-337x330.png",
        "photo-6mp-life.webp",
        "anim-party-660x666.gif",
    ] {
        let bytes = read(name);
        for fraction in [0.1, 0.5, 0.9, 0.999] {
            let cut = bytes.slice(..(bytes.len() as f64 * fraction) as usize);
            assert_eq!(
                code(&[&cut], "[]"),
                ErrorCode::NotAnImage,
                "{name} cut at {fraction}"
            );
        }
        for cut in [0, 1, 2, 3, 10, 20, 40] {
            let head = bytes.slice(..cut);
            assert_eq!(
                code(&[&head], "[]"),
                ErrorCode::NotAnImage,
                "{name} first {cut}"
            );
        }
    }
}

#[test]
fn hostile_inputs_are_coded_errors() {
    assert_eq!(code(&[&Bytes::new()], "[]"), ErrorCode::NotAnImage);
    // Deterministic pseudo-random bytes, with and without a JPEG/PNG/GIF/WebP magic number.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = vec![0u8; 4096];
    for b in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    assert_eq!(
        code(&[&Bytes::from(noise.clone())], "[]"),
        ErrorCode::NotAnImage
    );
    for magic in [
        &b"\xFF\xD8\xFF"[..],
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\0\x10\0\0WEBPVP8 ",
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&noise);
        // Noise after a GIF magic may claim a huge screen: refusing it as too large is also right.
        let got = code(&[&Bytes::from(bytes)], "[]");
        assert!(
            matches!(got, ErrorCode::NotAnImage | ErrorCode::TooManyPixels),
            "{got:?}"
        );
    }
    // A PNG header claiming 65535x65535 is refused before anything is allocated.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    huge.extend_from_slice(&65535u32.to_be_bytes());
    huge.extend_from_slice(&65535u32.to_be_bytes());
    huge.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(code(&[&Bytes::from(huge)], "[]"), ErrorCode::TooManyPixels);
    // A text source without a font is a bad argument; with one it renders (text.rs tests the pixels).
    let text = |json: &str| Job {
        sources: vec![Source::Text(json.into())],
        steps: vec![],
        output: OutputOptions::new(OutputFormat::Png),
    };
    assert_eq!(
        run(text(r#"{"text":"hi"}"#), &Limits::default())
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArguments
    );
    let rendered = run(
        text(r#"{"text":"hi","font":{"url":"DejaVuSans.ttf"}}"#),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(rendered.format, OutputFormat::Png);
    assert!(rendered.width > 0 && rendered.height > 0);
}

#[test]
fn limits_are_enforced() {
    let photo = read("photo-4mp-grey-grayscale.jpg");
    let tight = Limits {
        max_pixels: 1_000_000,
        ..Limits::default()
    };
    let err = run(job(&[&photo], "[]", OutputFormat::Png), &tight).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyPixels);
    let small_input = Limits {
        max_input_bytes: 1000,
        ..Limits::default()
    };
    let err = run(job(&[&photo], "[]", OutputFormat::Png), &small_input).unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooLarge);
    let err = run(
        job(
            &[&photo],
            r#"[{"imageIndex":0,"width":20000,"height":20000,"fit":"squeeze"}]"#,
            OutputFormat::Png,
        ),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyPixels);
    let instant = Limits {
        deadline: std::time::Duration::ZERO,
        ..Limits::default()
    };
    let err = run(
        job(
            &[&photo],
            r#"[{"imageIndex":0,"width":10}]"#,
            OutputFormat::Png,
        ),
        &instant,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout);
}

#[test]
fn watermark_draw_keeps_canvas_size_and_lands_bottom_right() {
    let photo = read("photo-4mp-eveningglow.jpg");
    let logo = read("overlay-logo-337x330.png");
    let steps = r#"[{"imageIndex":0,"width":800},{"imageIndex":1,"width":100},
        {"drawImageIndex":1,"targetImageIndex":0,"bottom":10,"right":10}]"#;
    let with = run_ok(&[&photo, &logo], steps, OutputFormat::Png);
    let without = run_ok(
        &[&photo],
        r#"[{"imageIndex":0,"width":800}]"#,
        OutputFormat::Png,
    );
    assert_eq!((with.width, with.height), (800, 500));
    let (_, _, a) = decoded(&with);
    let (_, _, b) = decoded(&without);
    // Differences only inside the logo's box: x 690..790, y ~392..490.
    for y in 0..500usize {
        for x in 0..800usize {
            let i = (y * 800 + x) * 4;
            if a[i..i + 4] != b[i..i + 4] {
                assert!(
                    (690..790).contains(&x) && (380..490).contains(&y),
                    "changed pixel outside the logo at ({x}, {y})"
                );
            }
        }
    }
    assert_ne!(a, b, "the logo was not drawn");
}

#[test]
fn transparent_png_keeps_alpha_in_png_and_webp_and_flattens_in_jpeg() {
    let logo = read("overlay-logo-337x330.png");
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let out = run_ok(&[&logo], "[]", format);
        let (_, _, px) = decoded(&out);
        assert_eq!(px[3], 0, "{format:?}: corner should stay transparent");
    }
    let jpeg = run_ok(&[&logo], "[]", OutputFormat::Jpeg);
    let (_, _, px) = decoded(&jpeg);
    assert!(
        px[..3].iter().all(|&v| v > 240),
        "flattened onto white: {:?}",
        &px[..4]
    );
}

#[test]
fn nested_draw_tree_from_cloudflares_client_runs_in_order() {
    // workerd's test_images_nested_draw: input(a).transform({rotate:90})
    //   .draw(input(b).transform({rotate:180})).draw(input(c).draw(d).transform({rotate:270})).draw(e)
    let logo = read("overlay-logo-337x330.png");
    let images = [&logo, &logo, &logo, &logo, &logo];
    let steps = r#"[{"imageIndex":0,"rotate":90},{"imageIndex":1,"rotate":180},
        {"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":3,"targetImageIndex":2},
        {"imageIndex":2,"rotate":270},{"drawImageIndex":2,"targetImageIndex":0},
        {"drawImageIndex":4,"targetImageIndex":0,"repeat":true,"opacity":0.3,"composite":"atop"}]"#;
    let out = run_ok(&images, steps, OutputFormat::Webp);
    assert_eq!((out.width, out.height), (330, 337)); // the canvas, turned a quarter
                                                     // A step that names an image already drawn is a coded error, not a panic (the backend
                                                     // validates trees, but run must not trust that).
    let bad = Job {
        sources: vec![Source::Image(logo.clone()), Source::Image(logo.clone())],
        steps: parse_steps(r#"[{"drawImageIndex":1,"targetImageIndex":0}]"#, 2)
            .unwrap()
            .into_iter()
            .chain([Step::Transform(TransformStep {
                image_index: 1,
                width: Some(5),
                ..TransformStep::default()
            })])
            .collect(),
        output: OutputOptions::new(OutputFormat::Png),
    };
    assert_eq!(
        run(bad, &Limits::default()).unwrap_err().code(),
        ErrorCode::InvalidArguments
    );
}
