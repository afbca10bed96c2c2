//! Hostile inputs straight into the engine: every corpus file truncated at several points and
//! bit-flipped with fixed seeds, 1×1 and 65535×65535 images in each format, a GIF with thousands
//! of frames, and every input the fuzzers kept (`fuzz/regressions/`), replayed through the same
//! code the fuzz targets run. Each case has its expected code; none may panic.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use image::ImageEncoder;
use imgbind_engine::{info, run, Job, Limits, Source};
use imgbind_testkit::{bomb_headers, many_frame_gif};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions};

/// The fuzz targets' own harness: replaying a kept input runs exactly what found it.
#[path = "../../fuzz/fuzz_targets/common.rs"]
mod fuzz_common;

fn corpus_dir() -> PathBuf {
    std::env::var_os("IMGBIND_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    )
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every image in the corpus, by name.
fn corpus_files() -> Vec<(String, Bytes)> {
    let mut files: Vec<(String, Bytes)> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e != "md"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, Bytes::from(std::fs::read(&path).unwrap()))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(files.len() >= 10, "corpus looks incomplete: {files:?}");
    files
}

/// The files in one folder (sorted; empty when the folder does not exist).
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A small resize: JPEGs shrink on load, so even the 20 MP photo decodes quickly.
const THUMBNAIL: &str = r#"[{"imageIndex":0,"width":64}]"#;

fn outcome(bytes: &Bytes, transforms: &str) -> Result<(u32, u32), ErrorCode> {
    let job = Job {
        sources: vec![Source::Image(bytes.clone())],
        steps: parse_steps(transforms, 1).unwrap(),
        output: OutputOptions::new(OutputFormat::Png),
    };
    run(job, &Limits::default())
        .map(|encoded| (encoded.width, encoded.height))
        .map_err(|e| e.code())
}

/// Whether the engine decodes this format at all (AVIF support may be missing: 9520).
fn decodable(bytes: &Bytes) -> bool {
    outcome(bytes, THUMBNAIL) != Err(ErrorCode::UnsupportedFormat)
}

#[test]
fn every_corpus_file_truncated_is_not_an_image() {
    for (name, bytes) in corpus_files() {
        let supported = decodable(&bytes);
        let len = bytes.len();
        let mut cuts = vec![0, 1, 2, 4, 8, 16, 32, 64, 200, 1000];
        // Up to the last image data: a PNG cut inside its 12-byte IEND trailer still holds every
        // pixel, and decoders rightly return it.
        cuts.extend([len / 10, len / 3, len / 2, len * 9 / 10, len - 64, len - 20]);
        for cut in cuts {
            let got = outcome(&bytes.slice(..cut), THUMBNAIL);
            // A format the engine cannot decode yet is refused from its header (9520) as long as
            // enough of the header is left to recognise it.
            let expected = if supported || cut < 16 {
                ErrorCode::NotAnImage
            } else {
                ErrorCode::UnsupportedFormat
            };
            assert_eq!(got, Err(expected), "{name} cut to {cut} of {len} bytes");
        }
    }
}

/// xorshift64: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_corpus_file_bit_flipped_decodes_or_is_a_coded_error() {
    let mut flips_that_decoded = 0;
    let mut flips_refused = 0;
    for (name, bytes) in corpus_files() {
        let supported = decodable(&bytes);
        for seed in 1..=6u64 {
            let mut noise = Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ bytes.len() as u64);
            let mut flipped = bytes.to_vec();
            // Even seeds hit the header region (where sizes and tables live), odd seeds anywhere.
            let span = if seed % 2 == 0 {
                flipped.len().min(2048)
            } else {
                flipped.len()
            };
            for _ in 0..(1 + seed * 2) {
                let at = (noise.next() % span as u64) as usize;
                flipped[at] ^= 1 << (noise.next() % 8);
            }
            match outcome(&Bytes::from(flipped), THUMBNAIL) {
                Ok((width, _)) => {
                    assert_eq!(width, 64, "{name} seed {seed}");
                    flips_that_decoded += 1;
                }
                Err(code) => {
                    let allowed = [
                        ErrorCode::NotAnImage,
                        ErrorCode::TooManyPixels,
                        ErrorCode::ProcessingLimit,
                    ];
                    assert!(
                        allowed.contains(&code)
                            || (!supported && code == ErrorCode::UnsupportedFormat),
                        "{name} seed {seed}: {code:?}"
                    );
                    flips_refused += 1;
                }
            }
        }
    }
    // Both outcomes occur: the flips neither all miss nor all break the files.
    assert!(
        flips_that_decoded > 0 && flips_refused > 0,
        "{flips_that_decoded} decoded, {flips_refused} refused"
    );
}

/// A 1×1 image in `format`, made by the engine's own encoder.
fn one_pixel(format: OutputFormat) -> Bytes {
    let png = {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&[200, 10, 10, 255], 1, 1, image::ExtendedColorType::Rgba8)
            .unwrap();
        Bytes::from(out)
    };
    let job = Job {
        sources: vec![Source::Image(png)],
        steps: Vec::new(),
        output: OutputOptions::new(format),
    };
    Bytes::from(run(job, &Limits::default()).unwrap().bytes)
}

#[test]
fn one_pixel_images_in_every_format_work() {
    for format in [
        OutputFormat::Jpeg,
        OutputFormat::Png,
        OutputFormat::Gif,
        OutputFormat::Webp,
    ] {
        let bytes = one_pixel(format);
        let described = info(&bytes, &Limits::default()).unwrap();
        assert_eq!(
            (described.width, described.height),
            (Some(1), Some(1)),
            "{format:?}"
        );
        assert_eq!(outcome(&bytes, "[]"), Ok((1, 1)), "{format:?}");
        // Growing it is allowed; a 0-px result is not possible.
        assert_eq!(
            outcome(
                &bytes,
                r#"[{"imageIndex":0,"width":3,"height":2,"fit":"squeeze"}]"#
            ),
            Ok((3, 2)),
            "{format:?}"
        );
    }
}

#[test]
fn bomb_headers_are_too_many_pixels_before_any_decoding() {
    for (format, side, bytes) in bomb_headers() {
        let described = info(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{format}: /info should describe the header: {e}"));
        assert_eq!(
            (described.width, described.height),
            (Some(side), Some(side)),
            "{format}"
        );
        assert_eq!(
            described.format,
            format!("image/{format}"),
            "sniffed format"
        );
        assert_eq!(
            outcome(&Bytes::from(bytes), "[]"),
            Err(ErrorCode::TooManyPixels),
            "{format}"
        );
    }
}

#[test]
fn a_gif_with_thousands_of_frames_is_a_processing_limit() {
    let limits = Limits::default();
    let gif = Bytes::from(many_frame_gif(limits.max_frames as usize * 5));
    for output in [OutputFormat::Gif, OutputFormat::Png] {
        let job = Job {
            sources: vec![Source::Image(gif.clone())],
            steps: Vec::new(),
            output: OutputOptions::new(output),
        };
        assert_eq!(
            run(job, &limits).unwrap_err().code(),
            ErrorCode::TooManyPixels,
            "{output:?}"
        );
    }
    // Within the limit the same construction is a valid animation.
    let small = Bytes::from(many_frame_gif(3));
    assert_eq!(outcome(&small, "[]"), Ok((1, 1)));
}

#[test]
fn fuzz_seeds_decode_and_kept_findings_replay_without_panicking() {
    let fuzz = fuzz_dir();
    // The seeds are valid images: each decodes under the fuzzers' tight limits.
    for kind in ["jpeg", "png", "gif", "webp"] {
        let seeds = files_in(&fuzz.join("seeds").join(kind));
        assert!(!seeds.is_empty(), "no {kind} seeds");
        for (name, bytes) in seeds {
            let job = Job {
                sources: vec![Source::Image(Bytes::from(bytes))],
                steps: Vec::new(),
                output: OutputOptions::new(OutputFormat::Rgba),
            };
            let decoded = run(job, &fuzz_common::tight_limits());
            assert!(decoded.is_ok(), "seed {kind}/{name}: {decoded:?}");
        }
    }
    // Every input a decoder fuzzer found, through the exact call it crashed or hung in.
    let mut replayed = 0;
    for target in ["decode_jpeg", "decode_png", "decode_gif", "decode_webp"] {
        for (name, bytes) in files_in(&fuzz.join("regressions").join(target)) {
            eprintln!("replaying {target}/{name}");
            fuzz_common::run(&bytes, "[]", OutputFormat::Rgba);
            replayed += 1;
        }
    }
    for (name, bytes) in files_in(&fuzz.join("regressions/engine")) {
        eprintln!("replaying engine/{name}");
        fuzz_common::run(&bytes, fuzz_common::ENGINE_TRANSFORMS, OutputFormat::Png);
        replayed += 1;
    }
    eprintln!("{replayed} kept fuzz findings replayed");
}
