//! The request flow, top to bottom: route → receive the parts → read the body to its end →
//! validate → run the engine on the blocking pool → respond.
//!
//! Every path through here reads the request body to its end (bounded) before its answer is
//! returned, so an early error cannot be lost to a TCP reset (see `drain.rs`).

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use imgbind_engine::{Job, Limits};
use imgbind_wire::protocol::{PATH_HEALTH, PATH_INFO, PATH_TRANSFORM};
use imgbind_wire::{parse_steps, Error, ErrorCode, OutputOptions};
use tracing::Instrument;

use crate::drain::{drain, Drained};
use crate::jobs::{payload_text, Engine, JobGate};
use crate::receive;
use crate::respond::{self, Body};
use crate::Config;

/// What every request shares.
pub(crate) struct State {
    limits: Arc<Limits>,
    max_input_bytes: u64,
    engine: Arc<dyn Engine>,
    gate: JobGate,
    receive_timeout: Duration,
    drain_max_bytes: u64,
    drain_timeout: Duration,
    next_request_id: AtomicU64,
}

impl State {
    pub(crate) fn new(config: &Config, engine: Arc<dyn Engine>) -> Self {
        State {
            max_input_bytes: config.limits.max_input_bytes,
            limits: Arc::new(config.limits.clone()),
            engine,
            gate: JobGate::new(config.jobs, config.queue, config.limits.deadline),
            receive_timeout: config.receive_timeout,
            drain_max_bytes: config.drain_max_bytes,
            drain_timeout: config.drain_timeout,
            next_request_id: AtomicU64::new(1),
        }
    }
}

/// The hyper service: one span per request, panics answered 9523 with the process still serving.
pub(crate) async fn serve(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let id = state.next_request_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path());
    async move {
        let started = Instant::now();
        let response = match AssertUnwindSafe(handle(&state, request)).catch_unwind().await {
            Ok(response) => response,
            Err(payload) => {
                tracing::error!(panic = %payload_text(payload.as_ref()), "request handler panicked");
                // The body may not have been read to its end: do not reuse the connection.
                respond::close_connection(respond::error(&Error::new(
                    ErrorCode::Internal,
                    "internal error",
                )))
            }
        };
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        Ok(response)
    }
    .instrument(span)
    .await
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    let (head, mut body) = request.into_parts();
    let path = head.uri.path();
    match (&head.method, path) {
        (&Method::POST, PATH_TRANSFORM) => transform(state, &head.headers, &mut body).await,
        (&Method::POST, PATH_INFO) => info(state, &head.headers, &mut body).await,
        (&Method::GET, PATH_HEALTH) => {
            let drained = drain(&mut body, state.drain_max_bytes, state.drain_timeout).await;
            finish(respond::healthy(), drained)
        }
        (method, PATH_TRANSFORM | PATH_INFO) => {
            let drained = drain(&mut body, state.drain_max_bytes, state.drain_timeout).await;
            finish(respond::wrong_method(method, path, "POST"), drained)
        }
        (method, PATH_HEALTH) => {
            let drained = drain(&mut body, state.drain_max_bytes, state.drain_timeout).await;
            finish(respond::wrong_method(method, path, "GET"), drained)
        }
        (method, _) => {
            let drained = drain(&mut body, state.drain_max_bytes, state.drain_timeout).await;
            finish(respond::no_route(method, path), drained)
        }
    }
}

/// `POST /transform`.
async fn transform(state: &State, headers: &HeaderMap, body: &mut Incoming) -> Response<Body> {
    // 1. Receive the parts (streamed; stops at the first bad part or past the byte limit).
    let received = tokio::time::timeout(
        state.receive_timeout,
        receive::transform_parts(headers, body, state.max_input_bytes),
    )
    .await;
    // 2. Read whatever is left of the body before answering, even when the answer is an error.
    let (received, drained) = after_receive(state, body, received).await;

    let result = async {
        let parts = received?;
        // 3. Validate the op list against the number of images, and the output options.
        let transforms = parts
            .transforms
            .as_deref()
            .ok_or_else(|| Error::invalid("the request has no \"transforms\" part"))?;
        let steps = parse_steps(transforms, parts.sources.len())?;
        let output = OutputOptions::from_fields(
            parts.output_format.as_deref(),
            parts.output_quality.as_deref(),
            parts.background.as_deref(),
            parts.anim.as_deref(),
        )?;
        let job = Job {
            sources: parts.sources,
            steps,
            output,
        };
        // 4. Decode, apply, encode: CPU work on the blocking pool, bounded.
        let (engine, limits) = (Arc::clone(&state.engine), Arc::clone(&state.limits));
        let encoded = state.gate.run(move || engine.run(job, &limits)).await?;
        tracing::debug!(
            format = encoded.format.as_str(),
            width = encoded.width,
            height = encoded.height,
            bytes = encoded.bytes.len(),
            "encoded"
        );
        Ok::<_, Error>(respond::image(encoded))
    }
    .await;

    // 5. Respond.
    finish(result.unwrap_or_else(|e| rejected(&e)), drained)
}

/// `POST /info`.
async fn info(state: &State, headers: &HeaderMap, body: &mut Incoming) -> Response<Body> {
    let received = tokio::time::timeout(
        state.receive_timeout,
        receive::info_image(headers, body, state.max_input_bytes),
    )
    .await;
    let (received, drained) = after_receive(state, body, received).await;

    let result = async {
        let image = received?;
        let (engine, limits) = (Arc::clone(&state.engine), Arc::clone(&state.limits));
        let info = state.gate.run(move || engine.info(&image, &limits)).await?;
        Ok::<_, Error>(respond::info(&info))
    }
    .await;

    finish(result.unwrap_or_else(|e| rejected(&e)), drained)
}

/// Drains the body after receiving — unless receiving itself timed out: a client that slow is not
/// waited for again; its answer closes the connection.
async fn after_receive<T>(
    state: &State,
    body: &mut Incoming,
    received: Result<Result<T, Error>, tokio::time::error::Elapsed>,
) -> (Result<T, Error>, Drained) {
    match received {
        Ok(received) => {
            let drained = drain(body, state.drain_max_bytes, state.drain_timeout).await;
            if let Drained::Complete { bytes } = drained {
                if bytes > 0 {
                    tracing::debug!(bytes, "discarded the rest of the request body");
                }
            }
            (received, drained)
        }
        Err(_) => {
            let error = Error::new(
                ErrorCode::TooLarge,
                format!(
                    "the request body was not received within {} s",
                    state.receive_timeout.as_secs()
                ),
            );
            (Err(error), Drained::Abandoned { bytes: 0 })
        }
    }
}

fn rejected(error: &Error) -> Response<Body> {
    tracing::info!(
        code = error.code().as_u16(),
        message = error.message(),
        "rejected"
    );
    respond::error(error)
}

/// A body that could not be read to its end means the connection cannot be reused.
fn finish(response: Response<Body>, drained: Drained) -> Response<Body> {
    if drained.is_complete() {
        response
    } else {
        tracing::info!(
            ?drained,
            "request body not read to its end; closing the connection"
        );
        respond::close_connection(response)
    }
}
