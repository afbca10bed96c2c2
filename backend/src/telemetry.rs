//! Per-request accounting and logs: one [`RequestMeter`] per request records its phases, outcome
//! and bytes, and is finished exactly once — when its answer's last byte is flushed, or when the
//! answer is abandoned (client gone, connection failed, handler dropped) — whichever path it
//! takes. Finishing counts it in the metrics and writes the request's one log line.
//!
//! Also: the log setup (`human` or `json` lines on stderr). The op-list summary each request's
//! line carries is `op_summary.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use hyper::{Method, Response};

use crate::budget::Reservation;
use crate::config::LogFormat;
use crate::connection::Conn;
use crate::exchange::Done;
use crate::metrics::{PhaseLabels, RequestLabels, RouteLabels};
use crate::respond::Body;

/// The phases a request's time is split into (the `phase` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the request body (parts and any rest).
    Receive,
    /// Waiting for a job slot.
    Queue,
    /// Engine: headers and decoding.
    Decode,
    /// Engine: the steps.
    Transform,
    /// Engine: encoding.
    Encode,
    /// Writing the answer, until its last byte is flushed or the write fails.
    Send,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Receive,
        Phase::Queue,
        Phase::Decode,
        Phase::Transform,
        Phase::Encode,
        Phase::Send,
    ];

    fn label(self) -> &'static str {
        match self {
            Phase::Receive => "receive",
            Phase::Queue => "queue",
            Phase::Decode => "decode",
            Phase::Transform => "transform",
            Phase::Encode => "encode",
            Phase::Send => "send",
        }
    }
}

/// One request's record, finished (counted and logged) when dropped.
pub(crate) struct RequestMeter {
    conn: Arc<Conn>,
    span: tracing::Span,
    route: &'static str,
    method: Method,
    path: String,
    started: Instant,
    phases: [Option<Duration>; 6],
    ops: Option<String>,
    /// `ok` or the error code; `None` until an answer exists.
    code: Option<String>,
    error: Option<String>,
    status: Option<u16>,
    /// When the answer was handed to hyper, and the connection's written bytes then.
    answered: Option<(Instant, u64)>,
    bytes_in: Option<u64>,
    body_bytes: u64,
    /// HEAD: hyper sends no body, so not polling it is not an abort.
    bodyless: bool,
    delivered: bool,
    /// Memory the answer holds (`budget.rs`), returned when the meter finishes: once the answer
    /// is written in full or abandoned.
    answer_memory: Option<Reservation>,
}

impl RequestMeter {
    /// Starts the record for a request whose head was just read.
    pub(crate) fn start(
        conn: &Arc<Conn>,
        span: tracing::Span,
        method: &Method,
        path: &str,
    ) -> RequestMeter {
        conn.request_started();
        RequestMeter {
            conn: Arc::clone(conn),
            span,
            route: crate::metrics::route(path),
            method: method.clone(),
            path: path.chars().take(200).collect(),
            started: Instant::now(),
            phases: [None; 6],
            ops: None,
            code: None,
            error: None,
            status: None,
            answered: None,
            bytes_in: None,
            body_bytes: 0,
            bodyless: *method == Method::HEAD,
            delivered: false,
            answer_memory: None,
        }
    }

    /// Adds `time` to a phase.
    pub(crate) fn add(&mut self, phase: Phase, time: Duration) {
        let slot = &mut self.phases[phase as usize];
        *slot = Some(slot.unwrap_or_default() + time);
    }

    /// The op-list summary for the log line.
    pub(crate) fn set_ops(&mut self, ops: String) {
        self.ops = Some(ops);
    }

    /// The outcome: `Ok` or the coded error answered.
    pub(crate) fn set_outcome(&mut self, outcome: Result<(), &imgbind_wire::Error>) {
        match outcome {
            Ok(()) => self.code = Some("ok".to_owned()),
            Err(error) => {
                self.code = Some(error.code().as_u16().to_string());
                self.error = Some(error.message().to_owned());
            }
        }
    }

    /// The answer is ready: from now on its time is `send`. Wraps its body so the record travels
    /// with it to the socket.
    pub(crate) fn answer(mut self, response: Response<Body>) -> Response<MeteredBody> {
        self.status = Some(response.status().as_u16());
        if self.code.is_none() {
            // Answers built without an Error (404, 405) still carry their code in the header.
            let coded = response
                .headers()
                .get(imgbind_wire::protocol::HEADER_ERROR)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("err="))
                .map(str::to_owned);
            self.code = Some(match coded {
                Some(code) => code,
                None if response.status().is_success() => "ok".to_owned(),
                None => response.status().as_u16().to_string(),
            });
        }
        self.body_bytes = response.body().size_hint().exact().unwrap_or(0);
        self.bytes_in = Some(self.conn.bytes_read_for_request());
        self.answered = Some((Instant::now(), self.conn.bytes_written()));
        self.conn.answer_started();
        response.map(|body| MeteredBody {
            inner: body,
            meter: Some(self),
            ended: false,
        })
    }

    /// The whole answer was written.
    pub(crate) fn delivered(&mut self) {
        self.delivered = true;
    }

    /// The engine job's phases and outcome (engine errors are recorded, gate errors were too
    /// when they came before the answer).
    pub(crate) fn job_ended(&mut self, done: &Done) {
        if let Some(memory) = &done.answer_memory {
            self.answer_memory = Some(memory.clone());
        }
        if let Some(report) = done.report {
            self.add(Phase::Queue, report.waited);
            // Only the phases the job reached (a job refused while decoding never encodes).
            for (phase, time) in [
                (Phase::Decode, report.timings.decode),
                (Phase::Transform, report.timings.transform),
                (Phase::Encode, report.timings.encode),
            ] {
                if !time.is_zero() {
                    self.add(phase, time);
                }
            }
        }
        if let Err(error) = &done.result {
            self.set_outcome(Err(error));
        }
    }
}

impl Drop for RequestMeter {
    fn drop(&mut self) {
        let total = self.started.elapsed();
        let bytes_in = self
            .bytes_in
            .unwrap_or_else(|| self.conn.bytes_read_for_request());
        let mut bytes_out = 0;
        if let Some((at, written)) = self.answered {
            self.add(Phase::Send, at.elapsed());
            bytes_out = self.conn.bytes_written().saturating_sub(written);
            self.conn.answer_finished();
        }
        self.conn.request_finished();

        let metrics = &self.conn.metrics;
        let route = self.route;
        let code = self.code.clone().unwrap_or_else(|| "none".to_owned());
        let delivery = if self.delivered {
            "complete"
        } else {
            "aborted"
        };
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route,
                code: code.clone(),
                delivery,
            })
            .inc();
        metrics
            .request_duration
            .get_or_create(&RouteLabels { route })
            .observe(total.as_secs_f64());
        for phase in Phase::ALL {
            if let Some(time) = self.phases[phase as usize] {
                metrics
                    .phase_duration
                    .get_or_create(&PhaseLabels {
                        route,
                        phase: phase.label(),
                    })
                    .observe(time.as_secs_f64());
            }
        }
        metrics
            .received_bytes
            .get_or_create(&RouteLabels { route })
            .inc_by(bytes_in);
        metrics
            .sent_bytes
            .get_or_create(&RouteLabels { route })
            .inc_by(bytes_out);

        let ms = |phase: Phase| self.phases[phase as usize].map(millis);
        let _entered = self.span.enter();
        macro_rules! request_line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    method = %self.method,
                    path = %self.path,
                    ops = self.ops.as_deref(),
                    code = %code,
                    status = self.status,
                    error = self.error.as_deref(),
                    delivered = self.delivered,
                    bytes_in,
                    bytes_out,
                    body_bytes = self.body_bytes,
                    total_ms = millis(total),
                    receive_ms = ms(Phase::Receive),
                    queue_ms = ms(Phase::Queue),
                    decode_ms = ms(Phase::Decode),
                    transform_ms = ms(Phase::Transform),
                    encode_ms = ms(Phase::Encode),
                    send_ms = ms(Phase::Send),
                    "request"
                )
            };
        }
        // Probes and scrapes come every few seconds: logged at debug, everything else at info.
        if matches!(route, "/healthz" | "/metrics") && self.delivered {
            request_line!(tracing::Level::DEBUG);
        } else {
            request_line!(tracing::Level::INFO);
        }
    }
}

/// Milliseconds, rounded to the microsecond (log lines stay short).
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// A response body carrying its request's [`RequestMeter`]. When hyper has taken the last frame
/// the meter moves to the connection, which finishes it at the next flush. A streamed body that
/// fails records the job's error and ends with it (hyper aborts the connection): the request is
/// counted as aborted, with the error's code.
pub(crate) struct MeteredBody {
    inner: Body,
    meter: Option<RequestMeter>,
    ended: bool,
}

impl MeteredBody {
    /// A streamed body's job end (phases, outcome) and byte count go into the meter.
    fn record_stream(&mut self) {
        if let (Body::Streamed(streamed), Some(meter)) = (&mut self.inner, &mut self.meter) {
            meter.body_bytes = streamed.sent();
            if let Some(done) = streamed.take_done() {
                meter.job_ended(&done);
            }
        }
    }
}

impl hyper::body::Body for MeteredBody {
    type Data = Bytes;
    type Error = imgbind_wire::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => {
                // Not ended: the meter finishes as an aborted delivery.
                self.record_stream();
            }
            Poll::Ready(None) => {
                self.ended = true;
                self.record_stream();
            }
            _ => {
                if self.inner.is_end_stream() {
                    self.ended = true;
                    self.record_stream();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.record_stream();
        if let Some(meter) = self.meter.take() {
            if self.ended || self.inner.is_end_stream() || meter.bodyless {
                let conn = Arc::clone(&meter.conn);
                conn.answer_handed_over(meter);
            }
            // Otherwise the body was dropped unsent or failed: the meter finishes here, aborted.
        }
    }
}

/// Installs the log subscriber: `filter` in `EnvFilter` syntax, lines on stderr.
pub fn init_logging(filter: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("imgbind: bad log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            // Colour only on a terminal: logs piped to files or journald stay plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
