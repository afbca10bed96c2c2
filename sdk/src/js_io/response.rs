//! Result bodies: error responses thrown as Cloudflare's errors, the length-checked body, and the
//! body handed on as a `Response`'s (natively where workerd checks it, else through
//! `FixedLengthStream`).

use futures_util::stream::{self, StreamExt};
use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, Response};

use imgbind_wire::protocol;

use crate::errors::{ImagesError, Operation, ResponseFailure};
use crate::js_io::streams::{to_js_stream, ChunkStream};
use crate::js_io::value::{as_bytes, describe, error_with_cause, get, js_error};
use crate::stream::{checked, LengthCheck};

/// Throws Cloudflare's error for an error response (header `cf-images-binding: err=N`, or a
/// status above 399).
pub(crate) async fn check_response(op: Operation, response: &Response) -> Result<(), JsValue> {
    let header = response.headers().get(protocol::HEADER_ERROR)?;
    let Some(failure) = ResponseFailure::classify(header.as_deref(), response.status()) else {
        return Ok(());
    };
    let body = JsFuture::from(response.text()?).await?;
    let body = body.as_string().unwrap_or_default();
    Err(js_error(&failure.into_error(op, &body)))
}

/// The response body behind a length check: an upstream failure, or fewer or more bytes than
/// `content-length`, errors the stream instead of ending it.
pub(crate) fn checked_body(response: &Response) -> Result<ReadableStream, JsValue> {
    let headers = response.headers();
    let check = LengthCheck::from_headers(
        headers.get("content-length")?.as_deref(),
        headers.get("content-encoding")?.as_deref(),
    );
    let upstream: ChunkStream = match response.body() {
        Some(body) => match wasm_streams::ReadableStream::from_raw(body).try_into_stream() {
            Ok(s) => s
                .map(|item| match item {
                    Ok(chunk) => as_bytes(&chunk).map_err(|_| {
                        js_error(&ImagesError::delivery("image body chunk is not bytes"))
                    }),
                    Err(e) => {
                        let detail = format!("image body failed: {}", describe(&e));
                        Err(error_with_cause(&ImagesError::delivery(&detail), Some(&e)))
                    }
                })
                .boxed_local(),
            Err((e, _)) => return Err(e.into()),
        },
        None => stream::empty().boxed_local(),
    };
    let checked = checked(
        upstream,
        check,
        |chunk: &Uint8Array| chunk.length() as usize,
        |mismatch| js_error(&ImagesError::delivery(&mismatch.to_string())),
    );
    Ok(to_js_stream(checked.boxed_local()))
}

/// `body` (from [`checked_body`]) made ready to be a `Response` body: in workerd, with the
/// backend's `content-length`, it goes through a `FixedLengthStream` (see [`with_known_length`]).
///
/// [`checked_body`] itself stays a JS-driven stream on purpose: workerd hangs when a
/// `FixedLengthStream` that the Worker's own JS feeds is piped natively into another internal
/// stream, which is what [`request_body`] does with every input (so `input(result.image())` must
/// not get one).
pub(crate) fn response_body(
    response: &Response,
    body: ReadableStream,
) -> Result<ReadableStream, JsValue> {
    let headers = response.headers();
    let check = LengthCheck::from_headers(
        headers.get("content-length")?.as_deref(),
        headers.get("content-encoding")?.as_deref(),
    );
    match check.expected() {
        Some(length) => with_known_length(body, length),
        None => Ok(body),
    }
}

/// The backend response's own body, to be handed on as it is when `backend_is_native` (see
/// [`Backend::native_bodies`]): workerd keeps a fetched body's `content-length` when it becomes
/// another `Response`'s body (a streamed answer goes on chunked), and its HTTP client already
/// errors a body that ends before that length or its terminating chunk (a longer one cannot be
/// framed in HTTP/1.1), so no JS or wasm runs per chunk and the body
/// can be piped natively again (`input(result.response().body)`: a `FixedLengthStream` readable
/// cannot, workerd rejects "Inter-TransformStream pipeTo" and keeps both streams locked). `None`
/// where that does not hold (a JS `Fetcher` whose bodies are JS streams, an encoded body): the
/// caller then uses [`checked_body`] and [`response_body`].
///
/// On a 40 KB answer this took about 2 ms off the Worker's latency (`bench/worker-overhead.mjs`):
/// the JS-driven checked stream costs a wasm future, a read and an enqueue per chunk, each one an
/// event-loop turn, before `FixedLengthStream` sees the bytes.
pub(crate) fn passthrough_body(
    response: &Response,
    backend_is_native: bool,
) -> Result<Option<ReadableStream>, JsValue> {
    if !backend_is_native {
        return Ok(None);
    }
    // An encoded body is left to the checked path, as before; a length or a streamed (chunked)
    // body are both workerd's to frame and check.
    if response.headers().get("content-encoding")?.is_some() {
        return Ok(None);
    }
    match response.body() {
        Some(body) if !body.locked() => Ok(Some(body)),
        _ => Ok(None),
    }
}

/// In workerd, pipes through a `FixedLengthStream` so a `Response` made from the body keeps its
/// `Content-Length` instead of going out chunked (and workerd checks the count too). Elsewhere
/// the stream is returned as it is.
fn with_known_length(stream: ReadableStream, length: u64) -> Result<ReadableStream, JsValue> {
    let Ok(ctor) = get(&js_sys::global(), "FixedLengthStream").dyn_into::<Function>() else {
        return Ok(stream);
    };
    let fixed = Reflect::construct(&ctor, &Array::of1(&JsValue::from(length as f64)))?;
    let readable = get(&fixed, "readable");
    let pipe_to: Function = get(&stream, "pipeTo").dyn_into()?;
    let piped: Promise = pipe_to
        .call1(&stream, &get(&fixed, "writable"))?
        .dyn_into()?;
    // The readable side carries any failure; the pipe's own rejection is not needed.
    wasm_bindgen_futures::spawn_local(async move {
        let _ = JsFuture::from(piped).await;
    });
    Ok(readable.unchecked_into())
}
