//! The Images binding for Rust Workers written with the `worker` crate (feature `worker`).
//!
//! ```ignore
//! use imgbind_sdk::rust_api::{Images, Transform, OutputFormat, Fit};
//!
//! let images = Images::new(env.service("IMAGES_BACKEND")?);
//! let output = images
//!     .input(req.inner().body())                 // streamed through, never buffered
//!     .transform(Transform { width: Some(800), fit: Some(Fit::Cover), ..Default::default() })
//!     .output(OutputFormat::Webp)
//!     .await?;                                   // Err(ImagesError { code: 9412, .. }) etc.
//! output.response()                               // content-type set, Content-Length kept
//! ```
//!
//! Builders take `self`, so a transformer is used once by construction (Cloudflare's 9525 cannot
//! happen). Everything on the wire is the JavaScript path's: the tree is flattened by
//! [`crate::builder`], framed by [`crate::serialize`], posted and checked by the same code as
//! `createImages()` (`js_io`), and errors are the same [`ImagesError`] codes and messages.

use std::rc::Rc;

use futures_util::stream::{LocalBoxStream, StreamExt};
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::ReadableStream;

pub use imgbind_wire::{
    CompositeMode, ErrorCode, Fit, Flip, GravityMode, OutputFormat, Repeat, Rotate, Segment,
};

pub use crate::errors::{ImagesError, Operation};
pub use crate::options::{
    BorderOption, DrawOptions, GravityOption, ImageInfo, ImageOutputOptions, TextOptions,
    Transform, TrimBorderOption, TrimEdges, TrimOption,
};

use crate::builder::{self, Source};
use crate::js_io::{self, get, Backend, JsInput, JsSource};
use crate::options::{parse_info, text_json, transform_parts, StepOptions};
use crate::serialize::{self, frame, BodyPiece, Part};

/// The binding: start a transformer with [`input`](Images::input), or ask [`info`](Images::info).
/// Cheap to clone.
#[derive(Clone)]
pub struct Images {
    backend: Rc<Backend>,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images").finish_non_exhaustive()
    }
}

impl Images {
    /// The binding over a service binding to the backend (`env.service("IMAGES_BACKEND")?`);
    /// requests go to Cloudflare's binding URL through it, as workerd's own client sends them.
    pub fn new(backend: worker::Fetcher) -> Self {
        Images {
            backend: Rc::new(Backend::Fetcher(JsValue::from(backend).unchecked_into())),
        }
    }

    /// The binding over a base URL such as `http://127.0.0.1:9100`, fetched with the global
    /// `fetch`. An empty URL is 9401.
    pub fn from_url(url: &str) -> Result<Self, ImagesError> {
        let backend = Backend::from_js(&JsValue::from_str(url)).map_err(from_js)?;
        Ok(Images {
            backend: Rc::new(backend),
        })
    }

    /// Starts a transformer on encoded image bytes.
    pub fn input(&self, image: impl Into<ImageInput>) -> ImageTransformer {
        ImageTransformer {
            backend: self.backend.clone(),
            tree: builder::Tree::new(Source::Image(image.into())),
        }
    }

    /// Starts a transformer on text, rendered by the backend (`text_input`, or `draw_text` when
    /// drawn onto another image).
    pub fn text(&self, content: &str, options: &TextOptions) -> ImageTransformer {
        ImageTransformer {
            backend: self.backend.clone(),
            tree: builder::Tree::new(Source::Text(text_json(content, options))),
        }
    }

    /// Format, byte size and displayed dimensions of an image (`POST /info`).
    pub async fn info(&self, image: impl Into<ImageInput>) -> Result<ImageInfo, ImagesError> {
        let boundary = new_boundary();
        let parts = vec![Part::file(imgbind_wire::protocol::PART_IMAGE, image.into())];
        let body = request_body(frame(&boundary, parts), Operation::Info)?;
        let response = self
            .backend
            .post(Operation::Info, &serialize::content_type(&boundary), body)
            .await
            .map_err(from_js)?;
        js_io::check_response(Operation::Info, &response)
            .await
            .map_err(from_js)?;
        let text = JsFuture::from(response.text().map_err(from_js)?)
            .await
            .map_err(from_js)?;
        parse_info(&text.as_string().unwrap_or_default())
    }
}

/// Image bytes for [`Images::input`], [`Images::info`] and [`ImageTransformer::draw`]: a
/// `Vec<u8>`/`&[u8]`, a JS `ReadableStream` (in workerd piped natively into the request, never
/// through wasm), a `worker::Request`'s body, or a `worker::ByteStream`.
pub struct ImageInput(InputBody);

enum InputBody {
    Bytes(Vec<u8>),
    Js(ReadableStream),
    Rust(worker::ByteStream),
}

impl ImageInput {
    /// The input as the JavaScript API takes it (a `Uint8Array` or a `ReadableStream`), so the
    /// request body is built by the same code: in workerd a stream is piped natively into it.
    fn into_js(self, op: Operation) -> Result<JsInput, JsValue> {
        let value: JsValue = match self.0 {
            InputBody::Bytes(bytes) => Uint8Array::from(&bytes[..]).into(),
            InputBody::Js(body) => body.into(),
            InputBody::Rust(chunks) => {
                let chunks = chunks
                    .map(|chunk| {
                        chunk
                            .map(|bytes| Uint8Array::from(&bytes[..]))
                            .map_err(JsValue::from)
                    })
                    .boxed_local();
                js_io::to_js_stream(chunks).into()
            }
        };
        match JsSource::from_js(op, &value, &JsValue::UNDEFINED)? {
            JsSource::Image(input) => Ok(input),
            JsSource::Text { .. } => Err(js_io::invalid(op, "image bytes expected")),
        }
    }
}

impl From<Vec<u8>> for ImageInput {
    fn from(bytes: Vec<u8>) -> Self {
        ImageInput(InputBody::Bytes(bytes))
    }
}

impl From<&[u8]> for ImageInput {
    fn from(bytes: &[u8]) -> Self {
        ImageInput(InputBody::Bytes(bytes.to_vec()))
    }
}

impl From<ReadableStream> for ImageInput {
    fn from(body: ReadableStream) -> Self {
        ImageInput(InputBody::Js(body))
    }
}

/// A missing body (`req.inner().body()` of a bodiless request) is an empty image, which the
/// backend answers with 9412.
impl From<Option<ReadableStream>> for ImageInput {
    fn from(body: Option<ReadableStream>) -> Self {
        match body {
            Some(body) => ImageInput(InputBody::Js(body)),
            None => ImageInput(InputBody::Bytes(Vec::new())),
        }
    }
}

/// The request's body stream, passed through untouched.
impl From<worker::Request> for ImageInput {
    fn from(request: worker::Request) -> Self {
        request.inner().body().into()
    }
}

/// Note that `worker::ByteStream` ends cleanly when its JS stream is aborted; prefer the
/// `ReadableStream` (`req.inner().body()`) where an aborted upload must fail the request.
impl From<worker::ByteStream> for ImageInput {
    fn from(chunks: worker::ByteStream) -> Self {
        ImageInput(InputBody::Rust(chunks))
    }
}

/// What [`ImageTransformer::draw`] draws: another transformer (with its own steps), or plain
/// image bytes.
pub struct Overlay(builder::Tree<ImageInput, StepOptions>);

impl From<ImageTransformer> for Overlay {
    fn from(transformer: ImageTransformer) -> Self {
        Overlay(transformer.tree)
    }
}

impl<T: Into<ImageInput>> From<T> for Overlay {
    fn from(image: T) -> Self {
        Overlay(builder::Tree::new(Source::Image(image.into())))
    }
}

/// A chain of steps on one image; ends in [`output`](ImageTransformer::output).
pub struct ImageTransformer {
    backend: Rc<Backend>,
    tree: builder::Tree<ImageInput, StepOptions>,
}

impl std::fmt::Debug for ImageTransformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageTransformer").finish_non_exhaustive()
    }
}

impl ImageTransformer {
    /// Adds a transform; steps apply in call order.
    pub fn transform(mut self, transform: Transform) -> Self {
        self.tree.push_transform(StepOptions::Transform(transform));
        self
    }

    /// Draws an overlay (a transformer or image bytes) onto this image.
    pub fn draw(mut self, overlay: impl Into<Overlay>, options: DrawOptions) -> Self {
        self.tree
            .push_draw(overlay.into().0, StepOptions::Draw(options));
        self
    }

    /// Sends the request (the body streams as the backend reads it) and waits for the response
    /// head. A coded backend error, a failed fetch or a missing `content-type` is an
    /// [`ImagesError`]; a body cut short fails the [`ImageOutput`]'s stream, not this call.
    pub async fn output(
        self,
        options: impl Into<ImageOutputOptions>,
    ) -> Result<ImageOutput, ImagesError> {
        let parts = transform_parts(self.tree, &options.into())?;
        let boundary = new_boundary();
        let body = request_body(frame(&boundary, parts), Operation::Transform)?;
        let response = self
            .backend
            .post(
                Operation::Transform,
                &serialize::content_type(&boundary),
                body,
            )
            .await
            .map_err(from_js)?;
        js_io::check_response(Operation::Transform, &response)
            .await
            .map_err(from_js)?;
        let content_type = match response.headers().get("content-type") {
            Ok(Some(ct)) if !ct.is_empty() => ct,
            _ => return Err(ImagesError::no_content_type()),
        };
        Ok(ImageOutput {
            response,
            content_type,
        })
    }
}

/// The result of [`ImageTransformer::output`]: a content type and a body, read once in one of
/// four ways. Every way checks the body against its `Content-Length`: a short, long or failed
/// body is an error (9523), never a clean end.
#[derive(Debug)]
pub struct ImageOutput {
    response: web_sys::Response,
    content_type: String,
}

impl ImageOutput {
    /// The image's `content-type` (`image/webp`, …; `application/octet-stream` for raw pixels).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// A response to return from the Worker: the image stream with its `content-type`. In
    /// workerd the body keeps its `Content-Length`.
    pub fn response(self) -> Result<worker::Response, ImagesError> {
        let headers = worker::Headers::new();
        headers
            .set("content-type", &self.content_type)
            .map_err(|e| from_js(e.into()))?;
        let checked = js_io::checked_body(&self.response).map_err(from_js)?;
        let body = js_io::response_body(&self.response, checked).map_err(from_js)?;
        Ok(worker::Response::builder()
            .with_headers(headers)
            .stream(body))
    }

    /// The image as a JS `ReadableStream`, for handing to other JS APIs (R2, Cache) or to another
    /// `input()`. A `Response` made from it goes out chunked; [`response`](Self::response) keeps
    /// the length.
    pub fn image(self) -> Result<ReadableStream, ImagesError> {
        js_io::checked_body(&self.response).map_err(from_js)
    }

    /// The image as Rust chunks.
    pub fn stream(
        self,
    ) -> Result<LocalBoxStream<'static, Result<Vec<u8>, ImagesError>>, ImagesError> {
        let body = self.image()?;
        let chunks = wasm_streams::ReadableStream::from_raw(body)
            .try_into_stream()
            .map_err(|(e, _)| from_js(e.into()))?;
        Ok(chunks
            .map(|chunk| chunk.map(|c| Uint8Array::new(&c).to_vec()).map_err(from_js))
            .boxed_local())
    }

    /// The whole image in memory.
    pub async fn bytes(self) -> Result<Vec<u8>, ImagesError> {
        let mut chunks = self.stream()?;
        let mut out = Vec::new();
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

/// Lets `?` pass an [`ImagesError`] up a handler returning `worker::Result`; the message keeps
/// the code (`IMAGES_TRANSFORM_ERROR 9412: …`). Use [`ImagesError::http_status`] to answer with
/// a matching status instead.
impl From<ImagesError> for worker::Error {
    fn from(e: ImagesError) -> Self {
        worker::Error::RustError(e.message)
    }
}

/// The multipart body, produced as it is read, by the JavaScript API's code.
fn request_body(
    segments: Vec<BodyPiece<ImageInput>>,
    op: Operation,
) -> Result<js_io::RequestBody, ImagesError> {
    let segments = segments
        .into_iter()
        .map(|segment| match segment {
            BodyPiece::Bytes(bytes) => Ok(BodyPiece::Bytes(bytes)),
            BodyPiece::Stream(input) => input.into_js(op).map(BodyPiece::Stream),
        })
        .collect::<Result<Vec<_>, JsValue>>()
        .map_err(from_js)?;
    Ok(js_io::request_body(segments, op))
}

fn new_boundary() -> String {
    serialize::boundary(|| (js_sys::Math::random() * 10.0) as u8)
}

/// A thrown JS value as an [`ImagesError`]: the SDK's own errors carry `code` and `message`;
/// anything else (a failed fetch, a broken stream) is 9523 with its message.
fn from_js(e: JsValue) -> ImagesError {
    let message = match get(&e, "message").as_string() {
        Some(m) => m,
        None => e.as_string().unwrap_or_else(|| format!("{e:?}")),
    };
    match get(&e, "code").as_f64() {
        Some(code) if code >= 0.0 && code.fract() == 0.0 => ImagesError::new(code as u32, message),
        _ => ImagesError::client(Operation::Transform, ErrorCode::Internal, &message),
    }
}
