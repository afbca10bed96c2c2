//! SVG input, rasterised with `resvg` (pure Rust), as sharp/libvips rasterise SVG too.
//!
//! The canvas is the SVG's own size (`width`/`height`, else its `viewBox`), scaled down to fit the
//! default [`Limits`] (12 000 px a side, 100 MP) when larger: a vector can be drawn at any size, so
//! a huge SVG is shrunk, not refused. Stricter configured limits then apply to that size as to any
//! decoded image. Nothing outside the document is ever read: `<image>` references, files and data URLs
//! alike, resolve to nothing; no fonts are loaded, so `<text>` is not drawn. `/info` reports only
//! the format (as Cloudflare does) and never gets here.

use std::sync::Arc;

use imgbind_wire::{Error, ErrorCode};
use resvg::{tiny_skia, usvg};

use crate::raster::{buffer_len, try_alloc, Raster};
use crate::Limits;

/// Parse options that keep the document self-contained.
fn options() -> usvg::Options<'static> {
    usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_: &str, _: Arc<Vec<u8>>, _: &usvg::Options| None),
            resolve_string: Box::new(|_: &str, _: &usvg::Options| None),
        },
        ..usvg::Options::default()
    }
}

fn parse(bytes: &[u8]) -> Result<usvg::Tree, Error> {
    usvg::Tree::from_data(bytes, &options())
        .map_err(|e| Error::not_an_image(format!("SVG image could not be read: {e}")))
}

/// The pixel size the SVG is drawn at: its own size, shrunk (aspect kept) to the limits.
fn canvas_size(tree: &usvg::Tree, limits: &Limits) -> Result<(u32, u32), Error> {
    let size = tree.size();
    let (w, h) = (f64::from(size.width()), f64::from(size.height()));
    if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
        return Err(Error::not_an_image(
            "SVG image could not be read: it has no size",
        ));
    }
    let side = f64::from(limits.max_side.max(1));
    let pixels = limits.max_pixels.max(1) as f64;
    let scale = (side / w.max(h)).min((pixels / (w * h)).sqrt()).min(1.0);
    let fit = |v: f64| ((v * scale).round() as u32).max(1);
    Ok((fit(w), fit(h)))
}

/// The size the SVG will be drawn at, for the dimension checks before decoding.
pub(crate) fn read_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    canvas_size(&parse(bytes)?, &Limits::default())
}

/// Draws the SVG onto a transparent canvas at [`read_size`]; straight-alpha RGBA.
pub(crate) fn rasterise(bytes: &[u8]) -> Result<Raster, Error> {
    let tree = parse(bytes)?;
    let (width, height) = canvas_size(&tree, &Limits::default())?;
    // Check the allocation is possible before tiny-skia makes it (it would abort otherwise).
    drop(try_alloc(buffer_len(width, height, 4)?)?);
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or_else(|| {
        Error::new(
            ErrorCode::TooManyPixels,
            format!("SVG canvas {width}x{height} cannot be allocated"),
        )
    })?;
    let size = tree.size();
    let transform = tiny_skia::Transform::from_scale(
        width as f32 / size.width(),
        height as f32 / size.height(),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    let mut data = try_alloc(buffer_len(width, height, 4)?)?;
    for (dst, px) in data.chunks_exact_mut(4).zip(pixmap.pixels()) {
        let c = px.demultiply();
        dst.copy_from_slice(&[c.red(), c.green(), c.blue(), c.alpha()]);
    }
    Raster::from_vec(width, height, true, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">
        <rect x="0" y="0" width="20" height="20" fill="#ff0000"/></svg>"##;

    #[test]
    fn draws_at_its_own_size_with_transparency() {
        let img = rasterise(SQUARE).unwrap();
        assert_eq!((img.width, img.height), (40, 20));
        assert_eq!(img.pixel(5, 5), [255, 0, 0, 255]);
        assert_eq!(img.pixel(30, 5)[3], 0);
    }

    #[test]
    fn huge_svgs_are_shrunk_to_the_limits() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100000 50000"/>"#;
        assert_eq!(read_size(svg).unwrap(), (12_000, 6_000));
        let tall = br#"<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="90000"/>"#;
        let limits = Limits {
            max_side: 1000,
            ..Limits::default()
        };
        assert_eq!(
            canvas_size(&parse(tall).unwrap(), &limits).unwrap(),
            (100, 1000)
        );
    }

    #[test]
    fn external_images_are_never_loaded() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">
            <image width="10" height="10" xlink:href="/etc/passwd"/>
            <image width="10" height="10" href="file:///work/main/engine/tests/fixtures/formats/base.png"/></svg>"#;
        let img = rasterise(svg).unwrap();
        assert!(img.data.chunks_exact(4).all(|p| p[3] == 0));
    }

    #[test]
    fn malformed_svg_is_9412() {
        let e = rasterise(b"<svg xmlns='http://www.w3.org/2000/svg'><rect").unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotAnImage);
    }
}
