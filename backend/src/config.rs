//! Server configuration: the `imgbind serve` flags (each also an `IMGBIND_*` environment variable)
//! and the typed [`Config`] they become.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::hosted::settings::{HostedArgs, HostedConfig, StoreChoice, Variant};
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
    Serve(Box<ServeArgs>),
    /// Ask a running `imgbind serve` for `GET /healthz` and exit 0 on `200`, 1 otherwise: a
    /// container healthcheck that needs no curl in the image.
    Health(HealthArgs),
}

/// Flags of `imgbind health`. The address comes from the same variables as `serve`'s.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// TCP address `imgbind serve` listens on (a wildcard such as 0.0.0.0 is reached through
    /// loopback). Without it and without --unix: 127.0.0.1:8790.
    #[arg(long, env = "IMGBIND_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Option<SocketAddr>,

    /// Unix socket `imgbind serve` listens on; used when --listen is not given.
    #[arg(long, env = "IMGBIND_UNIX", value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// Path to ask for: `/healthz` (liveness) or `/readyz` (readiness, 503 once shutting down).
    #[arg(long, value_name = "PATH", default_value = "/healthz")]
    pub path: String,

    /// Longest the connection and the answer may take.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Flags of `imgbind serve`. Every flag can also be set with the environment variable named in
/// its help; a flag on the command line wins.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket to listen on. A stale socket file at this path is removed first (any other
    /// kind of file is left alone and is an error).
    #[arg(long, env = "IMGBIND_UNIX", value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// Permissions of the Unix socket file, in octal. Only the owner may connect by default; 660
    /// lets the socket's group in too.
    #[arg(long, visible_alias = "unix-mode", env = "IMGBIND_SOCKET_MODE", value_name = "OCTAL", default_value = format!("{:o}", Config::default().socket_mode), value_parser = parse_octal_mode)]
    pub socket_mode: u32,

    /// TCP address to listen on: `HOST:PORT`, `PORT` (binds 127.0.0.1) or `HOST` (port 8790).
    /// Without --unix or --listen the server listens on 127.0.0.1:8790. Use 0.0.0.0 or :: only
    /// behind something that authenticates: the server itself does not.
    #[arg(long, env = "IMGBIND_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Option<SocketAddr>,

    /// Largest accepted request, in bytes, counted over all parts' contents (images and fields).
    /// Bigger requests are answered 9402.
    #[arg(long, env = "IMGBIND_MAX_INPUT_BYTES", value_name = "BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,

    /// Most pixels (width × height) of one decoded image, checked from its header before any
    /// pixel buffer exists; more is answered 9413.
    #[arg(long, env = "IMGBIND_MAX_PIXELS", value_name = "PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,

    /// Longest side of one decoded image, checked from its header; longer is answered 9413.
    #[arg(long, env = "IMGBIND_MAX_SIDE", value_name = "PX", default_value_t = Limits::default().max_side)]
    pub max_side: u32,

    /// Most pixels of any image the steps create (resize, pad, border, text); more is answered 9413.
    #[arg(long, env = "IMGBIND_MAX_OUTPUT_PIXELS", value_name = "PIXELS", default_value_t = Limits::default().max_output_pixels)]
    pub max_output_pixels: u64,

    /// Most draw steps in one request; more is answered 9413.
    #[arg(long, env = "IMGBIND_MAX_DRAW_LAYERS", value_name = "N", default_value_t = Limits::default().max_draw_layers)]
    pub max_draw_layers: u32,

    /// Most characters in one text source; more is answered 9401.
    #[arg(long, env = "IMGBIND_MAX_TEXT_CHARS", value_name = "N", default_value_t = Limits::default().max_text_chars)]
    pub max_text_chars: u32,

    /// Largest font file (a `data:` URL's bytes or a file in --font-dir); bigger is answered 9402.
    #[arg(long, env = "IMGBIND_MAX_FONT_BYTES", value_name = "BYTES", default_value_t = Limits::default().max_font_bytes)]
    pub max_font_bytes: u64,

    /// Most frames one animated input may have; more is answered 9413.
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

    /// Most threads one image job may take from idle cores: a layer decoded beside the canvas, an
    /// animation's frames decoded a frame ahead, resize stripes, WebP and AVIF decode threads.
    /// 0 (the default) means every core; 1 runs each job on one thread. At full load every job
    /// has one either way, so only latency on a machine with idle cores changes
    /// (docs/BENCHMARKS.md, session 11: 0.94–0.96× p50 over the bench's jobs, 0.61–0.71× with a
    /// large layer).
    #[arg(
        long,
        env = "IMGBIND_JOB_THREADS",
        value_name = "N",
        default_value_t = 0
    )]
    pub job_threads: usize,

    /// Most image jobs waiting for a free slot. Past this, requests are answered 9522 (503 with
    /// `Retry-After`) at once instead of queueing.
    #[arg(long, env = "IMGBIND_QUEUE", value_name = "N", default_value_t = Config::default().queue)]
    pub queue: usize,

    /// Longest an image job may wait for a free slot. A job whose expected wait (the jobs ahead of
    /// it times the recent job time, over the job slots) is longer is refused at once, and one
    /// still waiting when it passes is refused then: 9522, 503 with `Retry-After`.
    /// Default: half the default deadline.
    #[arg(long, env = "IMGBIND_QUEUE_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().queue_timeout), value_parser = parse_duration)]
    pub queue_timeout: Duration,

    /// Directory of font files a text source may name in `font.url` (`{url: "Inter-Bold.ttf"}`;
    /// subdirectories allowed, nothing outside it). Without it only the bundled font
    /// (`DejaVuSans.ttf`) and `data:` URLs work. Fonts are never fetched over the network.
    #[arg(long, env = "IMGBIND_FONT_DIR", value_name = "DIR", value_parser = parse_font_dir)]
    pub font_dir: Option<PathBuf>,

    /// Time allowed for a client to send a complete request head, counted from when the connection
    /// is ready for one (accepted, or the previous answer written). A client that has not sent a
    /// whole head by then is disconnected without an answer. Durations: `30`, `30s`, `500ms`.
    #[arg(long, visible_alias = "header-read-timeout-secs", env = "IMGBIND_HEADER_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().header_timeout), value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time allowed to receive a whole request body; a slower upload is answered 9402 and the
    /// connection closed. (A body must also keep up --body-min-rate.)
    #[arg(long, visible_alias = "receive-timeout-secs", env = "IMGBIND_BODY_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().body_timeout), value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Least rate, in bytes per second, at which a request body must arrive: a body that brings
    /// less than this rate × --body-rate-window in any such window is answered 9402 and the
    /// connection closed (like nginx's `client_body_timeout` and Apache's `MinRate`). At the
    /// connection cap the slowest upload under this rate is displaced (answered 9522, 503).
    #[arg(long, env = "IMGBIND_BODY_MIN_RATE", value_name = "BYTES", default_value_t = Config::default().body_min_rate)]
    pub body_min_rate: u64,

    /// The window over which --body-min-rate is measured.
    #[arg(long, env = "IMGBIND_BODY_RATE_WINDOW", value_name = "DURATION", default_value = duration_text(Config::default().body_rate_window), value_parser = parse_duration)]
    pub body_rate_window: Duration,

    /// A client that reads nothing of its answer for this long is disconnected, and the memory
    /// its answer held is freed.
    #[arg(long, env = "IMGBIND_SEND_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().send_timeout), value_parser = parse_duration)]
    pub send_timeout: Duration,

    /// Bytes of memory held for requests at once, across all connections: request bodies being
    /// received, each running job's estimated working memory (all its decoded sources, draw
    /// layers included, known from their headers) and answers until they are written. A job
    /// waits in the queue until it fits (else 9522, 503 with `Retry-After`); one that could never
    /// fit is answered 9413. `512M`, `4G` or bytes; default: three quarters of the memory this
    /// machine or its cgroup allows.
    #[arg(long, env = "IMGBIND_MEMORY_BUDGET", value_name = "BYTES", default_value_t = Config::default().memory_budget, value_parser = parse_bytes)]
    pub memory_budget: u64,

    /// Of --memory-budget, the most that request bodies being received may hold; a body that
    /// would pass it is answered 9522 (503 with `Retry-After`). 0: a quarter of --memory-budget.
    #[arg(long, env = "IMGBIND_UPLOAD_BUDGET", value_name = "BYTES", default_value_t = 0, value_parser = parse_bytes)]
    pub upload_budget: u64,

    /// A keep-alive connection with no request in progress and no new bytes for this long is
    /// closed. (The header timeout also bounds idle time, so the shorter of the two applies.)
    #[arg(long, env = "IMGBIND_IDLE_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().idle_timeout), value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections open at once (Unix socket and TCP together). At the cap a new connection
    /// displaces the connection that has waited longest for a request head; when every
    /// connection is busy with a request, the new one is answered 9522 (503) and closed.
    #[arg(long, env = "IMGBIND_MAX_CONNECTIONS", value_name = "N", default_value_t = Config::default().max_connections as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// After an early answer (an error decided before the upload ended), the rest of the request
    /// body is read and discarded, up to this many bytes, so the answer is not lost to a TCP reset.
    /// Past it the answer carries `Connection: close`.
    #[arg(long, env = "IMGBIND_DRAIN_MAX_BYTES", value_name = "BYTES", default_value_t = Config::default().drain_max_bytes)]
    pub drain_max_bytes: u64,

    /// Time allowed for that discarding.
    #[arg(long, visible_alias = "drain-timeout-secs", env = "IMGBIND_DRAIN_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().drain_timeout), value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// On SIGTERM/SIGINT, time given to in-flight connections to finish.
    #[arg(long, visible_alias = "shutdown-timeout-secs", env = "IMGBIND_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = duration_text(Config::default().shutdown_timeout), value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// On SIGTERM/SIGINT, `GET /readyz` answers 503 at once, but the listeners stay open and
    /// requests are served as usual for this long; then the listeners close and in-flight
    /// connections get --shutdown-timeout. Lets a load balancer or Kubernetes take the server out
    /// of rotation before it stops accepting. `0` (the default) closes the listeners at once.
    #[arg(long, env = "IMGBIND_SHUTDOWN_DELAY", value_name = "DURATION", default_value = duration_text(Config::default().shutdown_delay), value_parser = parse_delay)]
    pub shutdown_delay: Duration,

    /// Serve `GET /metrics` (Prometheus text format): `on` or `off`.
    #[arg(long, env = "IMGBIND_METRICS", value_name = "on|off", default_value = if Config::default().metrics { "on" } else { "off" }, value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Log filter, in `tracing_subscriber::EnvFilter` syntax (`info`, `warn`,
    /// `imgbind_backend=debug`, …). When neither this flag nor IMGBIND_LOG is given, RUST_LOG is
    /// used if set.
    #[arg(
        long,
        visible_alias = "log",
        env = "IMGBIND_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log_level: String,

    /// Log line format on stderr: `human` (one readable line per event) or `json` (one JSON
    /// object per line).
    #[arg(
        long,
        env = "IMGBIND_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "human"
    )]
    pub log_format: LogFormat,

    /// Hosted images (`docs/HOSTED.md`).
    #[command(flatten)]
    pub hosted: HostedArgs,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text, coloured on a terminal.
    Human,
    /// One JSON object per line.
    Json,
}
/// Everything the server needs to run, with typed values.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket path, if any.
    pub unix: Option<PathBuf>,
    /// Mode bits of the Unix socket file.
    pub socket_mode: u32,
    /// TCP address, if any.
    pub listen: Option<SocketAddr>,
    /// Limits handed to the engine (and `max_input_bytes`, which the receiver enforces too).
    pub limits: Limits,
    /// Image jobs run at once.
    pub jobs: usize,
    /// Most threads one job may take from idle cores (at least 1; every core by default).
    pub job_threads: usize,
    /// Image jobs that may wait for a slot.
    pub queue: usize,
    /// Longest an image job may wait for a slot.
    pub queue_timeout: Duration,
    /// Time to read a request head, from when the connection is ready for one.
    pub header_timeout: Duration,
    /// Time to receive a whole request body.
    pub body_timeout: Duration,
    /// Least rate a request body must keep up, in bytes per second, over each `body_rate_window`.
    pub body_min_rate: u64,
    /// The window `body_min_rate` is measured over.
    pub body_rate_window: Duration,
    /// Time a client may read nothing of its answer.
    pub send_timeout: Duration,
    /// Bytes held for requests at once (bodies, jobs' working memory, answers): see `budget.rs`.
    pub memory_budget: u64,
    /// Of `memory_budget`, the most request bodies being received may hold.
    pub upload_budget: u64,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Connections open at once, over all listeners.
    pub max_connections: usize,
    /// Bytes discarded at most after an early answer.
    pub drain_max_bytes: u64,
    /// Time spent discarding at most after an early answer.
    pub drain_timeout: Duration,
    /// Time in-flight connections get on shutdown.
    pub shutdown_timeout: Duration,
    /// Time the listeners stay open after a shutdown signal, with `/readyz` answering 503.
    pub shutdown_delay: Duration,
    /// Whether `GET /metrics` is served.
    pub metrics: bool,
    /// Hosted images: the store and its settings.
    pub hosted: HostedConfig,
}

impl Default for Config {
    /// No listener (set `unix` and/or `listen`), the engine's default limits, one job per core.
    fn default() -> Self {
        Config {
            unix: None,
            socket_mode: 0o600,
            listen: None,
            limits: Limits::default(),
            jobs: cores(),
            job_threads: cores(),
            // Bounded by time (queue_timeout) more than by count: a burst served within it waits.
            queue: 256,
            queue_timeout: Duration::from_millis(3250),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            body_min_rate: 1024,
            body_rate_window: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            memory_budget: default_memory_budget(),
            upload_budget: default_memory_budget() / 4,
            idle_timeout: Duration::from_secs(15),
            max_connections: 1024,
            drain_max_bytes: 64 * 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            metrics: true,
            hosted: HostedConfig::default(),
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
            max_pixels: self.max_pixels,
            max_side: self.max_side,
            max_output_pixels: self.max_output_pixels,
            max_draw_layers: self.max_draw_layers,
            max_text_chars: self.max_text_chars,
            max_font_bytes: self.max_font_bytes,
            max_frames: self.max_frames,
            max_animation_pixels: self.max_animation_pixels,
            // Set for each job when it starts: the cores idle then (`jobs.rs`).
            threads: std::num::NonZeroUsize::MIN,
        };
        Config {
            unix: self.unix,
            socket_mode: self.socket_mode,
            listen,
            limits,
            jobs: if self.jobs == 0 { cores() } else { self.jobs },
            job_threads: if self.job_threads == 0 {
                cores()
            } else {
                self.job_threads
            },
            queue: self.queue,
            queue_timeout: self.queue_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            body_min_rate: self.body_min_rate,
            body_rate_window: self.body_rate_window,
            send_timeout: self.send_timeout,
            memory_budget: self.memory_budget,
            upload_budget: match self.upload_budget {
                0 => self.memory_budget / 4,
                bytes => bytes.min(self.memory_budget),
            },
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
            drain_max_bytes: self.drain_max_bytes,
            drain_timeout: self.drain_timeout,
            shutdown_timeout: self.shutdown_timeout,
            shutdown_delay: self.shutdown_delay,
            metrics: self.metrics,
            hosted: self.hosted.into_config(),
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

/// Three quarters of the memory this machine or its cgroup allows (4 GiB when unknown): the rest
/// is for the process itself, connections and the allocator (see `docs/OPERATIONS.md`).
fn default_memory_budget() -> u64 {
    crate::memory::memory_limit().map_or(4 << 30, |bytes| bytes / 4 * 3)
}

/// A byte count: `1048576`, or with a binary suffix `512K`, `512M`, `4G` (also `KiB`, `MB`, …:
/// all powers of 1024).
fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a size such as 536870912, 512M or 4G"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{value:?}: the unit must be K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{value:?} is too large"))
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

/// A duration: `30` or `30s` (seconds), `500ms`, `2m`. Zero is refused: every timeout is bounded.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        _ => return Err(format!("{value:?}: the unit must be ms, s or m")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!("{value:?} must be a positive duration")),
    }
}

/// A duration as the flags write it, for a default from [`Config::default`]: whole seconds as
/// `30s`, otherwise milliseconds (`3250ms`); zero as `0`.
fn duration_text(duration: Duration) -> String {
    if duration.is_zero() {
        "0".to_owned()
    } else if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// `--shutdown-delay`: a duration like [`parse_duration`]'s, or zero (`0`, `0s`, `0ms`) for none.
fn parse_delay(value: &str) -> Result<Duration, String> {
    parse_duration(value).or_else(|error| {
        let value = value.trim();
        let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &value[number.len()..];
        match (number.parse::<f64>(), unit) {
            (Ok(0.0), "" | "s" | "ms" | "m") => Ok(Duration::ZERO),
            _ => Err(error),
        }
    })
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
fn parse_switch(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
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
            Command::Serve(args) => *args,
            Command::Health(_) => unreachable!("parsed `serve`"),
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
        assert_eq!(config.socket_mode, 0o600);
    }

    #[test]
    fn the_flags_default_to_config_default() {
        let flags = serve(&[]).into_config();
        let config = Config::default();
        let durations = |c: &Config| {
            [
                c.queue_timeout,
                c.header_timeout,
                c.body_timeout,
                c.body_rate_window,
                c.send_timeout,
                c.idle_timeout,
                c.drain_timeout,
                c.shutdown_timeout,
                c.shutdown_delay,
            ]
        };
        assert_eq!(durations(&flags), durations(&config));
        let numbers = |c: &Config| {
            [
                u64::from(c.socket_mode),
                c.jobs as u64,
                c.queue as u64,
                c.body_min_rate,
                c.memory_budget,
                c.upload_budget,
                c.max_connections as u64,
                c.drain_max_bytes,
            ]
        };
        assert_eq!(numbers(&flags), numbers(&config));
        assert_eq!(flags.metrics, config.metrics);
        assert_eq!(
            format!("{:?}", flags.limits),
            format!("{:?}", config.limits)
        );
        assert_eq!(duration_text(Duration::from_millis(3250)), "3250ms");
        assert_eq!(duration_text(Duration::from_secs(30)), "30s");
        assert_eq!(duration_text(Duration::ZERO), "0");
    }

    #[test]
    fn every_limit_flag_reaches_the_engine_limits() {
        let limits = serve(&[
            "--max-input-bytes=11",
            "--max-pixels=12",
            "--max-side=13",
            "--max-output-pixels=14",
            "--max-draw-layers=15",
            "--max-text-chars=16",
            "--max-font-bytes=17",
            "--max-frames=18",
            "--max-animation-pixels=19",
        ])
        .into_config()
        .limits;
        assert_eq!(
            (limits.max_input_bytes, limits.max_pixels, limits.max_side),
            (11, 12, 13)
        );
        assert_eq!(
            (
                limits.max_output_pixels,
                limits.max_draw_layers,
                limits.max_text_chars
            ),
            (14, 15, 16)
        );
        assert_eq!(
            (
                limits.max_font_bytes,
                limits.max_frames,
                limits.max_animation_pixels
            ),
            (17, 18, 19)
        );
        assert_eq!(
            serve(&[]).into_config().limits.max_side,
            Limits::default().max_side
        );
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

    #[test]
    fn parses_sizes_and_the_budget_flags_reach_the_config() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("4GiB").unwrap(), 4 << 30);
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("M").is_err());
        let config = serve(&[
            "--memory-budget",
            "512M",
            "--body-min-rate",
            "2048",
            "--body-rate-window",
            "5s",
            "--send-timeout",
            "7s",
        ])
        .into_config();
        assert_eq!(config.memory_budget, 512 << 20);
        assert_eq!(config.upload_budget, 128 << 20, "a quarter by default");
        assert_eq!(config.body_min_rate, 2048);
        assert_eq!(config.body_rate_window, Duration::from_secs(5));
        assert_eq!(config.send_timeout, Duration::from_secs(7));
        let config = serve(&["--memory-budget", "1G", "--upload-budget", "300M"]).into_config();
        assert_eq!(config.upload_budget, 300 << 20);
        // The flags' written defaults are Config::default()'s.
        let (flags, default) = (serve(&[]).into_config(), Config::default());
        assert_eq!(flags.body_rate_window, default.body_rate_window);
        assert_eq!(flags.send_timeout, default.send_timeout);
        assert_eq!(flags.queue_timeout, default.queue_timeout);
        assert_eq!(flags.memory_budget, default.memory_budget);
        assert_eq!(flags.upload_budget, default.upload_budget);
    }

    #[test]
    fn parses_durations_and_switches() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert_eq!(parse_delay("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_delay("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_delay("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_delay("0h").is_err());
        assert!(parse_delay("-1s").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_switch("off").is_ok_and(|on| !on));
        assert!(parse_switch("ON").is_ok_and(|on| on));
        assert!(parse_switch("maybe").is_err());
    }

    #[test]
    fn every_setting_reaches_the_config() {
        let config = serve(&[
            "--socket-mode",
            "660",
            "--header-timeout",
            "2s",
            "--body-timeout",
            "3s",
            "--idle-timeout",
            "400ms",
            "--max-connections",
            "7",
            "--drain-timeout",
            "5",
            "--shutdown-timeout",
            "6s",
            "--metrics",
            "off",
            "--log-format",
            "json",
            "--job-threads",
            "1",
        ]);
        assert_eq!(config.log_format, LogFormat::Json);
        let config = config.into_config();
        assert_eq!(config.job_threads, 1);
        assert_eq!(serve(&[]).into_config().job_threads, cores());
        assert_eq!(
            serve(&["--job-threads", "0"]).into_config().job_threads,
            cores()
        );
        assert_eq!(config.socket_mode, 0o660);
        assert_eq!(config.header_timeout, Duration::from_secs(2));
        assert_eq!(config.body_timeout, Duration::from_secs(3));
        assert_eq!(config.idle_timeout, Duration::from_millis(400));
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.drain_timeout, Duration::from_secs(5));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(6));
        assert!(!config.metrics);
        // The old flag names still work.
        let config = serve(&[
            "--unix-mode",
            "640",
            "--header-read-timeout-secs",
            "9",
            "--shutdown-timeout-secs",
            "4",
        ])
        .into_config();
        assert_eq!(config.shutdown_timeout, Duration::from_secs(4));
        assert_eq!(config.socket_mode, 0o640);
        assert_eq!(config.header_timeout, Duration::from_secs(9));
        assert!(Cli::try_parse_from(["imgbind", "serve", "--max-connections", "0"]).is_err());
    }
}
