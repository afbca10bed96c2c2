//! A reusable slow-reader HTTP/1 client for delivery tests: connects with a small `SO_RCVBUF`,
//! reads in small pieces with pauses, and counts (and compares) every body byte. A response passes
//! only when it is complete: exactly `Content-Length` bytes, or every chunk plus the terminating
//! `0\r\n\r\n`. Short bodies, resets and missing terminators are returned as errors (not panics),
//! so a concurrent run can count its truncations.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UnixStream};

/// A client socket of either kind.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// How the client reads.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// `SO_RCVBUF` set on the socket before connecting (TCP) or right after (Unix); the kernel
    /// doubles it. `None` keeps the default.
    pub rcvbuf: Option<usize>,
    /// Bytes asked for per read.
    pub read_size: usize,
    /// Pause after each read.
    pub pause: Duration,
}

impl Reading {
    /// The pattern that truncated responses on hyper < 1.11 (`shared/reference/delivery.md`):
    /// 4 KiB receive buffer, 32 KiB reads, 1 ms pause after each.
    pub const SLOW: Reading = Reading {
        rcvbuf: Some(4096),
        read_size: 32 * 1024,
        pause: Duration::from_millis(1),
    };
    /// No throttling.
    pub const FAST: Reading = Reading {
        rcvbuf: None,
        read_size: 256 * 1024,
        pause: Duration::ZERO,
    };

    /// Overrides from `IMGBIND_SLOW_RCVBUF`, `IMGBIND_SLOW_READ`, `IMGBIND_SLOW_PAUSE_US`.
    pub fn slow_from_env() -> Reading {
        let get = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let mut reading = Reading::SLOW;
        if let Some(v) = get("IMGBIND_SLOW_RCVBUF") {
            reading.rcvbuf = (v > 0).then_some(v as usize);
        }
        if let Some(v) = get("IMGBIND_SLOW_READ") {
            reading.read_size = v.max(1) as usize;
        }
        if let Some(v) = get("IMGBIND_SLOW_PAUSE_US") {
            reading.pause = Duration::from_micros(v);
        }
        reading
    }
}

/// Connects to a TCP address with the given receive buffer (set before `connect`, so the window
/// the peer sees is small from the start).
pub async fn connect_tcp(addr: SocketAddr, reading: &Reading) -> std::io::Result<Conn> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = reading.rcvbuf {
        socket.set_recv_buffer_size(size as u32)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

/// Connects to a Unix socket and shrinks its receive buffer.
pub async fn connect_unix(path: &Path, reading: &Reading) -> std::io::Result<Conn> {
    let stream = UnixStream::connect(path).await?;
    if let Some(size) = reading.rcvbuf {
        use std::os::fd::AsFd;
        nix::sys::socket::setsockopt(&stream.as_fd(), nix::sys::socket::sockopt::RcvBuf, &size)
            .map_err(std::io::Error::from)?;
    }
    Ok(Box::new(stream))
}

/// What the body should be.
#[derive(Clone)]
pub enum Expect {
    /// Exactly these bytes (compared as they arrive; not kept).
    Bytes(Arc<Vec<u8>>),
    /// Anything complete; the body is kept in [`Delivered::body`].
    Keep,
}

/// How the body was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// A complete response.
#[derive(Debug)]
pub struct Delivered {
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// Body bytes received (all of them: a `Delivered` is only returned when complete).
    pub body_len: u64,
    /// The body, with [`Expect::Keep`].
    pub body: Vec<u8>,
    /// From the first byte asked for to the last body byte.
    pub took: Duration,
    /// Reads done.
    pub reads: u64,
}

impl Delivered {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The read side of one connection, keeping bytes read past one response for the next.
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    pub reading: Reading,
    reads: u64,
    /// Told (once per response) when a response head has arrived.
    pub on_head: Option<tokio::sync::mpsc::UnboundedSender<()>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(inner: R, reading: Reading) -> Self {
        Reader {
            inner,
            buf: Vec::new(),
            reading,
            reads: 0,
            on_head: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// One read of at most `max` bytes (and at most `read_size`), then the pause. Ok(0) is EOF.
    async fn fill(&mut self, max: usize) -> std::io::Result<usize> {
        let want = max.min(self.reading.read_size).max(1);
        let start = self.buf.len();
        self.buf.resize(start + want, 0);
        let result = self.inner.read(&mut self.buf[start..]).await;
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(start + n);
        self.reads += 1;
        if n > 0 && !self.reading.pause.is_zero() {
            tokio::time::sleep(self.reading.pause).await;
        }
        result
    }

    async fn line(&mut self, what: &str) -> Result<String, String> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            match self.fill(usize::MAX).await {
                Ok(0) => return Err(format!("connection closed in {what}")),
                Ok(_) => {}
                Err(e) => return Err(format!("read failed in {what}: {e}")),
            }
        }
    }

    /// Reads one whole response. `Err` describes how it was incomplete (with byte counts).
    pub async fn response(&mut self, expect: &Expect) -> Result<Delivered, String> {
        let started = Instant::now();
        let reads_before = self.reads;
        // Head.
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            match self.fill(usize::MAX).await {
                Ok(0) => {
                    return Err(format!(
                        "connection closed before a response head ({} bytes)",
                        self.buf.len()
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read failed before a response head: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut words = status_line.split(' ');
        let version = words.next().unwrap_or_default().to_owned();
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let chunked = get("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let framing = if chunked {
            Framing::Chunked
        } else if let Some(length) = get("content-length") {
            Framing::Length(
                length
                    .parse()
                    .map_err(|_| format!("bad content-length {length:?}"))?,
            )
        } else {
            return Err(format!(
                "status {status}: neither content-length nor chunked: completeness unprovable"
            ));
        };
        if let Some(on_head) = &self.on_head {
            let _ = on_head.send(());
        }
        let mut body = Body::new(expect);
        match framing {
            Framing::Length(length) => {
                while body.len < length {
                    let remaining = (length - body.len) as usize;
                    if self.buf.is_empty() {
                        match self.fill(remaining).await {
                            Ok(0) => {
                                return Err(format!(
                                    "status {status}: connection closed after {} of {length} body bytes",
                                    body.len
                                ))
                            }
                            Ok(_) => {}
                            Err(e) => {
                                return Err(format!(
                                    "status {status}: read failed after {} of {length} body bytes: {e}",
                                    body.len
                                ))
                            }
                        }
                    }
                    let take = self.buf.len().min(remaining);
                    body.push(&self.buf[..take])?;
                    self.buf.drain(..take);
                }
            }
            Framing::Chunked => loop {
                let size_line = self
                    .line(&format!("chunk size after {} body bytes", body.len))
                    .await?;
                let size_hex = size_line.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size_hex, 16)
                    .map_err(|_| format!("bad chunk size line {size_line:?}"))?;
                if size == 0 {
                    // Trailers (none expected), then the empty line that ends the message.
                    loop {
                        let line = self.line("the chunked terminator").await?;
                        if line.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let mut left = size;
                while left > 0 {
                    if self.buf.is_empty() {
                        match self.fill(left as usize).await {
                            Ok(0) => {
                                return Err(format!(
                                    "status {status}: connection closed inside a chunk after {} body bytes (no terminator)",
                                    body.len
                                ))
                            }
                            Ok(_) => {}
                            Err(e) => {
                                return Err(format!(
                                    "status {status}: read failed after {} body bytes: {e}",
                                    body.len
                                ))
                            }
                        }
                    }
                    let take = self.buf.len().min(left as usize);
                    body.push(&self.buf[..take])?;
                    self.buf.drain(..take);
                    left -= take as u64;
                }
                let crlf = self.line("the end of a chunk").await?;
                if !crlf.is_empty() {
                    return Err(format!("chunk not followed by CRLF: {crlf:?}"));
                }
            },
        }
        body.finish()?;
        Ok(Delivered {
            status,
            version,
            headers,
            framing,
            body_len: body.len,
            body: body.kept,
            took: started.elapsed(),
            reads: self.reads - reads_before,
        })
    }

    /// The server closes next: EOF (not a reset, not more bytes), within 10 s.
    pub async fn expect_eof(&mut self) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the response",
                self.buf.len()
            ));
        }
        match tokio::time::timeout(Duration::from_secs(10), self.fill(1)).await {
            Err(_) => Err("server did not close the connection".into()),
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(_)) => Err("unexpected bytes after the response".into()),
            Ok(Err(e)) => Err(format!("reset instead of a clean close: {e}")),
        }
    }
}

struct Body<'a> {
    expect: &'a Expect,
    len: u64,
    kept: Vec<u8>,
}

impl<'a> Body<'a> {
    fn new(expect: &'a Expect) -> Self {
        Body {
            expect,
            len: 0,
            kept: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.expect {
            Expect::Keep => self.kept.extend_from_slice(bytes),
            Expect::Bytes(expected) => {
                let at = self.len as usize;
                let end = at + bytes.len();
                if end > expected.len() {
                    return Err(format!(
                        "body longer than the expected {} bytes",
                        expected.len()
                    ));
                }
                if expected[at..end] != *bytes {
                    return Err(format!("body differs from the expected bytes near {at}"));
                }
            }
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn finish(&self) -> Result<(), String> {
        match self.expect {
            Expect::Bytes(expected) if self.len != expected.len() as u64 => Err(format!(
                "complete message but {} of the expected {} bytes",
                self.len,
                expected.len()
            )),
            _ => Ok(()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `n` clients at once; each result is kept (in order) for counting.
pub async fn concurrently<T, F, Fut>(n: usize, client: F) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(client(i))).collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| Err(format!("client panicked: {e}"))),
        );
    }
    results
}

/// Writes `body` as HTTP/1.1 chunks of `piece` bytes with `pause` between them, then the
/// terminating chunk (unless `terminate` is false).
pub async fn write_chunked_slowly<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    body: &[u8],
    piece: usize,
    pause: Duration,
    terminate: bool,
) -> std::io::Result<()> {
    for part in body.chunks(piece) {
        let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
        writer.write_all(&framed).await?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    if terminate {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.flush().await
}

/// Writes `bytes` in pieces with pauses (for `Content-Length` bodies).
pub async fn write_slowly<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    bytes: &[u8],
    piece: usize,
    pause: Duration,
) -> std::io::Result<()> {
    for part in bytes.chunks(piece) {
        writer.write_all(part).await?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    writer.flush().await
}
