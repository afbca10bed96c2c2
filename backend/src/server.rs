//! Listeners, the accept loop (Unix socket and TCP), the HTTP/1 connection settings, the
//! connection cap and timeouts, and graceful shutdown.
//!
//! Connection behaviour (also in `docs/OPERATIONS.md`):
//! - header timeout: hyper's `header_read_timeout`, from when a connection is ready for a request
//!   head (accepted, or the previous answer written) until the whole head is in; on expiry the
//!   connection is closed without an answer. It also bounds how long an idle connection lives.
//! - idle timeout: a connection with no request in progress and no bytes of a new one for this
//!   long is closed (hyper's graceful close of an idle connection).
//! - body timeout and least body rate: in the handler (receiving a body; 9402 and close).
//! - send timeout: a connection writing an answer whose client reads nothing for this long is
//!   closed (the answer's memory goes back to the budget).
//! - cap: see [`Connections::admit`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::connection::{Admission, Conn, Connections, MeteredIo, OVERFLOW_ANSWER};
use crate::handler::{self, State};
use crate::hosted::Hosted;
use crate::jobs::{Engine, PixelEngine};
use crate::Config;

/// A bound server, not yet accepting. Binding is separate from running so callers (tests) can
/// learn the ephemeral TCP port first.
pub struct Server {
    tcp: Option<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    state: Arc<State>,
    http1: http1::Builder,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
    body_min_rate: u64,
    max_connections: usize,
}

impl Server {
    /// Binds the configured listeners, with the real engine.
    pub async fn bind(config: &Config) -> io::Result<Server> {
        Server::bind_with_engine(config, Arc::new(PixelEngine)).await
    }

    /// Binds the configured listeners, with the given engine.
    pub async fn bind_with_engine(config: &Config, engine: Arc<dyn Engine>) -> io::Result<Server> {
        if config.unix.is_none() && config.listen.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nothing to listen on: set a Unix socket path and/or a TCP address",
            ));
        }
        let tcp =
            match config.listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
                })?),
                None => None,
            };
        let unix = match &config.unix {
            Some(path) => Some((bind_unix(path, config.socket_mode)?, path.clone())),
            None => None,
        };
        // The public URL defaults to the bound address (port 0 resolved).
        let bound = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let hosted = Hosted::open(&config.hosted, bound)
            .await
            .map_err(|e| io::Error::other(format!("hosted images: {}", e.message())))?;
        tracing::info!(hosted = %hosted.describe(), "hosted images");
        if hosted.refuses_tcp() && bound.is_some() {
            tracing::warn!(
                "hosted images are served on the Unix socket only: over TCP every hosted route \
                 but delivery and upload links answers 401 until --api-token (IMGBIND_API_TOKEN) is set"
            );
        }

        let mut http1 = http1::Builder::new();
        http1
            // A client that half-closes after its request still gets the whole answer.
            .half_close(true)
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout);

        Ok(Server {
            tcp,
            unix,
            state: Arc::new(State::new(config, engine, hosted)),
            http1,
            shutdown_timeout: config.shutdown_timeout,
            shutdown_delay: config.shutdown_delay,
            idle_timeout: config.idle_timeout,
            send_timeout: config.send_timeout,
            body_min_rate: config.body_min_rate,
            max_connections: config.max_connections.max(1),
        })
    }

    /// The bound TCP address, if listening on TCP (resolves port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The Unix socket path, if listening on one.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, path)| path.as_path())
    }

    /// Accepts connections until `shutdown` completes; then `/readyz` answers 503 while the server
    /// keeps accepting and serving for the shutdown delay; then it stops accepting, lets in-flight
    /// connections finish (within the shutdown timeout) and removes the socket file.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            tcp,
            unix,
            state,
            http1,
            shutdown_timeout,
            shutdown_delay,
            idle_timeout,
            send_timeout,
            body_min_rate,
            max_connections,
        } = self;
        if let Some(addr) = tcp.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(%addr, "listening on TCP");
        }
        if let Some((_, path)) = &unix {
            tracing::info!(path = %path.display(), "listening on Unix socket");
        }

        let (stop, stopping) = watch::channel(false);
        let trimmer = crate::memory::spawn_trimmer(state.budget.clone());
        let context = Arc::new(ConnContext {
            state,
            http1,
            idle_timeout,
            send_timeout,
            connections: Connections::new(body_min_rate),
            stopping,
        });
        let mut shutdown = std::pin::pin!(shutdown);
        // Set when the shutdown signal arrives: listeners stay open until then.
        let mut close_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = &mut shutdown, if close_at.is_none() => {
                    context.state.ready.store(false, std::sync::atomic::Ordering::SeqCst);
                    if shutdown_delay.is_zero() {
                        break;
                    }
                    tracing::info!(
                        delay_ms = shutdown_delay.as_millis() as u64,
                        "shutting down: /readyz answers 503; still serving for the shutdown delay"
                    );
                    close_at = Some(tokio::time::Instant::now() + shutdown_delay);
                }
                () = until(close_at) => break,
                accepted = accept_tcp(tcp.as_ref()) => match accepted {
                    Ok((stream, _peer)) => {
                        // Small request heads and answers go out at once.
                        let _ = stream.set_nodelay(true);
                        admit(&context, max_connections, stream, "tcp");
                    }
                    Err(error) => accept_failed(error).await,
                },
                accepted = accept_unix(unix.as_ref().map(|(l, _)| l)) => match accepted {
                    Ok(stream) => admit(&context, max_connections, stream, "unix"),
                    Err(error) => accept_failed(error).await,
                },
            }
        }

        drop(tcp);
        if let Some((listener, path)) = unix {
            drop(listener);
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(
            connections = context.connections.count(),
            "shutting down: no longer accepting; waiting for in-flight connections"
        );
        let _ = stop.send(true);
        tokio::select! {
            () = context.connections.all_closed() => tracing::info!("all connections finished"),
            () = tokio::time::sleep(shutdown_timeout) => {
                tracing::warn!(timeout_secs = shutdown_timeout.as_secs(), "shutdown timeout; dropping remaining connections");
            }
        }
        trimmer.abort();
        Ok(())
    }
}

/// What every connection task shares.
struct ConnContext {
    state: Arc<State>,
    http1: http1::Builder,
    idle_timeout: Duration,
    send_timeout: Duration,
    connections: Connections,
    /// Becomes `true` on shutdown.
    stopping: watch::Receiver<bool>,
}

/// Applies the connection cap to a new connection, then serves it (or rejects it, or drops it).
fn admit<S>(context: &Arc<ConnContext>, max: usize, stream: S, transport: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = &context.state.metrics;
    metrics
        .connections_accepted
        .get_or_create(&crate::metrics::TransportLabels { transport })
        .inc();
    match context.connections.admit(max, transport, metrics) {
        Admission::Admitted(conn) | Admission::Reject(conn) => {
            serve_connection(Arc::clone(context), conn, stream);
        }
        Admission::Overflow => {
            tracing::debug!(
                transport,
                "over the connection cap; answered 9522 without reading"
            );
            tokio::spawn(overflow(stream));
        }
    }
}

fn serve_connection<S>(context: Arc<ConnContext>, conn: Arc<Conn>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = Arc::clone(&context.state.metrics);
    let open = metrics
        .connections_open
        .get_or_create_owned(&crate::metrics::TransportLabels {
            transport: conn.transport,
        });
    open.inc();
    tokio::spawn(async move {
        let service = {
            let (state, conn) = (Arc::clone(&context.state), Arc::clone(&conn));
            service_fn(move |request| {
                handler::serve(Arc::clone(&state), Arc::clone(&conn), request)
            })
        };
        let io = MeteredIo::new(stream, Arc::clone(&conn));
        let mut http1 = context.http1.clone();
        if conn.rejecting {
            http1.keep_alive(false);
        }
        let mut connection = http1.serve_connection(TokioIo::new(io), service);
        let mut stopping = context.stopping.clone();
        let mut closing: Option<&'static str> = None;
        let reason = loop {
            tokio::select! {
                result = &mut connection => break match result {
                    Ok(()) => closing.unwrap_or("done"),
                    Err(error) if error.is_timeout() => "header_timeout",
                    Err(error) => {
                        tracing::debug!(transport = conn.transport, %error, "connection ended with an error");
                        "error"
                    }
                },
                () = conn.evict.notified() => break "evicted",
                changed = stopping.changed(), if closing.is_none() => {
                    if changed.is_err() || *stopping.borrow() {
                        // Finish the request in progress, if any, then close.
                        std::pin::Pin::new(&mut connection).graceful_shutdown();
                        closing = Some("shutdown");
                    }
                }
                () = send_stalled(&conn, context.send_timeout) => break "send_timeout",
                () = idle(&conn, context.idle_timeout), if closing.is_none() => {
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    closing = Some("idle_timeout");
                }
            }
        };
        if reason == "evicted" && !conn.is_idle_keep_alive() {
            // Displaced at the cap before its request was read: it still gets a complete 503.
            let io = connection.into_parts().io.into_inner();
            overflow(io).await;
        }
        metrics.connection_closed(conn.transport, reason);
        open.dec();
        context.connections.remove(&conn);
    });
}

/// Completes once an answer on `conn` has had no byte written for `timeout`: its client stopped
/// reading.
async fn send_stalled(conn: &Conn, timeout: Duration) {
    loop {
        match conn.send_stall_remaining(timeout) {
            Some(Duration::ZERO) => return,
            Some(wait) => tokio::time::sleep(wait).await,
            // Nothing being written: look again later.
            None => tokio::time::sleep(timeout).await,
        }
    }
}

/// Time given to a connection over the cap to take its fixed answer, and then to finish sending
/// (its bytes are read and discarded, so closing does not reset the answer away).
const OVERFLOW_LINGER: Duration = Duration::from_secs(1);

/// Answers a connection over the cap (or displaced from it before its request was read) with
/// [`OVERFLOW_ANSWER`] without reading its request, then discards what it sends for a moment
/// before closing.
async fn overflow<S>(mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let answered = async {
        stream.write_all(OVERFLOW_ANSWER).await?;
        stream.shutdown().await
    };
    if matches!(
        tokio::time::timeout(OVERFLOW_LINGER, answered).await,
        Ok(Ok(()))
    ) {
        let mut discard = [0u8; 4096];
        let _ = tokio::time::timeout(OVERFLOW_LINGER, async {
            while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Completes once `conn` has been idle (no request in progress, no bytes of a new one) for
/// `timeout`.
async fn idle(conn: &Conn, timeout: Duration) {
    while let Some(wait) = conn.idle_remaining(timeout) {
        tokio::time::sleep(wait).await;
    }
}

/// Completes at `at`; never without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn accept_tcp(
    listener: Option<&TcpListener>,
) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_unix(listener: Option<&UnixListener>) -> io::Result<tokio::net::UnixStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Accept errors (e.g. out of file descriptors) are logged and retried after a pause rather than
/// ending the server.
async fn accept_failed(error: io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Binds a Unix socket: removes a stale socket file first, creates the new one owner-only
/// (umask), then sets `mode`.
fn bind_unix(path: &Path, mode: u32) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Created under a umask that makes it owner-only, so no one else can connect in the moment
    // between bind and chmod. umask is process-wide; this runs at startup, before any job.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(previous);
    let listener = bound
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
}
