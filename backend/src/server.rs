//! Listeners, the accept loop (Unix socket and TCP), the HTTP/1 connection settings and graceful
//! shutdown.

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
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::handler::{self, State};
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
            Some(path) => Some((bind_unix(path, config.unix_mode)?, path.clone())),
            None => None,
        };

        let mut http1 = http1::Builder::new();
        http1
            // A client that half-closes after its request still gets the whole answer.
            .half_close(true)
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);

        Ok(Server {
            tcp,
            unix,
            state: Arc::new(State::new(config, engine)),
            http1,
            shutdown_timeout: config.shutdown_timeout,
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

    /// Accepts connections until `shutdown` completes, then stops accepting, lets in-flight
    /// connections finish (within the shutdown timeout) and removes the socket file.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Server {
            tcp,
            unix,
            state,
            http1,
            shutdown_timeout,
        } = self;
        if let Some(addr) = tcp.as_ref().and_then(|l| l.local_addr().ok()) {
            tracing::info!(%addr, "listening on TCP");
        }
        if let Some((_, path)) = &unix {
            tracing::info!(path = %path.display(), "listening on Unix socket");
        }

        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept_tcp(tcp.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        // Small request heads and answers go out at once.
                        let _ = stream.set_nodelay(true);
                        serve_connection(&graceful, &http1, &state, stream, peer.to_string());
                    }
                    Err(error) => accept_failed(error).await,
                },
                accepted = accept_unix(unix.as_ref().map(|(l, _)| l)) => match accepted {
                    Ok(stream) => serve_connection(&graceful, &http1, &state, stream, "unix".to_owned()),
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
            connections = graceful.count(),
            "shutting down: no longer accepting; waiting for in-flight connections"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections finished"),
            () = tokio::time::sleep(shutdown_timeout) => {
                tracing::warn!(timeout_secs = shutdown_timeout.as_secs(), "shutdown timeout; dropping remaining connections");
            }
        }
        Ok(())
    }
}

fn serve_connection<S>(
    graceful: &GracefulShutdown,
    http1: &http1::Builder,
    state: &Arc<State>,
    stream: S,
    peer: String,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::clone(state);
    let service = service_fn(move |request| handler::serve(Arc::clone(&state), request));
    let connection = http1.serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    });
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
