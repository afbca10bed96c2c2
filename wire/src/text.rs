//! Text sources: the JSON of a `text_input` / `draw_text` part, as Cloudflare's client writes it
//! (`serializeTextSource` in workerd's `images-api.ts`): `{"text":…, "font":{"url":…}, "size"?:n,
//! "color"?:s}`. `size` and `color` are left out when the Worker did not set them.
//!
//! Parsing is strict like the op list: unknown keys, wrong types, an empty or over-long text, a
//! size out of range and a bad colour are 9401 errors naming the field.

use serde::Deserialize;

use crate::colour::{parse_colour, Rgba};
use crate::Error;

/// Font size used when `size` is not given, in points (12 pt = 16 CSS px, the CSS default).
pub const DEFAULT_TEXT_SIZE: f32 = 12.0;
/// Smallest accepted `size`, in points.
pub const MIN_TEXT_SIZE: f32 = 1.0;
/// Largest accepted `size`, in points (an em of ~1333 px).
pub const MAX_TEXT_SIZE: f32 = 1000.0;
/// Colour used when `color` is not given.
pub const DEFAULT_TEXT_COLOR: Rgba = Rgba::BLACK;

/// One validated text source.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSource {
    /// The text; lines are separated by `\n` (a `\r` before it is dropped).
    pub text: String,
    /// `font.url`: a `data:` URL, a file name in the backend's font directory, or an `http(s)`
    /// URL (which the backend refuses; see docs/TEXT.md).
    pub font_url: String,
    /// Size in points (1 pt = 1/72 in, rendered at 96 px per inch as in CSS).
    pub size: f32,
    /// Fill colour, straight alpha.
    pub color: Rgba,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    text: String,
    font: RawFont,
    size: Option<f64>,
    color: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFont {
    url: String,
}

/// Parses the JSON of a `text_input` / `draw_text` part named `part`, allowing at most
/// `max_chars` characters (Unicode scalar values) of text.
pub fn parse_text_source(json: &str, part: &str, max_chars: usize) -> Result<TextSource, Error> {
    let raw: RawText = serde_json::from_str(json).map_err(|e| {
        Error::invalid(format!(
            "{part}: expected JSON {{\"text\", \"font\": {{\"url\"}}, \"size\"?, \"color\"?}}: {e}"
        ))
    })?;
    let chars = raw.text.chars().count();
    if chars == 0 {
        return Err(Error::invalid(format!("{part}.text must not be empty")));
    }
    if chars > max_chars {
        return Err(Error::invalid(format!(
            "{part}.text has {chars} characters; at most {max_chars} are allowed"
        )));
    }
    if raw.font.url.is_empty() {
        return Err(Error::invalid(format!("{part}.font.url must not be empty")));
    }
    let size = match raw.size {
        None => DEFAULT_TEXT_SIZE,
        Some(size) if (f64::from(MIN_TEXT_SIZE)..=f64::from(MAX_TEXT_SIZE)).contains(&size) => {
            size as f32
        }
        Some(size) => {
            return Err(Error::invalid(format!(
                "{part}.size must be between {MIN_TEXT_SIZE} and {MAX_TEXT_SIZE} points, not {size}"
            )))
        }
    };
    let color = match raw.color {
        None => DEFAULT_TEXT_COLOR,
        Some(color) => parse_colour(&color)
            .map_err(|e| Error::invalid(format!("{part}.color: {}", e.message())))?,
    };
    Ok(TextSource {
        text: raw.text,
        font_url: raw.font.url,
        size,
        color,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn parse(json: &str) -> Result<TextSource, Error> {
        parse_text_source(json, "text_input", 20)
    }

    #[test]
    fn parses_cloudflare_client_json() {
        // Exactly what workerd's test_images_text_source_serialization sends.
        let t = parse(
            r##"{"text":"Hello World","font":{"url":"https://example.com/font.ttf"},"size":48,"color":"#FF0000"}"##,
        )
        .unwrap();
        assert_eq!(t.text, "Hello World");
        assert_eq!(t.font_url, "https://example.com/font.ttf");
        assert_eq!(t.size, 48.0);
        assert_eq!(
            t.color,
            Rgba {
                r: 255,
                g: 0,
                b: 0,
                a: 255
            }
        );
        // size and color omitted: the documented defaults.
        let t = parse(r#"{"text":"Minimal Text","font":{"url":"a.ttf"}}"#).unwrap();
        assert_eq!((t.size, t.color), (DEFAULT_TEXT_SIZE, DEFAULT_TEXT_COLOR));
        let t =
            parse(r#"{"text":"x","font":{"url":"a.ttf"},"color":"rgba(0,0,255,0.5)"}"#).unwrap();
        assert_eq!((t.color.b, t.color.a), (255, 128));
    }

    #[test]
    fn rejects_bad_sources_with_named_fields() {
        for (json, needle) in [
            ("nope", "expected JSON"),
            (r#"{"font":{"url":"a.ttf"}}"#, "missing field `text`"),
            (r#"{"text":"a"}"#, "missing field `font`"),
            (r#"{"text":"a","font":"a.ttf"}"#, "expected JSON"),
            (
                r#"{"text":"a","font":{"url":"a.ttf"},"bold":true}"#,
                "unknown field",
            ),
            (
                r#"{"text":"","font":{"url":"a.ttf"}}"#,
                "text must not be empty",
            ),
            (
                r#"{"text":"a","font":{"url":""}}"#,
                "font.url must not be empty",
            ),
            (
                r#"{"text":"a","font":{"url":"a.ttf"},"size":0}"#,
                "size must be",
            ),
            (
                r#"{"text":"a","font":{"url":"a.ttf"},"size":1001}"#,
                "size must be",
            ),
            (
                r#"{"text":"a","font":{"url":"a.ttf"},"size":"12"}"#,
                "expected JSON",
            ),
            (
                r#"{"text":"a","font":{"url":"a.ttf"},"color":"nope"}"#,
                "color",
            ),
            (
                r#"{"text":"abcdefghijklmnopqrstu","font":{"url":"a.ttf"}}"#,
                "21 characters; at most 20",
            ),
        ] {
            let e = parse(json).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArguments, "{json}");
            assert!(e.message().contains(needle), "{json}: {}", e.message());
            assert!(e.message().starts_with("text_input"), "{}", e.message());
        }
        // The limit counts characters, not bytes.
        assert!(parse(r#"{"text":"ééééééééééééééééééé","font":{"url":"a.ttf"}}"#).is_ok());
    }
}
