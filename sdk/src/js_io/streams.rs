//! Chunk streams: JS streams read as `Uint8Array` chunks, Rust streams handed to JS, and base64
//! decoding/encoding on the way, a bounded slice at a time.
//!
//! Chunks stay JS `Uint8Array`s end to end (no copy into wasm memory) except where base64 has to
//! look at the bytes.

use futures_util::stream::{self, LocalBoxStream, StreamExt, TryStreamExt};
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::ReadableStream;

use crate::base64_stream::{Decoder, Encoder};
use crate::errors::Operation;
use crate::js_io::value::{as_bytes, invalid};

/// Bytes of input handed to base64 at a time (a multiple of 3 and of 4), bounding wasm memory.
const BASE64_SLICE: u32 = 48 * 1024;

pub(crate) type ChunkStream = LocalBoxStream<'static, Result<Uint8Array, JsValue>>;

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

pub(crate) enum Codec {
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
pub(crate) fn transcode(input: ChunkStream, codec: Codec) -> ChunkStream {
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

/// Base64-encodes a byte stream.
pub(crate) fn base64_encoded(s: ReadableStream) -> ChunkStream {
    transcode(
        read_stream(s, Operation::Transform),
        Codec::Encode(Encoder::new()),
    )
}
