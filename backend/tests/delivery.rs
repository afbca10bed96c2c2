//! Every byte arrives: large answers to slow readers, half-closed clients, early errors to uploads
//! still in flight, `Connection: close`, concurrency — on the Unix socket and on TCP, with raw
//! sockets and byte counts (see `shared/reference/delivery.md` for the failures these catch).

mod support;

use std::time::Duration;

use support::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PHOTO: &str = "photo-4mp-eveningglow.jpg"; // 2560×1600
const RGBA_BYTES: usize = 2560 * 1600 * 4; // 16,384,000

fn rgba_body() -> Vec<u8> {
    transform_body(&corpus(PHOTO), "[]", "rgba")
}

fn assert_full_rgba(response: &RawResponse) {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.content_length(), RGBA_BYTES);
    assert_eq!(response.body.len(), RGBA_BYTES);
    assert_eq!(response.header("imgbind-width"), Some("2560"));
    assert_eq!(response.header("imgbind-height"), Some("1600"));
}

/// Shrinks the client's receive buffer so the server's writes back up, as with a slow consumer.
fn small_receive_buffer(stream: &tokio::net::UnixStream) {
    use std::os::fd::AsFd;
    nix::sys::socket::setsockopt(&stream.as_fd(), nix::sys::socket::sockopt::RcvBuf, &16384)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_mb_to_a_slow_reader_on_unix() {
    let server = TestServer::start().await;
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    small_receive_buffer(&stream);
    let mut conn: Conn = Box::new(stream);
    send_post(&mut conn, "/transform", "", &rgba_body()).await;
    let (response, took) = timed(read_response(&mut conn, Reading::SLOW)).await;
    assert_full_rgba(&response);
    eprintln!(
        "slow reader (unix): {} of {} bytes in {took:?}",
        response.body.len(),
        response.content_length()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn half_closed_client_gets_the_whole_answer() {
    let server = TestServer::start().await;
    let body = rgba_body();
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        send_post(&mut conn, "/transform", "", &body).await;
        conn.shutdown().await.unwrap(); // shutdown(SHUT_WR)
        let response = read_response(&mut conn, Reading::SLOW).await;
        assert_full_rgba(&response);
        expect_eof(&mut conn).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_close_with_a_large_answer() {
    let server = TestServer::start().await;
    let body = rgba_body();
    for transport in BOTH {
        let mut conn = server.connect(transport).await;
        send_post(&mut conn, "/transform", "connection: close\r\n", &body).await;
        let response = read_response(&mut conn, Reading::SLOW).await;
        assert_full_rgba(&response);
        assert_eq!(response.header("connection"), Some("close"));
        expect_eof(&mut conn).await;
    }
    server.stop().await.unwrap();
}

/// Answers decided while the upload is still arriving (bad part first, too large, not an image):
/// the server reads the rest, the answer arrives whole (no reset on TCP), and the connection is
/// still usable.
#[tokio::test(flavor = "multi_thread")]
async fn early_errors_to_multi_megabyte_uploads_arrive_intact() {
    let server = TestServer::start_with(|c| c.limits.max_input_bytes = 4_000_000, None).await;
    let garbage = vec![0x5Au8; 12_000_000];
    let cases: Vec<(&str, Vec<u8>, u16, u16)> = vec![
        (
            "unknown part first, then 12 MB",
            multipart(&[
                field("bogus", "x"),
                file("image", &garbage),
                field("transforms", "[]"),
                field("output_format", "image/png"),
            ]),
            400,
            9401,
        ),
        (
            "12 MB image over a 4 MB limit",
            transform_body(&garbage, "[]", "image/png"),
            413,
            9402,
        ),
        (
            "3 MB of garbage image",
            transform_body(&garbage[..3_000_000], "[]", "image/png"),
            415,
            9412,
        ),
    ];
    for transport in BOTH {
        for (what, body, status, code) in &cases {
            let conn = server.connect(transport).await;
            let (mut reader, mut writer) = tokio::io::split(conn);
            let upload = body.clone();
            // The upload goes on in its own task, in 16 KiB chunks with pauses, while the answer
            // is already on its way.
            let sender = tokio::spawn(async move {
                writer
                    .write_all(&chunked_head("/transform", ""))
                    .await
                    .unwrap();
                for piece in upload.chunks(1024 * 1024) {
                    write_chunked_piece(&mut writer, piece).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                writer.write_all(b"0\r\n\r\n").await.unwrap();
                writer
            });
            let response = read_response(&mut reader, Reading::SLOW).await;
            assert_eq!(
                response.status,
                *status,
                "{what} over {transport:?}: {}",
                response.text()
            );
            assert_error(&response, *status, *code);
            assert_eq!(response.header("connection"), None, "{what}");
            // The same connection serves the next request: the body was drained, not abandoned.
            let writer = sender.await.unwrap();
            let mut conn = reader.unsplit(writer);
            conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let health = read_response(&mut conn, Reading::FAST).await;
            assert_eq!(health.status, 200, "{what} over {transport:?}");
        }
    }
    server.stop().await.unwrap();
}

async fn write_chunked_piece<W: tokio::io::AsyncWrite + Unpin>(writer: &mut W, piece: &[u8]) {
    writer
        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
        .await
        .unwrap();
    writer.write_all(piece).await.unwrap();
    writer.write_all(b"\r\n").await.unwrap();
}

/// Past the drain bound, the early answer still arrives, marked `Connection: close`.
#[tokio::test(flavor = "multi_thread")]
async fn past_the_drain_bound_the_answer_closes_the_connection() {
    let server = TestServer::start_with(
        |c| {
            c.limits.max_input_bytes = 1_000_000;
            c.drain_max_bytes = 2_000_000;
        },
        None,
    )
    .await;
    let body = transform_body(&vec![1u8; 20_000_000], "[]", "image/png");
    let conn = server.connect(Transport::Unix).await;
    let (mut reader, mut writer) = tokio::io::split(conn);
    let sender = tokio::spawn(async move {
        // The server stops reading; this write then fails or blocks: either is fine.
        let _ = writer.write_all(&chunked_head("/transform", "")).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            write_chunked(&mut writer, &body, 256 * 1024),
        )
        .await;
    });
    let response = read_response(&mut reader, Reading::FAST).await;
    assert_error(&response, 413, 9402);
    assert_eq!(response.header("connection"), Some("close"));
    expect_end(&mut reader).await;
    sender.abort();
    server.stop().await.unwrap();
}

/// Several large answers at once, each read slowly on its own connection.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_large_answers_are_complete() {
    let server = TestServer::start().await;
    let body = transform_body(&corpus(PHOTO), r#"[{"imageIndex":0,"width":1280}]"#, "rgba");
    let mut clients = Vec::new();
    for i in 0..6 {
        let transport = if i % 2 == 0 {
            Transport::Unix
        } else {
            Transport::Tcp
        };
        let mut conn = server.connect(transport).await;
        let body = body.clone();
        clients.push(tokio::spawn(async move {
            send_post(&mut conn, "/transform", "", &body).await;
            read_response(&mut conn, Reading::SLOW).await
        }));
    }
    for client in clients {
        let response = client.await.unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.body.len(), 1280 * 800 * 4);
        assert_eq!(response.content_length(), 1280 * 800 * 4);
    }
    server.stop().await.unwrap();
}

/// Stopping the server while a large answer is being read slowly: the answer completes first.
#[tokio::test(flavor = "multi_thread")]
async fn graceful_stop_finishes_in_flight_answers() {
    let server = TestServer::start().await;
    let mut conn = server.connect(Transport::Unix).await;
    send_post(&mut conn, "/transform", "", &rgba_body()).await;
    // Read the head and a little of the body, then ask the server to stop.
    let mut first = vec![0u8; 4096];
    let n = conn.read(&mut first).await.unwrap();
    assert!(n > 0);
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut rest = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(all.len() - head_end, RGBA_BYTES, "body bytes before close");
    stopping.await.unwrap().unwrap();
}
