//! Text sources rasterised into an RGBA image, which then takes part in the steps like any decoded
//! image (canvas or overlay, transformed, drawn).
//!
//! Rendering with `ab_glyph` (pure Rust: TrueType and CFF outlines via `ttf-parser`, anti-aliased
//! coverage, `kern`-table kerning). Layout is one glyph per character, left to right, lines split
//! on `\n`: there is no shaping (ligatures, Arabic joining, Indic reordering) and no bidi; see
//! docs/TEXT.md for why and what that means.
//!
//! The image is the text's layout box — the widest line's advance by (lines − 1) × line height +
//! ascent − descent — widened where a glyph's ink overhangs it, so two texts at one size share a
//! baseline grid. Size is in points at 96 px per inch (CSS: 12 pt = 16 px per em). Pixels are the
//! text colour everywhere with alpha = coverage × the colour's alpha, so edges stay the right
//! colour when resized.

use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use imgbind_wire::protocol::{PART_DRAW_TEXT, PART_TEXT_INPUT};
use imgbind_wire::{parse_text_source, Error, ErrorCode, TextSource};

use crate::fonts;
use crate::raster::{buffer_len, try_alloc, Raster};
use crate::Limits;

/// Renders the `text_input` (index 0) or `draw_text` (index ≥ 1) JSON `json`.
pub(crate) fn render(json: &str, index: usize, limits: &Limits) -> Result<Raster, Error> {
    let part = if index == 0 {
        PART_TEXT_INPUT.to_owned()
    } else {
        format!("{PART_DRAW_TEXT} (image {index})")
    };
    let max_chars = usize::try_from(limits.max_text_chars).unwrap_or(usize::MAX);
    let source = parse_text_source(json, &part, max_chars)?;
    let bytes = fonts::load(&source.font_url, limits)?;
    let font = fonts::parse(&bytes, &source.font_url)?;
    rasterise(&font, &source, limits)
}

/// Lays out and draws `source` with `font`.
fn rasterise(font: &FontRef<'_>, source: &TextSource, limits: &Limits) -> Result<Raster, Error> {
    let scale: PxScale = font.pt_to_px_scale(source.size).ok_or_else(|| {
        Error::invalid(format!(
            "font.url {:?}: the font has no units-per-em",
            source.font_url
        ))
    })?;
    let scaled = font.as_scaled(scale);
    let line_height = scaled.height() + scaled.line_gap();

    // Layout: pen positions on each line's baseline.
    let lines: Vec<&str> = source.text.split('\n').collect();
    let mut glyphs: Vec<Glyph> = Vec::new();
    let mut advance_width = 0f32;
    for (n, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let baseline = scaled.ascent() + n as f32 * line_height;
        let mut x = 0f32;
        let mut previous = None;
        for c in line.chars().filter(|c| !c.is_control()) {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                x += scaled.kern(previous, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(x, baseline)));
            x += scaled.h_advance(id);
            previous = Some(id);
        }
        advance_width = advance_width.max(x);
    }
    let layout_height = (lines.len() - 1) as f32 * line_height + scaled.height();

    // Bounds: the layout box, widened to any ink outside it.
    let outlined: Vec<_> = glyphs
        .into_iter()
        .filter_map(|g| font.outline_glyph(g))
        .collect();
    let (mut min_x, mut min_y) = (0f32, 0f32);
    let (mut max_x, mut max_y) = (advance_width.ceil(), layout_height.ceil());
    for g in &outlined {
        let b = g.px_bounds();
        min_x = min_x.min(b.min.x);
        min_y = min_y.min(b.min.y);
        max_x = max_x.max(b.max.x);
        max_y = max_y.max(b.max.y);
    }
    let (width, height) = (size_px(max_x - min_x)?, size_px(max_y - min_y)?);
    limits.check_dimensions(width, height)?;
    limits.check_output(width, height)?;

    // Coverage into the alpha channel ("over" where glyphs overlap), the colour everywhere.
    let colour = source.color;
    let mut data = try_alloc(buffer_len(width, height, 4)?)?;
    for px in data.chunks_exact_mut(4) {
        px[..3].copy_from_slice(&[colour.r, colour.g, colour.b]);
    }
    let stride = width as usize * 4;
    for g in &outlined {
        let b = g.px_bounds();
        // px_bounds are whole pixels; the offsets are within the raster by construction.
        let (ox, oy) = ((b.min.x - min_x) as usize, (b.min.y - min_y) as usize);
        g.draw(|x, y, coverage| {
            let (x, y) = (ox + x as usize, oy + y as usize);
            if x < width as usize && y < height as usize {
                let alpha = &mut data[y * stride + x * 4 + 3];
                let add = coverage.clamp(0.0, 1.0) * f32::from(255 - *alpha);
                *alpha = (f32::from(*alpha) + add).round().min(255.0) as u8;
            }
        });
    }
    if colour.a < 255 {
        for px in data.chunks_exact_mut(4) {
            px[3] = crate::raster::div255(u32::from(px[3]) * u32::from(colour.a));
        }
    }
    Raster::from_vec(width, height, true, data)
}

/// A pixel length from a float extent (at least 1; 9413 when it cannot be a size at all).
fn size_px(extent: f32) -> Result<u32, Error> {
    let px = extent.ceil().max(1.0);
    if px.is_finite() && px <= u32::MAX as f32 {
        Ok(px as u32)
    } else {
        Err(Error::new(
            ErrorCode::TooManyPixels,
            "the text would be an image too large to render",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> Result<Raster, Error> {
        render(json, 0, &Limits::default())
    }

    fn ink(r: &Raster) -> Vec<[u8; 4]> {
        (0..r.height)
            .flat_map(|y| (0..r.width).map(move |x| (x, y)))
            .map(|(x, y)| r.pixel(x, y))
            .filter(|p| p[3] > 0)
            .collect()
    }

    #[test]
    fn renders_glyph_pixels_in_the_colour_at_the_size() {
        let r = text(
            r##"{"text":"Hello","font":{"url":"DejaVuSans.ttf"},"size":48,"color":"#ff0000"}"##,
        )
        .unwrap();
        assert!(r.has_alpha);
        // 48 pt = 64 px per em; DejaVu's ascent − descent is 1.164 em = 74.5 px.
        assert_eq!(r.height, 75, "{}x{}", r.width, r.height);
        // "Hello" in DejaVu Sans advances 2.535 em (H .752, e .615, l .278 ×2, o .612): 162.2 px.
        assert_eq!(r.width, 163);
        let ink = ink(&r);
        assert!(ink.len() > 1000, "{} inked pixels", ink.len());
        // Every pixel carries the colour; fully covered ones are opaque red.
        assert!(ink.iter().all(|p| p[..3] == [255, 0, 0]));
        assert!(ink.iter().filter(|p| p[3] == 255).count() > 500);
        // Corners of the box are empty (no glyph reaches them).
        assert_eq!(r.pixel(0, 0)[3], 0);
        assert_eq!(r.pixel(r.width - 1, r.height - 1)[3], 0);
    }

    #[test]
    fn size_scales_the_image() {
        let at = |size: u32| {
            text(&format!(
                r#"{{"text":"Scale","font":{{"url":"DejaVuSans.ttf"}},"size":{size}}}"#
            ))
            .unwrap()
        };
        let (small, big) = (at(12), at(96));
        let ratio = f64::from(big.height) / f64::from(small.height);
        assert!((7.0..9.0).contains(&ratio), "{ratio}");
        let ratio = f64::from(big.width) / f64::from(small.width);
        assert!((7.0..9.0).contains(&ratio), "{ratio}");
        // Default size: 12 pt.
        let default = text(r#"{"text":"Scale","font":{"url":"DejaVuSans.ttf"}}"#).unwrap();
        assert_eq!((default.width, default.height), (small.width, small.height));
        // Default colour: black.
        assert!(ink(&default).iter().all(|p| p[..3] == [0, 0, 0]));
    }

    #[test]
    fn width_grows_with_content_and_newlines_add_lines() {
        let r = |t: &str| text(&serde_like(t)).unwrap();
        let (one, two) = (r("abc"), r("abcabc"));
        assert!(
            two.width > one.width + one.width / 2,
            "{} vs {}",
            two.width,
            one.width
        );
        assert_eq!(one.height, two.height);
        let stacked = r("abc\nabc");
        assert_eq!(stacked.width, one.width);
        assert!(
            stacked.height > one.height + one.height / 2,
            "{} vs {}",
            stacked.height,
            one.height
        );
        // CRLF is a newline too; an empty line still takes its height.
        assert_eq!(r("abc\r\nabc").height, stacked.height);
        assert_eq!(
            r("abc\n\nabc").height - stacked.height,
            stacked.height - one.height
        );
    }

    #[test]
    fn translucent_colour_scales_coverage() {
        let r = text(
            r#"{"text":"I","font":{"url":"DejaVuSans.ttf"},"size":40,"color":"rgba(0,0,255,0.5)"}"#,
        )
        .unwrap();
        let ink = ink(&r);
        assert!(!ink.is_empty());
        assert!(ink.iter().all(|p| p[..3] == [0, 0, 255] && p[3] <= 128));
        assert!(ink.iter().any(|p| p[3] == 128));
    }

    #[test]
    fn bad_fonts_and_limits_are_coded() {
        let code = |json: &str, limits: &Limits| render(json, 1, limits).unwrap_err();
        let limits = Limits::default();
        let e = code(
            r#"{"text":"a","font":{"url":"https://example.com/font.ttf"}}"#,
            &limits,
        );
        assert_eq!(e.code(), ErrorCode::InvalidArguments);
        let e = code(
            r#"{"text":"a","font":{"url":"data:;base64,PGh0bWw+"}}"#,
            &limits,
        );
        assert_eq!(e.code(), ErrorCode::InvalidArguments);
        assert!(
            e.message().contains("not a TrueType or OpenType font"),
            "{}",
            e.message()
        );
        let e = code(
            r#"{"text":"a","font":{"url":"data:;base64,d09GMgABAAA="}}"#,
            &limits,
        );
        assert_eq!(e.code(), ErrorCode::UnsupportedFormat);
        let e = code(
            r#"{"text":"a","font":{"url":"DejaVuSans.ttf"},"size":-1}"#,
            &limits,
        );
        assert!(
            e.message().starts_with("draw_text (image 1).size"),
            "{}",
            e.message()
        );
        let short = Limits {
            max_text_chars: 3,
            ..Limits::default()
        };
        let e = code(r#"{"text":"abcd","font":{"url":"DejaVuSans.ttf"}}"#, &short);
        assert_eq!(e.code(), ErrorCode::InvalidArguments);
        let narrow = Limits {
            max_side: 100,
            ..Limits::default()
        };
        let e = code(
            r#"{"text":"a very long line","font":{"url":"DejaVuSans.ttf"},"size":100}"#,
            &narrow,
        );
        assert_eq!(e.code(), ErrorCode::TooManyPixels);
    }

    fn serde_like(t: &str) -> String {
        format!(
            r#"{{"text":{},"font":{{"url":"DejaVuSans.ttf"}},"size":20}}"#,
            serde_json_string(t)
        )
    }

    fn serde_json_string(t: &str) -> String {
        let mut s = String::from("\"");
        for c in t.chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '"' => s.push_str("\\\""),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    }
}
