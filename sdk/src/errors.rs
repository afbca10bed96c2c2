//! The errors the binding throws: a numeric `code` and a message, in Cloudflare's shapes.
//!
//! A backend error response carries `cf-images-binding: err=<code>` and the body
//! `ERROR <code>: <message>`; the client throws `IMAGES_<OP>_` + that body. Any other status above
//! 399 is 9523 `Unexpected error response <status>: <body>`.

use std::fmt;

use imgbind_wire::ErrorCode;

/// Which call failed; it prefixes the message (`IMAGES_TRANSFORM_…`, `IMAGES_INFO_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `output()` (`POST /transform`).
    Transform,
    /// `info()` (`POST /info`).
    Info,
}

impl Operation {
    /// `TRANSFORM` or `INFO`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Transform => "TRANSFORM",
            Operation::Info => "INFO",
        }
    }
}

/// An error with Cloudflare's numeric code and message; thrown to JavaScript as an `Error` with a
/// `code` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesError {
    /// The code (`9xxx`), as Workers code matches on it.
    pub code: u32,
    /// The full message, e.g. `IMAGES_TRANSFORM_ERROR 9412: …`.
    pub message: String,
}

impl ImagesError {
    /// An error with this code and message, as given.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        ImagesError {
            code,
            message: message.into(),
        }
    }

    /// A client-side error in Cloudflare's shape: `IMAGES_<OP>_ERROR <code>: <detail>`.
    pub fn client(op: Operation, code: ErrorCode, detail: &str) -> Self {
        let code = u32::from(code.as_u16());
        ImagesError::new(
            code,
            format!("IMAGES_{}_ERROR {code}: {detail}", op.as_str()),
        )
    }

    /// The code as one of the documented [`ErrorCode`]s, if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        u16::try_from(self.code).ok().and_then(ErrorCode::from_u16)
    }

    /// The HTTP status the backend uses for this code; 500 for a code it does not document.
    pub fn http_status(&self) -> u16 {
        self.error_code().map_or(500, ErrorCode::http_status)
    }

    /// 9525: a transformer was output or drawn a second time (Cloudflare's exact message).
    pub fn consumed() -> Self {
        ImagesError::client(
            Operation::Transform,
            ErrorCode::TransformerConsumed,
            "ImageTransformer consumed; you may only call .output() or draw a transformer once",
        )
    }

    /// 9523: the result has no `content-type` (Cloudflare's exact message).
    pub fn no_content_type() -> Self {
        ImagesError::client(
            Operation::Transform,
            ErrorCode::Internal,
            "No content-type on bindings response",
        )
    }

    /// 9523: the result body ended early, ran long, or failed; see [`crate::stream`].
    pub fn delivery(detail: &str) -> Self {
        ImagesError::client(Operation::Transform, ErrorCode::Internal, detail)
    }
}

impl fmt::Display for ImagesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImagesError {}

/// A backend response that is an error; the body is read afterwards to build the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFailure {
    /// `cf-images-binding: err=<code>` was present.
    Coded(u32),
    /// No error header, but the status was above 399.
    Unexpected(u16),
}

impl ResponseFailure {
    /// Classifies a response from its `cf-images-binding` header and status, as Cloudflare's
    /// `throwErrorIfErrorResponse` does: the header wins, whatever the status.
    pub fn classify(error_header: Option<&str>, status: u16) -> Option<ResponseFailure> {
        if let Some(code) = error_header.and_then(error_code_in_header) {
            Some(ResponseFailure::Coded(code))
        } else if status > 399 {
            Some(ResponseFailure::Unexpected(status))
        } else {
            None
        }
    }

    /// The error to throw, given the response body text.
    pub fn into_error(self, op: Operation, body: &str) -> ImagesError {
        match self {
            ResponseFailure::Coded(code) => ImagesError::new(
                code,
                js_trim(&format!("IMAGES_{}_{body}", op.as_str())).to_string(),
            ),
            ResponseFailure::Unexpected(status) => ImagesError::new(
                u32::from(ErrorCode::Internal.as_u16()),
                format!("Unexpected error response {status}: {}", js_trim(body)),
            ),
        }
    }
}

/// The code in a `cf-images-binding` value: the first `err=` followed by digits (the regex
/// `/err=(\d+)/`). Codes too large for `u32` saturate.
pub fn error_code_in_header(value: &str) -> Option<u32> {
    value.match_indices("err=").find_map(|(at, key)| {
        let rest = &value[at + key.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0).then(|| {
            rest[..digits].bytes().fold(0u32, |n, d| {
                n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
            })
        })
    })
}

/// `String.prototype.trim`: Unicode white space plus the BOM, which Rust's `trim` keeps.
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing_follows_the_regex() {
        assert_eq!(error_code_in_header("err=9412"), Some(9412));
        assert_eq!(error_code_in_header("x; err=9523, y"), Some(9523));
        assert_eq!(error_code_in_header("err=;err=7"), Some(7));
        assert_eq!(error_code_in_header("err=abc"), None);
        assert_eq!(error_code_in_header("ok"), None);
        assert_eq!(error_code_in_header(""), None);
        assert_eq!(error_code_in_header("err=99999999999"), Some(u32::MAX));
    }

    #[test]
    fn coded_errors_take_the_body_as_message() {
        // workerd's test: body "ERROR 123: Bad request" -> "IMAGES_TRANSFORM_ERROR 123: Bad request".
        let f = ResponseFailure::classify(Some("err=123"), 409).unwrap();
        assert_eq!(
            f.into_error(Operation::Transform, "ERROR 123: Bad request\n"),
            ImagesError::new(123, "IMAGES_TRANSFORM_ERROR 123: Bad request")
        );
        // The header wins even on a 200.
        let f = ResponseFailure::classify(Some("err=9412"), 200).unwrap();
        assert_eq!(
            f.into_error(Operation::Info, "ERROR 9412: not an image")
                .message,
            "IMAGES_INFO_ERROR 9412: not an image"
        );
    }

    #[test]
    fn other_failures_are_9523() {
        assert_eq!(ResponseFailure::classify(None, 399), None);
        assert_eq!(ResponseFailure::classify(Some("ok"), 200), None);
        let f = ResponseFailure::classify(Some("nothing"), 500).unwrap();
        assert_eq!(
            f.into_error(Operation::Transform, "  boom \n"),
            ImagesError::new(9523, "Unexpected error response 500: boom")
        );
    }

    #[test]
    fn statuses_follow_the_backends_table() {
        assert_eq!(ImagesError::new(9412, "x").http_status(), 415);
        assert_eq!(ImagesError::new(9401, "x").http_status(), 400);
        assert_eq!(
            ImagesError::new(9523, "x").error_code(),
            Some(ErrorCode::Internal)
        );
        assert_eq!(ImagesError::new(123, "x").error_code(), None);
        assert_eq!(ImagesError::new(123, "x").http_status(), 500);
        assert_eq!(ImagesError::new(u32::MAX, "x").http_status(), 500);
    }

    #[test]
    fn client_messages_are_cloudflares() {
        assert_eq!(
            ImagesError::consumed().message,
            "IMAGES_TRANSFORM_ERROR 9525: ImageTransformer consumed; you may only call .output() or draw a transformer once"
        );
        assert_eq!(ImagesError::consumed().code, 9525);
        assert_eq!(
            ImagesError::no_content_type().message,
            "IMAGES_TRANSFORM_ERROR 9523: No content-type on bindings response"
        );
    }
}
