//! Photo formats and semantics, compared with sharp where sharp is the reference: ICC-tagged
//! inputs converted to sRGB, CMYK JPEG, 16-bit / palette / grey+alpha PNG, AVIF in and out, HEIC
//! refusal, and the metadata policy (a JPEG keeps only the copyright).
//!
//! Fixtures are in `tests/fixtures/formats/` (64×48, made by `make_png_fixtures.py`, ImageMagick
//! and exiftool as described in `docs/FORMATS.md`); `*.sharp.rgba` is sharp 0.35.5's decode of each
//! to sRGB RGBA, written by `make_sharp_reference.mjs`.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use imgbind_engine::{info, run, Encoded, Job, Limits, Source};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions};

use common::corpus;

fn fixture(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn run_with(
    image: &Bytes,
    transforms: &str,
    output: OutputOptions,
) -> Result<Encoded, imgbind_wire::Error> {
    run(
        Job {
            sources: vec![Source::Image(image.clone())],
            steps: parse_steps(transforms, 1).unwrap(),
            output,
        },
        &Limits::default(),
    )
}

fn convert(image: &Bytes, transforms: &str, format: OutputFormat) -> Encoded {
    run_with(image, transforms, OutputOptions::new(format))
        .unwrap_or_else(|e| panic!("{transforms} -> {format:?}: {e}"))
}

/// Decodes to RGBA with the engine itself (orientation applied, profiles converted).
fn rgba(image: &Bytes) -> Encoded {
    convert(image, "[]", OutputFormat::Rgba)
}

/// Mean and largest absolute channel difference between two RGBA buffers.
fn difference(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += u64::from(d);
        max = max.max(d);
    }
    (sum as f64 / a.len() as f64, max)
}

fn assert_matches_sharp(name: &str, mean_bound: f64, max_bound: u8) -> Encoded {
    let ours = rgba(&fixture(name));
    let sharp = fixture(&format!("{name}.sharp.rgba"));
    let (mean, max) = difference(&ours.bytes, &sharp);
    eprintln!("{name}: mean |ours - sharp| = {mean:.2}, max = {max}");
    assert!(
        mean <= mean_bound && max <= max_bound,
        "{name}: mean {mean:.2} (bound {mean_bound}), max {max} (bound {max_bound})"
    );
    ours
}

#[test]
fn icc_tagged_inputs_are_converted_to_srgb_like_sharp() {
    let untagged = rgba(&fixture("base.png"));
    for name in ["adobergb.png", "adobergb.jpg", "adobergb.webp"] {
        let ours = assert_matches_sharp(name, 1.5, 12);
        // The conversion really happened: Adobe RGB's green at (63, 0) is outside sRGB, so its
        // red is pulled to 0, where the untagged pixels keep 127.
        let at = 63 * 4;
        assert!(
            untagged.bytes[at] > 120,
            "{name}: base {:?}",
            &untagged.bytes[at..at + 4]
        );
        assert!(
            ours.bytes[at] < 10,
            "{name}: converted {:?}",
            &ours.bytes[at..at + 4]
        );
        let (mean, _) = difference(&ours.bytes, &untagged.bytes);
        assert!(mean > 5.0, "{name}: barely changed ({mean:.2})");
    }
}

#[test]
fn png_bit_depths_palettes_and_grey_alpha_match_sharp() {
    // 16-bit RGBA: rounded to 8 bits, alpha kept.
    let deep = assert_matches_sharp("rgba16.png", 0.05, 1);
    assert_eq!(deep.bytes[3], 0, "alpha at the left edge");
    assert_eq!(deep.bytes[63 * 4 + 3], 255, "alpha at the right edge");
    // Palette with tRNS: index 0 clear, index 1 half transparent.
    let palette = assert_matches_sharp("palette.png", 0.0, 0);
    assert_eq!(palette.bytes[3], 0);
    assert_eq!(palette.bytes[16 * 4 + 3], 128);
    // Grey + alpha.
    assert_matches_sharp("greyalpha.png", 0.0, 0);
}

#[test]
fn adobe_cmyk_jpeg_decodes_to_its_colours() {
    // ImageMagick made cmyk.jpg from base.png with the naive RGB → CMYK formula and wrote it the
    // way Photoshop does (Adobe APP14, inverted values); without a profile we invert that formula.
    // sharp differs on purpose here: libvips runs untagged CMYK through a press (SWOP-like)
    // profile, which gives duller colours (mean difference ~40), so the original is the reference.
    let ours = rgba(&fixture("cmyk.jpg"));
    let original = rgba(&fixture("base.png"));
    assert_eq!((ours.width, ours.height), (64, 48));
    let (mean, max) = difference(&ours.bytes, &original.bytes);
    eprintln!("cmyk.jpg vs its RGB original: mean {mean:.2}, max {max}");
    assert!(mean < 3.0 && max < 40, "mean {mean:.2}, max {max}");
}

#[test]
fn jpeg_output_keeps_only_the_copyright() {
    let input = fixture("exif-gps-copyright.jpg");
    assert!(contains(&input, b"Canon") && contains(&input, b"GPS") || contains(&input, b"EOS 5D"));
    let out = convert(
        &input,
        r#"[{"imageIndex":0,"width":24}]"#,
        OutputFormat::Jpeg,
    );
    // EXIF orientation 6 was applied: 64×48 stored, 48×64 shown, 24×32 after the resize.
    assert_eq!((out.width, out.height), (24, 32));
    assert!(contains(&out.bytes, b"(c) 2026 imgbind test fixture"));
    for gone in [&b"Canon"[..], b"EOS 5D", b"A. Photographer", b"2026:11:26"] {
        assert!(
            !contains(&out.bytes, gone),
            "{}",
            String::from_utf8_lossy(gone)
        );
    }
    // Re-reading our output: upright already, so no orientation tag turns it again.
    let again = info(&out.bytes, &Limits::default()).unwrap();
    assert_eq!((again.width, again.height), (Some(24), Some(32)));
    // Every other format strips everything, the copyright included.
    for format in [
        OutputFormat::Png,
        OutputFormat::Webp,
        OutputFormat::Avif,
        OutputFormat::Gif,
    ] {
        let out = convert(&input, "[]", format);
        for gone in [&b"(c) 2026"[..], b"Canon", b"Exif", b"eXIf", b"EXIF"] {
            assert!(
                !contains(&out.bytes, gone),
                "{format:?} kept {}",
                String::from_utf8_lossy(gone)
            );
        }
    }
    // An input without a copyright gives a JPEG without EXIF.
    let plain = convert(&fixture("base.png"), "[]", OutputFormat::Jpeg);
    assert!(!contains(&plain.bytes, b"Exif"));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn avif_input_decodes_with_its_size_and_colours() {
    let garden = corpus("photo-4mp-garden.avif");
    let i = info(&garden, &Limits::default()).unwrap();
    assert_eq!(i.format, "image/avif");
    assert_eq!((i.width, i.height), (Some(2560), Some(1600)));
    let full = rgba(&garden);
    assert_eq!((full.width, full.height), (2560, 1600));
    // Pixels sharp (libvips + aom) decodes at these points; AV1 decoding is exact, only the
    // YUV → RGB rounding may differ.
    let sharp = [
        ((100, 100), [228u8, 156, 44]),
        ((1280, 800), [159, 0, 1]),
        ((2000, 1500), [142, 2, 1]),
        ((640, 400), [255, 177, 27]),
        ((2400, 200), [113, 136, 56]),
    ];
    for ((x, y), expected) in sharp {
        let at = (y * 2560 + x) * 4;
        let got = &full.bytes[at..at + 3];
        let close = got.iter().zip(expected).all(|(a, b)| a.abs_diff(b) <= 2);
        assert!(close, "({x}, {y}): ours {got:?}, sharp {expected:?}");
    }
    let small = convert(
        &garden,
        r#"[{"imageIndex":0,"width":320}]"#,
        OutputFormat::Jpeg,
    );
    assert_eq!((small.width, small.height), (320, 200));
}

#[test]
fn avif_output_round_trips_with_alpha_and_quality_changes_size() {
    let photo = corpus("photo-4mp-eveningglow.jpg");
    let out = convert(
        &photo,
        r#"[{"imageIndex":0,"width":400}]"#,
        OutputFormat::Avif,
    );
    assert_eq!((out.width, out.height), (400, 250));
    assert_eq!(&out.bytes[4..12], b"ftypavif");
    let i = info(&out.bytes, &Limits::default()).unwrap();
    assert_eq!(
        (i.format.as_str(), i.width, i.height),
        ("image/avif", Some(400), Some(250))
    );
    // Close to the JPEG decode of the same resize (lossy both ways).
    let reference = rgba(&Bytes::from(
        convert(
            &photo,
            r#"[{"imageIndex":0,"width":400}]"#,
            OutputFormat::Png,
        )
        .bytes,
    ));
    let (mean, _) = difference(
        &rgba(&Bytes::from(out.bytes.clone())).bytes,
        &reference.bytes,
    );
    assert!(mean < 4.0, "mean difference {mean:.2}");

    let size_at = |q: u8| {
        let mut options = OutputOptions::new(OutputFormat::Avif);
        options.quality = Some(q);
        run_with(&photo, r#"[{"imageIndex":0,"width":400}]"#, options)
            .unwrap()
            .bytes
            .len()
    };
    assert!(size_at(30) < size_at(85) && size_at(85) < size_at(98));

    // Alpha survives: the soft-alpha PNG keeps transparent and opaque areas.
    let logo = corpus("overlay-logo-337x330.png");
    let avif = convert(&logo, "[]", OutputFormat::Avif);
    let back = rgba(&Bytes::from(avif.bytes));
    let original = rgba(&logo);
    let alpha = |b: &[u8]| b.chunks_exact(4).map(|p| p[3]).collect::<Vec<_>>();
    let (mean, _) = difference(&alpha(&back.bytes), &alpha(&original.bytes));
    assert!(mean < 2.0, "alpha mean difference {mean:.2}");
    assert!(alpha(&back.bytes).contains(&0) && alpha(&back.bytes).contains(&255));
}

#[test]
fn truncated_and_damaged_avif_is_9412() {
    let garden = corpus("photo-4mp-garden.avif");
    for fraction in [0.01, 0.1, 0.5, 0.9, 0.999] {
        let cut = garden.slice(..(garden.len() as f64 * fraction) as usize);
        let error = run_with(&cut, "[]", OutputOptions::new(OutputFormat::Png)).unwrap_err();
        assert_eq!(
            error.code(),
            ErrorCode::NotAnImage,
            "cut at {fraction}: {error}"
        );
    }
    // The payload's bytes flipped: the container parses, AV1 decoding fails or gives pixels, but
    // never a crash.
    let mut flipped = garden.to_vec();
    let n = flipped.len();
    for b in &mut flipped[n / 2..n / 2 + 64] {
        *b ^= 0x5A;
    }
    if let Err(e) = run_with(
        &Bytes::from(flipped),
        "[]",
        OutputOptions::new(OutputFormat::Png),
    ) {
        assert_eq!(e.code(), ErrorCode::NotAnImage, "{e}");
    }
}

#[test]
fn heic_is_refused_with_9520() {
    // A HEIC's first box: ftyp with the heic brand.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    // …and an `ispe` property (640×480), which `/info` reports.
    heic.extend_from_slice(b"\0\0\0\x14ispe\0\0\0\0\0\0\x02\x80\0\0\x01\xe0");
    heic.extend_from_slice(&[0; 64]);
    let i = info(&heic, &Limits::default()).unwrap();
    assert_eq!(
        (i.format.as_str(), i.width, i.height),
        ("image/heic", Some(640), Some(480))
    );
    let error = run_with(
        &Bytes::from(heic),
        "[]",
        OutputOptions::new(OutputFormat::Jpeg),
    )
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::UnsupportedFormat);
    assert!(error.to_string().contains("HEIC"), "{error}");
}
