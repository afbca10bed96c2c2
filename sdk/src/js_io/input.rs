//! Inputs: what `input()`, `draw()` and `info()` accept, classified, and read as chunk streams.

use futures_util::stream::{self, StreamExt};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, ReadableStream};

use crate::base64_stream::Decoder;
use crate::errors::Operation;
use crate::js_io::streams::{read_stream, transcode, ChunkStream, Codec};
use crate::js_io::value::{as_bytes, get, invalid};

/// Image bytes as given to `input()`, `draw()` or `info()`.
pub(crate) struct JsInput {
    pub(crate) body: InputBody,
    pub(crate) base64: bool,
}

pub(crate) enum InputBody {
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
