//! `output()` options: the four form fields as sent ([`OutputFields`]) and their validated form
//! ([`OutputOptions`]): format, quality, background, anim.

use crate::colour::{parse_colour, Rgba};
use crate::protocol::{PART_ANIM, PART_BACKGROUND, PART_OUTPUT_FORMAT, PART_OUTPUT_QUALITY};
use crate::Error;

/// The `output()` form fields as strings, before validation: what the SDK writes (as Cloudflare's
/// client does: `quality.toString()`, …) and what the backend receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputFields {
    /// `output_format`; both clients always send it.
    pub format: Option<String>,
    /// `output_quality`, if set.
    pub quality: Option<String>,
    /// `background`, if set.
    pub background: Option<String>,
    /// `anim` (`"true"`/`"false"`), if set.
    pub anim: Option<String>,
}

impl OutputFields {
    /// The field a part of this name fills, or `None` for a part that is not an output field.
    pub fn field_mut(&mut self, part_name: &str) -> Option<&mut Option<String>> {
        match part_name {
            PART_OUTPUT_FORMAT => Some(&mut self.format),
            PART_OUTPUT_QUALITY => Some(&mut self.quality),
            PART_BACKGROUND => Some(&mut self.background),
            PART_ANIM => Some(&mut self.anim),
            _ => None,
        }
    }

    /// The fields that are set, as `(part name, value)` in the order Cloudflare's client sends
    /// them: `output_format`, `output_quality`, `background`, `anim`.
    pub fn into_named(self) -> impl Iterator<Item = (&'static str, String)> {
        [
            (PART_OUTPUT_FORMAT, self.format),
            (PART_OUTPUT_QUALITY, self.quality),
            (PART_BACKGROUND, self.background),
            (PART_ANIM, self.anim),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

/// The output encodings the binding offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// `image/jpeg`
    Jpeg,
    /// `image/png`
    Png,
    /// `image/gif`
    Gif,
    /// `image/webp`
    Webp,
    /// `image/avif`
    Avif,
    /// `rgb`: raw 8-bit RGB, row-major, no header.
    Rgb,
    /// `rgba`: raw 8-bit RGBA, row-major, no header.
    Rgba,
}

impl OutputFormat {
    /// Every format, for tables and tests.
    pub const ALL: [OutputFormat; 7] = [
        OutputFormat::Jpeg,
        OutputFormat::Png,
        OutputFormat::Gif,
        OutputFormat::Webp,
        OutputFormat::Avif,
        OutputFormat::Rgb,
        OutputFormat::Rgba,
    ];

    /// The value of `output_format` / `output({format})`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Gif => "image/gif",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Rgb => "rgb",
            OutputFormat::Rgba => "rgba",
        }
    }

    /// The `content-type` of a response in this format. Raw pixels are `application/octet-stream`
    /// (which also keeps intermediaries such as wrangler from compressing and buffering them).
    pub const fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Rgb | OutputFormat::Rgba => "application/octet-stream",
            other => other.as_str(),
        }
    }

    /// Parses an `output_format` value.
    pub fn parse(value: &str) -> Result<OutputFormat, Error> {
        OutputFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == value)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "output format {value:?} is not one of image/jpeg, image/png, image/gif, \
                     image/webp, image/avif, rgb, rgba"
                ))
            })
    }
}

/// Validated `output()` options.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    /// The encoding.
    pub format: OutputFormat,
    /// 1–100; `None` means the default (85).
    pub quality: Option<u8>,
    /// Colour to flatten transparency onto, if any.
    pub background: Option<Rgba>,
    /// Keep animation frames (default true).
    pub anim: bool,
}

impl OutputOptions {
    /// The default quality, as Cloudflare documents.
    pub const DEFAULT_QUALITY: u8 = 85;

    /// Options with this format and every other field at its default.
    pub fn new(format: OutputFormat) -> Self {
        OutputOptions {
            format,
            quality: None,
            background: None,
            anim: true,
        }
    }

    /// The quality to encode with.
    pub fn quality_or_default(&self) -> u8 {
        self.quality.unwrap_or(Self::DEFAULT_QUALITY)
    }

    /// Validates the form fields `output_format`, `output_quality`, `background`, `anim`.
    /// A missing `output_format` is an error: both clients always send it.
    pub fn from_fields(fields: &OutputFields) -> Result<OutputOptions, Error> {
        let format = OutputFormat::parse(
            fields
                .format
                .as_deref()
                .ok_or_else(|| Error::invalid("output_format is required"))?
                .trim(),
        )?;
        let quality = fields
            .quality
            .as_deref()
            .map(|q| parse_quality(q.trim()))
            .transpose()?;
        let background = fields
            .background
            .as_deref()
            .map(|b| parse_colour(b.trim()))
            .transpose()?;
        let anim = match fields.anim.as_deref().map(str::trim) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "anim must be true or false, not {other:?}"
                )))
            }
        };
        Ok(OutputOptions {
            format,
            quality,
            background,
            anim,
        })
    }
}

fn parse_quality(value: &str) -> Result<u8, Error> {
    let q: f64 = value
        .parse()
        .map_err(|_| Error::invalid(format!("output quality {value:?} is not a number")))?;
    if !q.is_finite() || !(1.0..=100.0).contains(&q) {
        return Err(Error::invalid(format!(
            "output quality must be 1 to 100, not {value}"
        )));
    }
    Ok(q.round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn parses_every_format() {
        for f in OutputFormat::ALL {
            assert_eq!(OutputFormat::parse(f.as_str()).unwrap(), f);
        }
        assert_eq!(
            OutputFormat::parse("image/tiff").unwrap_err().code(),
            ErrorCode::InvalidArguments
        );
    }

    fn fields(
        format: Option<&str>,
        quality: Option<&str>,
        background: Option<&str>,
        anim: Option<&str>,
    ) -> OutputFields {
        OutputFields {
            format: format.map(str::to_string),
            quality: quality.map(str::to_string),
            background: background.map(str::to_string),
            anim: anim.map(str::to_string),
        }
    }

    #[test]
    fn parses_fields() {
        let o = OutputOptions::from_fields(&fields(
            Some("image/webp"),
            Some("72"),
            Some("#ff0000"),
            Some("false"),
        ))
        .unwrap();
        assert_eq!(o.format, OutputFormat::Webp);
        assert_eq!(o.quality, Some(72));
        assert_eq!(
            o.background,
            Some(Rgba {
                r: 255,
                g: 0,
                b: 0,
                a: 255
            })
        );
        assert!(!o.anim);
        assert_eq!(
            OutputOptions::from_fields(&fields(Some("image/png"), None, None, None))
                .unwrap()
                .quality_or_default(),
            85
        );
    }

    #[test]
    fn rejects_bad_fields() {
        for (q, anim) in [
            (Some("0"), None),
            (Some("101"), None),
            (Some("x"), None),
            (None, Some("yes")),
        ] {
            let e =
                OutputOptions::from_fields(&fields(Some("image/jpeg"), q, None, anim)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArguments);
        }
        assert!(OutputOptions::from_fields(&fields(None, None, None, None)).is_err());
        assert!(OutputOptions::from_fields(&fields(
            Some("image/jpeg"),
            None,
            Some("notacolour"),
            None
        ))
        .is_err());
    }

    #[test]
    fn fields_by_part_name_in_cloudflare_order() {
        let mut f = OutputFields::default();
        for (name, value) in [("anim", "true"), ("output_format", "image/webp")] {
            *f.field_mut(name).unwrap() = Some(value.to_string());
        }
        assert!(f.field_mut("transforms").is_none());
        f.quality = Some("80".into());
        let named: Vec<_> = f.into_named().collect();
        assert_eq!(
            named,
            [
                ("output_format", "image/webp".to_string()),
                ("output_quality", "80".to_string()),
                ("anim", "true".to_string())
            ]
        );
    }
}
