//! Results streamed as they are encoded (issue #5, time to first byte): PNG goes out chunked and
//! byte-identical to the one-block encoding, raw `rgba` streams with its exact `Content-Length`,
//! the first body bytes reach the client while the encoder is still running, a failure after the
//! head aborts the body (never a clean end) and is counted as an aborted delivery, a failure
//! before the first chunk still gets its coded answer, and JPEG/WebP/AVIF, small PNGs and
//! HTTP/1.0 clients keep one block with `Content-Length`. Over the Unix socket and TCP.

mod support;

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgbind_backend::{Engine, PixelEngine};
use imgbind_engine::{Encoded, Job, Limits, OutputHead, OutputSink, Source, Timings};
use imgbind_wire::{parse_steps, Error, InfoResponse, OutputFormat, OutputOptions};
use support::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 2560×1600: about 7 MB as PNG, 16.4 MB as raw RGBA.
const PHOTO: &str = "photo-4mp-eveningglow.jpg";

fn photo() -> Vec<u8> {
    corpus(PHOTO)
}

/// What the one-block engine gives for the same request.
fn one_block(image: &[u8], transforms: &str, format: OutputFormat) -> Encoded {
    imgbind_engine::run(
        Job {
            sources: vec![Source::Image(image.to_vec().into())],
            steps: parse_steps(transforms, 1).unwrap(),
            output: OutputOptions::new(format),
        },
        &Limits::default(),
    )
    .unwrap()
}

/// A sink in front of the server's: passes everything on, and at the write that would go past
/// `after` bytes either blocks
/// until the test says go (`hold`), or fails like a broken encoder (`fail`).
struct Tap<'a> {
    inner: &'a mut dyn OutputSink,
    passed: usize,
    after: usize,
    hold: Option<(std_mpsc::Sender<()>, std_mpsc::Receiver<()>)>,
    fail: bool,
}

impl OutputSink for Tap<'_> {
    fn begin(&mut self, head: &OutputHead) -> std::io::Result<()> {
        self.inner.begin(head)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.passed + bytes.len() > self.after {
            if let Some((reached, go)) = self.hold.take() {
                // Tell the test the encoder is here, then wait (bounded) for its go.
                let _ = reached.send(());
                let _ = go.recv_timeout(Duration::from_secs(60));
            }
            if self.fail {
                return Err(std::io::Error::other("forced encoder failure"));
            }
        }
        self.passed += bytes.len();
        self.inner.write(bytes)
    }

    fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.write(&bytes)
    }
}

/// The real engine behind a [`Tap`]: `Hold` pauses the encoder mid-output until released;
/// `Fail` makes the output fail after some bytes.
#[derive(Clone, Copy)]
enum Mode {
    Hold,
    Fail,
}

struct TapEngine {
    mode: Mode,
    after: usize,
    /// Hold mode: the encoder reports here when it is paused, and waits for `go`.
    reached: Mutex<Option<std_mpsc::Sender<()>>>,
    go: Mutex<Option<std_mpsc::Receiver<()>>>,
}

impl TapEngine {
    fn failing_after(after: usize) -> Arc<TapEngine> {
        Arc::new(TapEngine {
            mode: Mode::Fail,
            after,
            reached: Mutex::new(None),
            go: Mutex::new(None),
        })
    }

    /// A holding engine, the receiver telling when the encoder paused, and the sender releasing it.
    fn holding_after(
        after: usize,
    ) -> (Arc<TapEngine>, std_mpsc::Receiver<()>, std_mpsc::Sender<()>) {
        let (reached_tx, reached_rx) = std_mpsc::channel();
        let (go_tx, go_rx) = std_mpsc::channel();
        let engine = Arc::new(TapEngine {
            mode: Mode::Hold,
            after,
            reached: Mutex::new(Some(reached_tx)),
            go: Mutex::new(Some(go_rx)),
        });
        (engine, reached_rx, go_tx)
    }
}

impl Engine for TapEngine {
    fn run_into(
        &self,
        job: Job,
        limits: &Limits,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        let hold = match self.mode {
            Mode::Hold => {
                let reached = self.reached.lock().unwrap().take();
                let go = self.go.lock().unwrap().take();
                reached.zip(go)
            }
            Mode::Fail => None,
        };
        let mut tap = Tap {
            inner: sink,
            passed: 0,
            after: self.after,
            hold,
            fail: matches!(self.mode, Mode::Fail),
        };
        PixelEngine.run_into(job, limits, timings, &mut tap)
    }

    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
        PixelEngine.info(bytes, limits)
    }
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let mut conn = server.connect(Transport::Unix).await;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: images.local\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut conn, Reading::FAST).await;
    metric_samples(&response.text())
}

fn requests(metrics: &HashMap<String, f64>, code: &str, delivery: &str) -> f64 {
    let key = format!(
        "imgbind_requests_total{{route=\"/transform\",code=\"{code}\",delivery=\"{delivery}\"}}"
    );
    metrics.get(&key).copied().unwrap_or(0.0)
}

/// Waits (bounded) until the metrics show `count` transform requests with `code` and `delivery`
/// (a request is counted just after its connection's last write).
async fn eventually_counted(server: &TestServer, code: &str, delivery: &str, count: f64) {
    for _ in 0..100 {
        if requests(&scrape(server).await, code, delivery) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = scrape(server).await;
    panic!(
        "expected {count} /transform {code} {delivery}; have {}",
        requests(&metrics, code, delivery)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_png_streams_chunked_and_identical_to_the_one_block_encoding() {
    let server = TestServer::start().await;
    let image = photo();
    let expected = one_block(&image, "[]", OutputFormat::Png);
    assert!(expected.bytes.len() > 4_000_000, "{}", expected.bytes.len());
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        send_post(
            &mut conn,
            "/transform",
            "",
            &transform_body(&image, "[]", "image/png"),
        )
        .await;
        let response = read_response(&mut conn, Reading::SLOW).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            response.is_chunked(),
            "{transport:?}: {:?}",
            response.headers
        );
        assert_eq!(response.header("content-length"), None);
        assert_eq!(response.header("content-type"), Some("image/png"));
        assert!(
            response.body == expected.bytes,
            "{transport:?}: streamed PNG differs from the one-block encoding ({} vs {} bytes)",
            response.body.len(),
            expected.bytes.len()
        );
        assert_image(&response, image::ImageFormat::Png, 2560, 1600);
        // The connection is reusable after a chunked answer.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: images.local\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut conn, Reading::FAST).await.status, 200);
    }
    eventually_counted(&server, "ok", "complete", 2.0).await;
    server.stop().await.unwrap();
}

/// Reads a response head and at least one body byte; returns the head's lines and the bytes.
async fn head_and_first_bytes(conn: &mut Conn) -> (String, Vec<u8>) {
    let mut buffer = Vec::new();
    loop {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut chunk))
            .await
            .expect("no response bytes while the encoder is paused")
            .unwrap();
        assert!(n > 0, "closed early");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            if buffer.len() > end + 4 + 16 {
                let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
                return (head, buffer[end + 4..].to_vec());
            }
        }
    }
}

/// The ordering fact behind TTFB: the encoder is paused (by the test) in the middle of its
/// output, and the client has the answer's head and its first body bytes already — so the
/// answer started while encoding was still running. Released, the rest arrives and the whole
/// body equals the one-block encoding. PNG (chunked) and raw RGBA (`Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_bytes_arrive_while_the_encoder_is_still_running() {
    let image = photo();
    for (format, mime, chunked) in [
        (OutputFormat::Png, "image/png", true),
        (OutputFormat::Rgba, "rgba", false),
    ] {
        let expected = one_block(&image, "[]", format);
        for transport in BOTH {
            // Paused after 512 KiB: well past the first 64 KiB chunk, far from the end.
            let (engine, reached, go) = TapEngine::holding_after(512 * 1024);
            let server = TestServer::start_with(|_| {}, Some(engine)).await;
            let mut conn = server.connect(transport).await;
            send_post(
                &mut conn,
                "/transform",
                "",
                &transform_body(&image, "[]", mime),
            )
            .await;
            let (head, first) = head_and_first_bytes(&mut conn).await;
            // The encoder is paused right now: it reported so, and waits for `go`.
            tokio::task::spawn_blocking(move || reached.recv_timeout(Duration::from_secs(60)))
                .await
                .unwrap()
                .expect("the encoder never paused");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let head = head.to_ascii_lowercase();
            if chunked {
                assert!(head.contains("transfer-encoding: chunked"), "{head}");
                assert!(!head.contains("content-length"), "{head}");
            } else {
                assert!(
                    head.contains(&format!("content-length: {}", expected.bytes.len())),
                    "{head}"
                );
            }
            assert!(!first.is_empty());
            go.send(()).unwrap();
            // The rest, then the whole body against the one-block encoding.
            let mut rest = Vec::new();
            let mut chunk = vec![0u8; 1 << 20];
            let body = loop {
                let n = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                rest.extend_from_slice(&chunk[..n]);
                let mut all = first.clone();
                all.extend_from_slice(&rest);
                if chunked {
                    if all.ends_with(b"\r\n0\r\n\r\n") {
                        break dechunk(&all);
                    }
                } else if all.len() == expected.bytes.len() {
                    break all;
                }
                assert!(n > 0, "{format:?} {transport:?}: closed early");
            };
            assert!(
                body == expected.bytes,
                "{format:?} {transport:?}: body differs"
            );
            server.stop().await.unwrap();
        }
    }
}

/// Decodes a complete chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap(), 16).unwrap();
        raw = &raw[end + 2..];
        if size == 0 {
            assert_eq!(raw, b"\r\n");
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rgba_streams_with_its_exact_content_length() {
    let server = TestServer::start().await;
    let image = photo();
    // A JPEG decodes to RGB: the RGBA answer is converted and sent in row blocks.
    let expected = one_block(&image, "[]", OutputFormat::Rgba);
    assert_eq!(expected.bytes.len(), 2560 * 1600 * 4);
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        send_post(
            &mut conn,
            "/transform",
            "",
            &transform_body(&image, "[]", "rgba"),
        )
        .await;
        let response = read_response(&mut conn, Reading::SLOW).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(!response.is_chunked());
        assert_eq!(response.content_length(), 2560 * 1600 * 4);
        assert_eq!(response.header("imgbind-width"), Some("2560"));
        assert_eq!(response.header("imgbind-height"), Some("1600"));
        assert!(response.body == expected.bytes, "{transport:?}");
    }
    server.stop().await.unwrap();
}

/// A failure after the answer started: the body ends without its chunked terminator (PNG) or
/// short of its `Content-Length` (RGBA) — the client sees an error, never a clean end — and the
/// request is counted as an aborted 9523. The server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_stream_aborts_the_body() {
    // Fails after 1 MiB: several chunks are out by then.
    let server = TestServer::start_with(|_| {}, Some(TapEngine::failing_after(1 << 20))).await;
    let image = photo();
    let mut aborted = 0.0;
    for (mime, chunked) in [("image/png", true), ("rgba", false)] {
        for transport in BOTH {
            let mut conn = server.connect(transport).await;
            send_post(
                &mut conn,
                "/transform",
                "",
                &transform_body(&image, "[]", mime),
            )
            .await;
            let error = try_read_response(&mut conn, Reading::FAST)
                .await
                .expect_err("a failed stream must not read as a complete answer");
            if chunked {
                assert!(
                    error.contains("before the terminating chunk") || error.contains("read failed"),
                    "{mime} {transport:?}: {error}"
                );
            } else {
                assert!(
                    error.contains(&format!("of {} body bytes", 2560 * 1600 * 4)),
                    "{mime} {transport:?}: {error}"
                );
            }
            aborted += 1.0;
        }
    }
    eventually_counted(&server, "9523", "aborted", aborted).await;
    assert_eq!(requests(&scrape(&server).await, "ok", "complete"), 0.0);
    // Still serving.
    let small = transform_body(&image, r#"[{"imageIndex":0,"width":64}]"#, "image/jpeg");
    let response = post(&server, Transport::Tcp, "/transform", &small).await;
    assert_image(&response, image::ImageFormat::Jpeg, 64, 40);
    server.stop().await.unwrap();
}

/// A failure before the first chunk was handed over: the normal coded answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_before_the_first_chunk_gets_a_coded_answer() {
    // At the first IDAT chunk: only the PNG signature and IHDR were written, still under the
    // 64 KiB the server collects before it answers.
    let server = TestServer::start_with(|_| {}, Some(TapEngine::failing_after(10 * 1024))).await;
    let image = photo();
    for transport in BOTH {
        let response = post(
            &server,
            transport,
            "/transform",
            &transform_body(&image, "[]", "image/png"),
        )
        .await;
        assert_error(&response, 500, 9523);
        assert!(
            response.text().contains("forced encoder failure"),
            "{}",
            response.text()
        );
    }
    eventually_counted(&server, "9523", "complete", 2.0).await;
    server.stop().await.unwrap();
}

/// JPEG, WebP and AVIF (encoders that emit at the end), a PNG smaller than one chunk, a palette
/// PNG (`quality` given), and any result for an HTTP/1.0 client: one block with `Content-Length`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_block_answers_keep_their_content_length() {
    let server = TestServer::start().await;
    let image = photo();
    let resize = r#"[{"imageIndex":0,"width":120}]"#;
    for (mime, format) in [
        ("image/jpeg", OutputFormat::Jpeg),
        ("image/webp", OutputFormat::Webp),
        ("image/avif", OutputFormat::Avif),
        ("image/gif", OutputFormat::Gif),
        ("image/png", OutputFormat::Png),
    ] {
        let expected = one_block(&image, resize, format);
        if format == OutputFormat::Png {
            assert!(expected.bytes.len() < 64 * 1024, "{}", expected.bytes.len());
        }
        for transport in BOTH {
            let response = post(
                &server,
                transport,
                "/transform",
                &transform_body(&image, resize, mime),
            )
            .await;
            assert_eq!(response.status, 200, "{mime}: {}", response.text());
            assert!(!response.is_chunked(), "{mime} {transport:?}");
            assert_eq!(response.content_length(), expected.bytes.len(), "{mime}");
            assert!(response.body == expected.bytes, "{mime} {transport:?}");
        }
    }

    // A PNG with a quality is a palette PNG (PNG8, the palette chosen from the whole image):
    // one block, even when large.
    let png8 = multipart(&[
        file("image", &image),
        field("transforms", "[]"),
        field("output_format", "image/png"),
        field("output_quality", "80"),
    ]);
    for transport in BOTH {
        let response = post(&server, transport, "/transform", &png8).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(!response.is_chunked(), "PNG8 {transport:?}");
        assert!(response.content_length() > 64 * 1024);
        assert_image(&response, image::ImageFormat::Png, 2560, 1600);
    }

    // HTTP/1.0 has no chunked encoding: a large PNG is collected and sent with its length.
    let expected = one_block(&image, "[]", OutputFormat::Png);
    let body = transform_body(&image, "[]", "image/png");
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        conn.write_all(
            format!(
                "POST /transform HTTP/1.0\r\nhost: images.local\r\n\
                 content-type: multipart/form-data; boundary={BOUNDARY}\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        conn.write_all(&body).await.unwrap();
        let response = read_response(&mut conn, Reading::FAST).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(!response.is_chunked());
        assert_eq!(response.content_length(), expected.bytes.len());
        assert!(response.body == expected.bytes, "HTTP/1.0 {transport:?}");
        expect_eof(&mut conn).await;
    }
    server.stop().await.unwrap();
}

/// One pause point of [`StopsEngine`]: after this many output bytes, report and wait for go.
type Stop = (usize, std_mpsc::Sender<()>, std_mpsc::Receiver<()>);

/// The real engine, paused at each stop in turn; reports how the job ended.
struct StopsEngine {
    stops: Mutex<Vec<Stop>>,
    ended: Mutex<Option<std_mpsc::Sender<Result<(), String>>>>,
}

struct Stops<'a> {
    inner: &'a mut dyn OutputSink,
    passed: usize,
    stops: std::collections::VecDeque<Stop>,
}

impl OutputSink for Stops<'_> {
    fn begin(&mut self, head: &OutputHead) -> std::io::Result<()> {
        self.inner.begin(head)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some((after, _, _)) = self.stops.front() {
            if self.passed + bytes.len() > *after {
                let (_, reached, go) = self.stops.pop_front().unwrap();
                let _ = reached.send(());
                let _ = go.recv_timeout(Duration::from_secs(60));
            }
        }
        self.passed += bytes.len();
        self.inner.write(bytes)
    }
}

impl Engine for StopsEngine {
    fn run_into(
        &self,
        job: Job,
        limits: &Limits,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        let mut stops = Stops {
            inner: sink,
            passed: 0,
            stops: std::mem::take(&mut *self.stops.lock().unwrap()).into(),
        };
        let result = PixelEngine.run_into(job, limits, timings, &mut stops);
        if let Some(ended) = self.ended.lock().unwrap().take() {
            let _ = ended.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        result
    }

    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
        PixelEngine.info(bytes, limits)
    }
}

/// Waits (blocking, bounded) on a std channel from async code.
async fn recv<T: Send + 'static>(rx: std_mpsc::Receiver<T>) -> T {
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("timed out waiting for the engine")
}

/// A client gone mid-stream: hyper drops the body, and the encoder's next write fails, so the job
/// ends early (its slot freed) instead of encoding for nobody. Ordered, not timed: the encoder is
/// paused after 512 KiB (client reads the head and first bytes, then closes), released, paused
/// again after 2 MiB until the request is counted as aborted (the body was dropped), released:
/// its next write fails (if one did not fail before the second pause already) and the job ends
/// with "the response was abandoned".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_stream_stops_the_encoder() {
    let image = photo();
    for transport in BOTH {
        let (reached1_tx, reached1) = std_mpsc::channel();
        let (go1, go1_rx) = std_mpsc::channel();
        let (reached2_tx, _reached2) = std_mpsc::channel();
        let (go2, go2_rx) = std_mpsc::channel();
        let (ended_tx, ended) = std_mpsc::channel();
        let engine = Arc::new(StopsEngine {
            stops: Mutex::new(vec![
                (512 * 1024, reached1_tx, go1_rx),
                (2 << 20, reached2_tx, go2_rx),
            ]),
            ended: Mutex::new(Some(ended_tx)),
        });
        let server = TestServer::start_with(|config| config.jobs = 1, Some(engine)).await;
        let mut conn = server.connect(transport).await;
        send_post(
            &mut conn,
            "/transform",
            "",
            &transform_body(&image, "[]", "image/png"),
        )
        .await;
        let (head, _first) = head_and_first_bytes(&mut conn).await;
        assert!(head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"));
        recv(reached1).await;
        drop(conn);
        go1.send(()).unwrap();
        eventually_counted(&server, "ok", "aborted", 1.0).await;
        // The encoder may already have stopped before its second pause (its writes failed as
        // soon as the body was dropped); then nobody is waiting for this go.
        let _ = go2.send(());
        let result = recv(ended).await;
        let error = result.expect_err("the job must not finish for a client that is gone");
        assert!(error.contains("the response was abandoned"), "{error}");
        // The one job slot is free again.
        let small = transform_body(&image, r#"[{"imageIndex":0,"width":64}]"#, "image/jpeg");
        let response = post(&server, transport, "/transform", &small).await;
        assert_image(&response, image::ImageFormat::Jpeg, 64, 40);
        server.stop().await.unwrap();
    }
}
