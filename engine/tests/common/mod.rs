//! Helpers shared by the engine's integration tests: corpus images and synthetic PNGs.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use bytes::Bytes;
use image::ImageEncoder;

/// A corpus image: `$IMGBIND_CORPUS` or `../../shared/corpus` from this crate.
pub fn corpus(name: &str) -> Bytes {
    let dir = std::env::var_os("IMGBIND_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let path = dir.join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A `width`×`height` RGBA PNG whose pixel (x, y) is `paint(x, y)`.
pub fn png(width: u32, height: u32, paint: impl Fn(u32, u32) -> [u8; 4]) -> Bytes {
    let img = image::RgbaImage::from_fn(width, height, |x, y| image::Rgba(paint(x, y)));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
        .unwrap();
    Bytes::from(out)
}
