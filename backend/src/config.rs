//! Server configuration: the `imgbind serve` flags (each also an `IMGBIND_*` environment variable)
//! and the typed [`Config`] they become.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use imgbind_engine::Limits;

/// TCP address used when neither `--unix` nor `--listen` is given. Loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// Port used by [`DEFAULT_LISTEN`] and by a `--listen HOST` without a port.
pub const DEFAULT_PORT: u16 = 8790;

/// `imgbind`: a self-hostable backend for Cloudflare's Images binding.
#[derive(Debug, Parser)]
#[command(name = "imgbind", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve `POST /transform`, `POST /info` and `GET /healthz` on a Unix socket and/or TCP.
    Serve(ServeArgs),
}

/// Flags of `imgbind serve`. Every flag can also be set with the environment variable named in
/// its help; a flag on the command line wins.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on. A stale socket file at this path is removed first (any other
    /// kind of file is left alone and is an error).
    #[arg(long, env = "IMGBIND_UNIX", value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// Permissions of the Unix socket file, in octal. Only the owner may connect by default.
    #[arg(long, env = "IMGBIND_UNIX_MODE", value_name = "OCTAL", default_value = "600", value_parser = parse_octal_mode)]
    pub unix_mode: u32,

    /// TCP address to listen on: `HOST:PORT`, `PORT` (binds 127.0.0.1) or `HOST` (port 8790).
    /// Without --unix or --listen the server listens on 127.0.0.1:8790. Use 0.0.0.0 or :: only
    /// behind something that authenticates: the server itself does not.
    #[arg(long, env = "IMGBIND_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Option<SocketAddr>,

    /// Largest accepted request, in bytes, counted over all parts' contents (images and fields).
    /// Bigger requests are answered 9402.
    #[arg(long, env = "IMGBIND_MAX_INPUT_BYTES", value_name = "BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,

    /// Most frames one animated input may have; more is answered 9522.
    #[arg(long, env = "IMGBIND_MAX_FRAMES", value_name = "N", default_value_t = Limits::default().max_frames)]
    pub max_frames: u32,

    /// Most frame-pixels (canvas width × height × frames) of one animated input or result; a
    /// bigger input is answered 9413, a bigger result 9522.
    #[arg(long, env = "IMGBIND_MAX_ANIMATION_PIXELS", value_name = "PIXELS", default_value_t = Limits::default().max_animation_pixels)]
    pub max_animation_pixels: u64,

    /// Longest time one image job may take, in milliseconds, before it is answered 9529.
    #[arg(long, env = "IMGBIND_DEADLINE_MS", value_name = "MS", default_value_t = Limits::default().deadline.as_millis() as u64)]
    pub deadline_ms: u64,

    /// Image jobs run at once on the blocking pool. 0 means one per CPU core.
    #[arg(long, env = "IMGBIND_JOBS", value_name = "N", default_value_t = 0)]
    pub jobs: usize,

    /// Image jobs allowed to wait for a free slot. Past this, requests are answered 9522 (503)
    /// at once instead of queueing.
    #[arg(long, env = "IMGBIND_QUEUE", value_name = "N", default_value_t = 8)]
    pub queue: usize,

    /// Directory of font files a text source may name in `font.url` (`{url: "Inter-Bold.ttf"}`;
    /// subdirectories allowed, nothing outside it). Without it only the bundled font
    /// (`DejaVuSans.ttf`) and `data:` URLs work. Fonts are never fetched over the network.
    #[arg(long, env = "IMGBIND_FONT_DIR", value_name = "DIR", value_parser = parse_font_dir)]
    pub font_dir: Option<PathBuf>,

    /// Time allowed for a client to send the request head, in seconds.
    #[arg(
        long,
        env = "IMGBIND_HEADER_READ_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub header_read_timeout_secs: u64,

    /// Time allowed to receive a whole request body, in seconds; a slower upload is answered
    /// 9402 and the connection closed.
    #[arg(
        long,
        env = "IMGBIND_RECEIVE_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 120
    )]
    pub receive_timeout_secs: u64,

    /// After an early answer (an error decided before the upload ended), the rest of the request
    /// body is read and discarded, up to this many bytes, so the answer is not lost to a TCP reset.
    /// Past it the answer carries `Connection: close`.
    #[arg(long, env = "IMGBIND_DRAIN_MAX_BYTES", value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub drain_max_bytes: u64,

    /// Time allowed for that discarding, in seconds.
    #[arg(
        long,
        env = "IMGBIND_DRAIN_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub drain_timeout_secs: u64,

    /// On SIGTERM/SIGINT, time given to in-flight connections to finish, in seconds.
    #[arg(
        long,
        env = "IMGBIND_SHUTDOWN_TIMEOUT_SECS",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub shutdown_timeout_secs: u64,

    /// Log filter, in `tracing_subscriber::EnvFilter` syntax (e.g. `info`, `imgbind_backend=debug`).
    #[arg(
        long,
        env = "IMGBIND_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
}

/// Everything the server needs to run, with typed values.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket path, if any.
    pub unix: Option<PathBuf>,
    /// Mode bits of the Unix socket file.
    pub unix_mode: u32,
    /// TCP address, if any.
    pub listen: Option<SocketAddr>,
    /// Limits handed to the engine (and `max_input_bytes`, which the receiver enforces too).
    pub limits: Limits,
    /// Image jobs run at once.
    pub jobs: usize,
    /// Image jobs that may wait for a slot.
    pub queue: usize,
    /// Time to read a request head.
    pub header_read_timeout: Duration,
    /// Time to receive a whole request body.
    pub receive_timeout: Duration,
    /// Bytes discarded at most after an early answer.
    pub drain_max_bytes: u64,
    /// Time spent discarding at most after an early answer.
    pub drain_timeout: Duration,
    /// Time in-flight connections get on shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    /// No listener (set `unix` and/or `listen`), the engine's default limits, one job per core.
    fn default() -> Self {
        Config {
            unix: None,
            unix_mode: 0o600,
            listen: None,
            limits: Limits::default(),
            jobs: cores(),
            queue: 8,
            header_read_timeout: Duration::from_secs(30),
            receive_timeout: Duration::from_secs(120),
            drain_max_bytes: 64 * 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServeArgs {
    /// The typed configuration, applying the defaults that depend on other flags.
    pub fn into_config(self) -> Config {
        let listen = match (&self.unix, self.listen) {
            (None, None) => Some(DEFAULT_LISTEN),
            (_, listen) => listen,
        };
        let limits = Limits {
            max_input_bytes: self.max_input_bytes,
            deadline: Duration::from_millis(self.deadline_ms),
            font_dir: self.font_dir,
            max_frames: self.max_frames,
            max_animation_pixels: self.max_animation_pixels,
            ..Limits::default()
        };
        Config {
            unix: self.unix,
            unix_mode: self.unix_mode,
            listen,
            limits,
            jobs: if self.jobs == 0 { cores() } else { self.jobs },
            queue: self.queue,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            receive_timeout: Duration::from_secs(self.receive_timeout_secs),
            drain_max_bytes: self.drain_max_bytes,
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }
}

/// `--font-dir`: must be an existing directory (checked at startup, not at the first text request).
fn parse_font_dir(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("{value} is not a directory"))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_octal_mode(value: &str) -> Result<u32, String> {
    let digits = value.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{value:?} is not an octal mode such as 600 or 660")),
    }
}

fn parse_listen_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = value.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    let host = value.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if value == "localhost" {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_PORT));
    }
    Err(format!(
        "{value:?} is not an address such as 127.0.0.1:8790, 8790 or [::1]:8790"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["imgbind", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_to_loopback_tcp_only_without_listeners() {
        let config = serve(&[]).into_config();
        assert_eq!(config.listen, Some(DEFAULT_LISTEN));
        assert!(config.listen.unwrap().ip().is_loopback());
        let config = serve(&["--unix", "/tmp/x.sock"]).into_config();
        assert_eq!(config.listen, None);
        assert_eq!(config.unix_mode, 0o600);
    }

    #[test]
    fn parses_addresses_and_modes() {
        assert_eq!(
            parse_listen_addr("9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(parse_listen_addr("0.0.0.0").unwrap().port(), DEFAULT_PORT);
        assert!(parse_listen_addr("nowhere:x").is_err());
        assert_eq!(parse_octal_mode("660").unwrap(), 0o660);
        assert!(parse_octal_mode("999").is_err());
        assert!(parse_octal_mode("7777").is_err());
    }
}
