//! Successful requests over real sockets: `/transform` outputs decoded and measured, `/info`,
//! `/healthz`, keep-alive.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use image::ImageFormat;
use support::common::*;

const KLEIBER: &str = "photo-20mp-kleiber.jpg"; // 6028×3391
const EVENINGGLOW: &str = "photo-4mp-eveningglow.jpg"; // 2560×1600

#[tokio::test(flavor = "multi_thread")]
async fn jpeg_width_800_from_20mp_photo_on_unix_and_tcp() {
    let server = TestServer::start().await;
    let body = transform_body(
        &corpus(KLEIBER),
        r#"[{"imageIndex":0,"width":800}]"#,
        "image/jpeg",
    );
    for transport in BOTH {
        let response = post(&server, transport, "/transform", &body).await;
        assert_eq!(response.header("content-type"), Some("image/jpeg"));
        assert_image(&response, ImageFormat::Jpeg, 800, 450);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn png_and_webp_outputs() {
    let server = TestServer::start().await;
    let photo = corpus(EVENINGGLOW);
    for (format, mime) in [
        (ImageFormat::Png, "image/png"),
        (ImageFormat::WebP, "image/webp"),
    ] {
        let body = transform_body(&photo, r#"[{"imageIndex":0,"width":320}]"#, mime);
        let response = post(&server, Transport::Unix, "/transform", &body).await;
        assert_eq!(response.header("content-type"), Some(mime));
        assert_image(&response, format, 320, 200);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn draw_overlay_keeps_base_size() {
    let server = TestServer::start().await;
    let body = multipart(&[
        file("image", &corpus(EVENINGGLOW)),
        file("draw_image", &corpus("overlay-logo-337x330.png")),
        field(
            "transforms",
            r#"[{"imageIndex":0,"width":640},{"imageIndex":1,"width":100},
                {"drawImageIndex":1,"targetImageIndex":0,"bottom":10,"right":10,"opacity":0.8}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let response = post(&server, Transport::Tcp, "/transform", &body).await;
    assert_image(&response, ImageFormat::Png, 640, 400);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn parts_without_filenames_and_optional_fields_are_accepted() {
    let server = TestServer::start().await;
    let photo = corpus(EVENINGGLOW);
    let body = multipart(&[
        // The image part without `filename=`: still the image.
        Part {
            name: "image",
            file: false,
            content: &photo,
        },
        field("transforms", r#"[{"imageIndex":0,"width":128}]"#),
        field("output_format", "image/jpeg"),
        field("output_quality", "60"),
        field("background", "#ffffff"),
        field("anim", "false"),
    ]);
    let response = post(&server, Transport::Unix, "/transform", &body).await;
    assert_image(&response, ImageFormat::Jpeg, 128, 80);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_rgb_carries_its_size_in_headers() {
    let server = TestServer::start().await;
    let body = transform_body(
        &corpus(EVENINGGLOW),
        r#"[{"imageIndex":0,"width":256}]"#,
        "rgb",
    );
    let response = post(&server, Transport::Tcp, "/transform", &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(response.header("imgbind-width"), Some("256"));
    assert_eq!(response.header("imgbind-height"), Some("160"));
    assert_eq!(response.body.len(), 256 * 160 * 3);
    assert_eq!(response.content_length(), 256 * 160 * 3);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start().await;
    let photo = corpus(EVENINGGLOW);
    let body = transform_body(&photo, r#"[{"imageIndex":0,"width":64}]"#, "image/png");
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        for _ in 0..3 {
            send_post(&mut conn, "/transform", "", &body).await;
            let response = read_response(&mut conn, Reading::FAST).await;
            assert_image(&response, ImageFormat::Png, 64, 40);
        }
    }
    server.stop().await.unwrap();
}

/// `/info` and `/healthz` through hyper's own client, over the Unix socket.
#[tokio::test(flavor = "multi_thread")]
async fn info_and_healthz_with_hyper_client() {
    let server = TestServer::start().await;
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);

    let request = hyper::Request::get("/healthz")
        .header("host", "images.local")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"ok\n");

    let body = multipart(&[file("image", &corpus(KLEIBER))]);
    let request = hyper::Request::post("/info")
        .header("host", "images.local")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["format"], "image/jpeg");
    assert_eq!(json["width"], 6028);
    assert_eq!(json["height"], 3391);
    assert_eq!(json["file_size"], corpus(KLEIBER).len());
    server.stop().await.unwrap();
}

/// POSTs `bytes` to `/info` and parses the JSON answer.
async fn info_json(server: &TestServer, bytes: &[u8]) -> serde_json::Value {
    let response = post(
        server,
        Transport::Unix,
        "/info",
        &multipart(&[file("image", bytes)]),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}

fn engine_fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// AVIF in (libavif + aom decode) and out (encode), and a truncated AVIF answered 9412.
#[tokio::test(flavor = "multi_thread")]
async fn avif_input_and_output() {
    let server = TestServer::start().await;
    let garden = corpus("photo-4mp-garden.avif");
    let info = info_json(&server, &garden).await;
    assert_eq!(info["format"], "image/avif");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(2560), Some(1600))
    );

    let body = transform_body(&garden, r#"[{"imageIndex":0,"width":320}]"#, "image/avif");
    let response = post(&server, Transport::Tcp, "/transform", &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("image/avif"));
    assert_eq!(response.body.len(), response.content_length());
    assert_eq!(&response.body[4..12], b"ftypavif");
    let back = info_json(&server, &response.body).await;
    assert_eq!(
        (back["width"].as_u64(), back["height"].as_u64()),
        (Some(320), Some(200))
    );

    let cut = &garden[..garden.len() / 2];
    let body = transform_body(cut, "[]", "image/png");
    let response = post(&server, Transport::Unix, "/transform", &body).await;
    assert_eq!(response.header("cf-images-binding"), Some("err=9412"));
    server.stop().await.unwrap();
}

/// SVG: `/info` gives the format only; a transform rasterises it at its own size.
#[tokio::test(flavor = "multi_thread")]
async fn svg_info_and_rasterised_transform() {
    let server = TestServer::start().await;
    let svg = br##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
        <circle cx="50" cy="50" r="40" fill="#0a0"/></svg>"##;
    let info = info_json(&server, svg).await;
    assert_eq!(info, serde_json::json!({"format": "image/svg+xml"}));
    let body = transform_body(svg, r#"[{"imageIndex":0,"width":100}]"#, "image/png");
    let response = post(&server, Transport::Unix, "/transform", &body).await;
    assert_image(&response, ImageFormat::Png, 100, 50);
    let png = image::load_from_memory(&response.body).unwrap().to_rgba8();
    assert_eq!(png.get_pixel(25, 25).0, [0, 170, 0, 255]);
    assert_eq!(
        png.get_pixel(90, 5).0[3],
        0,
        "transparent outside the shape"
    );
    server.stop().await.unwrap();
}

/// An Adobe RGB–tagged JPEG with GPS and camera EXIF: converted to sRGB, and the JPEG result
/// keeps the copyright and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn icc_conversion_and_copyright_only_metadata() {
    let server = TestServer::start().await;
    let body = transform_body(&engine_fixture("adobergb.jpg"), "[]", "image/png");
    let response = post(&server, Transport::Unix, "/transform", &body).await;
    assert_image(&response, ImageFormat::Png, 64, 48);
    let png = image::load_from_memory(&response.body).unwrap().to_rgb8();
    // Adobe RGB (127, 255, 0) is outside sRGB: its red is clipped towards 0 (sharp: 0).
    assert!(png.get_pixel(63, 0).0[0] < 10, "{:?}", png.get_pixel(63, 0));

    let exif = engine_fixture("exif-gps-copyright.jpg");
    let body = transform_body(&exif, r#"[{"imageIndex":0,"width":24}]"#, "image/jpeg");
    let response = post(&server, Transport::Tcp, "/transform", &body).await;
    assert_image(&response, ImageFormat::Jpeg, 24, 32);
    let has = |needle: &[u8]| response.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"(c) 2026 imgbind test fixture"));
    assert!(!has(b"Canon") && !has(b"EOS 5D") && !has(b"A. Photographer"));
    server.stop().await.unwrap();
}
