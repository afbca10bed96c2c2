//! Shared helpers for the black-box tests: an in-process server on a temporary Unix socket and an
//! ephemeral TCP port, workerd-style multipart bodies, and a raw HTTP/1 client over real sockets
//! that counts every byte.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgbind_backend::{Config, Engine, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::oneshot;

/// The boundary our requests use (workerd uses `--------------------------<24 hex>`).
pub const BOUNDARY: &str = "--------------------------0123456789abcdef01234567";

/// A corpus image: `$IMGBIND_CORPUS` or `../../shared/corpus` from this crate.
pub fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("IMGBIND_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    );
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus image {}: {e}", path.display()))
}

/// One multipart part: name, whether it carries `filename="<name>"` (as workerd's file parts do),
/// and content.
pub struct Part<'a> {
    pub name: &'a str,
    pub file: bool,
    pub content: &'a [u8],
}

/// A file part (`image`, `draw_image`).
pub fn file<'a>(name: &'a str, content: &'a [u8]) -> Part<'a> {
    Part {
        name,
        file: true,
        content,
    }
}

/// A field part (`transforms`, `output_format`, …).
pub fn field<'a>(name: &'a str, content: &'a str) -> Part<'a> {
    Part {
        name,
        file: false,
        content: content.as_bytes(),
    }
}

/// The body exactly as workerd's `StreamableFormData` writes it.
pub fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        if part.file {
            body.extend_from_slice(
                format!(
                    "content-disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            );
        } else {
            body.extend_from_slice(
                format!(
                    "content-disposition: form-data; name=\"{}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(part.content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The usual `/transform` body: `image`, `transforms`, `output_format`.
pub fn transform_body(image: &[u8], transforms: &str, format: &str) -> Vec<u8> {
    multipart(&[
        file("image", image),
        field("transforms", transforms),
        field("output_format", format),
    ])
}

/// A server running in the test's runtime, on a temporary Unix socket and 127.0.0.1:0.
pub struct TestServer {
    pub tcp: SocketAddr,
    pub unix: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// With the real engine and default settings.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}, None).await
    }

    /// With settings changed by `configure` and optionally a substitute engine.
    pub async fn start_with(
        configure: impl FnOnce(&mut Config),
        engine: Option<Arc<dyn Engine>>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let unix = dir.path().join("imgbind.sock");
        let mut config = Config {
            unix: Some(unix.clone()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Config::default()
        };
        configure(&mut config);
        let server = match engine {
            Some(engine) => Server::bind_with_engine(&config, engine).await,
            None => Server::bind(&config).await,
        }
        .unwrap();
        let tcp = server.tcp_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        TestServer {
            tcp,
            unix,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// A new connection over the given transport.
    pub async fn connect(&self, transport: Transport) -> Conn {
        match transport {
            Transport::Unix => Box::new(UnixStream::connect(&self.unix).await.unwrap()),
            Transport::Tcp => Box::new(TcpStream::connect(self.tcp).await.unwrap()),
        }
    }

    /// Graceful stop; returns what `run_until` returned.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

/// Which socket to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

pub const BOTH: [Transport; 2] = [Transport::Unix, Transport::Tcp];

/// A client socket of either kind.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// A request head for `POST path` with a chunked body, like workerd's client sends.
pub fn chunked_head(path: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: images.local\r\n\
         content-type: multipart/form-data; boundary={BOUNDARY}\r\n\
         transfer-encoding: chunked\r\n{extra_headers}\r\n"
    )
    .into_bytes()
}

/// Writes `body` as chunks of at most `chunk` bytes, then the terminating chunk.
pub async fn write_chunked<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    body: &[u8],
    chunk: usize,
) -> std::io::Result<()> {
    for piece in body.chunks(chunk) {
        writer
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await?;
        writer.write_all(piece).await?;
        writer.write_all(b"\r\n").await?;
    }
    writer.write_all(b"0\r\n\r\n").await?;
    writer.flush().await
}

/// Sends one chunked `POST` (head + body) on `conn`.
pub async fn send_post(conn: &mut Conn, path: &str, extra_headers: &str, body: &[u8]) {
    conn.write_all(&chunked_head(path, extra_headers))
        .await
        .unwrap();
    write_chunked(conn, body, 64 * 1024).await.unwrap();
}

/// A response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the body came with `transfer-encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    pub fn content_length(&self) -> usize {
        self.header("content-length")
            .expect("content-length")
            .parse()
            .unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the client reads a response body.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Bytes asked for per read.
    pub read_size: usize,
    /// Pause after each read.
    pub pause: Duration,
}

impl Reading {
    pub const FAST: Reading = Reading {
        read_size: 256 * 1024,
        pause: Duration::ZERO,
    };
    /// The pattern that truncated responses on hyper < 1.11 (delivery.md).
    pub const SLOW: Reading = Reading {
        read_size: 64 * 1024,
        pause: Duration::from_millis(1),
    };
}

/// Reads one response: a `content-length` body, or a chunked one (a result streamed as it is
/// encoded). Panics on a short body or a missing chunked terminator: the connection ending early
/// is exactly the failure these tests look for.
pub async fn read_response<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    reading: Reading,
) -> RawResponse {
    try_read_response(reader, reading)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`read_response`], returning what went wrong instead of panicking.
pub async fn try_read_response<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    reading: Reading,
) -> Result<RawResponse, String> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 8192];
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading response head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed before a response head ({} bytes)",
                buffer.len()
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let mut rest = buffer[head_end + 4..].to_vec();
    if status == 304 {
        // Never a body (RFC 9110 §15.4.5).
        return if rest.is_empty() {
            Ok(response)
        } else {
            Err("bytes after a 304's head".into())
        };
    }
    if response.is_chunked() {
        assert!(
            response.header("content-length").is_none(),
            "chunked with a content-length"
        );
        response.body = read_chunked(reader, rest, reading).await?;
        return Ok(response);
    }
    let length = response.content_length();
    if rest.len() > length {
        return Err("more bytes than content-length after the head".into());
    }
    let mut chunk = vec![0u8; reading.read_size];
    while rest.len() < length {
        let want = (length - rest.len()).min(reading.read_size);
        let n = reader.read(&mut chunk[..want]).await.map_err(|e| {
            format!(
                "read failed after {} of {length} body bytes: {e}",
                rest.len()
            )
        })?;
        if n == 0 {
            return Err(format!(
                "connection closed after {} of {length} body bytes",
                rest.len()
            ));
        }
        rest.extend_from_slice(&chunk[..n]);
        if !reading.pause.is_zero() {
            tokio::time::sleep(reading.pause).await;
        }
    }
    response.body = rest;
    Ok(response)
}

/// Decodes a chunked body (`buffered` = bytes already read past the head), up to and including
/// the terminating `0\r\n\r\n`; an error if the connection ends or fails before it.
async fn read_chunked<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    mut buffered: Vec<u8>,
    reading: Reading,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut chunk = vec![0u8; reading.read_size];
    let mut pos = 0;
    // Reads more into `buffered`; an error on EOF or a failed read.
    macro_rules! more {
        () => {{
            let n = reader.read(&mut chunk).await.map_err(|e| {
                format!("read failed after {} decoded chunked body bytes: {e}", body.len())
            })?;
            if n == 0 {
                return Err(format!(
                    "connection closed after {} decoded chunked body bytes, before the terminating chunk",
                    body.len()
                ));
            }
            buffered.extend_from_slice(&chunk[..n]);
            if !reading.pause.is_zero() {
                tokio::time::sleep(reading.pause).await;
            }
        }};
    }
    loop {
        let line_end = loop {
            if let Some(end) = find(&buffered[pos..], b"\r\n") {
                break pos + end;
            }
            more!();
        };
        let line = std::str::from_utf8(&buffered[pos..line_end]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
        pos = line_end + 2;
        if size == 0 {
            // No trailers are sent: the final CRLF.
            while buffered.len() < pos + 2 {
                more!();
            }
            if &buffered[pos..pos + 2] != b"\r\n" {
                return Err("bad chunked terminator".into());
            }
            if buffered.len() > pos + 2 {
                return Err("bytes after the chunked terminator".into());
            }
            return Ok(body);
        }
        while buffered.len() < pos + size + 2 {
            more!();
        }
        body.extend_from_slice(&buffered[pos..pos + size]);
        if &buffered[pos + size..pos + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        pos += size + 2;
        // Keep the buffer small.
        buffered.drain(..pos);
        pos = 0;
    }
}

/// Asserts the server closes the connection next (EOF, not a reset and not more bytes).
pub async fn expect_eof<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) {
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut byte))
        .await
        .expect("server did not close the connection")
        .expect("clean close, not a reset");
    assert_eq!(n, 0, "unexpected bytes after the response");
}

/// Asserts the connection ends next, by EOF or by reset (what the kernel does when the server
/// closes with unread request bytes), and no more bytes come.
pub async fn expect_end<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut byte))
        .await
        .expect("server did not close the connection");
    match read {
        Ok(0) => {}
        Ok(_) => panic!("unexpected bytes after the response"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One whole request/response on a fresh connection.
pub async fn post(
    server: &TestServer,
    transport: Transport,
    path: &str,
    body: &[u8],
) -> RawResponse {
    let mut conn = server.connect(transport).await;
    send_post(&mut conn, path, "", body).await;
    read_response(&mut conn, Reading::FAST).await
}

/// Decodes an image answer and checks its format and size.
pub fn assert_image(response: &RawResponse, format: image::ImageFormat, width: u32, height: u32) {
    assert_eq!(response.status, 200, "body: {}", response.text());
    if !response.is_chunked() {
        assert_eq!(response.body.len(), response.content_length());
    }
    assert_eq!(
        image::guess_format(&response.body).unwrap(),
        format,
        "sniffed format"
    );
    let decoded = image::load_from_memory_with_format(&response.body, format).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (width, height));
}

/// Asserts a coded error answer: status, `cf-images-binding` header, content-type and body shape.
pub fn assert_error(response: &RawResponse, status: u16, code: u16) {
    let text = response.text();
    assert_eq!(response.status, status, "body: {text}");
    assert_eq!(
        response.header("cf-images-binding"),
        Some(format!("err={code}").as_str())
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        text.starts_with(&format!("ERROR {code}: ")),
        "body {text:?} does not start with ERROR {code}: "
    );
    assert_eq!(response.body.len(), response.content_length());
}

/// Runs `future` and returns its output with its duration.
pub async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let output = future.await;
    (output, started.elapsed())
}

/// The samples of a `/metrics` answer (OpenMetrics text): series name with labels → value.
pub fn metric_samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}
