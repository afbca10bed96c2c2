//! The request body: multipart framing exactly as workerd's `StreamableFormData` writes it, and the
//! `transforms` JSON.
//!
//! Framing (no per-part content-type, no preamble):
//!
//! ```text
//! --B\r\n
//! content-disposition: form-data; name="image"; filename="image"\r\n\r\n
//! <bytes>\r\n
//! --B\r\n
//! content-disposition: form-data; name="output_format"\r\n\r\n
//! image/png\r\n
//! --B--\r\n
//! ```

use imgbind_wire::protocol::{
    PART_DRAW_IMAGE, PART_DRAW_TEXT, PART_IMAGE, PART_TEXT_INPUT, PART_TRANSFORMS,
};
use imgbind_wire::OutputFields;
use serde::Serialize;

use crate::builder::{Op, Plan, Source};

/// What workerd's boundary starts with; 24 random decimal digits follow.
pub const BOUNDARY_PREFIX: &str = "--------------------------";

/// Number of random digits after [`BOUNDARY_PREFIX`].
pub const BOUNDARY_DIGITS: usize = 24;

const CRLF: &str = "\r\n";

/// A boundary like workerd's: [`BOUNDARY_PREFIX`] then 24 digits drawn from `random_digit`
/// (each taken modulo 10; workerd uses `Math.floor(Math.random() * 10)`).
pub fn boundary(mut random_digit: impl FnMut() -> u8) -> String {
    let mut b = String::with_capacity(BOUNDARY_PREFIX.len() + BOUNDARY_DIGITS);
    b.push_str(BOUNDARY_PREFIX);
    for _ in 0..BOUNDARY_DIGITS {
        b.push(char::from(b'0' + random_digit() % 10));
    }
    b
}

/// The request's `content-type` for this boundary.
pub fn content_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// Whether a part is a file (gets `; filename="<name>"`) or a plain field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// A file part: `image`, `draw_image`.
    File,
    /// A string field: everything else.
    Field,
}

/// A part's content: text known now, or a body streamed later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartBody<B> {
    /// A string field's value.
    Text(String),
    /// An input, streamed when the request body is read.
    Stream(B),
}

/// One form part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<B> {
    /// The field name (`image`, `transforms`, …).
    pub name: &'static str,
    /// File or field.
    pub kind: PartKind,
    /// The content.
    pub body: PartBody<B>,
}

impl<B> Part<B> {
    /// A string field.
    pub fn text(name: &'static str, value: impl Into<String>) -> Self {
        Part {
            name,
            kind: PartKind::Field,
            body: PartBody::Text(value.into()),
        }
    }

    /// A file part whose bytes are streamed.
    pub fn file(name: &'static str, body: B) -> Self {
        Part {
            name,
            kind: PartKind::File,
            body: PartBody::Stream(body),
        }
    }
}

/// A piece of the request body in order: framing (and string fields) as bytes, or an input to
/// stream through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPiece<B> {
    /// Bytes to send as they are.
    Bytes(Vec<u8>),
    /// An input body to pass through.
    Stream(B),
}

/// The whole body as segments, adjacent bytes merged. Concatenating them gives exactly what
/// workerd's `StreamableFormData.stream()` produces for the same parts and boundary.
pub fn frame<B>(boundary: &str, parts: Vec<Part<B>>) -> Vec<BodyPiece<B>> {
    let mut out = Vec::new();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(format!("--{boundary}{CRLF}").as_bytes());
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            bytes.extend_from_slice(format!("--{boundary}{CRLF}").as_bytes());
        }
        let filename = match part.kind {
            PartKind::File => format!("; filename=\"{}\"", part.name),
            PartKind::Field => String::new(),
        };
        bytes.extend_from_slice(
            format!(
                "content-disposition: form-data; name=\"{}\"{filename}{CRLF}{CRLF}",
                part.name
            )
            .as_bytes(),
        );
        match part.body {
            PartBody::Text(text) => bytes.extend_from_slice(text.as_bytes()),
            PartBody::Stream(body) => {
                out.push(BodyPiece::Bytes(std::mem::take(&mut bytes)));
                out.push(BodyPiece::Stream(body));
            }
        }
        bytes.extend_from_slice(CRLF.as_bytes());
    }
    bytes.extend_from_slice(format!("--{boundary}--{CRLF}").as_bytes());
    out.push(BodyPiece::Bytes(bytes));
    out
}

/// The `output()` parts, in Cloudflare's order (`output_format`, then `output_quality`,
/// `background`, `anim` where set).
pub fn output_parts<B>(fields: OutputFields) -> Vec<Part<B>> {
    fields
        .into_named()
        .map(|(name, value)| Part::text(name, value))
        .collect()
}

impl<S, O> Plan<S, O> {
    /// The `/transform` parts in order: canvas, draw sources, `transforms`, output fields.
    pub fn into_parts(self, transforms_json: String, output: OutputFields) -> Vec<Part<S>> {
        let mut parts = Vec::with_capacity(self.draws.len() + 6);
        parts.push(source_part(self.canvas, PART_IMAGE, PART_TEXT_INPUT));
        for draw in self.draws {
            parts.push(source_part(draw, PART_DRAW_IMAGE, PART_DRAW_TEXT));
        }
        parts.push(Part::text(PART_TRANSFORMS, transforms_json));
        parts.extend(output_parts(output));
        parts
    }
}

fn source_part<S>(source: Source<S>, image: &'static str, text: &'static str) -> Part<S> {
    match source {
        Source::Image(body) => Part::file(image, body),
        Source::Text(json) => Part::text(text, json),
    }
}

/// The `transforms` JSON for ops whose options serialise to JSON objects (Rust callers).
/// Index keys come first, then the options' own keys in their order (a struct's declaration
/// order), like Cloudflare's `{imageIndex, ...t}`. Options that are not an object or null/unit
/// are an error.
pub fn ops_json<O: Serialize>(ops: &[Op<O>]) -> serde_json::Result<String> {
    serde_json::to_string(&ops.iter().map(OpJson::from).collect::<Vec<_>>())
}

/// One op as JSON: the options are flattened after the indices, in their own order.
#[derive(Serialize)]
#[serde(untagged)]
enum OpJson<'a, O> {
    Transform {
        #[serde(rename = "imageIndex")]
        image_index: usize,
        #[serde(flatten)]
        options: &'a O,
    },
    Draw {
        #[serde(rename = "drawImageIndex")]
        draw_image_index: usize,
        #[serde(rename = "targetImageIndex")]
        target_image_index: usize,
        #[serde(flatten)]
        options: &'a O,
    },
}

impl<'a, O> From<&'a Op<O>> for OpJson<'a, O> {
    fn from(op: &'a Op<O>) -> Self {
        match op {
            Op::Transform {
                image_index,
                options,
            } => OpJson::Transform {
                image_index: *image_index,
                options,
            },
            Op::Draw {
                draw_image_index,
                target_image_index,
                options,
            } => OpJson::Draw {
                draw_image_index: *draw_image_index,
                target_image_index: *target_image_index,
                options,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(segments: Vec<BodyPiece<Vec<u8>>>) -> Vec<u8> {
        segments
            .into_iter()
            .flat_map(|s| match s {
                BodyPiece::Bytes(b) | BodyPiece::Stream(b) => b,
            })
            .collect()
    }

    const B: &str = "--------------------------012345678901234567890123";

    #[test]
    fn boundary_looks_like_workerds() {
        let mut n = 0u8;
        let b = boundary(|| {
            n += 7;
            n
        });
        assert_eq!(b.len(), 50);
        assert!(b.starts_with(BOUNDARY_PREFIX));
        assert!(b[BOUNDARY_PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_digit()));
        assert_eq!(
            content_type(B),
            "multipart/form-data; boundary=--------------------------012345678901234567890123"
        );
    }

    #[test]
    fn framing_matches_streamable_form_data_byte_for_byte() {
        // What workerd's StreamableFormData.stream() writes for
        // append('image', stream, {type:'file'}); append('draw_image', stream2, {type:'file'});
        // append('transforms', '[]'); append('output_format', 'image/png'); append('anim', 'false').
        let mut parts = vec![
            Part::file("image", b"\x89PNG\r\n--x".to_vec()),
            Part::file("draw_image", b"".to_vec()),
            Part::text("transforms", "[]"),
        ];
        parts.extend(output_parts(OutputFields {
            format: Some("image/png".into()),
            anim: Some("false".into()),
            ..OutputFields::default()
        }));
        let segments = frame(B, parts);
        // Framing is merged around the two streamed inputs: bytes, stream, bytes, stream, bytes.
        assert_eq!(segments.len(), 5);
        let expected = concat!(
            "----------------------------012345678901234567890123\r\n",
            "content-disposition: form-data; name=\"image\"; filename=\"image\"\r\n",
            "\r\n",
            "\u{89}PNG\r\n--x\r\n",
            "----------------------------012345678901234567890123\r\n",
            "content-disposition: form-data; name=\"draw_image\"; filename=\"draw_image\"\r\n",
            "\r\n",
            "\r\n",
            "----------------------------012345678901234567890123\r\n",
            "content-disposition: form-data; name=\"transforms\"\r\n",
            "\r\n",
            "[]\r\n",
            "----------------------------012345678901234567890123\r\n",
            "content-disposition: form-data; name=\"output_format\"\r\n",
            "\r\n",
            "image/png\r\n",
            "----------------------------012345678901234567890123\r\n",
            "content-disposition: form-data; name=\"anim\"\r\n",
            "\r\n",
            "false\r\n",
            "----------------------------012345678901234567890123--\r\n",
        );
        // The test body has a raw 0x89 byte, not the UTF-8 encoding of U+0089.
        let expected: Vec<u8> = expected
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        assert_eq!(concat(segments), expected);
    }

    #[test]
    fn no_parts_is_boundary_then_footer() {
        // StreamableFormData with no entries: the opening boundary, then the footer.
        let body = concat(frame::<Vec<u8>>(B, vec![]));
        assert_eq!(
            body,
            format!("--{B}\r\n--{B}--\r\n").into_bytes(),
            "no entries"
        );
    }

    #[test]
    fn op_options_keep_their_order_and_must_be_objects() {
        #[derive(Serialize)]
        struct Later {
            zebra: u8,
            apple: u8,
        }
        let ops = [Op::Transform {
            image_index: 2,
            options: Later { zebra: 1, apple: 2 },
        }];
        assert_eq!(
            ops_json(&ops).unwrap(),
            r#"[{"imageIndex":2,"zebra":1,"apple":2}]"#
        );
        let unit = [Op::Draw {
            draw_image_index: 1,
            target_image_index: 0,
            options: (),
        }];
        assert_eq!(
            ops_json(&unit).unwrap(),
            r#"[{"drawImageIndex":1,"targetImageIndex":0}]"#
        );
        let number = [Op::Transform {
            image_index: 0,
            options: 5,
        }];
        assert!(ops_json(&number).is_err());
    }

    #[test]
    fn output_parts_in_cloudflare_order() {
        let parts = output_parts::<()>(OutputFields {
            format: Some("image/webp".into()),
            quality: Some("80".into()),
            background: Some("#fff".into()),
            anim: Some("true".into()),
        });
        let names: Vec<_> = parts.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["output_format", "output_quality", "background", "anim"]
        );
    }
}
