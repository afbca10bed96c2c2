//! The real `imgbind` binary, spawned on a temporary Unix socket, with its memory read from
//! `/proc/<pid>/status`: shared by the hostile-input suite and the load test.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use image::ImageFormat;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_imgbind");

/// The `imgbind` binary, spawned on a temporary Unix socket.
pub struct Backend {
    child: tokio::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Backend {
    pub async fn spawn() -> Backend {
        Backend::spawn_with(&[]).await
    }

    /// With extra `IMGBIND_*` environment variables.
    pub async fn spawn_with(env: &[(&str, &str)]) -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("imgbind.sock");
        let child = tokio::process::Command::new(BINARY)
            .arg("serve")
            .env("IMGBIND_UNIX", &socket)
            .env("IMGBIND_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while UnixStream::connect(&socket).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Backend {
            child,
            socket,
            _dir: dir,
        }
    }

    pub async fn connect(&self) -> Conn {
        Box::new(UnixStream::connect(&self.socket).await.unwrap())
    }

    /// A `POST` with the given content-type (chunked body), on a fresh connection.
    pub async fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> RawResponse {
        post_to(&self.socket, path, content_type, body).await
    }

    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }

    /// A `POST` of a multipart body with [`BOUNDARY`].
    pub async fn post_multipart(&self, path: &str, body: &[u8]) -> RawResponse {
        self.post(path, Some(&multipart_type()), body).await
    }

    /// Peak resident set size so far (`VmHWM`), in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }

    /// Resident set size now (`VmRSS`), in kB.
    pub fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    fn status_kb(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("server running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    }

    /// A good transform still succeeds, with the right size.
    pub async fn assert_still_serving(&self, after: &str) {
        let body = transform_body(
            &good_png(),
            r#"[{"imageIndex":0,"width":12,"height":10,"fit":"squeeze"}]"#,
            "image/png",
        );
        let response = self.post_multipart("/transform", &body).await;
        assert_eq!(
            response.status,
            200,
            "good request after {after}: {}",
            response.text()
        );
        assert_image(&response, ImageFormat::Png, 12, 10);
    }

    /// Sends `body` to `path` and asserts the coded answer, then that the server still serves.
    pub async fn expect(
        &self,
        what: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        status: u16,
        code: u16,
    ) {
        let response = self.post(path, content_type, body).await;
        assert_eq!(
            (response.status, response.header("cf-images-binding")),
            (status, Some(format!("err={code}").as_str())),
            "{what}: {}",
            response.text()
        );
        assert_error(&response, status, code);
        self.assert_still_serving(what).await;
    }
}

/// A `POST` with the given content-type (chunked body), on a fresh connection to `socket`. Panics
/// on a short or malformed answer.
pub async fn post_to(
    socket: &Path,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> RawResponse {
    let mut conn = UnixStream::connect(socket).await.unwrap();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nhost: images.local\r\ntransfer-encoding: chunked\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("content-type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    write_chunked(&mut conn, body, 64 * 1024).await.unwrap();
    read_response(&mut conn, Reading::FAST).await
}

/// The request content-type for bodies built with [`multipart`].
pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A 40×30 PNG.
pub fn good_png() -> Vec<u8> {
    let pixels: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let image = image::RgbImage::from_raw(40, 30, pixels).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A 10 000 × 10 000 grey PNG with a gradient (100 MP, compresses to well under 1 MB).
pub fn hundred_megapixel_png() -> Vec<u8> {
    use image::ImageEncoder;
    let (width, height) = (10_000u32, 10_000u32);
    let pixels: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| ((x / 40 + y / 40) % 256) as u8))
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::L8)
    .unwrap();
    out
}
