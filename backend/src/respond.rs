//! Building responses: the success shapes and the one mapping of [`Error`] to HTTP.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use imgbind_engine::OutputHead;
use imgbind_wire::protocol::{HEADER_ERROR, HEADER_HEIGHT, HEADER_WIDTH};
use imgbind_wire::{Error, InfoResponse, OutputFormat};

use crate::streaming::StreamedBody;

/// A response body: one in-memory block with an exact `Content-Length`, or a result streamed as
/// the encoder produces it (`streaming.rs`).
pub(crate) enum Body {
    Full(Full<Bytes>),
    Streamed(StreamedBody),
    /// A stored image's bytes as the store streams them (hosted images).
    Stored(StoredBody),
}

/// A stored image streamed from its store with its `Content-Length`: a store that ends short or
/// fails ends the body with an error (the connection closes; the client never sees a clean end).
pub(crate) struct StoredBody {
    blob: crate::hosted::store::Blob,
    remaining: u64,
}

impl StoredBody {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        use futures_util::Stream as _;
        match Pin::new(&mut self.blob.stream).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if chunk.len() as u64 <= self.remaining => {
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Ok(_))) => Poll::Ready(Some(Err(Error::internal(
                "the stored image is longer than its record says",
            )))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::internal(format!(
                "reading the stored image failed: {e}"
            ))))),
            Poll::Ready(None) if self.remaining == 0 => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(Error::internal(format!(
                "the stored image ended {} bytes short",
                self.remaining
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// 200 with a stored image's bytes, streamed, with its `Content-Length`.
pub(crate) fn blob(blob: crate::hosted::store::Blob, content_type: &str) -> Response<Body> {
    let size = blob.size;
    let mut response = Response::new(Body::Stored(StoredBody {
        blob,
        remaining: size,
    }));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    response
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            Body::Streamed(streamed) => Pin::new(streamed).poll_frame(cx),
            Body::Stored(stored) => stored.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Streamed(streamed) => streamed.is_end_stream(),
            Body::Stored(stored) => stored.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Streamed(streamed) => streamed.size_hint(),
            Body::Stored(stored) => SizeHint::with_exact(stored.remaining),
        }
    }
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// 200 with the encoded image as one block; raw `rgb`/`rgba` also carry their pixel size in
/// headers.
pub(crate) fn image(head: &OutputHead, bytes: Vec<u8>) -> Response<Body> {
    let mut response = with_length(StatusCode::OK, head.format.content_type(), bytes);
    size_headers(&mut response, head.format, head.width, head.height);
    response
}

/// 200 with an image streamed as it is encoded: `Content-Length` when the length is known up
/// front (raw outputs), otherwise no length (hyper sends it chunked).
pub(crate) fn streamed_image(head: &OutputHead, body: StreamedBody) -> Response<Body> {
    let mut response = Response::new(Body::Streamed(body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(head.format.content_type()),
    );
    if let Some(length) = head.length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    size_headers(&mut response, head.format, head.width, head.height);
    response
}

fn size_headers(response: &mut Response<Body>, format: OutputFormat, width: u32, height: u32) {
    if matches!(format, OutputFormat::Rgb | OutputFormat::Rgba) {
        let headers = response.headers_mut();
        headers.insert(HEADER_WIDTH, HeaderValue::from(width));
        headers.insert(HEADER_HEIGHT, HeaderValue::from(height));
    }
}

/// 200 with the `/info` JSON.
pub(crate) fn info(info: &InfoResponse) -> Response<Body> {
    let json = serde_json::to_vec(info).expect("InfoResponse always serialises");
    with_length(StatusCode::OK, "application/json", json)
}

/// 200 `ok` for `/healthz`.
pub(crate) fn healthy() -> Response<Body> {
    with_length(StatusCode::OK, TEXT_PLAIN, b"ok\n".to_vec())
}

/// `/readyz`: 200 `ready` while serving; 503 `shutting down` once shutdown has begun, so load
/// balancers stop sending new requests while the listeners are still open.
pub(crate) fn readiness(ready: bool) -> Response<Body> {
    if ready {
        with_length(StatusCode::OK, TEXT_PLAIN, b"ready\n".to_vec())
    } else {
        with_length(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT_PLAIN,
            b"shutting down\n".to_vec(),
        )
    }
}

/// 200 with the metrics text for `/metrics`.
pub(crate) fn metrics(text: String) -> Response<Body> {
    with_length(
        StatusCode::OK,
        crate::metrics::CONTENT_TYPE,
        text.into_bytes(),
    )
}

/// The error answer: status `code.http_status()`, `cf-images-binding: err=<code>`, body
/// `ERROR <code>: <message>` — the shape workerd's client turns into `ImagesError(code, …)`.
pub(crate) fn error(error: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = coded(status, error);
    if let Some(seconds) = error.retry_after_seconds() {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A request for a path we do not serve: 404, with the coded body of a 9401 so clients that only
/// read the `cf-images-binding` header still get a code. The one status that is not the code's own.
pub(crate) fn no_route(method: &hyper::Method, path: &str) -> Response<Body> {
    let error = Error::invalid(format!("no route for {method} {path}"));
    coded(StatusCode::NOT_FOUND, &error)
}

/// A known path with the wrong method: 405 with `Allow`, coded like [`no_route`].
pub(crate) fn wrong_method(
    method: &hyper::Method,
    path: &str,
    allow: &'static str,
) -> Response<Body> {
    let error = Error::invalid(format!("{path} takes {allow}, not {method}"));
    let mut response = coded(StatusCode::METHOD_NOT_ALLOWED, &error);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// Marks a response as the last on its connection: used when the request body could not be read
/// to its end, so hyper must not wait for (or reuse) the rest of it.
pub(crate) fn close_connection(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn coded(status: StatusCode, error: &Error) -> Response<Body> {
    let mut response = with_length(status, TEXT_PLAIN, error.body_text().into_bytes());
    let value =
        HeaderValue::from_str(&error.header_value()).expect("err=<digits> is a valid header value");
    response.headers_mut().insert(HEADER_ERROR, value);
    response
}

fn with_length(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let length = body.len();
    let mut response = Response::new(Body::Full(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use imgbind_wire::ErrorCode;

    async fn body_text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_code_maps_to_its_status_header_and_body() {
        for code in ErrorCode::ALL {
            let response = error(&Error::new(code, "why"));
            assert_eq!(response.status().as_u16(), code.http_status());
            assert_eq!(
                response.headers()[HEADER_ERROR],
                format!("err={}", code.as_u16()).as_str()
            );
            assert_eq!(response.headers()[CONTENT_TYPE], TEXT_PLAIN);
            let expected = format!("ERROR {}: why", code.as_u16());
            assert_eq!(
                response.headers()[CONTENT_LENGTH],
                expected.len().to_string().as_str()
            );
            assert_eq!(body_text(response).await, expected);
        }
    }

    fn head(format: OutputFormat, length: u64) -> OutputHead {
        OutputHead {
            format,
            width: 2,
            height: 3,
            length: Some(length),
            incremental: false,
        }
    }

    #[tokio::test]
    async fn raw_outputs_carry_their_size() {
        let response = image(&head(OutputFormat::Rgba, 24), vec![0; 2 * 3 * 4]);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/octet-stream");
        assert_eq!(response.headers()[HEADER_WIDTH], "2");
        assert_eq!(response.headers()[HEADER_HEIGHT], "3");
        assert_eq!(response.headers()[CONTENT_LENGTH], "24");
        let response = image(&head(OutputFormat::Png, 3), vec![1, 2, 3]);
        assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
        assert!(response.headers().get(HEADER_WIDTH).is_none());
    }
}
