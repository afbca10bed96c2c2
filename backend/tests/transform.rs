//! Successful requests over real sockets: `/transform` outputs decoded and measured, `/info`,
//! `/healthz`, keep-alive.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use image::ImageFormat;

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
