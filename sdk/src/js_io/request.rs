//! The request body: multipart framing and inputs, pumped into one stream as the fetch reads it
//! (natively piped in workerd, wasm-driven elsewhere), recording an input that fails on the way.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::ReadableStream;

use crate::errors::Operation;
use crate::js_io::input::{InputBody, JsInput};
use crate::js_io::streams::to_js_stream;
use crate::js_io::value::{call0, get, invalid};
use crate::serialize::BodyPiece;

/// Where a failing input leaves its error, for [`Backend::post`] to report it.
pub(crate) type InputFailure = Rc<RefCell<Option<JsValue>>>;

/// The multipart request body, and the error of an input that failed while it was being sent.
pub(crate) struct RequestBody {
    /// The body stream handed to `fetch`.
    pub(crate) stream: ReadableStream,
    /// The error of an input that failed while the body was being read.
    pub(crate) input_failure: InputFailure,
    /// An `AbortController` whose signal goes with the fetch (undefined where there is none): the
    /// last resort when a failed input leaves the body locked, so it can be neither aborted nor
    /// closed and the fetch would wait for it forever.
    pub(crate) controller: JsValue,
}

/// The multipart request body, produced as it is read: framing bytes, then each input's chunks
/// as they arrive.
///
/// In workerd (which has `IdentityTransformStream`) the inputs are piped natively into the body,
/// so no chunk of the image passes through JS or wasm; elsewhere, and for base64 inputs (whose
/// bytes must be decoded here), the body is a wasm-driven stream. Either way an input that fails
/// (a stream that errors, a locked stream, bad base64) is recorded, and [`Backend::post`] reports
/// that failure rather than whatever the backend made of the cut-off body.
pub(crate) fn request_body(segments: Vec<BodyPiece<JsInput>>, op: Operation) -> RequestBody {
    let input_failure = InputFailure::default();
    let controller = get(&js_sys::global(), "AbortController")
        .dyn_into::<Function>()
        .and_then(|ctor| Reflect::construct(&ctor, &Array::new()))
        .unwrap_or(JsValue::UNDEFINED);
    let needs_wasm = segments
        .iter()
        .any(|s| matches!(s, BodyPiece::Stream(input) if input.base64));
    if !needs_wasm {
        if let Ok(ctor) = get(&js_sys::global(), "IdentityTransformStream").dyn_into::<Function>() {
            let piped = piped_body(
                &ctor,
                segments,
                op,
                input_failure.clone(),
                controller.clone(),
            );
            let stream = match piped {
                Ok(body) => body,
                Err((segments, _)) => wasm_body(segments, op, input_failure.clone()),
            };
            return RequestBody {
                stream,
                input_failure,
                controller,
            };
        }
    }
    RequestBody {
        stream: wasm_body(segments, op, input_failure.clone()),
        input_failure,
        controller,
    }
}

/// Why [`pump`] stopped early.
enum PumpError {
    /// An input failed (its stream errored or was locked): recorded, and the body aborted with it.
    Input(JsValue),
    /// The body itself failed (its reader went away): the fetch's own outcome tells why.
    Body,
}

/// The body as one native byte stream: framing written, inputs `pipeTo`'d in turn (workerd pumps
/// a native source into a native sink without running JS per chunk). A failing input is recorded
/// in `input_failure`, then aborts the body with its error, so the fetch fails instead of sending
/// a short request.
fn piped_body(
    ctor: &Function,
    segments: Vec<BodyPiece<JsInput>>,
    op: Operation,
    input_failure: InputFailure,
    controller: JsValue,
) -> Result<ReadableStream, (Vec<BodyPiece<JsInput>>, JsValue)> {
    let identity = match Reflect::construct(ctor, &Array::new()) {
        Ok(identity) => identity,
        Err(e) => return Err((segments, e)),
    };
    let readable: ReadableStream = get(&identity, "readable").unchecked_into();
    let writable = get(&identity, "writable");
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(PumpError::Input(e)) = pump(segments, &writable, op).await {
            // Recorded before the body is aborted: the backend can only answer after that.
            input_failure.borrow_mut().get_or_insert_with(|| e.clone());
            let abort = match call0(&writable, "getWriter") {
                Ok(writer) => get(&writer, "abort")
                    .dyn_into::<Function>()
                    .and_then(|abort| abort.call1(&writer, &e)),
                Err(error) => Err(error),
            };
            match abort {
                Ok(p) => {
                    let _ = JsFuture::from(Promise::resolve(&p)).await;
                }
                // Still locked by the failed pipe (workerd does that when it refuses to pipe
                // one of its transform streams into another): give up the fetch instead.
                Err(_) => {
                    if let Ok(abort) = get(&controller, "abort").dyn_into::<Function>() {
                        let _ = abort.call1(&controller, &e);
                    }
                }
            }
        }
    });
    Ok(readable)
}

/// Writes the body into `writable`: framing bytes through a short-lived writer, each input by
/// `pipeTo` with `preventClose` and `preventAbort` (so a failed pipe leaves the body to
/// [`piped_body`], which records the input's error first); closes it at the end.
async fn pump(
    segments: Vec<BodyPiece<JsInput>>,
    writable: &JsValue,
    op: Operation,
) -> Result<(), PumpError> {
    let call = |target: &JsValue, method: &str, args: &Array| -> Result<JsFuture, JsValue> {
        let f: Function = get(target, method)
            .dyn_into()
            .map_err(|_| invalid(op, &format!("no {method}() on a body stream")))?;
        Ok(JsFuture::from(Promise::resolve(&f.apply(target, args)?)))
    };
    let write = |bytes: &Uint8Array| -> Result<JsFuture, JsValue> {
        let writer = call0(writable, "getWriter")?;
        let written = call(&writer, "write", &Array::of1(bytes))?;
        call0(&writer, "releaseLock")?;
        Ok(written)
    };
    let body = |_| PumpError::Body;
    for segment in segments {
        let source: ReadableStream = match segment {
            BodyPiece::Bytes(bytes) => {
                write(&Uint8Array::from(&bytes[..]))
                    .map_err(body)?
                    .await
                    .map_err(body)?;
                continue;
            }
            BodyPiece::Stream(input) => match input.body {
                InputBody::Bytes(bytes) => {
                    write(&bytes).map_err(body)?.await.map_err(body)?;
                    continue;
                }
                InputBody::Stream(s) => s,
                InputBody::Blob(blob) => blob.stream(),
            },
        };
        if source.locked() {
            return Err(PumpError::Input(invalid(
                op,
                "the image stream is locked (already being read)",
            )));
        }
        let options = Object::new();
        for flag in ["preventClose", "preventAbort"] {
            Reflect::set(&options, &flag.into(), &JsValue::TRUE).map_err(body)?;
        }
        let piped = call(source.as_ref(), "pipeTo", &Array::of2(writable, &options))
            .map_err(PumpError::Input)?
            .await;
        if let Err(e) = piped {
            // pipeTo rejects with the source's error or the body's. An errored body has no
            // `desiredSize` (null); a healthy one still has a number, so the source failed. A
            // body the pipe left locked is the pipe's failure too (see piped_body).
            let body_failed = call0(writable, "getWriter")
                .map(|writer| {
                    let size = get(&writer, "desiredSize");
                    let _ = call0(&writer, "releaseLock");
                    size.as_f64().is_none()
                })
                .unwrap_or(false);
            return Err(if body_failed {
                PumpError::Body
            } else {
                PumpError::Input(e)
            });
        }
    }
    call(writable, "close", &Array::new())
        .map_err(body)?
        .await
        .map_err(body)?;
    Ok(())
}

/// The body as a wasm-driven stream that pulls each input chunk by chunk; an input's error is
/// recorded in `input_failure` as it errors the body.
fn wasm_body(
    segments: Vec<BodyPiece<JsInput>>,
    op: Operation,
    input_failure: InputFailure,
) -> ReadableStream {
    let chunks = stream::iter(segments)
        .flat_map(move |segment| match segment {
            BodyPiece::Bytes(bytes) => {
                stream::once(async move { Ok(Uint8Array::from(&bytes[..])) }).boxed_local()
            }
            BodyPiece::Stream(input) => {
                let failure = input_failure.clone();
                input
                    .into_chunks(op)
                    .inspect_err(move |e| {
                        failure.borrow_mut().get_or_insert_with(|| e.clone());
                    })
                    .boxed_local()
            }
        })
        .boxed_local();
    to_js_stream(chunks)
}
