//! Receiving the multipart request: parts in the order workerd's client sends them, spooled into
//! memory, byte-counted against `max_input_bytes`.
//!
//! `/transform`: `image` | `text_input`, then `draw_image` / `draw_text`*, then `transforms`, then
//! `output_format`, then optional `output_quality`, `background`, `anim` in that order.
//! `/info`: one `image` part. A part may or may not carry a filename. Any other name, a repeated
//! or out-of-order part, or malformed multipart is 9401; more content than allowed is 9402.
//!
//! The whole body (part content plus framing) is capped at `max_input_bytes` + [`FRAMING_ALLOWANCE`]
//! and each part's headers at [`MAX_PART_HEADER_BYTES`]: multer buffers a part's headers until
//! their blank line, so without the cap one endless header line would be held in memory.
//! Every chunk is also taken from the memory budget's share for uploads as it arrives
//! (`budget.rs`); a chunk that does not fit is 9522 (503, `Retry-After`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::HeaderMap;
use imgbind_engine::{Job, Source};
use imgbind_wire::protocol::{
    PART_ANIM, PART_BACKGROUND, PART_DRAW_IMAGE, PART_DRAW_TEXT, PART_IMAGE, PART_OUTPUT_FORMAT,
    PART_OUTPUT_QUALITY, PART_TEXT_INPUT, PART_TRANSFORMS,
};
use imgbind_wire::{parse_steps, Error, ErrorCode, OutputFields, OutputOptions};

use crate::budget::Reservation;

/// Bytes a request body may hold beyond `max_input_bytes` for boundaries and part headers.
pub(crate) const FRAMING_ALLOWANCE: u64 = 1024 * 1024;

/// Bytes of header names and values one part may carry (workerd sends one ~80-byte line).
pub(crate) const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// The parts of a `/transform` request, as received (not yet validated).
#[derive(Debug, Default)]
pub(crate) struct TransformParts {
    /// Image 0 (`image` or `text_input`), then each draw part in order.
    pub(crate) sources: Vec<Source>,
    /// The `transforms` JSON.
    pub(crate) transforms: Option<String>,
    /// `output_format`, `output_quality`, `background`, `anim`.
    pub(crate) output: OutputFields,
}

impl TransformParts {
    /// Validates the op list against the number of images, and the output options (9401).
    pub(crate) fn into_job(self) -> Result<Job, Error> {
        let transforms = self
            .transforms
            .as_deref()
            .ok_or_else(|| Error::invalid("the request has no \"transforms\" part"))?;
        let steps = parse_steps(transforms, self.sources.len())?;
        let output = OutputOptions::from_fields(&self.output)?;
        Ok(Job {
            sources: self.sources,
            steps,
            output,
        })
    }
}

/// Parses a whole `/transform` body held in memory (given as the chunks it arrived in) into a
/// validated job: the same receive and validation path the server runs, without a socket. Used by
/// the fuzz targets and tests.
pub fn parse_transform_request(
    content_type: &str,
    chunks: Vec<Bytes>,
    max_input_bytes: u64,
) -> Result<Job, Error> {
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>));
    let received = transform_parts_from(content_type, stream, max_input_bytes, None)
        .now_or_never()
        .expect("an in-memory body never waits");
    received?.into_job()
}

/// Where a part name may appear: parts must come in increasing rank; only draws may repeat.
fn rank(name: &str) -> Option<u8> {
    Some(match name {
        PART_IMAGE | PART_TEXT_INPUT => 0,
        PART_DRAW_IMAGE | PART_DRAW_TEXT => 1,
        PART_TRANSFORMS => 2,
        PART_OUTPUT_FORMAT => 3,
        PART_OUTPUT_QUALITY => 4,
        PART_BACKGROUND => 5,
        PART_ANIM => 6,
        _ => return None,
    })
}

/// Receives a `/transform` request body, holding its bytes in `upload`.
pub(crate) async fn transform_parts(
    headers: &HeaderMap,
    body: &mut Incoming,
    max_input_bytes: u64,
    upload: &Reservation,
) -> Result<TransformParts, Error> {
    let stream = BodyDataStream::new(body);
    transform_parts_from(
        content_type(headers),
        stream,
        max_input_bytes,
        Some(upload.clone()),
    )
    .await
}

async fn transform_parts_from<'body, S, E>(
    content_type: &str,
    body: S,
    max_input_bytes: u64,
    upload: Option<Reservation>,
) -> Result<TransformParts, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'body,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'body,
{
    let mut reader = PartReader::new(content_type, body, max_input_bytes, upload)?;
    let mut parts = TransformParts::default();
    let mut last_rank = None;
    while let Some(mut field) = reader.next_part().await? {
        let name = field.name().unwrap_or_default().to_owned();
        let Some(rank) = rank(&name) else {
            return Err(Error::invalid(format!("unknown part {name:?}")));
        };
        match last_rank {
            None if rank != 0 => {
                return Err(Error::invalid(format!(
                    "the first part must be {PART_IMAGE:?} or {PART_TEXT_INPUT:?}, not {name:?}"
                )))
            }
            Some(last) if rank < last || (rank == last && rank != 1) => {
                return Err(Error::invalid(format!(
                    "part {name:?} is repeated or out of order"
                )))
            }
            _ => {}
        }
        last_rank = Some(rank);
        let content = reader.read_part(&mut field, &name).await?;
        match name.as_str() {
            PART_IMAGE | PART_DRAW_IMAGE => parts.sources.push(Source::Image(content)),
            PART_TEXT_INPUT | PART_DRAW_TEXT => {
                parts.sources.push(Source::Text(utf8(&name, content)?));
            }
            PART_TRANSFORMS => parts.transforms = Some(utf8(&name, content)?),
            _ => match parts.output.field_mut(&name) {
                Some(field) => *field = Some(utf8(&name, content)?),
                None => unreachable!("every ranked name is handled"),
            },
        }
    }
    if parts.sources.is_empty() {
        return Err(Error::invalid(format!(
            "the request has no {PART_IMAGE:?} or {PART_TEXT_INPUT:?} part"
        )));
    }
    Ok(parts)
}

/// Receives an `/info` request body: its one `image` part, its bytes held in `upload`.
pub(crate) async fn info_image(
    headers: &HeaderMap,
    body: &mut Incoming,
    max_input_bytes: u64,
    upload: &Reservation,
) -> Result<Bytes, Error> {
    let stream = BodyDataStream::new(body);
    let mut reader = PartReader::new(
        content_type(headers),
        stream,
        max_input_bytes,
        Some(upload.clone()),
    )?;
    let mut image = None;
    while let Some(mut field) = reader.next_part().await? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != PART_IMAGE || image.is_some() {
            return Err(Error::invalid(format!(
                "/info takes exactly one {PART_IMAGE:?} part; got {name:?}"
            )));
        }
        image = Some(reader.read_part(&mut field, &name).await?);
    }
    image.ok_or_else(|| Error::invalid(format!("the request has no {PART_IMAGE:?} part")))
}

/// Receives a whole raw body (a hosted upload or a JSON options object), at most `cap` bytes
/// (9402 past it), held in `upload`.
pub(crate) async fn raw_body(
    _headers: &HeaderMap,
    body: &mut Incoming,
    cap: u64,
    upload: &Reservation,
) -> Result<Bytes, Error> {
    let mut capped = CappedBody {
        inner: BodyDataStream::new(body),
        received: 0,
        cap,
        upload: Some(upload.clone()),
    };
    let mut content = BytesMut::new();
    while let Some(chunk) = capped.next().await {
        match chunk {
            Ok(chunk) => content.extend_from_slice(&chunk),
            Err(cause) => {
                return Err(body_error(cause, cap, 0));
            }
        }
    }
    Ok(content.freeze())
}

/// Receives a `multipart/form-data` body and keeps the part named `name` (its file name and
/// bytes, at most `cap` bytes); other parts are read and dropped. 9401 if there is no such part.
pub(crate) async fn form_file(
    headers: &HeaderMap,
    body: &mut Incoming,
    cap: u64,
    upload: &Reservation,
    name: &str,
) -> Result<(Option<String>, Bytes), Error> {
    let stream = BodyDataStream::new(body);
    let mut reader = PartReader::new(content_type(headers), stream, cap, Some(upload.clone()))?;
    let mut file = None;
    while let Some(mut field) = reader.next_part().await? {
        let part = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content = reader.read_part(&mut field, &part).await?;
        if part == name && file.is_none() && (filename.is_some() || !content.is_empty()) {
            file = Some((filename, content));
        }
    }
    file.ok_or_else(|| Error::invalid(format!("the form has no {name:?} file part")))
}

/// A streaming multipart parser over the request body that counts part content against a limit.
struct PartReader<'body> {
    multipart: multer::Multipart<'body>,
    received: u64,
    max_input_bytes: u64,
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

impl<'body> PartReader<'body> {
    fn new<S, E>(
        content_type: &str,
        body: S,
        max_input_bytes: u64,
        upload: Option<Reservation>,
    ) -> Result<Self, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'body,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'body,
    {
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            Error::invalid(format!(
                "content-type must be multipart/form-data with a boundary: {e}"
            ))
        })?;
        Ok(PartReader {
            multipart: multer::Multipart::new(
                CappedBody {
                    inner: body,
                    received: 0,
                    cap: max_input_bytes.saturating_add(FRAMING_ALLOWANCE),
                    upload,
                },
                boundary,
            ),
            received: 0,
            max_input_bytes,
        })
    }

    async fn next_part(&mut self) -> Result<Option<multer::Field<'body>>, Error> {
        let field = self
            .multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, self.max_input_bytes))?;
        if let Some(field) = &field {
            let header_bytes: usize = field
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum();
            if header_bytes > MAX_PART_HEADER_BYTES {
                return Err(Error::invalid(format!(
                    "a part's headers are {header_bytes} bytes; at most {MAX_PART_HEADER_BYTES} are allowed"
                )));
            }
        }
        Ok(field)
    }

    /// Reads one part's content, failing with 9402 as soon as the running total passes the limit.
    async fn read_part(
        &mut self,
        field: &mut multer::Field<'body>,
        name: &str,
    ) -> Result<Bytes, Error> {
        let mut content = BytesMut::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, self.max_input_bytes))?
        {
            self.received += chunk.len() as u64;
            if self.received > self.max_input_bytes {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the request is larger than {} bytes (at part {name:?})",
                        self.max_input_bytes
                    ),
                ));
            }
            content.extend_from_slice(&chunk);
        }
        Ok(content.freeze())
    }
}

fn utf8(name: &str, content: Bytes) -> Result<String, Error> {
    String::from_utf8(content.to_vec())
        .map_err(|_| Error::invalid(format!("part {name:?} is not UTF-8 text")))
}

/// The request body, failing once more than `cap` bytes have arrived, or once a chunk does not fit
/// the memory budget's share for uploads. multer holds a part's headers until their end, so this
/// is what bounds memory for a body that is all header.
struct CappedBody<S> {
    inner: S,
    received: u64,
    cap: u64,
    /// Where the body's bytes are taken from the memory budget (none outside the server).
    upload: Option<Reservation>,
}

/// Why [`CappedBody`] stopped a body.
#[derive(Debug)]
enum BodyRefused {
    /// More than its cap arrived.
    TooLarge,
    /// A chunk did not fit the memory budget's share for uploads.
    BudgetFull,
}

impl std::fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyRefused::TooLarge => "request body too large",
            BodyRefused::BudgetFull => "the memory budget for uploads is full",
        })
    }
}

impl std::error::Error for BodyRefused {}

impl<S, E> Stream for CappedBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.received > self.cap {
            return Poll::Ready(Some(Err(Box::new(BodyRefused::TooLarge))));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                if self.received > self.cap {
                    Poll::Ready(Some(Err(Box::new(BodyRefused::TooLarge))))
                } else if self
                    .upload
                    .as_ref()
                    .is_some_and(|upload| !upload.try_grow(chunk.len() as u64))
                {
                    Poll::Ready(Some(Err(Box::new(BodyRefused::BudgetFull))))
                } else {
                    Poll::Ready(Some(Ok(chunk)))
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Body read failures (client gone, bad chunking) are 9402 "connection interrupted", as is a body
/// past its cap; everything else multer reports is a malformed request, 9401.
fn multipart_error(error: multer::Error, max_input_bytes: u64) -> Error {
    match error {
        multer::Error::StreamReadFailed(cause) => {
            body_error(cause, max_input_bytes, FRAMING_ALLOWANCE)
        }
        other => Error::invalid(format!("malformed multipart body: {other}")),
    }
}

/// Why a body could not be read: past its cap (9402), the uploads' budget full (9522), or the
/// connection failed (9402).
fn body_error(
    cause: Box<dyn std::error::Error + Send + Sync>,
    max_input_bytes: u64,
    framing: u64,
) -> Error {
    match cause.downcast_ref::<BodyRefused>() {
            Some(BodyRefused::TooLarge) => Error::new(
                ErrorCode::TooLarge,
                format!(
                    "the request body is larger than {max_input_bytes} bytes of input plus {framing} of framing"
                ),
            ),
            Some(BodyRefused::BudgetFull) => Error::new(
                ErrorCode::ProcessingLimit,
                "the server holds too many uploads at once; try again later",
            ),
            None => Error::new(
                ErrorCode::TooLarge,
                format!("the request body could not be read: {cause}"),
            ),
    }
}
