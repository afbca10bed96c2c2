//! Truncation is an error: the result body is passed through a length check, so a body that ends
//! before its `Content-Length`, runs past it, or fails upstream ends the caller's stream with an
//! error, never with a clean end of stream.

use std::fmt;

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::stream::{Stream, StreamExt};

/// How a delivered body differed from its `Content-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// The body ended after `got` of `expected` bytes.
    Short {
        /// `Content-Length`.
        expected: u64,
        /// Bytes delivered.
        got: u64,
    },
    /// The body went past `expected` bytes (`got` so far).
    Long {
        /// `Content-Length`.
        expected: u64,
        /// Bytes delivered so far.
        got: u64,
    },
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Short { expected, got } => write!(
                f,
                "image body truncated: expected {expected} bytes (content-length), got {got}"
            ),
            DeliveryError::Long { expected, got } => write!(
                f,
                "image body longer than its content-length: expected {expected} bytes, got {got}"
            ),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Counts body bytes against an expected length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthCheck {
    expected: Option<u64>,
    seen: u64,
}

impl LengthCheck {
    /// A check against `expected` bytes; `None` (no usable `Content-Length`) checks nothing.
    pub fn new(expected: Option<u64>) -> Self {
        LengthCheck { expected, seen: 0 }
    }

    /// The expected length from response headers: `content-length`, unless a `content-encoding`
    /// other than `identity` means the delivered (decoded) bytes are not the ones counted.
    pub fn from_headers(content_length: Option<&str>, content_encoding: Option<&str>) -> Self {
        let encoded = content_encoding
            .map(str::trim)
            .is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        let expected = if encoded {
            None
        } else {
            content_length.and_then(|v| v.trim().parse().ok())
        };
        LengthCheck::new(expected)
    }

    /// The length checked against, if any.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// Bytes delivered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Records a chunk; fails as soon as the body runs past the expected length.
    pub fn chunk(&mut self, len: usize) -> Result<(), DeliveryError> {
        self.seen = self.seen.saturating_add(len as u64);
        match self.expected {
            Some(expected) if self.seen > expected => Err(DeliveryError::Long {
                expected,
                got: self.seen,
            }),
            _ => Ok(()),
        }
    }

    /// The body ended cleanly upstream; fails if that was early.
    pub fn end(&self) -> Result<(), DeliveryError> {
        match self.expected {
            Some(expected) if self.seen != expected => Err(DeliveryError::Short {
                expected,
                got: self.seen,
            }),
            _ => Ok(()),
        }
    }
}

/// Wraps a body stream with a [`LengthCheck`]. Upstream errors pass through (once; the stream
/// then ends); a length mismatch becomes `on_mismatch(…)` as the last item instead of a clean end.
pub fn checked<S, C, E, L, M>(
    body: S,
    check: LengthCheck,
    chunk_len: L,
    on_mismatch: M,
) -> Checked<S, L, M>
where
    S: Stream<Item = Result<C, E>> + Unpin,
    L: Fn(&C) -> usize + Unpin,
    M: Fn(DeliveryError) -> E + Unpin,
{
    Checked {
        body,
        check,
        chunk_len,
        on_mismatch,
        done: false,
    }
}

/// The stream returned by [`checked`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Checked<S, L, M> {
    body: S,
    check: LengthCheck,
    chunk_len: L,
    on_mismatch: M,
    done: bool,
}

impl<S, C, E, L, M> Stream for Checked<S, L, M>
where
    S: Stream<Item = Result<C, E>> + Unpin,
    L: Fn(&C) -> usize + Unpin,
    M: Fn(DeliveryError) -> E + Unpin,
{
    type Item = Result<C, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let item = match ready!(this.body.poll_next_unpin(cx)) {
            Some(Ok(chunk)) => match this.check.chunk((this.chunk_len)(&chunk)) {
                Ok(()) => return Poll::Ready(Some(Ok(chunk))),
                Err(e) => Some(Err((this.on_mismatch)(e))),
            },
            Some(Err(e)) => Some(Err(e)),
            None => this.check.end().err().map(|e| Err((this.on_mismatch)(e))),
        };
        this.done = true;
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;
    use futures_util::stream;

    use super::*;

    fn run(chunks: Vec<Result<Vec<u8>, String>>, check: LengthCheck) -> Vec<Result<usize, String>> {
        let body = stream::iter(chunks);
        let out = checked(body, check, |c: &Vec<u8>| c.len(), |e| e.to_string());
        block_on(out.map(|r| r.map(|c| c.len())).collect())
    }

    #[test]
    fn exact_length_ends_cleanly() {
        let out = run(
            vec![Ok(vec![0; 3]), Ok(vec![0; 2])],
            LengthCheck::new(Some(5)),
        );
        assert_eq!(out, [Ok(3), Ok(2)]);
    }

    #[test]
    fn short_body_ends_with_an_error() {
        let out = run(vec![Ok(vec![0; 3])], LengthCheck::new(Some(5)));
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1],
            Err("image body truncated: expected 5 bytes (content-length), got 3".into())
        );
    }

    #[test]
    fn long_body_fails_at_the_overrun() {
        let out = run(
            vec![Ok(vec![0; 3]), Ok(vec![0; 3]), Ok(vec![0; 3])],
            LengthCheck::new(Some(5)),
        );
        assert_eq!(out.len(), 2);
        assert!(out[1]
            .as_ref()
            .unwrap_err()
            .contains("expected 5 bytes, got 6"));
    }

    #[test]
    fn upstream_error_passes_through_and_stops() {
        let out = run(
            vec![Ok(vec![0; 3]), Err("reset".into()), Ok(vec![0; 2])],
            LengthCheck::new(None),
        );
        assert_eq!(out, [Ok(3), Err("reset".into())]);
    }

    #[test]
    fn no_length_checks_nothing() {
        assert_eq!(run(vec![], LengthCheck::new(None)), []);
        assert_eq!(run(vec![Ok(vec![1])], LengthCheck::new(None)), [Ok(1)]);
        assert_eq!(run(vec![], LengthCheck::new(Some(0))), []);
    }

    #[test]
    fn headers_choose_the_expected_length() {
        assert_eq!(
            LengthCheck::from_headers(Some(" 12 "), None),
            LengthCheck::new(Some(12))
        );
        assert_eq!(
            LengthCheck::from_headers(Some("12"), Some("identity")),
            LengthCheck::new(Some(12))
        );
        assert_eq!(
            LengthCheck::from_headers(Some("12"), Some("gzip")),
            LengthCheck::new(None)
        );
        assert_eq!(
            LengthCheck::from_headers(Some("x"), None),
            LengthCheck::new(None)
        );
    }
}
