//! A gallery page asks for its thumbnails all at once: a burst the server can serve within its
//! queue timeout is served, not refused by a fixed queue length (issue 17, item 1).
//! The same burst through the example Worker is in `tests/url-interface.test.js`.

mod support;

use std::time::{Duration, Instant};

use support::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_thumbnails_at_once_are_all_served() {
    let server = TestServer::start().await;
    let photo = corpus("photo-4mp-twowings.jpg");
    let body = transform_body(
        &photo,
        r#"[{"imageIndex":0,"width":320,"height":320,"fit":"cover"}]"#,
        "image/webp",
    );
    // All 30 requests are sent before any answer is read.
    let mut connections = Vec::new();
    for i in 0..30 {
        let transport = if i % 2 == 0 {
            Transport::Unix
        } else {
            Transport::Tcp
        };
        let mut conn = server.connect(transport).await;
        send_post(&mut conn, "/transform", "", &body).await;
        connections.push(conn);
    }
    let started = Instant::now();
    let answers = futures_util::future::join_all(
        connections
            .iter_mut()
            .map(|conn| read_response(conn, Reading::FAST)),
    )
    .await;
    let took = started.elapsed();
    let refused = answers.iter().filter(|a| a.status != 200).count();
    assert_eq!(
        refused,
        0,
        "{refused} of 30 refused in {took:?}; first: {}",
        answers
            .iter()
            .find(|a| a.status != 200)
            .map(|a| a.text())
            .unwrap_or_default()
    );
    for answer in &answers {
        assert_image(answer, image::ImageFormat::WebP, 320, 320);
    }
    eprintln!("30 thumbnails (4 MP JPEG → 320 px WebP) all served in {took:?}");
    assert!(took < Duration::from_secs(30));
    server.stop().await.unwrap();
}
