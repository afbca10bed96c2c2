//! The backend: a service binding (`Fetcher`) or a base URL, the POST of a request body, and the
//! errors of a failed fetch or input.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use imgbind_wire::{protocol, ErrorCode};

use crate::errors::{ImagesError, Operation};
use crate::js_io::request::RequestBody;
use crate::js_io::value::{describe, error_with_cause, get, has_numeric_code, invalid};

/// The host Cloudflare's client posts to through a service binding.
const BINDING_ORIGIN: &str = "https://js.images.cloudflare.com";

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
