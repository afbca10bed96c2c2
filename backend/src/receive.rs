//! Receiving the multipart request: parts in the order workerd's client sends them, spooled into
//! memory, byte-counted against `max_input_bytes`.
//!
//! `/transform`: `image` | `text_input`, then `draw_image` / `draw_text`*, then `transforms`, then
//! `output_format`, then optional `output_quality`, `background`, `anim` in that order.
//! `/info`: one `image` part. A part may or may not carry a filename. Any other name, a repeated
//! or out-of-order part, or malformed multipart is 9401; more content than allowed is 9402.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::HeaderMap;
use imgbind_engine::Source;
use imgbind_wire::protocol::{
    PART_ANIM, PART_BACKGROUND, PART_DRAW_IMAGE, PART_DRAW_TEXT, PART_IMAGE, PART_OUTPUT_FORMAT,
    PART_OUTPUT_QUALITY, PART_TEXT_INPUT, PART_TRANSFORMS,
};
use imgbind_wire::{Error, ErrorCode};

/// The parts of a `/transform` request, as received (not yet validated).
#[derive(Debug, Default)]
pub(crate) struct TransformParts {
    /// Image 0 (`image` or `text_input`), then each draw part in order.
    pub(crate) sources: Vec<Source>,
    /// The `transforms` JSON.
    pub(crate) transforms: Option<String>,
    /// `output_format`.
    pub(crate) output_format: Option<String>,
    /// `output_quality`.
    pub(crate) output_quality: Option<String>,
    /// `background`.
    pub(crate) background: Option<String>,
    /// `anim`.
    pub(crate) anim: Option<String>,
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

/// Receives a `/transform` request body.
pub(crate) async fn transform_parts(
    headers: &HeaderMap,
    body: &mut Incoming,
    max_input_bytes: u64,
) -> Result<TransformParts, Error> {
    let mut reader = PartReader::new(headers, body, max_input_bytes)?;
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
            PART_OUTPUT_FORMAT => parts.output_format = Some(utf8(&name, content)?),
            PART_OUTPUT_QUALITY => parts.output_quality = Some(utf8(&name, content)?),
            PART_BACKGROUND => parts.background = Some(utf8(&name, content)?),
            PART_ANIM => parts.anim = Some(utf8(&name, content)?),
            _ => unreachable!("every ranked name is handled"),
        }
    }
    if parts.sources.is_empty() {
        return Err(Error::invalid(format!(
            "the request has no {PART_IMAGE:?} or {PART_TEXT_INPUT:?} part"
        )));
    }
    Ok(parts)
}

/// Receives an `/info` request body: its one `image` part.
pub(crate) async fn info_image(
    headers: &HeaderMap,
    body: &mut Incoming,
    max_input_bytes: u64,
) -> Result<Bytes, Error> {
    let mut reader = PartReader::new(headers, body, max_input_bytes)?;
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

/// A streaming multipart parser over the request body that counts part content against a limit.
struct PartReader<'body> {
    multipart: multer::Multipart<'body>,
    received: u64,
    max_input_bytes: u64,
}

impl<'body> PartReader<'body> {
    fn new(
        headers: &HeaderMap,
        body: &'body mut Incoming,
        max_input_bytes: u64,
    ) -> Result<Self, Error> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            Error::invalid(format!(
                "content-type must be multipart/form-data with a boundary: {e}"
            ))
        })?;
        Ok(PartReader {
            multipart: multer::Multipart::new(BodyDataStream::new(body), boundary),
            received: 0,
            max_input_bytes,
        })
    }

    async fn next_part(&mut self) -> Result<Option<multer::Field<'body>>, Error> {
        self.multipart.next_field().await.map_err(multipart_error)
    }

    /// Reads one part's content, failing with 9402 as soon as the running total passes the limit.
    async fn read_part(
        &mut self,
        field: &mut multer::Field<'body>,
        name: &str,
    ) -> Result<Bytes, Error> {
        let mut content = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
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

/// Body read failures (client gone, bad chunking) are 9402 "connection interrupted"; everything
/// else multer reports is a malformed request, 9401.
fn multipart_error(error: multer::Error) -> Error {
    match error {
        multer::Error::StreamReadFailed(cause) => Error::new(
            ErrorCode::TooLarge,
            format!("the request body could not be read: {cause}"),
        ),
        other => Error::invalid(format!("malformed multipart body: {other}")),
    }
}
