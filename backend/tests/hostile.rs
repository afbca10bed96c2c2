//! The hostile-input suite over the real `imgbind` binary's Unix socket: truncated, bit-flipped,
//! empty, 1×1 and 65535×65535 images, thousands of animation frames, malformed multipart, invalid
//! JSON, unknown and out-of-range options, NaN and negative numbers, deep draw trees. Each request
//! gets its exact status and code, the server then still answers a good request, and its peak RSS
//! (`VmHWM`) stays under a fixed bound. Also replays the multipart and options fuzzers' findings.

mod support;

use std::path::{Path, PathBuf};

use image::ImageFormat;
use support::common::*;
use support::spawned::{good_png, multipart_type, Backend};

use imgbind_testkit as hostile_inputs;

/// Peak RSS the server may reach over this whole suite. The largest legitimate allocation here is
/// one 20 MP photo decoded at a time (~80 MB as RGBA, less with DCT scaling) plus 20 MB bodies;
/// every bomb is refused from its header.
const MAX_PEAK_RSS_KB: u64 = 600 * 1024;

fn encode(format: ImageFormat, rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_raw(width, height, rgb.to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn corpus_names() -> Vec<String> {
    let dir = std::env::var_os("IMGBIND_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".md"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_images_get_their_codes_and_memory_stays_bounded() {
    let backend = Backend::spawn().await;
    backend.assert_still_serving("start").await;
    let thumb = r#"[{"imageIndex":0,"width":64}]"#;

    // Every corpus file, truncated: 9412, or 9520 for a format the engine cannot decode yet.
    for name in corpus_names() {
        let bytes = corpus(&name);
        let whole = backend
            .post_multipart("/transform", &transform_body(&bytes, thumb, "image/webp"))
            .await;
        let (status, code) = match whole.status {
            200 => (415, 9412),
            415 if whole.header("cf-images-binding") == Some("err=9520") => (415, 9520),
            other => panic!("{name} whole: {other} {}", whole.text()),
        };
        for cut in [bytes.len() / 2, bytes.len() - 20] {
            let body = transform_body(&bytes[..cut], thumb, "image/webp");
            let what = format!("{name} cut to {cut}");
            backend
                .expect(
                    &what,
                    "/transform",
                    Some(&multipart_type()),
                    &body,
                    status,
                    code,
                )
                .await;
        }
    }

    // Zero bytes and plain noise.
    let ct = multipart_type();
    let ct = Some(ct.as_str());
    backend
        .expect(
            "zero-byte image",
            "/transform",
            ct,
            &transform_body(b"", "[]", "image/png"),
            415,
            9412,
        )
        .await;
    backend
        .expect(
            "zero-byte /info",
            "/info",
            ct,
            &multipart(&[file("image", b"")]),
            415,
            9412,
        )
        .await;

    // 1×1 in every format works (GIF built by hand: the test's image crate has no GIF encoder).
    let pixel = [9u8, 200, 30];
    for (format, bytes) in [
        (ImageFormat::Jpeg, encode(ImageFormat::Jpeg, &pixel, 1, 1)),
        (ImageFormat::Png, encode(ImageFormat::Png, &pixel, 1, 1)),
        (ImageFormat::WebP, encode(ImageFormat::WebP, &pixel, 1, 1)),
        (ImageFormat::Gif, hostile_inputs::many_frame_gif(1)),
    ] {
        let response = backend
            .post_multipart("/transform", &transform_body(&bytes, "[]", "image/png"))
            .await;
        assert_image(&response, ImageFormat::Png, 1, 1);
        let response = backend
            .post_multipart("/info", &multipart(&[file("image", &bytes)]))
            .await;
        assert_eq!(response.status, 200, "{format:?}: {}", response.text());
        assert!(
            response.text().contains(r#""width":1,"height":1"#),
            "{format:?}: {}",
            response.text()
        );
    }

    // 65535×65535 headers: /info describes them, /transform refuses them before decoding (9413).
    for (format, side, bytes) in hostile_inputs::bomb_headers() {
        let response = backend
            .post_multipart("/info", &multipart(&[file("image", &bytes)]))
            .await;
        assert_eq!(response.status, 200, "{format}: {}", response.text());
        assert!(
            response
                .text()
                .contains(&format!(r#""width":{side},"height":{side}"#)),
            "{format}: {}",
            response.text()
        );
        let body = transform_body(&bytes, thumb, "image/png");
        backend
            .expect(
                &format!("{format} {side}x{side}"),
                "/transform",
                ct,
                &body,
                413,
                9413,
            )
            .await;
    }

    // Thousands of animation frames: refused while scanning the container (9413).
    let gif = hostile_inputs::many_frame_gif(5000);
    for format in ["image/gif", "image/png"] {
        let body = transform_body(&gif, "[]", format);
        backend
            .expect(
                &format!("5000-frame GIF to {format}"),
                "/transform",
                ct,
                &body,
                413,
                9413,
            )
            .await;
    }

    // A photo sent under a wrong name and part content-type is sniffed, not trusted.
    let photo = corpus("photo-4mp-grey-grayscale.jpg");
    let mut body = format!(
        "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\ncontent-type: image/gif\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&photo);
    body.extend_from_slice(&then_parts(&[
        field("transforms", thumb),
        field("output_format", "image/png"),
    ]));
    let response = backend.post_multipart("/transform", &body).await;
    assert_image(&response, ImageFormat::Png, 64, 40);

    let peak = backend.peak_rss_kb();
    eprintln!("hostile images: server peak RSS {} MB", peak / 1024);
    assert!(peak < MAX_PEAK_RSS_KB, "peak RSS {peak} kB");
}

/// The parts after one whose content was written by hand: closes that part's content with CRLF.
fn then_parts(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = b"\r\n".to_vec();
    out.extend_from_slice(&multipart(parts));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_and_bad_options_get_their_codes() {
    let backend = Backend::spawn().await;
    let png = good_png();
    let mp = multipart_type();
    let ct = Some(mp.as_str());
    let tf = |transforms: &str| transform_body(&png, transforms, "image/png");

    // The request's own content-type.
    let body = tf("[]");
    for (what, content_type) in [
        ("no content-type", None),
        ("missing boundary", Some("multipart/form-data")),
        ("empty boundary", Some("multipart/form-data; boundary=")),
        ("not multipart", Some("image/png")),
        ("JSON", Some("application/json")),
    ] {
        backend
            .expect(what, "/transform", content_type, &body, 400, 9401)
            .await;
    }
    let other_boundary = Some("multipart/form-data; boundary=somethingelse");
    backend
        .expect(
            "boundary not in body",
            "/transform",
            other_boundary,
            &body,
            400,
            9401,
        )
        .await;
    backend
        .expect(
            "raw image body",
            "/transform",
            Some("image/png"),
            &png,
            400,
            9401,
        )
        .await;

    // Parts out of order, duplicated, unnamed, or with oversized headers.
    let parts_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "image after transforms",
            multipart(&[
                field("transforms", "[]"),
                file("image", &png),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "draw_image before image",
            multipart(&[
                file("draw_image", &png),
                file("image", &png),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "draw_image after transforms",
            multipart(&[
                file("image", &png),
                field("transforms", "[]"),
                file("draw_image", &png),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "output_quality before output_format",
            multipart(&[
                file("image", &png),
                field("transforms", "[]"),
                field("output_quality", "80"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "duplicate output_format",
            multipart(&[
                file("image", &png),
                field("transforms", "[]"),
                field("output_format", "image/png"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "duplicate anim",
            multipart(&[
                file("image", &png),
                field("transforms", "[]"),
                field("output_format", "image/png"),
                field("anim", "true"),
                field("anim", "true"),
            ]),
        ),
        (
            "/info with two images",
            multipart(&[file("image", &png), file("image", &png)]),
        ),
        ("part without a name", {
            let mut b =
                format!("--{BOUNDARY}\r\ncontent-disposition: form-data\r\n\r\nx\r\n").into_bytes();
            b.extend_from_slice(&tf("[]"));
            b
        }),
        (
            "part without headers",
            format!("--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--\r\n").into_bytes(),
        ),
        ("16 KiB part header", {
            let pad = "a".repeat(16 * 1024);
            let mut b = format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"image\"\r\nx-pad: {pad}\r\n\r\n").into_bytes();
            b.extend_from_slice(&png);
            b.extend_from_slice(&then_parts(&[
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]));
            b
        }),
        ("40 part headers", {
            let mut b =
                format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"image\"\r\n")
                    .into_bytes();
            for i in 0..40 {
                b.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
            }
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(&png);
            b.extend_from_slice(&then_parts(&[
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]));
            b
        }),
        (
            "garbage before the first boundary only",
            b"\x00\x01\x02 not a multipart body".to_vec(),
        ),
    ];
    for (what, body) in &parts_cases {
        let path = if what.starts_with("/info") {
            "/info"
        } else {
            "/transform"
        };
        backend.expect(what, path, ct, body, 400, 9401).await;
    }

    // A part header that never ends: refused once the body passes the input limit plus framing
    // (9402), instead of being buffered whole.
    let mut endless =
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"image\"; x=\"")
            .into_bytes();
    endless.resize(endless.len() + 24 * 1024 * 1024, b'a');
    backend
        .expect("24 MB part header", "/transform", ct, &endless, 413, 9402)
        .await;
    let mut big = tf("[]");
    big.splice(0..0, std::iter::repeat_n(b'x', 23 * 1024 * 1024));
    backend
        .expect("23 MB preamble", "/transform", ct, &big, 413, 9402)
        .await;

    // Invalid JSON, NaN, non-UTF-8, deep nesting.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("[{}1{}]", r#"{"a":"#.repeat(5000), "}".repeat(5000));
    let mut not_utf8 = multipart(&[file("image", &png)]);
    not_utf8.truncate(not_utf8.len() - BOUNDARY.len() - 6);
    not_utf8.extend_from_slice(
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"transforms\"\r\n\r\n")
            .as_bytes(),
    );
    not_utf8.extend_from_slice(b"[\xff\xfe]");
    not_utf8.extend_from_slice(&then_parts(&[field("output_format", "image/png")]));
    let mut json_cases: Vec<(String, Vec<u8>)> = [
        "",
        "[",
        "{}",
        "null",
        "42",
        "[1]",
        "[[]]",
        r#"[{"imageIndex":0,"width":NaN}]"#,
        r#"[{"imageIndex":0,"width":"NaN"}]"#,
        r#"[{"imageIndex":0,"width":Infinity}]"#,
        r#"[{"imageIndex":0,"width":1e999}]"#,
        r#"[{"imageIndex":0,"width":-1e999}]"#,
        r#"[{"imageIndex":0,"width":10}"#,
        r#"[{"imageIndex":0,"width":10}]trailing"#,
    ]
    .iter()
    .map(|json| (format!("transforms {json:?}"), tf(json)))
    .collect();
    json_cases.push(("100 000-deep array".into(), tf(&deep)));
    json_cases.push(("5000-deep object".into(), tf(&deep_object)));
    json_cases.push(("transforms not UTF-8".into(), not_utf8));

    // Unknown and out-of-range options; negative numbers.
    for options in [
        r#"{"zoom":2}"#,
        r#"{"width":-10}"#,
        r#"{"width":0}"#,
        r#"{"height":-0.1}"#,
        r#"{"width":2000000}"#,
        r#"{"width":"100"}"#,
        r#"{"rotate":45}"#,
        r#"{"rotate":-90}"#,
        r#"{"blur":-1}"#,
        r#"{"blur":1e9}"#,
        r#"{"sharpen":11}"#,
        r#"{"brightness":-1}"#,
        r#"{"gamma":-2}"#,
        r#"{"fit":"bogus"}"#,
        r#"{"gravity":{"x":2,"y":0.5}}"#,
        r#"{"gravity":"middle-ish"}"#,
        r#"{"background":"not a colour"}"#,
        r#"{"trim":{"top":-5}}"#,
        r#"{"border":{"color":"red","width":-1}}"#,
        r#"{"flip":"diagonal"}"#,
        r#"{"dpr":-1}"#,
        r#"{"width":10,"WIDTH":10}"#,
    ] {
        let json = format!(r#"[{{"imageIndex":0,{}]"#, &options[1..]);
        json_cases.push((format!("option {options}"), tf(&json)));
    }
    for (what, json) in [
        ("negative imageIndex", r#"[{"imageIndex":-1,"width":10}]"#),
        (
            "imageIndex out of range",
            r#"[{"imageIndex":3,"width":10}]"#,
        ),
        (
            "fractional imageIndex",
            r#"[{"imageIndex":0.5,"width":10}]"#,
        ),
        (
            "draw of a missing image",
            r#"[{"drawImageIndex":1,"targetImageIndex":0}]"#,
        ),
        (
            "opacity 2",
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"opacity":2}]"#,
        ),
    ] {
        json_cases.push((what.into(), tf(json)));
    }
    for (what, format, quality, background, anim) in [
        ("output_format image/bmp", "image/bmp", None, None, None),
        ("output_format empty", "", None, None, None),
        ("quality 0", "image/jpeg", Some("0"), None, None),
        ("quality 101", "image/jpeg", Some("101"), None, None),
        ("quality -5", "image/jpeg", Some("-5"), None, None),
        ("quality NaN", "image/jpeg", Some("NaN"), None, None),
        ("quality high", "image/jpeg", Some("high"), None, None),
        (
            "background bogus",
            "image/jpeg",
            Some("80"),
            Some("bogus"),
            None,
        ),
        (
            "background non-ASCII",
            "image/jpeg",
            Some("80"),
            Some("hsl(1\u{20ac},100%,50%)"),
            None,
        ),
        (
            "anim maybe",
            "image/gif",
            Some("80"),
            Some("#fff"),
            Some("maybe"),
        ),
    ] {
        let mut parts = vec![
            file("image", &png),
            field("transforms", "[]"),
            field("output_format", format),
        ];
        parts.extend(quality.map(|q| field("output_quality", q)));
        parts.extend(background.map(|b| field("background", b)));
        parts.extend(anim.map(|a| field("anim", a)));
        json_cases.push((what.into(), multipart(&parts)));
    }
    for (what, body) in &json_cases {
        backend
            .expect(what, "/transform", ct, body, 400, 9401)
            .await;
    }

    // Draw trees: 101 layers is one past the limit (9413); a chain 100 deep is within it.
    let tiny = hostile_inputs::many_frame_gif(1);
    let draws = |count: usize, chain: bool| {
        let mut parts = vec![file("image", &png)];
        parts.extend((0..count).map(|_| file("draw_image", &tiny)));
        let steps: Vec<String> = (1..=count)
            .rev()
            .map(|i| {
                let target = if chain { i - 1 } else { 0 };
                format!(r#"{{"drawImageIndex":{i},"targetImageIndex":{target}}}"#)
            })
            .collect();
        let transforms = format!("[{}]", steps.join(","));
        let mut body = multipart(&parts);
        body.truncate(body.len() - BOUNDARY.len() - 6);
        body.extend_from_slice(&multipart(&[
            field("transforms", &transforms),
            field("output_format", "image/png"),
        ]));
        body
    };
    backend
        .expect(
            "101 draw layers",
            "/transform",
            ct,
            &draws(101, false),
            413,
            9413,
        )
        .await;
    let chain = backend
        .post_multipart("/transform", &draws(100, true))
        .await;
    assert_image(&chain, ImageFormat::Png, 40, 30);

    let peak = backend.peak_rss_kb();
    eprintln!("malformed requests: server peak RSS {} MB", peak / 1024);
    assert!(peak < MAX_PEAK_RSS_KB, "peak RSS {peak} kB");
}

/// Every input the multipart and options fuzzers kept, through the same functions they call.
#[test]
fn fuzz_findings_for_the_request_parsers_replay_without_panicking() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let read_dir = |dir: PathBuf| -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect()
    };
    // The seeds parse (they are valid requests, bar the ones built to fail validation).
    let seeds = read_dir(fuzz.join("seeds/multipart"));
    assert!(!seeds.is_empty());
    let parsed = seeds
        .iter()
        .filter(|s| parse_multipart_input(s).is_ok())
        .count();
    assert!(
        parsed >= 4,
        "{parsed} of {} multipart seeds parse",
        seeds.len()
    );
    for input in read_dir(fuzz.join("regressions/multipart")) {
        let _ = parse_multipart_input(&input);
    }
    for input in read_dir(fuzz.join("regressions/options"))
        .into_iter()
        .chain(read_dir(fuzz.join("seeds/options")))
    {
        let Some((&count, rest)) = input.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        let mut fields = text.split('\0');
        let _ = imgbind_wire::parse_steps(
            fields.next().unwrap_or_default(),
            1 + usize::from(count % 4),
        );
        let [format, quality, background, anim] = std::array::from_fn(|_| fields.next());
        let _ = imgbind_wire::OutputOptions::from_fields(&imgbind_wire::OutputFields {
            format: format.map(String::from),
            quality: quality.map(String::from),
            background: background.map(String::from),
            anim: anim.map(String::from),
        });
    }
}

/// What `fuzz/fuzz_targets/multipart.rs` does with one input.
fn parse_multipart_input(input: &[u8]) -> Result<imgbind_engine::Job, imgbind_wire::Error> {
    let (&chunk, body) = input.split_first().expect("non-empty input");
    let chunk = if chunk == 0 {
        body.len().max(1)
    } else {
        usize::from(chunk)
    };
    let chunks = body
        .chunks(chunk)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    imgbind_backend::parse_transform_request("multipart/form-data; boundary=xYz", chunks, 64 * 1024)
}
