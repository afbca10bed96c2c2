//! JavaScript I/O for the bindings: inputs as chunk streams, the streamed request body, the fetch,
//! error responses, and the length-checked result body.
//!
//! Chunks stay JS `Uint8Array`s end to end (no copy into wasm memory) except where base64 has to
//! look at the bytes.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream::{self, LocalBoxStream, StreamExt, TryStreamExt};
use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ReadableStream, Response};

use imgbind_wire::{protocol, ErrorCode};

use crate::base64_stream::{Decoder, Encoder};
use crate::errors::{ImagesError, Operation, ResponseFailure};
use crate::serialize::Segment;
use crate::stream::{checked, LengthCheck};

/// The host Cloudflare's client posts to through a service binding.
const BINDING_ORIGIN: &str = "https://js.images.cloudflare.com";

/// Bytes of input handed to base64 at a time (a multiple of 3 and of 4), bounding wasm memory.
const BASE64_SLICE: u32 = 48 * 1024;

pub(crate) type ChunkStream = LocalBoxStream<'static, Result<Uint8Array, JsValue>>;

/// An `ImagesError` as a JS `Error` with a numeric `code`.
pub(crate) fn js_error(error: &ImagesError) -> JsValue {
    error_with_cause(error, None)
}

/// [`js_error`] with `cause` set.
pub(crate) fn error_with_cause(error: &ImagesError, cause: Option<&JsValue>) -> JsValue {
    let e = match cause {
        Some(cause) => {
            let options = Object::new();
            let _ = Reflect::set(&options, &"cause".into(), cause);
            js_sys::Error::new_with_options(&error.message, &options)
        }
        None => js_sys::Error::new(&error.message),
    };
    let _ = Reflect::set(&e, &"code".into(), &JsValue::from(error.code));
    e.into()
}

/// A client-side argument error (9401).
pub(crate) fn invalid(op: Operation, detail: &str) -> JsValue {
    js_error(&ImagesError::client(
        op,
        ErrorCode::InvalidArguments,
        detail,
    ))
}

/// `String(value)`.
pub(crate) fn js_string(value: &JsValue) -> Result<String, JsValue> {
    if let Some(s) = value.as_string() {
        return Ok(s);
    }
    let string: Function = Reflect::get(&js_sys::global(), &"String".into())?.dyn_into()?;
    Ok(string
        .call1(&JsValue::UNDEFINED, value)?
        .as_string()
        .unwrap_or_default())
}

/// `value?.[key]`.
pub(crate) fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() || value.is_function() {
        Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The message of a thrown value, for wrapping it.
fn describe(value: &JsValue) -> String {
    match get(value, "message").as_string() {
        Some(m) => m,
        None => js_string(value).unwrap_or_else(|_| "unknown error".into()),
    }
}

fn has_numeric_code(value: &JsValue) -> bool {
    get(value, "code").as_f64().is_some()
}

/// `JSON.stringify(value)` as a Rust string.
pub(crate) fn json_stringify(value: &JsValue) -> Result<String, JsValue> {
    Ok(JSON::stringify(value)?.as_string().unwrap_or_default())
}

/// Image bytes as given to `input()`, `draw()` or `info()`.
pub(crate) struct JsInput {
    body: InputBody,
    base64: bool,
}

enum InputBody {
    Stream(ReadableStream),
    Bytes(Uint8Array),
    Blob(Blob),
}

/// What a source argument is: image bytes, or Cloudflare's text source `{content, options}`.
pub(crate) enum JsSource {
    Image(JsInput),
    Text { content: JsValue, options: JsValue },
}

impl JsSource {
    /// Classifies a source argument; `options.encoding === 'base64'` decodes it on the way.
    pub(crate) fn from_js(
        op: Operation,
        value: &JsValue,
        options: &JsValue,
    ) -> Result<Self, JsValue> {
        if value.is_object()
            && Reflect::has(value, &"content".into())?
            && Reflect::has(value, &"options".into())?
        {
            return Ok(JsSource::Text {
                content: get(value, "content"),
                options: get(value, "options"),
            });
        }
        let base64 = get(options, "encoding").as_string().as_deref() == Some("base64");
        Ok(JsSource::Image(JsInput {
            body: InputBody::from_js(op, value)?,
            base64,
        }))
    }
}

impl InputBody {
    fn from_js(op: Operation, value: &JsValue) -> Result<Self, JsValue> {
        if get(value, "getReader").is_function() {
            return Ok(InputBody::Stream(value.clone().unchecked_into()));
        }
        if let Ok(bytes) = as_bytes(value) {
            return Ok(InputBody::Bytes(bytes));
        }
        if let Some(blob) = value.dyn_ref::<Blob>() {
            return Ok(InputBody::Blob(blob.clone()));
        }
        // A Response or Request: its body (null is empty).
        if get(value, "arrayBuffer").is_function() && value.is_object() {
            let body = get(value, "body");
            if body.is_null() || body.is_undefined() {
                return Ok(InputBody::Bytes(Uint8Array::new_with_length(0)));
            }
            if get(&body, "getReader").is_function() {
                return Ok(InputBody::Stream(body.unchecked_into()));
            }
        }
        Err(invalid(
            op,
            "an image must be a ReadableStream, ArrayBuffer, typed array, DataView, Blob or Response",
        ))
    }
}

impl JsInput {
    /// The bytes as a lazy chunk stream: nothing is read until the request body is pulled.
    pub(crate) fn into_chunks(self, op: Operation) -> ChunkStream {
        let chunks: ChunkStream = match self.body {
            InputBody::Bytes(bytes) => stream::once(async move { Ok(bytes) }).boxed_local(),
            InputBody::Stream(s) => read_stream(s, op),
            InputBody::Blob(blob) => read_stream(blob.stream(), op),
        };
        if self.base64 {
            transcode(chunks, Codec::Decode(Decoder::new(), op))
        } else {
            chunks
        }
    }
}

/// Reads a JS stream as byte chunks; an already-locked stream is an error item.
pub(crate) fn read_stream(s: ReadableStream, op: Operation) -> ChunkStream {
    match wasm_streams::ReadableStream::from_raw(s).try_into_stream() {
        Ok(chunks) => chunks
            .and_then(move |chunk| async move {
                as_bytes(&chunk).map_err(|_| {
                    invalid(
                        op,
                        "stream chunks must be Uint8Array, ArrayBuffer or ArrayBufferView",
                    )
                })
            })
            .boxed_local(),
        Err((e, _)) => stream::once(async move { Err(e.into()) }).boxed_local(),
    }
}

/// A view of bytes without copying: `Uint8Array` as is, other views and `ArrayBuffer` wrapped.
pub(crate) fn as_bytes(value: &JsValue) -> Result<Uint8Array, ()> {
    if let Some(u8s) = value.dyn_ref::<Uint8Array>() {
        return Ok(u8s.clone());
    }
    if value.is_instance_of::<ArrayBuffer>() || value.is_instance_of::<js_sys::SharedArrayBuffer>()
    {
        return Ok(Uint8Array::new(value));
    }
    if ArrayBuffer::is_view(value) {
        let buffer = get(value, "buffer");
        let offset = get(value, "byteOffset").as_f64().unwrap_or(0.0) as u32;
        let length = get(value, "byteLength").as_f64().unwrap_or(0.0) as u32;
        return Ok(Uint8Array::new_with_byte_offset_and_length(
            &buffer, offset, length,
        ));
    }
    Err(())
}

enum Codec {
    Decode(Decoder, Operation),
    Encode(Encoder),
}

impl Codec {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), JsValue> {
        match self {
            Codec::Decode(d, op) => d.push(input, out).map_err(|e| invalid(*op, &e.to_string())),
            Codec::Encode(e) => {
                e.push(input, out);
                Ok(())
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), JsValue> {
        match self {
            Codec::Decode(d, op) => d.finish(out).map_err(|e| invalid(*op, &e.to_string())),
            Codec::Encode(e) => {
                e.finish(out);
                Ok(())
            }
        }
    }
}

struct Transcoding {
    input: ChunkStream,
    codec: Codec,
    current: Option<(Uint8Array, u32)>,
}

/// Base64-decodes or -encodes a chunk stream, a bounded slice at a time.
fn transcode(input: ChunkStream, codec: Codec) -> ChunkStream {
    let state = Transcoding {
        input,
        codec,
        current: None,
    };
    stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        let mut out = Vec::new();
        loop {
            if let Some((chunk, offset)) = &mut st.current {
                let len = chunk.length();
                if *offset < len {
                    let end = len.min(*offset + BASE64_SLICE);
                    let slice = chunk.subarray(*offset, end).to_vec();
                    *offset = end;
                    if let Err(e) = st.codec.push(&slice, &mut out) {
                        return Some((Err(e), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Uint8Array::from(&out[..])), Some(st)));
                    }
                    continue;
                }
                st.current = None;
            }
            match st.input.next().await {
                Some(Ok(chunk)) => st.current = Some((chunk, 0)),
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return match st.codec.finish(&mut out) {
                        Err(e) => Some((Err(e), None)),
                        Ok(()) if out.is_empty() => None,
                        Ok(()) => Some((Ok(Uint8Array::from(&out[..])), None)),
                    }
                }
            }
        }
    })
    .boxed_local()
}

/// Turns a Rust chunk stream into a JS `ReadableStream` that pulls it on demand.
pub(crate) fn to_js_stream(chunks: ChunkStream) -> ReadableStream {
    wasm_streams::ReadableStream::from_stream(chunks.map_ok(JsValue::from)).into_raw()
}

/// Where a failing input leaves its error, for [`Backend::post`] to report it.
type InputFailure = Rc<RefCell<Option<JsValue>>>;

/// The multipart request body, and the error of an input that failed while it was being sent.
pub(crate) struct RequestBody {
    stream: ReadableStream,
    input_failure: InputFailure,
    /// An `AbortController` whose signal goes with the fetch (undefined where there is none): the
    /// last resort when a failed input leaves the body locked, so it can be neither aborted nor
    /// closed and the fetch would wait for it forever.
    controller: JsValue,
}

/// The multipart request body, produced as it is read: framing bytes, then each input's chunks
/// as they arrive.
///
/// In workerd (which has `IdentityTransformStream`) the inputs are piped natively into the body,
/// so no chunk of the image passes through JS or wasm; elsewhere, and for base64 inputs (whose
/// bytes must be decoded here), the body is a wasm-driven stream. Either way an input that fails
/// (a stream that errors, a locked stream, bad base64) is recorded, and [`Backend::post`] reports
/// that failure rather than whatever the backend made of the cut-off body.
pub(crate) fn request_body(segments: Vec<Segment<JsInput>>, op: Operation) -> RequestBody {
    let input_failure = InputFailure::default();
    let controller = get(&js_sys::global(), "AbortController")
        .dyn_into::<Function>()
        .and_then(|ctor| Reflect::construct(&ctor, &Array::new()))
        .unwrap_or(JsValue::UNDEFINED);
    let needs_wasm = segments
        .iter()
        .any(|s| matches!(s, Segment::Stream(input) if input.base64));
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
    segments: Vec<Segment<JsInput>>,
    op: Operation,
    input_failure: InputFailure,
    controller: JsValue,
) -> Result<ReadableStream, (Vec<Segment<JsInput>>, JsValue)> {
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
    segments: Vec<Segment<JsInput>>,
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
            Segment::Bytes(bytes) => {
                write(&Uint8Array::from(&bytes[..]))
                    .map_err(body)?
                    .await
                    .map_err(body)?;
                continue;
            }
            Segment::Stream(input) => match input.body {
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

/// Calls `target[method]()` synchronously.
fn call0(target: &JsValue, method: &str) -> Result<JsValue, JsValue> {
    let f: Function = get(target, method).dyn_into()?;
    f.call0(target)
}

/// The body as a wasm-driven stream that pulls each input chunk by chunk; an input's error is
/// recorded in `input_failure` as it errors the body.
fn wasm_body(
    segments: Vec<Segment<JsInput>>,
    op: Operation,
    input_failure: InputFailure,
) -> ReadableStream {
    let chunks = stream::iter(segments)
        .flat_map(move |segment| match segment {
            Segment::Bytes(bytes) => {
                stream::once(async move { Ok(Uint8Array::from(&bytes[..])) }).boxed_local()
            }
            Segment::Stream(input) => {
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

/// Where requests go.
pub(crate) enum Backend {
    /// An object with `fetch` (a service binding); posts to Cloudflare's binding URL.
    Fetcher(Object),
    /// A base URL such as `http://127.0.0.1:9999`; posted to with the global `fetch`.
    Url(String),
}

impl Backend {
    pub(crate) fn from_js(value: &JsValue) -> Result<Self, JsValue> {
        if value.is_object() && get(value, "fetch").is_function() {
            return Ok(Backend::Fetcher(value.clone().unchecked_into()));
        }
        let url = if let Some(s) = value.as_string() {
            Some(s)
        } else {
            get(value, "href").as_string()
        };
        match url {
            Some(url) if !url.trim().is_empty() => {
                Ok(Backend::Url(url.trim().trim_end_matches('/').to_string()))
            }
            _ => Err(invalid(
                Operation::Transform,
                "createImages(backend): backend must be a Fetcher (an object with fetch) or a base URL",
            )),
        }
    }

    /// Whether this backend's response bodies are workerd's own streams: in workerd (which has
    /// `FixedLengthStream`), the global `fetch` of a URL backend or a real service binding (a
    /// `Fetcher`, not a JS object with a `fetch` method).
    pub(crate) fn native_bodies(&self) -> bool {
        if get(&js_sys::global(), "FixedLengthStream").is_undefined() {
            return false;
        }
        match self {
            Backend::Url(_) => true,
            Backend::Fetcher(fetcher) => {
                get(&get(fetcher, "constructor"), "name")
                    .as_string()
                    .as_deref()
                    == Some("Fetcher")
            }
        }
    }

    /// Calls a hosted-images RPC method on a service-binding backend, as Cloudflare's binding does.
    pub(crate) fn hosted(&self, method: &str, args: &Array) -> Result<JsValue, JsValue> {
        let unsupported = || {
            js_error(&ImagesError::new(
                u32::from(ErrorCode::Internal.as_u16()),
                format!(
                    "IMAGES_HOSTED_ERROR 9523: hosted.{method}() needs a service-binding backend \
                     with a {method}() RPC method; this backend has none"
                ),
            ))
        };
        match self {
            Backend::Fetcher(fetcher) => {
                let f = get(fetcher, method);
                match f.dyn_ref::<Function>() {
                    Some(f) => f.apply(fetcher, args),
                    None => Err(unsupported()),
                }
            }
            Backend::Url(_) => Err(unsupported()),
        }
    }

    /// POSTs a multipart body and waits for the response head. When an input failed while the
    /// body was sent, that failure is the error, whatever the backend answered to the short body.
    pub(crate) async fn post(
        &self,
        op: Operation,
        content_type: &str,
        body: RequestBody,
    ) -> Result<Response, JsValue> {
        let RequestBody {
            stream: body,
            input_failure,
            controller,
        } = body;
        let path = match op {
            Operation::Transform => protocol::PATH_TRANSFORM,
            Operation::Info => protocol::PATH_INFO,
        };
        let headers = Object::new();
        Reflect::set(&headers, &"content-type".into(), &content_type.into())?;
        let init = Object::new();
        Reflect::set(&init, &"method".into(), &"POST".into())?;
        Reflect::set(&init, &"headers".into(), &headers)?;
        Reflect::set(&init, &"body".into(), &body)?;
        // Required by Node's fetch for a stream body; ignored by workerd.
        Reflect::set(&init, &"duplex".into(), &"half".into())?;
        let signal = get(&controller, "signal");
        if !signal.is_undefined() {
            Reflect::set(&init, &"signal".into(), &signal)?;
        }
        let (this, url): (JsValue, String) = match self {
            Backend::Fetcher(f) => (f.clone().into(), format!("{BINDING_ORIGIN}{path}")),
            Backend::Url(base) => (js_sys::global().into(), format!("{base}{path}")),
        };
        let fetch: Function = get(&this, "fetch")
            .dyn_into()
            .map_err(|_| invalid(op, "no fetch function to call"))?;
        let sent = fetch
            .call2(&this, &url.into(), &init)
            .map(|p| Promise::resolve(&p));
        let response = match sent {
            Ok(p) => JsFuture::from(p).await,
            Err(e) => Err(e),
        };
        if let Some(failure) = input_failure.borrow_mut().take() {
            if let Ok(response) = &response {
                if let Some(body) = response.dyn_ref::<Response>().and_then(Response::body) {
                    let _ = body.cancel();
                }
            }
            return Err(input_failed(op, failure));
        }
        response
            .map(JsCast::unchecked_into)
            .map_err(|e| request_failed(op, e))
    }
}

/// An input that failed while the request was sent: our own coded errors (a locked stream, bad
/// base64, chunks that are not bytes) pass through; anything else becomes 9523 with the input's
/// error as `cause`.
fn input_failed(op: Operation, e: JsValue) -> JsValue {
    if has_numeric_code(&e) {
        return e;
    }
    let detail = format!("an input image stream failed: {}", describe(&e));
    error_with_cause(
        &ImagesError::client(op, ErrorCode::Internal, &detail),
        Some(&e),
    )
}

/// A failed fetch: our own coded errors (e.g. a bad base64 input that failed the request body)
/// pass through; anything else becomes 9523 with the original as `cause`.
fn request_failed(op: Operation, e: JsValue) -> JsValue {
    if has_numeric_code(&e) {
        return e;
    }
    let cause = get(&e, "cause");
    if has_numeric_code(&cause) {
        return cause;
    }
    let detail = format!("request to the images backend failed: {}", describe(&e));
    error_with_cause(
        &ImagesError::client(op, ErrorCode::Internal, &detail),
        Some(&e),
    )
}

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

/// Base64-encodes a byte stream.
pub(crate) fn base64_encoded(s: ReadableStream) -> ChunkStream {
    transcode(
        read_stream(s, Operation::Transform),
        Codec::Encode(Encoder::new()),
    )
}
