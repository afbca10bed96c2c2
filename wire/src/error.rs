//! One error type with stable numeric codes, in Cloudflare's numbering.

use std::fmt;

/// A stable error code. The numbers are Cloudflare Images' (`9xxx`), which Workers code already
/// matches on; the HTTP status for each is fixed here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 9401: missing or invalid arguments (bad option, bad JSON, malformed multipart).
    InvalidArguments,
    /// 9402: the input is too large (bytes), or the connection was interrupted.
    TooLarge,
    /// 9412: the input is not an image (or is corrupt beyond decoding).
    NotAnImage,
    /// 9413: the request is over a size limit: an image with too many pixels or too long a side,
    /// a result too large, too many frames or draw layers, or more memory than the server's whole
    /// budget. It will always fail on this server: never retried (no `Retry-After`).
    TooManyPixels,
    /// 9520: the format is recognised but not supported (for this operation).
    UnsupportedFormat,
    /// 9522: the server cannot take the request now (overload: job queue, memory budget,
    /// connection cap; or memory short during the job). Always 503 with `Retry-After`.
    ProcessingLimit,
    /// 9523: internal error.
    Internal,
    /// 9525: a transformer was consumed twice (client side only).
    TransformerConsumed,
    /// 9529: the image timed out while processing.
    Timeout,
    /// 9430: no or wrong credentials (a hosted route's bearer token, a delivery's signature).
    Unauthorized,
    /// 9431: no such stored image, upload link or variant; or hosted images are not enabled.
    NotFound,
    /// 9433: the id is taken, or a direct-upload link was already used.
    Conflict,
    /// 9434: a direct-upload link expired.
    Expired,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidArguments,
        ErrorCode::TooLarge,
        ErrorCode::NotAnImage,
        ErrorCode::TooManyPixels,
        ErrorCode::UnsupportedFormat,
        ErrorCode::ProcessingLimit,
        ErrorCode::Internal,
        ErrorCode::TransformerConsumed,
        ErrorCode::Timeout,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Expired,
    ];

    /// The numeric code sent in `cf-images-binding: err=<code>`.
    pub const fn as_u16(self) -> u16 {
        match self {
            ErrorCode::InvalidArguments => 9401,
            ErrorCode::TooLarge => 9402,
            ErrorCode::NotAnImage => 9412,
            ErrorCode::TooManyPixels => 9413,
            ErrorCode::UnsupportedFormat => 9520,
            ErrorCode::ProcessingLimit => 9522,
            ErrorCode::Internal => 9523,
            ErrorCode::TransformerConsumed => 9525,
            ErrorCode::Timeout => 9529,
            ErrorCode::Unauthorized => 9430,
            ErrorCode::NotFound => 9431,
            ErrorCode::Conflict => 9433,
            ErrorCode::Expired => 9434,
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u16(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// The HTTP status the backend answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArguments => 400,
            ErrorCode::TooLarge => 413,
            ErrorCode::NotAnImage => 415,
            ErrorCode::TooManyPixels => 413,
            ErrorCode::UnsupportedFormat => 415,
            ErrorCode::ProcessingLimit => 503,
            ErrorCode::Internal => 500,
            ErrorCode::TransformerConsumed => 400,
            ErrorCode::Timeout => 504,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Expired => 410,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// An error with a stable code and a message for the caller. The message text is not a stable
/// interface; the code is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
    /// For a refusal that is worth retrying (an overload): when, in whole seconds.
    retry_after: Option<u32>,
}

impl Error {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// When a retry of this overload (9522) may succeed, in seconds (at least 1): the server
    /// answers it with `Retry-After`. Ignored for every other code: only an overload is retried.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Seconds after which a retry may succeed: for an overload (every 9522, 1 s unless the
    /// refusal said when); `None` for every other error, which will fail the same way again.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self.code {
            ErrorCode::ProcessingLimit => Some(self.retry_after.unwrap_or(1)),
            _ => None,
        }
    }

    /// 9401 with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidArguments, message)
    }

    /// 9412 with a message: the input is not an image.
    pub fn not_an_image(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::NotAnImage, message)
    }

    /// 9412 for input that is cut short or damaged: `<what> image is corrupt or truncated: <detail>`
    /// (`what` names the format, e.g. `GIF`).
    pub fn corrupt(what: &str, detail: impl fmt::Display) -> Self {
        Error::not_an_image(format!("{what} image is corrupt or truncated: {detail}"))
    }

    /// 9523 with a message: an internal failure, not the caller's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    /// 9523 for an encoder that failed: `<what> encoding failed: <detail>`.
    pub fn encode_failed(what: &str, detail: impl fmt::Display) -> Self {
        Error::internal(format!("{what} encoding failed: {detail}"))
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message (not stable).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response body text: `ERROR <code>: <message>`.
    pub fn body_text(&self) -> String {
        format!("ERROR {}: {}", self.code.as_u16(), self.message)
    }

    /// The value of the `cf-images-binding` header: `err=<code>`.
    pub fn header_value(&self) -> String {
        format!("err={}", self.code.as_u16())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body_text())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
            assert!((400..600).contains(&code.http_status()));
        }
        let mut numbers: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.as_u16()).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn only_an_overload_invites_a_retry() {
        for code in ErrorCode::ALL {
            let error = Error::new(code, "x").retry_after(7);
            let expected = (code == ErrorCode::ProcessingLimit).then_some(7);
            assert_eq!(error.retry_after_seconds(), expected, "{code}");
            assert_eq!(
                code == ErrorCode::ProcessingLimit,
                code.http_status() == 503
            );
        }
        assert_eq!(
            Error::new(ErrorCode::ProcessingLimit, "busy").retry_after_seconds(),
            Some(1)
        );
    }

    #[test]
    fn body_and_header_match_cloudflare_shape() {
        let e = Error::new(ErrorCode::NotAnImage, "Input is not an image");
        assert_eq!(e.body_text(), "ERROR 9412: Input is not an image");
        assert_eq!(e.header_value(), "err=9412");
    }

    #[test]
    fn constructors_carry_their_codes() {
        let corrupt = Error::corrupt("GIF", "unexpected end of file");
        assert_eq!(corrupt.code(), ErrorCode::NotAnImage);
        assert_eq!(
            corrupt.message(),
            "GIF image is corrupt or truncated: unexpected end of file"
        );
        let encode = Error::encode_failed("PNG", "out of space");
        assert_eq!(encode.code(), ErrorCode::Internal);
        assert_eq!(encode.message(), "PNG encoding failed: out of space");
        assert_eq!(Error::internal("x").code(), ErrorCode::Internal);
        assert_eq!(Error::not_an_image("x").code(), ErrorCode::NotAnImage);
    }
}
