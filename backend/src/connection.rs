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
//! connection, or a slow client still sending its head); when every connection is busy with a
//! request, the new connection is answered 9522 and closed.

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

/// Connections answered 9522 at the cap at once; past this, excess connections are closed at once.
pub(crate) const MAX_REJECTING: usize = 64;

/// What one connection shares between its socket wrapper, its requests and the accept loop.
pub(crate) struct Conn {
    id: u64,
    /// `unix` or `tcp`.
    pub(crate) transport: &'static str,
    /// Answered 9522 and closed: this connection came in over the cap.
    pub(crate) rejecting: bool,
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
            metrics,
            in_progress: AtomicUsize::new(0),
            ready_since: Mutex::new(Instant::now()),
            read_bytes: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            read_at_ready: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            io_open: AtomicBool::new(true),
            evict: Notify::new(),
        }
    }

    /// A request head has been read.
    pub(crate) fn request_started(&self) {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
    }

    /// The request's answer is finished (written, or abandoned): ready for the next head.
    pub(crate) fn request_finished(&self) {
        let mut ready_since = lock(&self.ready_since);
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

    /// Since when the connection has been waiting for a request head, if it is.
    fn waiting_since(&self) -> Option<Instant> {
        (!self.busy()).then(|| *lock(&self.ready_since))
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
#[derive(Default)]
pub(crate) struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    rejecting: AtomicU64,
    next_id: AtomicU64,
    changed: Notify,
}

/// What [`Connections::admit`] decided.
pub(crate) enum Admission {
    /// Serve it.
    Admitted(Arc<Conn>),
    /// Over the cap with every connection busy: answer 9522 and close.
    Reject(Arc<Conn>),
    /// Over the cap and already answering too many rejections: close it unanswered.
    Drop,
}

impl Connections {
    /// Admits a new connection under the cap of `max` open connections, displacing the one that
    /// has waited longest for a request head when the cap is reached.
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
                .min();
            match oldest {
                Some((_, old)) => {
                    let old = open.remove(&old).expect("listed above");
                    metrics.connection_rejected(old.transport, "evicted");
                    old.evict.notify_one();
                }
                None => {
                    metrics.connection_rejected(transport, "busy");
                    if self.rejecting.fetch_add(1, Ordering::AcqRel) as usize >= MAX_REJECTING {
                        self.rejecting.fetch_sub(1, Ordering::AcqRel);
                        return Admission::Drop;
                    }
                    return Admission::Reject(Arc::new(Conn::new(
                        id,
                        transport,
                        true,
                        Arc::clone(metrics),
                    )));
                }
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
