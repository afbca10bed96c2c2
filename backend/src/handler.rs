//! The request flow, top to bottom: route → receive the parts (bounded in bytes, time, rate and
//! memory) → read the body to its end → validate → estimate the job's memory → run the engine on
//! the blocking pool once its memory and a slot are free → respond.
//!
//! Every path through here reads the request body to its end (bounded) before its answer is
//! returned, so an early error cannot be lost to a TCP reset (see `drain.rs`).
//!
//! Each request carries a [`RequestMeter`]: the handler records the receive, queue and engine
//! phases, the op list and the outcome; the meter then travels with the answer's body and is
//! finished once the answer is written or abandoned (`telemetry.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use imgbind_wire::protocol::{PATH_HEALTH, PATH_INFO, PATH_READY, PATH_TRANSFORM};
use imgbind_wire::{Error, ErrorCode};
use tracing::Instrument;

use crate::budget::{Budget, Reservation};
use crate::connection::Conn;
use crate::drain::{drain, Drained};
use crate::exchange::Jobs;
use crate::hosted::{self, Hosted};
use crate::jobs::{payload_text, Engine, JobGate};
use crate::metrics::{Metrics, PATH_METRICS};
use crate::op_summary::ops_summary;
use crate::receive;
use crate::respond::{self, Body};
use crate::telemetry::{MeteredBody, Phase, RequestMeter};
use crate::Config;

/// What every request shares.
pub(crate) struct State {
    max_input_bytes: u64,
    /// The engine and the gate its jobs pass (`exchange.rs`).
    pub(crate) jobs: Jobs,
    /// Memory for requests (`budget.rs`): bodies, jobs, answers.
    pub(crate) budget: Budget,
    /// Served on `GET /metrics` when enabled; always kept.
    pub(crate) metrics: Arc<Metrics>,
    metrics_enabled: bool,
    receive_timeout: Duration,
    body_min_rate: u64,
    body_rate_window: Duration,
    drain_max_bytes: u64,
    drain_timeout: Duration,
    next_request_id: AtomicU64,
    /// `GET /readyz` answers 200 while this is `true`; the server clears it when shutdown begins.
    pub(crate) ready: AtomicBool,
    /// Hosted images (`/hosted/…`, `hosted/mod.rs`).
    pub(crate) hosted: Hosted,
}

impl State {
    pub(crate) fn new(config: &Config, engine: Arc<dyn Engine>, hosted: Hosted) -> Self {
        let metrics = Arc::new(Metrics::new());
        let budget = Budget::new(
            config.memory_budget,
            config.upload_budget,
            metrics.memory_budget_used.clone(),
        );
        State {
            max_input_bytes: config.limits.max_input_bytes,
            jobs: Jobs {
                engine,
                limits: Arc::new(config.limits.clone()),
                gate: JobGate::new(
                    config.jobs,
                    config.job_threads,
                    config.queue,
                    config.limits.deadline,
                    config.queue_timeout,
                    budget.clone(),
                    metrics.jobs_queued.clone(),
                    metrics.jobs_running.clone(),
                ),
            },
            budget,
            metrics,
            metrics_enabled: config.metrics,
            receive_timeout: config.body_timeout,
            body_min_rate: config.body_min_rate,
            body_rate_window: config.body_rate_window,
            drain_max_bytes: config.drain_max_bytes,
            drain_timeout: config.drain_timeout,
            next_request_id: AtomicU64::new(1),
            ready: AtomicBool::new(true),
            hosted,
        }
    }
}

/// The hyper service: one span and one [`RequestMeter`] per request, panics answered 9523 with
/// the process still serving.
pub(crate) async fn serve(
    state: Arc<State>,
    conn: Arc<Conn>,
    request: Request<Incoming>,
) -> Result<Response<MeteredBody>, Infallible> {
    let id = state.next_request_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path());
    let mut meter =
        RequestMeter::start(&conn, span.clone(), request.method(), request.uri().path());
    async move {
        let handled = AssertUnwindSafe(handle(&state, &conn, request, &mut meter))
            .catch_unwind()
            .await;
        let response = match handled {
            // Displaced at the connection cap: no longer counted against it, so it closes.
            Ok(response) if conn.was_displaced() => respond::close_connection(response),
            Ok(response) => response,
            Err(payload) => {
                tracing::error!(panic = %payload_text(payload.as_ref()), "request handler panicked");
                let error = Error::new(ErrorCode::Internal, "internal error");
                meter.set_outcome(Err(&error));
                // The body may not have been read to its end: do not reuse the connection.
                respond::close_connection(respond::error(&error))
            }
        };
        Ok(meter.answer(response))
    }
    .instrument(span)
    .await
}

async fn handle(
    state: &State,
    conn: &Conn,
    request: Request<Incoming>,
    meter: &mut RequestMeter,
) -> Response<Body> {
    let (head, mut body) = request.into_parts();
    let path = head.uri.path();
    if conn.rejecting {
        // Over the connection cap with every connection busy: say so, and close. The body gets
        // a short moment to be read so the answer is not reset away; a refusal holds no slot long.
        let drained = drain(&mut body, state.drain_max_bytes, REJECT_DRAIN_TIMEOUT).await;
        let error = Error::new(
            ErrorCode::ProcessingLimit,
            "the server has too many connections; try again later",
        )
        .retry_after(1);
        meter.set_outcome(Err(&error));
        return respond::close_connection(finish(respond::error(&error), drained));
    }
    if path.starts_with(hosted::PREFIX) {
        return hosted::serve(state, conn, &head, &mut body, meter).await;
    }
    let answer: Box<dyn FnOnce() -> Response<Body> + Send + '_> = match (&head.method, path) {
        (&Method::POST, PATH_TRANSFORM) => {
            // HTTP/1.0 has no chunked encoding: a result of unknown length is sent as one block.
            let may_chunk = head.version >= hyper::Version::HTTP_11;
            return transform(state, conn, &head.headers, &mut body, may_chunk, meter).await;
        }
        (&Method::POST, PATH_INFO) => {
            return info(state, conn, &head.headers, &mut body, meter).await;
        }
        (&Method::GET, PATH_HEALTH) => Box::new(respond::healthy),
        (&Method::GET, PATH_READY) => {
            Box::new(|| respond::readiness(state.ready.load(Ordering::SeqCst)))
        }
        (&Method::GET, PATH_METRICS) if state.metrics_enabled => {
            Box::new(|| respond::metrics(state.metrics.encode()))
        }
        (method, PATH_TRANSFORM | PATH_INFO) => {
            Box::new(move || respond::wrong_method(method, path, "POST"))
        }
        (method, PATH_HEALTH | PATH_READY) => {
            Box::new(move || respond::wrong_method(method, path, "GET"))
        }
        (method, PATH_METRICS) if state.metrics_enabled => {
            Box::new(move || respond::wrong_method(method, path, "GET"))
        }
        (method, _) => Box::new(move || respond::no_route(method, path)),
    };
    // Every other route takes no body: what was sent is read to its end (bounded) first, so the
    // answer is not lost to a reset.
    let drained = drain(&mut body, state.drain_max_bytes, state.drain_timeout).await;
    finish(answer(), drained)
}

/// How long a connection refused at the cap may take to send the rest of its request.
const REJECT_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// `POST /transform`.
async fn transform(
    state: &State,
    conn: &Conn,
    headers: &HeaderMap,
    body: &mut Incoming,
    may_chunk: bool,
    meter: &mut RequestMeter,
) -> Response<Body> {
    // 1. Receive the parts (streamed; stops at the first bad part, past the byte limit, past
    // the uploads' memory budget, or when the body is too slow or displaced at the cap).
    // 2. Read whatever is left of the body before answering, even when the answer is an error.
    let (received, drained, upload) =
        receive_body(state, conn, headers, body, meter, |h, b, max, u| {
            Box::pin(receive::transform_parts(h, b, max, u))
        })
        .await;

    let result = async {
        let parts = received?;
        // The op list as sent, summarised for the log even when it fails validation.
        let transforms = parts.transforms.clone();
        meter.set_ops(ops_summary(transforms.as_deref(), None));
        // 3. Validate the op list against the number of images, and the output options: the
        // same `into_job` the fuzz targets run.
        let job = parts.into_job()?;
        meter.set_ops(ops_summary(transforms.as_deref(), Some(&job.output)));
        // 4. What the job will hold in memory, from its sources' headers (before decoding).
        let memory = state.jobs.memory_needed(&job)?;
        // 5. Decode, apply, encode once its memory and a slot are free (exchange.rs).
        state
            .jobs
            .transform(job, memory, upload, may_chunk, meter)
            .await
    }
    .await;

    // 6. Respond.
    finish(answer(result, meter), drained)
}

/// `POST /info`.
async fn info(
    state: &State,
    conn: &Conn,
    headers: &HeaderMap,
    body: &mut Incoming,
    meter: &mut RequestMeter,
) -> Response<Body> {
    let (received, drained, upload) =
        receive_body(state, conn, headers, body, meter, |h, b, max, u| {
            Box::pin(receive::info_image(h, b, max, u))
        })
        .await;

    let result = async {
        let image = received?;
        let info = state.jobs.info(image, upload, meter).await?;
        Ok::<_, Error>(respond::info(&info))
    }
    .await;

    finish(answer(result, meter), drained)
}

/// A body's parts being received (`receive.rs`), holding their bytes in the upload reservation.
pub(crate) type Receiving<'b, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'b>>;

/// Receives a request body with `receive` (bounded as [`receive_within`] says), then reads
/// whatever is left of it ([`after_receive`]), timing both as the receive phase. Returns the
/// parts, how the body ended, and the reservation holding the parts' bytes.
pub(crate) async fn receive_body<T>(
    state: &State,
    conn: &Conn,
    headers: &HeaderMap,
    body: &mut Incoming,
    meter: &mut RequestMeter,
    receive: impl for<'b> FnOnce(
        &'b HeaderMap,
        &'b mut Incoming,
        u64,
        &'b Reservation,
    ) -> Receiving<'b, T>,
) -> (Result<T, Error>, Drained, Reservation) {
    let receiving = Instant::now();
    let upload = state.budget.upload();
    let received = receive_within(
        state,
        conn,
        receive(headers, body, state.max_input_bytes, &upload),
    )
    .await;
    let (received, drained) = after_receive(state, conn, body, received).await;
    meter.add(Phase::Receive, receiving.elapsed());
    (received, drained, upload)
}

/// Runs `receiving` (a body's parts being received) unless the body takes longer than the body
/// timeout, brings less than `--body-min-rate` in a `--body-rate-window`, or is displaced at the
/// connection cap: then `Err` with the answer, and the body is not waited for again.
async fn receive_within<T>(
    state: &State,
    conn: &Conn,
    receiving: impl Future<Output = Result<T, Error>>,
) -> Result<Result<T, Error>, Error> {
    conn.receiving_started();
    let outcome = tokio::select! {
        received = receiving => Ok(received),
        () = tokio::time::sleep(state.receive_timeout) => Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "the request body was not received within {:?}",
                state.receive_timeout
            ),
        )),
        () = too_slow(conn, state.body_min_rate, state.body_rate_window) => Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "the request body arrives slower than {} bytes per second",
                state.body_min_rate
            ),
        )),
        () = conn.displace.notified() => Err(Error::new(
            ErrorCode::ProcessingLimit,
            "the server has too many connections and this upload was the slowest; try again later",
        )
        .retry_after(1)),
    };
    conn.receiving_ended();
    outcome
}

/// Completes when a window passes in which the connection read less than `min_rate` bytes per
/// second.
async fn too_slow(conn: &Conn, min_rate: u64, window: Duration) {
    let least = (min_rate as f64 * window.as_secs_f64()) as u64;
    loop {
        let at = conn.bytes_read();
        tokio::time::sleep(window).await;
        if conn.read_since(at) < least {
            return;
        }
    }
}

/// Drains the body after receiving — unless receiving was cut off (too slow, displaced): a client
/// like that is not waited for again; its answer closes the connection. Draining is held to the
/// least body rate too.
async fn after_receive<T>(
    state: &State,
    conn: &Conn,
    body: &mut Incoming,
    received: Result<Result<T, Error>, Error>,
) -> (Result<T, Error>, Drained) {
    match received {
        Ok(received) => {
            let drained = tokio::select! {
                drained = drain(body, state.drain_max_bytes, state.drain_timeout) => drained,
                () = too_slow(conn, state.body_min_rate, state.body_rate_window) => {
                    Drained::Abandoned { bytes: 0 }
                }
            };
            if let Drained::Complete { bytes } = drained {
                if bytes > 0 {
                    tracing::debug!(bytes, "discarded the rest of the request body");
                }
            }
            (received, drained)
        }
        Err(error) => (Err(error), Drained::Abandoned { bytes: 0 }),
    }
}

/// The answer for a result, with its outcome recorded (the request's log line carries it).
pub(crate) fn answer(
    result: Result<Response<Body>, Error>,
    meter: &mut RequestMeter,
) -> Response<Body> {
    match result {
        Ok(response) => {
            meter.set_outcome(Ok(()));
            response
        }
        Err(error) => {
            meter.set_outcome(Err(&error));
            respond::error(&error)
        }
    }
}

/// A body that could not be read to its end means the connection cannot be reused.
pub(crate) fn finish(response: Response<Body>, drained: Drained) -> Response<Body> {
    if drained.is_complete() {
        response
    } else {
        tracing::debug!(
            ?drained,
            "request body not read to its end; closing the connection"
        );
        respond::close_connection(response)
    }
}
