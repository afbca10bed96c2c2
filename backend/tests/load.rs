//! Load test (issue #6), run explicitly: `scripts/load-test.sh [seconds]` or
//! `IMGBIND_LOAD_SECS=120 cargo test --release -p imgbind-backend --test load -- --ignored --nocapture`.
//!
//! The real `imgbind` binary on a Unix socket, default settings, 64 concurrent clients (each request
//! on a fresh connection) for `IMGBIND_LOAD_SECS` (default 120) sending a fixed, seeded mix of good
//! and hostile requests, plus a burst of 24 concurrent 100 MP requests every 20 s (each retrying an
//! overload answer for up to 8 s, as a client would). Passes when:
//! - every good request is answered 200 with a complete body (exact `Content-Length`) that decodes
//!   to the expected size, or a coded 503 (`err=9522`, overload);
//! - every hostile request gets its own code (or 9522 when it needed the engine and the server was
//!   full);
//! - no request fails at the socket or takes longer than 60 s;
//! - peak RSS stays under [`MAX_PEAK_RSS_MB`], and 5 s after the load the RSS is within
//!   [`MAX_RSS_GROWTH_MB`] of the warmed-up baseline.
//!
//! Prints a `LOAD |` summary line (requests, 503s, p50/p99 of good requests, peak RSS, RSS after).

mod support;

use imgbind_testkit as hostile_inputs;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::ImageFormat;
use support::common::*;
use support::spawned::{hundred_megapixel_png, multipart_type, post_to, Backend};

/// Concurrent clients.
const CLIENTS: usize = 64;
/// Concurrent 100 MP requests in each burst.
const BURST: usize = 24;
/// How long each burst request keeps retrying while the server answers 503/9522.
const BURST_RETRY_FOR: Duration = Duration::from_secs(8);
/// Peak RSS bound: `--jobs` (one per core) 100 MP jobs at ~1 GB each (400 MB RGBA decode plus the
/// resize's buffers), plus bodies and the allocator's slack.
const MAX_PEAK_RSS_MB: u64 = 3 * 1024;
/// How far above the warmed-up baseline RSS may stay once the load has ended. What it guards
/// against is memory not handed back: without `malloc_trim` when the engine goes idle the backend
/// held 559 MB after the load (38 MB baseline, 1491 MB peak). With it the growth measured 82–188
/// MB over sessions 4–12 (fragmentation inside glibc's arenas and the runtime's per-connection
/// buffers), the high end in a fresh-clone run on a busier machine; 160 MB failed that run.
const MAX_RSS_GROWTH_MB: u64 = 256;

/// One kind of request in the mix.
#[derive(Clone)]
struct Kind {
    name: &'static str,
    /// Relative frequency in the mix (bursts are sent separately).
    weight: u32,
    body: Arc<Vec<u8>>,
    content_type: Option<String>,
    expect: Expect,
}

#[derive(Clone, Copy)]
enum Expect {
    /// 200 with an image of this format and size (or 503/9522).
    Image(ImageFormat, u32, u32),
    /// This coded error; `gated` errors come from the engine, so 503/9522 is also right.
    Error { status: u16, code: u16, gated: bool },
}

#[derive(Default)]
struct Tally {
    ok: u64,
    overloaded: u64,
    failures: Vec<String>,
    latencies_ms: Vec<u64>,
}

fn kinds() -> Vec<Kind> {
    let photo = corpus("photo-4mp-eveningglow.jpg");
    let logo = corpus("overlay-logo-337x330.png");
    let webp = corpus("photo-6mp-life.webp");
    let gif = corpus("anim-party-660x666.gif");
    let mp = Some(multipart_type());
    let kind = |name, weight, body: Vec<u8>, expect| Kind {
        name,
        weight,
        body: Arc::new(body),
        content_type: mp.clone(),
        expect,
    };
    let error = |status, code, gated| Expect::Error {
        status,
        code,
        gated,
    };
    let bomb = hostile_inputs::bomb_headers().remove(0).2;
    vec![
        kind(
            "jpeg thumbnail",
            30,
            transform_body(&photo, r#"[{"imageIndex":0,"width":400}]"#, "image/jpeg"),
            Expect::Image(ImageFormat::Jpeg, 400, 250),
        ),
        kind(
            "webp to png",
            10,
            transform_body(
                &webp,
                r#"[{"imageIndex":0,"width":300,"height":300,"fit":"cover"}]"#,
                "image/png",
            ),
            Expect::Image(ImageFormat::Png, 300, 300),
        ),
        kind(
            "watermark",
            10,
            multipart(&[
                file("image", &photo),
                file("draw_image", &logo),
                field(
                    "transforms",
                    r#"[{"imageIndex":1,"width":100},{"drawImageIndex":1,"targetImageIndex":0,"bottom":10,"right":10,"opacity":0.8},{"imageIndex":0,"width":640}]"#,
                ),
                field("output_format", "image/webp"),
            ]),
            Expect::Image(ImageFormat::WebP, 640, 400),
        ),
        kind(
            "gif rotate",
            5,
            transform_body(
                &gif,
                r#"[{"imageIndex":0,"rotate":90,"width":200}]"#,
                "image/png",
            ),
            Expect::Image(ImageFormat::Png, 200, 198),
        ),
        kind(
            "truncated jpeg",
            8,
            transform_body(&photo[..photo.len() / 2], "[]", "image/jpeg"),
            error(415, 9412, true),
        ),
        kind(
            "65535x65535 png",
            8,
            transform_body(&bomb, "[]", "image/png"),
            error(413, 9413, true),
        ),
        kind(
            "5000-frame gif",
            4,
            transform_body(&hostile_inputs::many_frame_gif(5000), "[]", "image/gif"),
            error(413, 9413, true),
        ),
        kind(
            "bad json",
            8,
            transform_body(&logo, r#"[{"imageIndex":0,"width":NaN}]"#, "image/png"),
            error(400, 9401, false),
        ),
        kind(
            "out of order",
            5,
            multipart(&[
                field("transforms", "[]"),
                file("image", &logo),
                field("output_format", "image/png"),
            ]),
            error(400, 9401, false),
        ),
        Kind {
            name: "no boundary",
            weight: 5,
            body: Arc::new(transform_body(&logo, "[]", "image/png")),
            content_type: Some("multipart/form-data".into()),
            expect: error(400, 9401, false),
        },
        kind(
            "21 MB body",
            1,
            transform_body(&vec![0x42; 21 * 1024 * 1024], "[]", "image/png"),
            error(413, 9402, false),
        ),
    ]
}

/// Sends one request and checks its answer against `expect`; `Err` describes a failure.
async fn check(socket: &Path, kind: &Kind) -> Result<(bool, Duration), String> {
    let started = Instant::now();
    let request = {
        let socket = socket.to_path_buf();
        let kind = kind.clone();
        // A task of its own: the raw client panics on a short or malformed answer.
        tokio::spawn(async move {
            post_to(
                &socket,
                "/transform",
                kind.content_type.as_deref(),
                &kind.body,
            )
            .await
        })
    };
    let response = match tokio::time::timeout(Duration::from_secs(60), request).await {
        Ok(Ok(response)) => response,
        Ok(Err(panic)) => return Err(format!("{}: client failed: {panic}", kind.name)),
        Err(_) => return Err(format!("{}: no answer within 60 s", kind.name)),
    };
    let elapsed = started.elapsed();
    let coded = |status: u16, code: u16| {
        response.status == status
            && response.header("cf-images-binding") == Some(&format!("err={code}"))
            && response.text().starts_with(&format!("ERROR {code}: "))
    };
    let overloaded = coded(503, 9522);
    match kind.expect {
        Expect::Image(format, width, height) => {
            if overloaded {
                return Ok((false, elapsed));
            }
            if response.status != 200 {
                return Err(format!(
                    "{}: {} {}",
                    kind.name,
                    response.status,
                    response.text()
                ));
            }
            let decoded = image::load_from_memory_with_format(&response.body, format)
                .map_err(|e| format!("{}: body does not decode: {e}", kind.name))?;
            if (decoded.width(), decoded.height()) != (width, height) {
                return Err(format!(
                    "{}: got {}x{}, expected {width}x{height}",
                    kind.name,
                    decoded.width(),
                    decoded.height()
                ));
            }
            Ok((true, elapsed))
        }
        Expect::Error {
            status,
            code,
            gated,
        } => {
            if coded(status, code) {
                Ok((true, elapsed))
            } else if gated && overloaded {
                Ok((false, elapsed))
            } else {
                Err(format!(
                    "{}: expected {status}/{code}, got {} {:?}",
                    kind.name,
                    response.status,
                    response.text()
                ))
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by scripts/load-test.sh"]
async fn load() {
    let seconds: u64 = std::env::var("IMGBIND_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let backend = Backend::spawn().await;
    let socket = backend.socket();
    let kinds = kinds();
    let huge = Kind {
        name: "100 MP png",
        weight: 0,
        body: Arc::new(transform_body(
            &hundred_megapixel_png(),
            r#"[{"imageIndex":0,"width":1000}]"#,
            "image/jpeg",
        )),
        content_type: Some(multipart_type()),
        expect: Expect::Image(ImageFormat::Jpeg, 1000, 1000),
    };

    // Warm up: every kind once, sequentially, then the baseline.
    for kind in kinds.iter().chain([&huge]) {
        let (ok, _) = check(&socket, kind)
            .await
            .unwrap_or_else(|e| panic!("warm-up: {e}"));
        assert!(
            ok,
            "warm-up {}: overloaded with nothing else running",
            kind.name
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline_mb = backend.rss_kb() / 1024;
    eprintln!(
        "load: baseline RSS {baseline_mb} MB after warm-up; {CLIENTS} clients for {seconds} s"
    );

    let tallies: Arc<Mutex<BTreeMap<&'static str, Tally>>> = Arc::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    let total_weight: u32 = kinds.iter().map(|k| k.weight).sum();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (kinds, socket, tallies) = (kinds.clone(), socket.clone(), Arc::clone(&tallies));
        clients.push(tokio::spawn(async move {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (client as u64 + 1);
            while Instant::now() < end {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut pick = (state % u64::from(total_weight)) as u32;
                let kind = kinds
                    .iter()
                    .find(|k| {
                        if pick < k.weight {
                            true
                        } else {
                            pick -= k.weight;
                            false
                        }
                    })
                    .unwrap();
                let result = check(&socket, kind).await;
                record(&tallies, kind.name, result);
            }
        }));
    }
    // Bursts of concurrent 100 MP requests, every 20 s while the mix runs.
    let mut bursts = 0;
    while Instant::now() + Duration::from_secs(20) < end {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let burst: Vec<_> = (0..BURST)
            .map(|_| {
                let (huge, socket, tallies) = (huge.clone(), socket.clone(), Arc::clone(&tallies));
                tokio::spawn(async move {
                    // Like a real client, retry an overload answer (503/9522) for a while: the
                    // 64 clients keep the queue full, and without retries a whole run's bursts
                    // can all be refused (seen once: 120 of 120). Every attempt is tallied.
                    let give_up = Instant::now() + BURST_RETRY_FOR;
                    loop {
                        let result = check(&socket, &huge).await;
                        let overloaded = matches!(result, Ok((false, _)));
                        record(&tallies, huge.name, result);
                        if !overloaded || Instant::now() >= give_up {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                })
            })
            .collect();
        for task in burst {
            task.await.unwrap();
        }
        bursts += 1;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let peak_mb = backend.peak_rss_kb() / 1024;

    // Afterwards: still serving, and memory back near the baseline.
    check(&socket, &kinds[0])
        .await
        .expect("good request after the load");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_mb = backend.rss_kb() / 1024;

    let tallies = tallies.lock().unwrap();
    let mut requests = 0;
    let mut overloaded = 0;
    let mut failures = Vec::new();
    let mut good_latencies = Vec::new();
    for (name, tally) in tallies.iter() {
        let count = tally.ok + tally.overloaded + tally.failures.len() as u64;
        eprintln!(
            "load: {name:<16} {count:>6} requests, {:>6} as expected, {:>5} overloaded (503/9522), {} failed",
            tally.ok,
            tally.overloaded,
            tally.failures.len()
        );
        requests += count;
        overloaded += tally.overloaded;
        failures.extend(tally.failures.iter().take(5).cloned());
        let good = kinds
            .iter()
            .chain([&huge])
            .any(|k| k.name == *name && matches!(k.expect, Expect::Image(..)));
        if good {
            good_latencies.extend(&tally.latencies_ms);
        }
    }
    good_latencies.sort_unstable();
    println!(
        "LOAD | {seconds} s | {CLIENTS} clients | {bursts} bursts of {BURST} x 100 MP | {requests} requests | {overloaded} answered 503/9522 | {} failed | good p50 {} ms p99 {} ms | RSS baseline {baseline_mb} MB, peak {peak_mb} MB, after {after_mb} MB",
        failures.len(),
        percentile(&good_latencies, 0.5),
        percentile(&good_latencies, 0.99),
    );
    assert!(failures.is_empty(), "failures: {failures:#?}");
    assert!(bursts > 0 || seconds < 30, "no 100 MP burst ran");
    // Past the bounded queue the backend refuses at once (503/9522) by design; what must hold is
    // that every kind of request still gets served or answered as expected some of the time.
    for (name, tally) in tallies.iter() {
        assert!(tally.ok > 0, "{name}: never served as expected");
    }
    assert!(peak_mb < MAX_PEAK_RSS_MB, "peak RSS {peak_mb} MB");
    assert!(
        after_mb < baseline_mb + MAX_RSS_GROWTH_MB,
        "RSS {after_mb} MB after the load; baseline {baseline_mb} MB"
    );
}

fn record(
    tallies: &Mutex<BTreeMap<&'static str, Tally>>,
    name: &'static str,
    result: Result<(bool, Duration), String>,
) {
    let mut tallies = tallies.lock().unwrap();
    let tally = tallies.entry(name).or_default();
    match result {
        Ok((true, elapsed)) => {
            tally.ok += 1;
            tally.latencies_ms.push(elapsed.as_millis() as u64);
        }
        Ok((false, _)) => tally.overloaded += 1,
        Err(failure) => tally.failures.push(failure),
    }
}
