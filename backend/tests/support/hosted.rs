//! The real `imgbind` binary serving hosted images from a store that outlives it (so a test can
//! kill and restart it), on a Unix socket and a loopback TCP port, with a small client for the
//! `/hosted/` API. `Store` says which store: the embedded one (a temporary `--data` directory)
//! or the scale-out one (PostgreSQL + S3, `support::s3pg`).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use super::common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_imgbind");

/// The API token every spawned backend is given.
pub const TOKEN: &str = "test-token-0123456789";
/// The signing key `default` every spawned backend is given.
pub const SIGNING_KEY: &str = "test-signing-secret";

/// Where the images are kept; lives across backend restarts.
pub struct Store {
    /// Environment that selects the store.
    pub env: Vec<(String, String)>,
    /// For the embedded store: its directory.
    pub data: Option<PathBuf>,
    /// For the scale-out store: its PostgreSQL and S3 server.
    pub scale_out: Option<super::s3pg::Services>,
    _dir: tempfile::TempDir,
}

impl Store {
    /// A fresh embedded store.
    pub fn embedded() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Store {
            env: vec![("IMGBIND_DATA".into(), data.display().to_string())],
            data: Some(data),
            scale_out: None,
            _dir: dir,
        }
    }

    /// A fresh scale-out store (PostgreSQL + S3), or `None` when its services cannot start here
    /// (said on stderr; a failure under `CI=true`).
    pub fn scale_out() -> Option<Store> {
        let services = super::s3pg::Services::start()?;
        Some(Store {
            env: services.env(),
            data: None,
            scale_out: Some(services),
            _dir: tempfile::tempdir().unwrap(),
        })
    }
}

/// A spawned backend on a store.
pub struct Hosted {
    pub child: tokio::process::Child,
    pub socket: PathBuf,
    pub tcp: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Which socket a request goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Unix,
    /// TCP with the right token.
    Tcp,
    /// TCP with no token.
    TcpAnonymous,
    /// TCP with this token.
    TcpToken(&'static str),
}

impl Hosted {
    /// Spawns the backend on `store`, with the test token, signing key, a `thumb` variant, an
    /// `open` variant that is always public, flexible variants, and `extra` environment (an empty
    /// value removes the variable).
    pub async fn spawn(store: &Store, extra: &[(&str, &str)]) -> Hosted {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("imgbind.sock");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let tcp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = tokio::process::Command::new(BINARY);
        command
            .arg("serve")
            .env("IMGBIND_UNIX", &socket)
            .env("IMGBIND_LISTEN", tcp.to_string())
            .env("IMGBIND_LOG", "warn")
            .env("IMGBIND_API_TOKEN", TOKEN)
            .env("IMGBIND_SIGNING_KEYS", format!("default={SIGNING_KEY}"))
            .env(
                "IMGBIND_VARIANTS",
                "thumb=w=32,h=24,fit=cover;open=w=20,always_public",
            )
            .env("IMGBIND_FLEXIBLE_VARIANTS", "true")
            .envs(store.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().filter(|(_, v)| !v.is_empty()).copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, _) in extra.iter().filter(|(_, v)| v.is_empty()) {
            command.env_remove(name);
        }
        let child = command.spawn().unwrap();
        let mut hosted = Hosted {
            child,
            socket,
            tcp,
            _dir: dir,
        };
        hosted.wait_ready().await;
        hosted
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if UnixStream::connect(&self.socket).await.is_ok()
                && TcpStream::connect(self.tcp).await.is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the backend exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the backend did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// One request on a fresh connection (`content-length` body), its whole answer read.
    pub async fn call(
        &self,
        via: Via,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let mut conn: Conn = match via {
            Via::Unix => Box::new(UnixStream::connect(&self.socket).await.unwrap()),
            _ => Box::new(TcpStream::connect(self.tcp).await.unwrap()),
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: images.test\r\ncontent-length: {}\r\n",
            body.len()
        );
        let token = match via {
            Via::Tcp => Some(TOKEN),
            Via::TcpToken(token) => Some(token),
            _ => None,
        };
        if let Some(token) = token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body).await.unwrap();
        read_response(&mut conn, Reading::FAST).await
    }

    /// `POST /hosted/images` with `options` (JSON) and the bytes, over the socket.
    pub async fn upload(&self, options: Value, bytes: &[u8]) -> RawResponse {
        self.upload_via(Via::Unix, options, bytes).await
    }

    pub async fn upload_via(&self, via: Via, options: Value, bytes: &[u8]) -> RawResponse {
        let path = format!("/hosted/images?options={}", encode(&options.to_string()));
        self.call(via, "POST", &path, &[], bytes).await
    }

    /// `GET /hosted/images?options=…` → the `ImageList` JSON (asserting 200).
    pub async fn list(&self, options: Value) -> Value {
        let response = self.list_raw(options).await;
        assert_eq!(response.status, 200, "{}", response.text());
        json(&response)
    }

    pub async fn list_raw(&self, options: Value) -> RawResponse {
        let path = format!("/hosted/images?options={}", encode(&options.to_string()));
        self.call(Via::Unix, "GET", &path, &[], b"").await
    }

    /// Every id `list` returns, paging with `limit` in `order`.
    pub async fn list_all(&self, limit: u32, order: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut options = serde_json::json!({"limit": limit, "sortOrder": order});
            if let Some(c) = &cursor {
                options["cursor"] = c.clone().into();
            }
            let page = self.list(options).await;
            ids.extend(ids_of(&page));
            match page["cursor"].as_str() {
                Some(next) => {
                    assert_eq!(page["listComplete"], false);
                    cursor = Some(next.to_owned());
                }
                None => {
                    assert_eq!(page["listComplete"], true, "{page}");
                    return ids;
                }
            }
        }
    }

    /// `GET`/`PATCH`/`DELETE`/`POST` on `/hosted/images/{id}[/suffix]`.
    pub async fn on_image(&self, method: &str, id: &str, suffix: &str, body: &[u8]) -> RawResponse {
        let path = format!("/hosted/images/{}{suffix}", encode(id));
        self.call(Via::Unix, method, &path, &[], body).await
    }

    /// `GET` of a delivery URL (absolute as the backend returned it, or a path).
    pub async fn get_url(&self, url: &str, headers: &[(&str, &str)]) -> RawResponse {
        let path = url
            .strip_prefix(&format!("http://{}", self.tcp))
            .unwrap_or(url);
        self.call(Via::TcpAnonymous, "GET", path, headers, b"")
            .await
    }
}

/// The ids of an `ImageList`.
pub fn ids_of(page: &Value) -> Vec<String> {
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The body as JSON.
pub fn json(response: &RawResponse) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()))
}

/// The `cf-images-binding: err=N` code.
pub fn code(response: &RawResponse) -> u16 {
    response
        .header("cf-images-binding")
        .and_then(|v| v.strip_prefix("err="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no error code: {} {}", response.status, response.text()))
}

/// Percent-encodes as `encodeURIComponent` does.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A `w`×`h` PNG with a pattern.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    let image = image::RgbImage::from_raw(w, h, pixels).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
