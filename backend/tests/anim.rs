//! Animated GIF/WebP through the real server over its sockets: frames and delays survive, `anim`
//! false gives one frame, and the frame limits (configured like `--max-frames` and
//! `--max-animation-pixels`) answer their codes.

mod support;

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Delay, Frame, Rgba, RgbaImage};
use support::common::*;

const DELAYS_MS: [u32; 4] = [100, 250, 40, 500];

/// A 64×32 GIF: frame n is grey with a 16×16 block at x = 16n, in a colour per frame.
fn animated_gif() -> Vec<u8> {
    let colours = [
        [200, 20, 20, 255],
        [20, 200, 20, 255],
        [20, 20, 200, 255],
        [200, 200, 20, 255],
    ];
    let frames = DELAYS_MS.iter().enumerate().map(|(n, ms)| {
        let mut canvas = RgbaImage::from_pixel(64, 32, Rgba([128, 128, 128, 255]));
        for y in 8..24 {
            for x in 16 * n as u32..16 * n as u32 + 16 {
                canvas.put_pixel(x, y, Rgba(colours[n]));
            }
        }
        Frame::from_parts(canvas, 0, 0, Delay::from_numer_denom_ms(*ms, 1))
    });
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        encoder.encode_frames(frames).unwrap();
    }
    out
}

/// (width, height, delay in ms) of every frame.
fn frames_of(format: image::ImageFormat, bytes: &[u8]) -> Vec<(u32, u32, u32)> {
    let frames = match format {
        image::ImageFormat::Gif => GifDecoder::new(Cursor::new(bytes))
            .unwrap()
            .into_frames()
            .collect_frames(),
        image::ImageFormat::WebP => WebPDecoder::new(Cursor::new(bytes))
            .unwrap()
            .into_frames()
            .collect_frames(),
        other => panic!("{other:?}"),
    }
    .unwrap();
    frames
        .iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            (f.buffer().width(), f.buffer().height(), n / d)
        })
        .collect()
}

fn anim_body(image: &[u8], transforms: &str, format: &str, anim: Option<&str>) -> Vec<u8> {
    let mut parts = vec![
        file("image", image),
        field("transforms", transforms),
        field("output_format", format),
    ];
    if let Some(a) = anim {
        parts.push(field("anim", a));
    }
    multipart(&parts)
}

#[tokio::test(flavor = "multi_thread")]
async fn animations_keep_every_frame_over_both_sockets() {
    let server = TestServer::start().await;
    let gif = animated_gif();
    let half = r#"[{"imageIndex":0,"width":32}]"#;
    for (transport, mime, format) in [
        (Transport::Unix, "image/gif", image::ImageFormat::Gif),
        (Transport::Tcp, "image/webp", image::ImageFormat::WebP),
    ] {
        let response = post(
            &server,
            transport,
            "/transform",
            &anim_body(&gif, half, mime, None),
        )
        .await;
        assert_eq!(response.status, 200, "{mime}: {}", response.text());
        assert_eq!(response.header("content-type"), Some(mime));
        assert_eq!(response.body.len(), response.content_length());
        let frames = frames_of(format, &response.body);
        let expected: Vec<_> = DELAYS_MS.iter().map(|ms| (32, 16, *ms)).collect();
        assert_eq!(frames, expected, "{mime}");

        // The WebP result goes back in as an animated input.
        if format == image::ImageFormat::WebP {
            let again = post(
                &server,
                transport,
                "/transform",
                &anim_body(&response.body, "[]", "image/gif", Some("true")),
            )
            .await;
            assert_eq!(again.status, 200, "{}", again.text());
            assert_eq!(frames_of(image::ImageFormat::Gif, &again.body), expected);
        }
    }

    // anim=false: the first frame only; a still format: the first frame.
    let response = post(
        &server,
        Transport::Unix,
        "/transform",
        &anim_body(&gif, half, "image/gif", Some("false")),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(frames_of(image::ImageFormat::Gif, &response.body).len(), 1);
    let response = post(
        &server,
        Transport::Unix,
        "/transform",
        &anim_body(&gif, half, "image/png", None),
    )
    .await;
    assert_image(&response, image::ImageFormat::Png, 32, 16);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn frame_limits_answer_their_codes() {
    let gif = animated_gif();
    // 4 frames of 64×32 = 8192 frame-pixels.
    let server = TestServer::start_with(
        |config| {
            config.limits.max_frames = 3;
        },
        None,
    )
    .await;
    for mime in ["image/gif", "image/webp", "image/png"] {
        let response = post(
            &server,
            Transport::Unix,
            "/transform",
            &anim_body(&gif, "[]", mime, None),
        )
        .await;
        assert_error(&response, 413, 9413);
        assert!(response.text().contains("at most 3"), "{}", response.text());
    }
    server.stop().await.unwrap();

    let server = TestServer::start_with(
        |config| {
            config.limits.max_animation_pixels = 8191;
        },
        None,
    )
    .await;
    let response = post(
        &server,
        Transport::Tcp,
        "/transform",
        &anim_body(&gif, "[]", "image/webp", None),
    )
    .await;
    assert_error(&response, 413, 9413);
    assert!(
        response.text().contains("8192 pixels"),
        "{}",
        response.text()
    );
    server.stop().await.unwrap();
}
