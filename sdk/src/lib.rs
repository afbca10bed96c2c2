//! imgbind's builder for Workers: the Images-binding API (`input().transform().draw().output()`),
//! compiled to WebAssembly.
//!
//! The wire format is the one Cloudflare's own client (workerd's `cloudflare-internal:images-api`)
//! sends, byte for byte, so either client can talk to either backend. The request body is streamed
//! as the inputs are read, and the result body is checked so that a short or aborted response
//! surfaces as a stream error, never as a clean end.
//!
//! The core is plain Rust, usable from any host and shared by both APIs:
//!
//! * [`builder`]: the transformer tree and its depth-first flattening into parts and steps;
//! * [`serialize`]: multipart framing identical to workerd's `StreamableFormData`, the op-list JSON;
//! * [`errors`]: the `{code, message}` errors and how a backend response maps to one;
//! * [`stream`]: the length check that turns truncation into an error;
//! * [`base64_stream`]: streaming base64 for `encoding: 'base64'`;
//! * [`options`]: typed step and output options for Rust callers, and their `/transform` parts.
//!
//! The JavaScript bindings (`createImages`, …) are compiled only for `wasm32`; the Rust API for
//! `worker`-crate Workers (`rust_api`) also needs the `worker` feature.

pub mod base64_stream;
pub mod builder;
pub mod errors;
pub mod options;
pub mod serialize;
pub mod stream;

#[cfg(target_arch = "wasm32")]
pub mod js_api;
#[cfg(target_arch = "wasm32")]
mod js_io;
#[cfg(all(target_arch = "wasm32", feature = "worker"))]
pub mod rust_api;
