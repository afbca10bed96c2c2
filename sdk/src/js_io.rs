//! JavaScript I/O for the bindings, one job per file: JS value helpers (`value.rs`), chunk streams
//! and base64 (`streams.rs`), inputs (`input.rs`), pumping the request body (`request.rs`), the
//! backend fetch (`fetcher.rs`) and result bodies (`response.rs`).

mod fetcher;
mod input;
mod request;
mod response;
mod streams;
mod value;

pub(crate) use fetcher::Backend;
pub(crate) use input::{JsInput, JsSource};
pub(crate) use request::{request_body, RequestBody};
pub(crate) use response::{check_response, checked_body, passthrough_body, response_body};
pub(crate) use streams::{base64_encoded, to_js_stream};
pub(crate) use value::{get, invalid, js_error, js_string, json_stringify};
