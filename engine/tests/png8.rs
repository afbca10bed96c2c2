//! PNG with an explicit `quality`: a palette PNG (PNG8), as Cloudflare documents; without one PNG
//! stays truecolour. The mapping (`engine/src/palette.rs`, `docs/FORMATS.md`): as libimagequant
//! (sharp) does, the fewest colours whose error meets the quality's target, dithered; quality 100,
//! or an image whose own ≤ 256 colours are all needed, is kept exactly. The calibration against
//! sharp over the corpus is `tests/png8-quality.test.js`.
//!
//! Quality of the quantiser is measured, not assumed: an alpha gradient keeps its premultiplied
//! colours within a bound that NeuQuant (the GIF encoder's quantiser, computed here on the same
//! image) misses, and a corpus photo keeps a PSNR over a bound against its truecolour output.

mod common;

use bytes::Bytes;
use imgbind_engine::{run, Encoded, Job, Limits, Source};
use imgbind_wire::{parse_steps, OutputFields, OutputFormat, OutputOptions};

use common::{corpus, png};

fn output(format: OutputFormat, quality: Option<u8>) -> OutputOptions {
    OutputOptions::from_fields(&OutputFields {
        format: Some(format.as_str().to_string()),
        quality: quality.map(|q| q.to_string()),
        ..Default::default()
    })
    .unwrap()
}

fn encode(image: &Bytes, transforms: &str, quality: Option<u8>) -> Encoded {
    run(
        Job {
            sources: vec![Source::Image(image.clone())],
            steps: parse_steps(transforms, 1).unwrap(),
            output: output(OutputFormat::Png, quality),
        },
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{transforms} quality {quality:?}: {e}"))
}

/// The PNG header facts the tests check.
struct PngFacts {
    colour: png::ColorType,
    depth: png::BitDepth,
    palette_entries: usize,
    trns_entries: usize,
}

fn facts(bytes: &[u8]) -> PngFacts {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let info = reader.info();
    PngFacts {
        colour: info.color_type,
        depth: info.bit_depth,
        palette_entries: info.palette.as_ref().map_or(0, |p| p.len() / 3),
        trns_entries: info.trns.as_ref().map_or(0, |t| t.len()),
    }
}

/// Decodes any PNG to straight RGBA with the engine (palette and tRNS expanded).
fn rgba(bytes: &[u8]) -> Vec<u8> {
    run(
        Job {
            sources: vec![Source::Image(Bytes::copy_from_slice(bytes))],
            steps: parse_steps("[]", 1).unwrap(),
            output: OutputOptions::new(OutputFormat::Rgba),
        },
        &Limits::default(),
    )
    .unwrap()
    .bytes
}

/// Mean absolute difference of premultiplied RGBA (colour × alpha / 255, and alpha) per channel,
/// after averaging each `block`×`block` cell: what a viewer sees once the image is composited
/// (block 2 lets dithering's fine noise average out, as the eye does).
fn premultiplied_error(a: &[u8], b: &[u8], width: usize, block: usize) -> f64 {
    assert_eq!(a.len(), b.len());
    let height = a.len() / 4 / width;
    let premultiplied = |p: &[u8], k: usize| {
        let alpha = f64::from(p[3]);
        if k == 3 {
            alpha
        } else {
            f64::from(p[k]) * alpha / 255.0
        }
    };
    let (mut sum, mut count) = (0.0, 0.0);
    for by in 0..height / block {
        for bx in 0..width / block {
            for k in 0..4 {
                let mut difference = 0.0;
                for y in by * block..(by + 1) * block {
                    for x in bx * block..(bx + 1) * block {
                        let i = (y * width + x) * 4;
                        difference +=
                            premultiplied(&a[i..i + 4], k) - premultiplied(&b[i..i + 4], k);
                    }
                }
                sum += (difference / (block * block) as f64).abs();
                count += 1.0;
            }
        }
    }
    sum / count
}

/// PSNR of the RGB channels of two RGBA buffers, after averaging each `block`×`block` cell (block 1
/// is plain PSNR; block 2 lets dithering's fine noise average out, as the eye does).
fn psnr(a: &[u8], b: &[u8], width: usize, block: usize) -> f64 {
    let height = a.len() / 4 / width;
    let mut squared = 0.0;
    let mut count = 0.0;
    for by in 0..height / block {
        for bx in 0..width / block {
            for k in 0..3 {
                let (mut sa, mut sb) = (0.0, 0.0);
                for y in by * block..(by + 1) * block {
                    for x in bx * block..(bx + 1) * block {
                        let i = (y * width + x) * 4 + k;
                        sa += f64::from(a[i]);
                        sb += f64::from(b[i]);
                    }
                }
                let d = (sa - sb) / (block * block) as f64;
                squared += d * d;
                count += 1.0;
            }
        }
    }
    10.0 * (255.0 * 255.0 / (squared / count)).log10()
}

/// A colour ramp across, an alpha ramp down: every alpha level and many colours (> 256).
fn alpha_gradient() -> Bytes {
    png(256, 256, |x, y| {
        [x as u8, (255 - x) as u8, (x / 2 + y / 2) as u8, y as u8]
    })
}

#[test]
fn png_quality_picks_fewer_colours_as_quality_falls() {
    let photo = corpus("photo-4mp-eveningglow.jpg");
    let resize = r#"[{"imageIndex":0,"width":400}]"#;
    let (mut sizes, mut colours) = (Vec::new(), Vec::new());
    for quality in [100, 95, 60, 30, 10] {
        let out = encode(&photo, resize, Some(quality));
        let f = facts(&out.bytes);
        assert_eq!(f.colour, png::ColorType::Indexed, "quality {quality}");
        assert_eq!(f.trns_entries, 0, "an opaque photo needs no tRNS");
        sizes.push(out.bytes.len());
        colours.push(f.palette_entries);
    }
    eprintln!("eveningglow 400 px, quality 100/95/60/30/10: colours {colours:?}, bytes {sizes:?}");
    // A photo needs the whole palette at high quality (libimagequant's choice too); lower
    // quality allows a larger error, so fewer colours and a smaller file.
    assert_eq!(colours[..2], [256, 256]);
    assert!(colours.windows(2).all(|w| w[0] >= w[1]), "{colours:?}");
    assert!(colours[4] < 128, "quality 10: {colours:?}");
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert!(sizes[4] < sizes[0] * 3 / 4, "{sizes:?}");
}

#[test]
fn a_grey_photo_is_quantised_below_quality_100() {
    // 256 grey levels fit a palette exactly, but libimagequant (sharp) still uses only as many as
    // the quality needs: a quarter of them or fewer at quality 60 (sharp: 20 at 800 px).
    let grey = corpus("photo-4mp-grey-grayscale.jpg");
    let resize = r#"[{"imageIndex":0,"width":400}]"#;
    let exact = facts(&encode(&grey, resize, Some(100)).bytes);
    let at60 = encode(&grey, resize, Some(60));
    let f = facts(&at60.bytes);
    eprintln!(
        "grey 400 px: {} levels at quality 100, {} at 60 ({} bytes)",
        exact.palette_entries,
        f.palette_entries,
        at60.bytes.len()
    );
    assert!(exact.palette_entries > 200, "{}", exact.palette_entries);
    assert!(f.palette_entries <= 64, "{}", f.palette_entries);
}

#[test]
fn png_without_quality_stays_truecolour() {
    let photo = corpus("photo-4mp-eveningglow.jpg");
    let out = encode(&photo, r#"[{"imageIndex":0,"width":400}]"#, None);
    assert_eq!(facts(&out.bytes).colour, png::ColorType::Rgb);
    let out = encode(&alpha_gradient(), "[]", None);
    assert_eq!(facts(&out.bytes).colour, png::ColorType::Rgba);
    assert_eq!(rgba(&out.bytes), rgba(&alpha_gradient()), "lossless");
}

#[test]
fn few_colours_round_trip_exactly() {
    // 200 colours: opaque, translucent, and transparent pixels of several colours (one entry).
    let image = png(40, 30, |x, y| {
        let i = (y * 40 + x) % 200;
        match i % 4 {
            0 => [0, 0, i as u8, 0],
            1 => [i as u8, 50, 100, 128 + (i % 64) as u8],
            _ => [(i * 5 % 256) as u8, i as u8, 7, 255],
        }
    });
    let source = rgba(&image);
    // At quality 100 (libimagequant's exact target) every colour stays; below it the error
    // target may merge some (each is only 6 pixels here).
    for quality in [1, 50, 85] {
        let f = facts(&encode(&image, "[]", Some(quality)).bytes);
        assert_eq!(f.colour, png::ColorType::Indexed);
        assert!(f.palette_entries <= 200, "{}", f.palette_entries);
    }
    for quality in [100] {
        let out = encode(&image, "[]", Some(quality));
        let f = facts(&out.bytes);
        assert_eq!(f.colour, png::ColorType::Indexed);
        assert!(f.palette_entries <= 200, "{}", f.palette_entries);
        // Translucent entries first: tRNS lists those only.
        assert!(f.trns_entries > 0 && f.trns_entries < f.palette_entries);
        let back = rgba(&out.bytes);
        for (i, (p, q)) in source.chunks_exact(4).zip(back.chunks_exact(4)).enumerate() {
            if p[3] == 0 {
                assert_eq!(q[3], 0, "pixel {i}: transparent stays transparent");
            } else {
                assert_eq!(p, q, "pixel {i} at quality {quality}");
            }
        }
    }
    // Four distinct colours, each needed (merging any two is far over any target): kept exactly
    // at every quality, 2 bits per pixel.
    let four = png(9, 5, |x, y| {
        [
            [255, 0, 0, 255],
            [0, 255, 0, 255],
            [0, 0, 255, 255],
            [9, 9, 9, 255],
        ][((x + y) % 4) as usize]
    });
    for quality in [1, 30, 85] {
        let out = encode(&four, "[]", Some(quality));
        let f = facts(&out.bytes);
        assert_eq!(
            (f.depth, f.palette_entries, f.trns_entries),
            (png::BitDepth::Two, 4, 0),
            "quality {quality}"
        );
        assert_eq!(rgba(&out.bytes), rgba(&four));
    }
}

#[test]
fn alpha_gradient_keeps_its_premultiplied_colours() {
    let image = alpha_gradient();
    let source = rgba(&image);
    let out = encode(&image, "[]", Some(85));
    let f = facts(&out.bytes);
    assert_eq!(f.colour, png::ColorType::Indexed);
    assert!(f.trns_entries > 0);
    let ours = rgba(&out.bytes);

    // NeuQuant (the GIF encoder's quantiser), 256 colours, on the same pixels.
    let quantiser = color_quant::NeuQuant::new(10, 256, &source);
    let palette = quantiser.color_map_rgba();
    let mut neuquant = Vec::with_capacity(source.len());
    for p in source.chunks_exact(4) {
        let i = quantiser.index_of(p);
        neuquant.extend_from_slice(&palette[i * 4..i * 4 + 4]);
    }
    // Measured: PNG8 at quality 85 (237 colours) 3.3 per pixel, 1.3 over 2×2 cells; NeuQuant
    // 5.1 and 4.9. (Quantising straight rather than premultiplied colours: 3.8 at 256 colours.)
    for (block, bound) in [(1, 4.0), (2, 2.0)] {
        let error = premultiplied_error(&source, &ours, 256, block);
        let neuquant_error = premultiplied_error(&source, &neuquant, 256, block);
        eprintln!(
            "alpha gradient, mean premultiplied error over {block}x{block}: PNG8 {error:.2}, NeuQuant {neuquant_error:.2}"
        );
        assert!(error < bound, "{block}x{block}: PNG8 error {error:.2}");
        assert!(
            neuquant_error > bound,
            "{block}x{block}: the bound must reject NeuQuant's {neuquant_error:.2}"
        );
    }
}

#[test]
fn corpus_photo_keeps_its_likeness() {
    let photo = corpus("photo-4mp-twowings.jpg");
    let resize = r#"[{"imageIndex":0,"width":600}]"#;
    let truecolour = encode(&photo, resize, None);
    let palette = encode(&photo, resize, Some(85));
    let (a, b) = (rgba(&truecolour.bytes), rgba(&palette.bytes));
    let width = truecolour.width as usize;
    let (plain, smoothed) = (psnr(&a, &b, width, 1), psnr(&a, &b, width, 2));
    eprintln!(
        "twowings 600 px: PNG8 {} bytes vs truecolour {}; PSNR {plain:.1} dB, 2x2-averaged {smoothed:.1} dB",
        palette.bytes.len(),
        truecolour.bytes.len()
    );
    assert!(plain > 30.0, "PSNR {plain:.1}");
    assert!(smoothed > 36.0, "2x2 PSNR {smoothed:.1}");
    assert!(palette.bytes.len() * 2 < truecolour.bytes.len());
}
