//! Bounded under abuse (issue 17): the real binary against the traffic that used to exhaust it.
//! Each case measures the server's resident memory from `/proc` (`VmHWM` for the peak) and checks
//! it stays under [`RSS_BOUND_KB`] with a 512 MiB memory budget, and comes back near its baseline
//! afterwards; the slow-client case checks that well-behaved clients keep being served.
//!
//! The tests run one at a time ([`SERIAL`]): each needs the machine's two cores to itself for its
//! timings and its memory figures.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::common::*;
use support::spawned::{good_png, multipart_type, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

/// The memory budget every case here runs with.
const BUDGET: &str = "512M";

/// Peak resident memory allowed while a case runs: the budget plus the process itself.
const RSS_BOUND_KB: u64 = 768 * 1024;

/// How far above its baseline the server may stay once a case is over.
const AFTER_MARGIN_KB: u64 = 100 * 1024;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Waits (at most `within`) for the server's RSS to come back under `bound_kb`; returns it.
async fn settles_under(backend: &Backend, bound_kb: u64, within: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let rss = backend.rss_kb();
        if rss < bound_kb || started.elapsed() > within {
            return rss;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the memory a case cost: the peak RSS so far under [`RSS_BOUND_KB`], and the RSS, once
/// it settles (waiting at most `within`), within [`AFTER_MARGIN_KB`] of `baseline`.
async fn assert_memory_bounded(backend: &Backend, case: &str, baseline: u64, within: Duration) {
    let peak = backend.peak_rss_kb();
    let after = settles_under(backend, baseline + AFTER_MARGIN_KB, within).await;
    eprintln!(
        "{case}: RSS baseline {} MB, peak {} MB, after {} MB",
        baseline / 1024,
        peak / 1024,
        after / 1024
    );
    assert!(peak < RSS_BOUND_KB, "{case}: peak RSS {} MB", peak / 1024);
    assert!(
        after < baseline + AFTER_MARGIN_KB,
        "{case}: RSS {} MB after, baseline {} MB",
        after / 1024,
        baseline / 1024
    );
}

/// Connects, retrying while the listen queue is full.
async fn connect(socket: &Path) -> UnixStream {
    let started = Instant::now();
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return stream,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "cannot connect: {error}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn request_head(extra: &str) -> String {
    format!(
        "POST /transform HTTP/1.1\r\nhost: images.local\r\ncontent-type: {}\r\ntransfer-encoding: chunked\r\n{extra}\r\n",
        multipart_type()
    )
}

/// The status, `retry-after` and whether the answer is complete (its body as long as announced),
/// from all the bytes a client read.
fn parse_answer(bytes: &[u8]) -> Option<(u16, Option<String>, bool)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(": ")
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.to_owned())
    };
    let complete = header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|length| body.len() == length);
    Some((status, header("retry-after"), complete))
}

/// 40 clients each ask for the raw RGBA of a 12 MP photo (48 MB) and read nothing. The answers
/// are held within the budget (later jobs wait, then get 503 with `Retry-After`), and the send
/// timeout frees them while the clients are still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_read_nothing_hold_no_more_than_the_budget() {
    let _serial = SERIAL.lock().await;
    let backend = Backend::spawn_with(&[
        ("IMGBIND_MEMORY_BUDGET", BUDGET),
        ("IMGBIND_SEND_TIMEOUT", "3s"),
    ])
    .await;
    let body = transform_body(
        &corpus("photo-16mp-seeding-progressive.jpg"),
        r#"[{"imageIndex":0,"width":4608}]"#,
        "rgba",
    );
    // One answer read in full: the warmed-up baseline.
    let warm = backend.post_multipart("/transform", &body).await;
    assert_eq!(warm.status, 200, "{}", warm.text());
    let side = |name| warm.header(name).unwrap().parse::<usize>().unwrap();
    let (width, height) = (side("imgbind-width"), side("imgbind-height"));
    assert_eq!(warm.body.len(), width * height * 4);
    assert!(width * height > 11_900_000, "{width}x{height}: about 12 MP");
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = backend.rss_kb();

    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut conn = connect(&backend.socket()).await;
        conn.write_all(request_head("").as_bytes()).await.unwrap();
        write_chunked(&mut conn, &body, 64 * 1024).await.unwrap();
        clients.push(conn);
    }
    // Every job is answered or refused, and every held answer is cut off by the send timeout,
    // while the clients keep their connections open and read nothing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_memory_bounded(
        &backend,
        "40 non-reading clients of 48 MB answers",
        baseline,
        Duration::from_secs(15),
    )
    .await;

    // Now the clients read what they were sent: a complete 503 with Retry-After, or (their
    // answer was cut off unread) part of a 200.
    let (mut refused, mut cut) = (0, 0);
    for mut conn in clients {
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut bytes)).await;
        match parse_answer(&bytes) {
            Some((503, Some(_), true)) => refused += 1,
            Some((200, None, false)) => cut += 1,
            other => panic!("unexpected answer {other:?} ({} bytes)", bytes.len()),
        }
    }
    eprintln!(
        "40 non-reading clients of 48 MB answers: {cut} cut off by the send timeout, {refused} \
         refused (503)"
    );
    assert!(cut >= 1, "some answers were produced and held");
    backend.assert_still_serving("40 non-reading clients").await;
}

/// 60 clients each send 19 MB of a 20 MB upload and then send nothing more. Uploads hold at most
/// their share of the budget (a body past it is refused 9522 with `Retry-After`), and the least
/// body rate cuts the stalled ones off (9402).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_no_more_than_their_share() {
    let _serial = SERIAL.lock().await;
    let backend = Backend::spawn_with(&[
        ("IMGBIND_MEMORY_BUDGET", BUDGET),
        ("IMGBIND_BODY_RATE_WINDOW", "3s"),
    ])
    .await;
    backend.assert_still_serving("start").await;
    let baseline = backend.rss_kb();

    // A 20 MB image part; 19 MB of the body are sent.
    let image = vec![0x5a; 20_000_000];
    let body = multipart(&[
        file("image", &image),
        field("transforms", "[]"),
        field("output_format", "image/png"),
    ]);
    let sent = &body[..19_000_000];
    let socket = backend.socket();
    let clients: Vec<_> = (0..60)
        .map(|_| {
            let (socket, sent) = (socket.clone(), sent.to_vec());
            tokio::spawn(async move {
                let conn = connect(&socket).await;
                let (mut reader, mut writer) = tokio::io::split(conn);
                let writing = tokio::spawn(async move {
                    writer.write_all(request_head("").as_bytes()).await?;
                    for piece in sent.chunks(256 * 1024) {
                        writer
                            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                            .await?;
                        writer.write_all(piece).await?;
                        writer.write_all(b"\r\n").await?;
                    }
                    // Then nothing more, with the connection kept open.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<_, std::io::Error>(writer)
                });
                let mut bytes = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(40), reader.read_to_end(&mut bytes))
                        .await;
                writing.abort();
                bytes
            })
        })
        .collect();
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await.unwrap());
    }
    assert_memory_bounded(
        &backend,
        "60 stalled 20 MB uploads",
        baseline,
        Duration::from_secs(15),
    )
    .await;

    let (mut refused, mut too_slow) = (0, 0);
    for bytes in &answers {
        match parse_answer(bytes) {
            Some((503, Some(_), true)) => refused += 1,
            Some((413, None, true)) if String::from_utf8_lossy(bytes).contains("9402") => {
                too_slow += 1;
            }
            other => panic!("unexpected answer {other:?} ({} bytes)", bytes.len()),
        }
    }
    eprintln!(
        "60 stalled 20 MB uploads: {too_slow} cut off as too slow (9402), {refused} refused (503)"
    );
    assert!(too_slow >= 1 && refused >= 1, "both bounds were reached");
    backend.assert_still_serving("60 stalled uploads").await;
}

/// One request draws six 100 MP PNG layers (each a few hundred KB) onto a canvas resized to
/// 200 px: every layer is within `max_pixels`, but together they need far more memory than the
/// budget. It is refused at once with 9413 (a limit: no `Retry-After`), before any decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draw_layers_are_admitted_by_their_summed_memory() {
    let _serial = SERIAL.lock().await;
    let backend = Backend::spawn_with(&[("IMGBIND_MEMORY_BUDGET", BUDGET)]).await;
    backend.assert_still_serving("start").await;
    let baseline = backend.rss_kb();
    let layer = flat_png(10_000, 10_000);
    assert!(layer.len() < 1_000_000, "{} bytes", layer.len());
    let canvas = good_png();
    // Each layer is resized before it is drawn, so it is decoded whole: its memory counts in
    // full. (A layer drawn as it is needs only the part that lands: below.)
    for layers in [6, 2] {
        let mut parts = vec![file("image", &canvas)];
        let mut transforms = vec![r#"{"imageIndex":0,"width":200}"#.to_owned()];
        for n in 1..=layers {
            parts.push(file("draw_image", &layer));
            transforms.push(format!(r#"{{"imageIndex":{n},"width":150}}"#));
            transforms.push(format!(r#"{{"drawImageIndex":{n},"targetImageIndex":0}}"#));
        }
        let transforms = format!("[{}]", transforms.join(","));
        parts.push(field("transforms", &transforms));
        parts.push(field("output_format", "image/png"));
        let (answer, took) = timed(backend.post_multipart("/transform", &multipart(&parts))).await;
        assert_error(&answer, 413, 9413);
        assert!(answer.text().contains("memory"), "{}", answer.text());
        assert_eq!(answer.header("retry-after"), None, "a limit is not retried");
        assert!(took < Duration::from_secs(2), "refused after {took:?}");
    }
    // A layer that fits the budget is drawn.
    let small = corpus("overlay-logo-337x330.png");
    let fits = multipart(&[
        file("image", &canvas),
        file("draw_image", &small),
        field(
            "transforms",
            r#"[{"imageIndex":0,"width":200},{"drawImageIndex":1,"targetImageIndex":0}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let drawn = backend.post_multipart("/transform", &fits).await;
    assert_eq!(drawn.status, 200, "{}", drawn.text());
    // Six of the 100 MP layers drawn as they are: each is cut to the 200 px canvas's share and
    // decoded as that window (engine/src/codecs/png.rs), so they fit the budget and are drawn.
    let mut parts = vec![file("image", &canvas)];
    let mut transforms = vec![r#"{"imageIndex":0,"width":200}"#.to_owned()];
    for n in 1..=6 {
        parts.push(file("draw_image", &layer));
        transforms.push(format!(r#"{{"drawImageIndex":{n},"targetImageIndex":0}}"#));
    }
    let transforms = format!("[{}]", transforms.join(","));
    parts.push(field("transforms", &transforms));
    parts.push(field("output_format", "image/png"));
    let cut = backend
        .post_multipart("/transform", &multipart(&parts))
        .await;
    assert_eq!(cut.status, 200, "{}", cut.text());
    assert_memory_bounded(
        &backend,
        "six and two 100 MP layers: 9413 at once, or drawn as windows",
        baseline,
        Duration::from_secs(10),
    )
    .await;
}

/// A one-colour grey PNG (100 MP of it compresses to a few hundred KB).
fn flat_png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        &vec![128u8; width as usize * height as usize],
        width,
        height,
        image::ExtendedColorType::L8,
    )
    .unwrap();
    out
}

/// Raises this process's open-file limit (inherited by the spawned server) to at least `want`.
fn raise_open_files(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= want,
        "this test needs {want} open files; the hard limit is {hard}"
    );
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
}

/// 4000 connections send a request head and then their body at one byte per second. At the
/// connection cap the slowest uploads are displaced (503, `Retry-After`), a newcomer over the cap
/// is answered 503, and the least body rate cuts the rest off (9402): every slow client gets a
/// complete answer, and well-behaved clients are served within 2 s throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_slow_bodies_do_not_keep_good_clients_out() {
    let _serial = SERIAL.lock().await;
    raise_open_files(10_000);
    let backend = Backend::spawn_with(&[("IMGBIND_BODY_RATE_WINDOW", "5s")]).await;
    let socket = backend.socket();

    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..4000 {
        let socket = socket.clone();
        slow.push(tokio::spawn(async move {
            let conn = connect(&socket).await;
            let (mut reader, mut writer) = tokio::io::split(conn);
            let trickle = tokio::spawn(async move {
                let head = request_head("");
                writer.write_all(head.as_bytes()).await?;
                loop {
                    writer.write_all(b"1\r\n-\r\n").await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                #[allow(unreachable_code)]
                Ok::<_, std::io::Error>(())
            });
            let mut bytes = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(40), reader.read_to_end(&mut bytes)).await;
            trickle.abort();
            bytes
        }));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed())).await;

    // Well-behaved clients, one every 300 ms for 9 s, each on a new connection.
    let good_body = transform_body(
        &good_png(),
        r#"[{"imageIndex":0,"width":20,"height":15,"fit":"squeeze"}]"#,
        "image/png",
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let (answer, took) = timed(async {
            let mut conn: Conn = Box::new(connect(&socket).await);
            send_post(&mut conn, "/transform", "", &good_body).await;
            read_response(&mut conn, Reading::FAST).await
        })
        .await;
        assert_eq!(answer.status, 200, "after {took:?}: {}", answer.text());
        assert!(took < Duration::from_secs(2), "served after {took:?}");
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (mut displaced, mut too_slow, mut other) = (0, 0, Vec::new());
    for client in slow {
        let bytes = client.await.unwrap();
        match parse_answer(&bytes) {
            Some((503, Some(_), true)) => displaced += 1,
            Some((413, None, true)) => too_slow += 1,
            answer => other.push((answer, bytes.len())),
        }
    }
    eprintln!(
        "4000 slow bodies: {displaced} answered 503 (displaced or over the cap), {too_slow} cut \
         off as too slow (9402), {} otherwise; 30 good clients served, slowest in {slowest:?}; \
         {:?} in all; server peak RSS {} MB",
        other.len(),
        started.elapsed(),
        backend.peak_rss_kb() / 1024
    );
    if !other.is_empty() {
        let mut conn = connect(&socket).await;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let metrics = read_response(&mut conn, Reading::FAST).await;
        for line in metrics
            .text()
            .lines()
            .filter(|l| l.contains("connections_") && !l.starts_with('#'))
        {
            eprintln!("{line}");
        }
    }
    assert!(
        other.is_empty(),
        "every slow client gets a complete answer: {:?}",
        &other[..other.len().min(5)]
    );
    backend.assert_still_serving("4000 slow bodies").await;
}
