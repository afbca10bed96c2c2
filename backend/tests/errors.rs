//! Coded error answers over real sockets: each has its status, `cf-images-binding: err=<code>`,
//! `text/plain` and `ERROR <code>: …`, and the connection stays usable afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use imgbind_backend::{Engine, PixelEngine};
use imgbind_engine::{Job, Limits, OutputHead, OutputSink, Timings};
use imgbind_wire::{Error, InfoResponse};
use support::common::*;

const PHOTO: &str = "photo-4mp-eveningglow.jpg";

fn photo() -> Vec<u8> {
    corpus(PHOTO)
}

#[tokio::test(flavor = "multi_thread")]
async fn not_an_image_is_9412() {
    let server = TestServer::start().await;
    let body = transform_body(
        b"<html>this is not an image</html>",
        r#"[{"imageIndex":0,"width":10}]"#,
        "image/png",
    );
    for transport in BOTH {
        let response = post(&server, transport, "/transform", &body).await;
        assert_error(&response, 415, 9412);
    }
    let body = multipart(&[file("image", b"not an image either")]);
    assert_error(
        &post(&server, Transport::Unix, "/info", &body).await,
        415,
        9412,
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_are_9401() {
    let server = TestServer::start().await;
    let photo = photo();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "bad JSON",
            transform_body(&photo, "[{not json", "image/png"),
        ),
        (
            "unknown option",
            transform_body(&photo, r#"[{"imageIndex":0,"zoom":1}]"#, "image/png"),
        ),
        (
            "bad output format",
            transform_body(&photo, "[]", "image/tiff"),
        ),
        (
            "missing image",
            multipart(&[
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "no parts at all",
            format!("--{BOUNDARY}--\r\n").into_bytes(),
        ),
        (
            "unknown part",
            multipart(&[
                file("image", &photo),
                field("colour", "red"),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "duplicate part",
            multipart(&[
                file("image", &photo),
                field("transforms", "[]"),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "out of order",
            multipart(&[
                file("image", &photo),
                field("output_format", "image/png"),
                field("transforms", "[]"),
            ]),
        ),
        (
            "two canvases",
            multipart(&[
                file("image", &photo),
                file("image", &photo),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        (
            "missing transforms",
            multipart(&[file("image", &photo), field("output_format", "image/png")]),
        ),
        (
            "missing output_format",
            multipart(&[file("image", &photo), field("transforms", "[]")]),
        ),
        (
            "draw never drawn",
            multipart(&[
                file("image", &photo),
                file("draw_image", &photo),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
        ),
        ("malformed multipart (no closing boundary)", {
            let mut body = transform_body(&photo, "[]", "image/png");
            body.truncate(body.len() - BOUNDARY.len() - 6);
            body
        }),
        ("not multipart at all", b"hello there".to_vec()),
    ];
    for (what, body) in &cases {
        for transport in BOTH {
            let response = post(&server, transport, "/transform", body).await;
            assert_eq!(response.status, 400, "{what}: {}", response.text());
            assert_error(&response, 400, 9401);
        }
    }
    // /info takes exactly one image part.
    let body = multipart(&[file("image", &photo), field("transforms", "[]")]);
    assert_error(
        &post(&server, Transport::Tcp, "/info", &body).await,
        400,
        9401,
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_type_is_9401() {
    let server = TestServer::start().await;
    let mut conn = server.connect(Transport::Tcp).await;
    tokio::io::AsyncWriteExt::write_all(
        &mut conn,
        b"POST /transform HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await
    .unwrap();
    assert_error(&read_response(&mut conn, Reading::FAST).await, 400, 9401);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_is_9402() {
    let server = TestServer::start_with(|c| c.limits.max_input_bytes = 1_000_000, None).await;
    let body = transform_body(&vec![0xAB; 2_000_000], "[]", "image/png");
    for transport in BOTH {
        let response = post(&server, transport, "/transform", &body).await;
        assert_error(&response, 413, 9402);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_path_is_404_and_wrong_method_405_both_coded() {
    let server = TestServer::start().await;
    for transport in BOTH {
        let response = post(&server, transport, "/nope", b"").await;
        assert_error(&response, 404, 9401);
        let mut conn = server.connect(transport).await;
        tokio::io::AsyncWriteExt::write_all(
            &mut conn,
            b"GET /transform HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await
        .unwrap();
        let response = read_response(&mut conn, Reading::FAST).await;
        assert_error(&response, 405, 9401);
        assert_eq!(response.header("allow"), Some("POST"));
        // Same connection, next request: still served.
        tokio::io::AsyncWriteExt::write_all(&mut conn, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut conn, Reading::FAST).await;
        assert_eq!(response.status, 200);
    }
    server.stop().await.unwrap();
}

/// An error answer leaves the connection usable: the body was read to its end.
#[tokio::test(flavor = "multi_thread")]
async fn connection_is_reused_after_an_error() {
    let server = TestServer::start().await;
    let bad = transform_body(&photo(), r#"[{"imageIndex":0,"zoom":1}]"#, "image/png");
    let good = transform_body(&photo(), r#"[{"imageIndex":0,"width":32}]"#, "image/png");
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        send_post(&mut conn, "/transform", "", &bad).await;
        let response = read_response(&mut conn, Reading::FAST).await;
        assert_error(&response, 400, 9401);
        assert_eq!(response.header("connection"), None);
        send_post(&mut conn, "/transform", "", &good).await;
        assert_image(
            &read_response(&mut conn, Reading::FAST).await,
            image::ImageFormat::Png,
            32,
            20,
        );
    }
    server.stop().await.unwrap();
}

/// An engine whose `run_into` panics; `info` is the real one.
struct PanickingEngine;

impl Engine for PanickingEngine {
    fn run_into(
        &self,
        _job: Job,
        _limits: &Limits,
        _timings: &mut Timings,
        _sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        panic!("engine bug on purpose");
    }
    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
        PixelEngine.info(bytes, limits)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_panic_is_9523_and_the_server_keeps_serving() {
    let server = TestServer::start_with(|_| {}, Some(Arc::new(PanickingEngine))).await;
    let body = transform_body(&photo(), "[]", "image/png");
    for transport in BOTH {
        let response = post(&server, transport, "/transform", &body).await;
        assert_error(&response, 500, 9523);
    }
    let info = post(
        &server,
        Transport::Unix,
        "/info",
        &multipart(&[file("image", &photo())]),
    )
    .await;
    assert_eq!(info.status, 200, "{}", info.text());
    server.stop().await.unwrap();
}

/// An engine whose `run_into` takes a fixed time more than the real one.
struct SlowEngine(Duration);

impl Engine for SlowEngine {
    fn run_into(
        &self,
        job: Job,
        limits: &Limits,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        std::thread::sleep(self.0);
        PixelEngine.run_into(job, limits, timings, sink)
    }
    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
        PixelEngine.info(bytes, limits)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_9522_at_once() {
    let server = TestServer::start_with(
        |c| {
            c.jobs = 1;
            c.queue = 0;
        },
        Some(Arc::new(SlowEngine(Duration::from_millis(1500)))),
    )
    .await;
    let body = transform_body(&photo(), r#"[{"imageIndex":0,"width":16}]"#, "image/png");
    let mut first = server.connect(Transport::Unix).await;
    send_post(&mut first, "/transform", "", &body).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (second, took) = timed(post(&server, Transport::Unix, "/transform", &body)).await;
    assert_error(&second, 503, 9522);
    assert!(took < Duration::from_millis(1000), "9522 took {took:?}");
    let first = read_response(&mut first, Reading::FAST).await;
    assert_image(&first, image::ImageFormat::Png, 16, 10);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overload_says_when_to_retry_and_a_limit_does_not() {
    let server = TestServer::start_with(
        |c| {
            c.jobs = 1;
            c.queue = 4;
            c.queue_timeout = Duration::from_millis(300);
            c.limits.max_draw_layers = 1;
        },
        Some(Arc::new(SlowEngine(Duration::from_millis(1500)))),
    )
    .await;
    let body = transform_body(&photo(), r#"[{"imageIndex":0,"width":16}]"#, "image/png");
    let mut first = server.connect(Transport::Unix).await;
    send_post(&mut first, "/transform", "", &body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Queued behind a 1.5 s job with a 0.3 s queue timeout: refused when the wait runs out.
    let (second, took) = timed(post(&server, Transport::Tcp, "/transform", &body)).await;
    assert_error(&second, 503, 9522);
    let retry: u32 = second
        .header("retry-after")
        .unwrap_or_else(|| panic!("an overload carries Retry-After: {:?}", second.headers))
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1200),
        "refused after the queue timeout, not at once nor after the job: {took:?}"
    );
    let first = read_response(&mut first, Reading::FAST).await;
    assert_image(&first, image::ImageFormat::Png, 16, 10);

    // Over a limit (two draws, one allowed): not an overload, so no invitation to retry.
    let logo = corpus("overlay-logo-337x330.png");
    let over_limit = multipart(&[
        file("image", &photo()),
        file("draw_image", &logo),
        file("draw_image", &logo),
        field(
            "transforms",
            r#"[{"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":2,"targetImageIndex":0}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let refused = post(&server, Transport::Unix, "/transform", &over_limit).await;
    assert_error(&refused, 413, 9413);
    assert_eq!(
        refused.header("retry-after"),
        None,
        "a limit is not worth retrying"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_past_its_deadline_is_9529() {
    let server = TestServer::start_with(
        |c| c.limits.deadline = Duration::from_millis(100),
        Some(Arc::new(SlowEngine(Duration::from_millis(3000)))),
    )
    .await;
    let body = transform_body(&photo(), "[]", "image/png");
    let (response, took) = timed(post(&server, Transport::Tcp, "/transform", &body)).await;
    assert_error(&response, 504, 9529);
    assert!(took < Duration::from_millis(2900), "9529 took {took:?}");
    server.stop().await.unwrap();
}
