//! The wire contract shared by the imgbind SDK (wasm) and backend.
//!
//! It is the format Cloudflare's own Images-binding client (workerd's
//! `cloudflare-internal:images-api`) sends, so that client and ours are interchangeable:
//!
//! * `POST /transform`: `multipart/form-data` with parts, in this order, `image` (or `text_input`),
//!   zero or more `draw_image` / `draw_text`, `transforms` (a JSON array of [`Step`]s),
//!   `output_format`, and optionally `output_quality`, `background`, `anim`.
//! * `POST /info`: one `image` part; answers [`InfoResponse`] as JSON.
//! * Errors: header `cf-images-binding: err=<code>` and body `ERROR <code>: <message>` (see [`Error`]).
//!
//! Everything here is plain data plus validation, so it compiles for `wasm32-unknown-unknown`.

mod colour;
mod error;
mod info;
mod output;
pub mod protocol;
mod steps;
mod text;

pub use colour::{parse_colour, Rgba};
pub use error::{Error, ErrorCode};
pub use info::InfoResponse;
pub use output::{OutputFields, OutputFormat, OutputOptions};
pub use steps::parse::parse_steps;
pub use steps::{
    Border, CompositeMode, DrawStep, Fit, Flip, Gravity, GravityMode, Repeat, Rotate, Segment,
    Step, TransformStep, Trim, TrimBorder,
};
pub use text::{
    parse_text_source, TextSource, DEFAULT_TEXT_COLOR, DEFAULT_TEXT_SIZE, MAX_TEXT_SIZE,
    MIN_TEXT_SIZE,
};
