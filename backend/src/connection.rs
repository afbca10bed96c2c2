//! Per-connection state: the connection cap, the idle timeout, and the byte counting that tells
//! when an answer has really been written.
//!
//! Every accepted socket is wrapped in [`MeteredIo`], which counts bytes read and written and
//! notices hyper's flush after an answer's last byte: that is when a request's `send` phase ends
//! and it is counted as delivered (see `telemetry.rs`). A socket that fails or is dropped first
//! marks the answer aborted.
//!
//! The cap ([`Connections::admit`]): at `max_connections` open connections, a new connection
//! displaces the open connection that has waited longest for a request head (an idle keep-alive
//! connection, or a slow client still sending its head), else the slowest upload running under
//! `--body-min-rate` (its request is answered 9522 with `Retry-After` and the connection closed);
//! when every connection is busy with a request at a good pace, the new connection is answered
//! 9522 (503, `Retry-After`) and closed — through hyper for up to [`MAX_REJECTING`] at once, past
//! that by a fixed answer written straight to the socket ([`OVERFLOW_ANSWER`]): never a bare
//! close.
//!
//! Each connection also knows when it last wrote a byte while an answer was being written: the
//! server closes a connection whose client reads nothing for the send timeout.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::telemetry::RequestMeter;

/// Connections answered 9522 through hyper at the cap at once; past this, excess connections get
/// [`OVERFLOW_ANSWER`].
pub(crate) const MAX_REJECTING: usize = 256;

/// The answer written, before reading anything, to a connection over the cap when
/// [`MAX_REJECTING`] are being answered already: the same 9522 a refused request gets.
pub(crate) const OVERFLOW_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
cf-images-binding: err=9522\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 71\r\n\
\r\n\
ERROR 9522: the server has too many connections; try again later (busy)";

/// A new connection that has sent nothing is displaced at the cap only once it has been silent
/// this long.
const SILENT_GRACE: Duration = Duration::from_secs(1);

/// An upload is only judged slow once it has run this long.
const RATE_GRACE: Duration = Duration::from_secs(1);

/// What one connection shares between its socket wrapper, its requests and the accept loop.
pub(crate) struct Conn {
    id: u64,
    /// `unix` or `tcp`.
    pub(crate) transport: &'static str,
    /// Answered 9522 and closed: this connection came in over the cap.
    pub(crate) rejecting: bool,
    /// At least one request was answered on it.
    served: AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
    /// Requests whose head has been read and whose answer is not yet finished (more than one
    /// only when a client pipelines).
    in_progress: AtomicUsize,
    /// When the connection last became ready for a request head (accepted, or an answer done).
    ready_since: Mutex<Instant>,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    /// `read_bytes` when the connection last became ready: more means a head is arriving.
    read_at_ready: AtomicU64,
    /// Answers handed to hyper in full, waiting for their bytes to be flushed.
    pending: Mutex<Vec<RequestMeter>>,
    io_open: AtomicBool,
    /// Closes the connection at once (displaced at the cap).
    pub(crate) evict: Notify,
    /// While a request body is being received: since when, and `read_bytes` then.
    receiving: Mutex<Option<(Instant, u64)>>,
    /// Tells the request being received that it was displaced at the cap.
    pub(crate) displace: Notify,
    /// Displaced at the cap: its answer closes the connection.
    displaced: AtomicBool,
    /// Answers being written (handed to hyper, not yet flushed or abandoned).
    answering: AtomicUsize,
    /// When a byte was last written, or an answer last started.
    last_write: Mutex<Instant>,
}

impl Conn {
    pub(crate) fn new(
        id: u64,
        transport: &'static str,
        rejecting: bool,
        metrics: Arc<Metrics>,
    ) -> Conn {
        Conn {
            id,
            transport,
            rejecting,
            served: AtomicBool::new(false),
            metrics,
            in_progress: AtomicUsize::new(0),
            ready_since: Mutex::new(Instant::now()),
            read_bytes: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            read_at_ready: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            io_open: AtomicBool::new(true),
            evict: Notify::new(),
            receiving: Mutex::new(None),
            displace: Notify::new(),
            displaced: AtomicBool::new(false),
            answering: AtomicUsize::new(0),
            last_write: Mutex::new(Instant::now()),
        }
    }

    /// A request body starts being received (its rate is watched from now).
    pub(crate) fn receiving_started(&self) {
        *lock(&self.receiving) = Some((Instant::now(), self.read_bytes.load(Ordering::Acquire)));
    }

    /// The request body has been received (or given up on).
    pub(crate) fn receiving_ended(&self) {
        *lock(&self.receiving) = None;
    }

    /// Bytes read since `since_bytes`: how much a body brought.
    pub(crate) fn read_since(&self, since_bytes: u64) -> u64 {
        self.read_bytes
            .load(Ordering::Acquire)
            .saturating_sub(since_bytes)
    }

    /// An idle keep-alive connection: it has answered a request and read nothing of another (a
    /// connection closed then owes no answer).
    pub(crate) fn is_idle_keep_alive(&self) -> bool {
        self.served.load(Ordering::Acquire) && !self.busy() && self.bytes_read_for_request() == 0
    }

    /// Displaced at the cap: no longer counted against it, so it must close after this answer.
    pub(crate) fn was_displaced(&self) -> bool {
        self.displaced.load(Ordering::Acquire)
    }

    /// Bytes read on this connection so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read_bytes.load(Ordering::Acquire)
    }

    /// The rate, in bytes per second, of the body being received, once it has run
    /// [`RATE_GRACE`]; `None` otherwise.
    fn upload_rate(&self) -> Option<f64> {
        let (since, at) = (*lock(&self.receiving))?;
        let elapsed = since.elapsed();
        (elapsed >= RATE_GRACE).then(|| self.read_since(at) as f64 / elapsed.as_secs_f64())
    }

    /// An answer was handed to hyper: from now on the client must keep reading it.
    pub(crate) fn answer_started(&self) {
        *lock(&self.last_write) = Instant::now();
        self.answering.fetch_add(1, Ordering::AcqRel);
    }

    /// That answer was written in full, or abandoned.
    pub(crate) fn answer_finished(&self) {
        self.answering.fetch_sub(1, Ordering::AcqRel);
    }

    /// How long until an answer being written has had no byte written for `timeout`; `Some(ZERO)`
    /// when it has (the client stopped reading); `None` with no answer being written.
    pub(crate) fn send_stall_remaining(&self, timeout: Duration) -> Option<Duration> {
        if self.answering.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(timeout.saturating_sub(lock(&self.last_write).elapsed()))
    }

    /// A request head has been read.
    pub(crate) fn request_started(&self) {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
    }

    /// The request's answer is finished (written, or abandoned): ready for the next head.
    pub(crate) fn request_finished(&self) {
        let mut ready_since = lock(&self.ready_since);
        self.served.store(true, Ordering::Release);
        if self.in_progress.fetch_sub(1, Ordering::AcqRel) == 1 {
            *ready_since = Instant::now();
            self.read_at_ready
                .store(self.read_bytes.load(Ordering::Acquire), Ordering::Release);
        }
    }

    fn busy(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) > 0
    }

    /// Bytes read since the connection last became ready: the current request as sent.
    pub(crate) fn bytes_read_for_request(&self) -> u64 {
        self.read_bytes
            .load(Ordering::Acquire)
            .saturating_sub(self.read_at_ready.load(Ordering::Acquire))
    }

    /// Bytes written on this connection so far.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.written_bytes.load(Ordering::Acquire)
    }

    /// Hands over a request whose whole answer is in hyper's hands; it is finished at the next
    /// flush (delivered) or when the socket fails or closes (aborted).
    pub(crate) fn answer_handed_over(&self, meter: RequestMeter) {
        let mut pending = lock(&self.pending);
        if self.io_open.load(Ordering::Acquire) {
            pending.push(meter);
        } else {
            drop(pending);
            drop(meter);
        }
    }

    /// Since when the connection has been waiting for a request head, if it is and may be
    /// displaced for it: an idle keep-alive connection or one part-way through a head at once, a
    /// new one that has sent nothing yet only after [`SILENT_GRACE`] (its request may be on its
    /// way, not yet read).
    fn waiting_since(&self) -> Option<Instant> {
        if self.busy() {
            return None;
        }
        let since = *lock(&self.ready_since);
        let silent = self.read_bytes.load(Ordering::Acquire) == 0;
        (!silent || since.elapsed() >= SILENT_GRACE).then_some(since)
    }

    /// How long until the connection would be idle for `idle`; `None` if it is idle that long
    /// already (no request in progress, no bytes of a new one).
    pub(crate) fn idle_remaining(&self, idle: Duration) -> Option<Duration> {
        if self.busy() || self.bytes_read_for_request() > 0 {
            return Some(idle);
        }
        idle.checked_sub(lock(&self.ready_since).elapsed())
            .filter(|d| !d.is_zero())
    }

    fn flushed(&self) {
        let written = std::mem::take(&mut *lock(&self.pending));
        for mut meter in written {
            meter.delivered();
        }
    }

    fn failed(&self) {
        let abandoned = std::mem::take(&mut *lock(&self.pending));
        drop(abandoned);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The open connections, for the cap and for waiting on shutdown.
pub(crate) struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    rejecting: AtomicU64,
    next_id: AtomicU64,
    changed: Notify,
    /// `--body-min-rate`: an upload slower than this may be displaced at the cap.
    body_min_rate: f64,
}

/// What [`Connections::admit`] decided.
pub(crate) enum Admission {
    /// Serve it.
    Admitted(Arc<Conn>),
    /// Over the cap with every connection busy at a good pace: answer 9522 and close.
    Reject(Arc<Conn>),
    /// Over the cap and already answering too many rejections: write [`OVERFLOW_ANSWER`], close.
    Overflow,
}

impl Connections {
    /// No connections yet; uploads under `body_min_rate` bytes per second may be displaced.
    pub(crate) fn new(body_min_rate: u64) -> Connections {
        Connections {
            open: Mutex::new(HashMap::new()),
            rejecting: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            changed: Notify::new(),
            body_min_rate: body_min_rate as f64,
        }
    }

    /// Admits a new connection under the cap of `max` open connections, displacing the one that
    /// has waited longest for a request head, else the slowest upload, when the cap is reached.
    pub(crate) fn admit(
        &self,
        max: usize,
        transport: &'static str,
        metrics: &Arc<Metrics>,
    ) -> Admission {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = lock(&self.open);
        if open.len() >= max {
            let oldest = open
                .values()
                .filter_map(|c| c.waiting_since().map(|since| (since, c.id)))
                .min()
                .map(|(_, id)| id);
            // Else the slowest upload under the least rate.
            let slowest = open
                .values()
                .filter_map(|c| c.upload_rate().map(|rate| (rate, c.id)))
                .filter(|&(rate, _)| rate < self.body_min_rate)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, id)| id);
            if let Some(old) = oldest {
                let old = open.remove(&old).expect("listed above");
                metrics.connection_rejected(old.transport, "evicted");
                old.evict.notify_one();
            } else if let Some(slow) = slowest {
                // Its request is answered 9522 and the connection closed (handler.rs); it no
                // longer counts against the cap.
                let slow = open.remove(&slow).expect("listed above");
                metrics.connection_rejected(slow.transport, "displaced");
                slow.displaced.store(true, Ordering::Release);
                slow.displace.notify_one();
            } else {
                metrics.connection_rejected(transport, "busy");
                if self.rejecting.fetch_add(1, Ordering::AcqRel) as usize >= MAX_REJECTING {
                    self.rejecting.fetch_sub(1, Ordering::AcqRel);
                    return Admission::Overflow;
                }
                return Admission::Reject(Arc::new(Conn::new(
                    id,
                    transport,
                    true,
                    Arc::clone(metrics),
                )));
            }
        }
        let conn = Arc::new(Conn::new(id, transport, false, Arc::clone(metrics)));
        open.insert(id, Arc::clone(&conn));
        Admission::Admitted(conn)
    }

    /// A connection's task has ended.
    pub(crate) fn remove(&self, conn: &Conn) {
        if conn.rejecting {
            self.rejecting.fetch_sub(1, Ordering::AcqRel);
        } else {
            lock(&self.open).remove(&conn.id);
        }
        self.changed.notify_waiters();
    }

    /// Open connections (admitted ones; not those being rejected).
    pub(crate) fn count(&self) -> usize {
        lock(&self.open).len()
    }

    /// Completes when no admitted or rejecting connection is left.
    pub(crate) async fn all_closed(&self) {
        loop {
            let changed = self.changed.notified();
            if self.count() == 0 && self.rejecting.load(Ordering::Acquire) == 0 {
                return;
            }
            // Evicted connections leave the map before their task ends; poll as a fallback.
            let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
        }
    }
}

/// A client socket that counts bytes and tells its [`Conn`] when an answer was flushed.
pub(crate) struct MeteredIo<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> MeteredIo<S> {
    pub(crate) fn new(inner: S, conn: Arc<Conn>) -> Self {
        MeteredIo { inner, conn }
    }
}

impl<S> Drop for MeteredIo<S> {
    fn drop(&mut self) {
        self.conn.io_open.store(false, Ordering::Release);
        self.conn.failed();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let n = (buf.filled().len() - before) as u64;
            self.conn.read_bytes.fetch_add(n, Ordering::AcqRel);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> MeteredIo<S> {
    fn count(&self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &result {
            Poll::Ready(Ok(n)) => {
                self.conn
                    .written_bytes
                    .fetch_add(*n as u64, Ordering::AcqRel);
                if *n > 0 {
                    *lock(&self.conn.last_write) = Instant::now();
                }
            }
            Poll::Ready(Err(_)) => self.conn.failed(),
            Poll::Pending => {}
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// hyper flushes only once its write buffer is empty: after an answer's last byte was
    /// handed over, the first successful flush means the whole answer is written.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        match &result {
            Poll::Ready(Ok(())) => self.conn.flushed(),
            Poll::Ready(Err(_)) => self.conn.failed(),
            Poll::Pending => {}
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overflow_answer_is_a_complete_coded_503() {
        let text = std::str::from_utf8(OVERFLOW_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\ncf-images-binding: err=9522\r\n"));
        assert!(head.contains("\r\nretry-after: 1\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        assert!(body.starts_with("ERROR 9522: "));
    }
}
