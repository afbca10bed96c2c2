//! Palette PNG (PNG8): what `output({format: 'image/png', quality})` gives. Cloudflare documents
//! that an explicit `quality` enables PNG8; without one PNG stays truecolour (`encode.rs`).
//!
//! Quantising is `quantizr` (MIT; median cut + k-means refinement, Floyd–Steinberg dithering):
//! - an image with at most 256 distinct colours keeps exactly those (lossless, no dithering;
//!   fully transparent pixels all count as one colour, as in any palette encoder);
//! - otherwise the palette has `ceil(256 × √(quality / 100))` colours (100 → 256, 85 → 237,
//!   50 → 182, 25 → 128, 10 → 81, 1 → 26): lower quality, fewer colours, smaller file, as with
//!   JPEG and WebP. The square root keeps photos near sharp's (libimagequant's) quality at the
//!   same number, since libimagequant keeps close to 256 colours for photos at any target
//!   (a linear mapping gave 128 colours at 50 and lost 0.035 SSIM to sharp); the palette is
//!   chosen on premultiplied colours; dithering is full (1.0), as sharp's default.
//!
//! The PNG is written with the `png` crate: translucent palette entries first so `tRNS` only lists
//! those (none for an opaque image), the smallest bit depth the palette fits (1, 2, 4 or 8), no row
//! filter (filters rarely help indexed data; libpng and libvips leave them off too).

use std::collections::HashSet;

use imgbind_wire::Error;

use crate::raster::{div255, try_alloc, Raster};

/// The most colours a PNG palette can hold.
const MAX_COLOURS: usize = 256;

/// The palette size for an image with more colours than a palette holds.
pub(crate) fn colours_for_quality(quality: u8) -> usize {
    let share = (f64::from(quality.clamp(1, 100)) / 100.0).sqrt();
    ((MAX_COLOURS as f64 * share).ceil() as usize).clamp(2, MAX_COLOURS)
}

/// Encodes `img` as an indexed PNG with at most 256 colours (see the module doc for the mapping).
pub(crate) fn encode_png8(img: Raster, quality: u8) -> Result<Vec<u8>, Error> {
    let img = img.into_rgba()?;
    let (width, height) = (img.width as usize, img.height as usize);
    let exact = fits_in_palette(&img.data);
    // A lossy palette is chosen on premultiplied colours: a faint pixel's colour matters as
    // little as it shows, so entries go where composited colours differ (on an alpha gradient
    // this lowers the mean premultiplied error by about a fifth, `tests/png8.rs`).
    let premultiplied;
    let pixels = if exact {
        &img.data
    } else {
        premultiplied = premultiply(&img.data)?;
        &premultiplied
    };
    let image =
        quantizr::Image::new(pixels, width, height).map_err(|e| Error::encode_failed("PNG8", e))?;

    let mut options = quantizr::Options::default();
    let colours = if exact {
        MAX_COLOURS
    } else {
        colours_for_quality(quality)
    };
    options
        .set_max_colors(colours as i32)
        .map_err(|e| Error::encode_failed("PNG8", e))?;
    let mut result = quantizr::QuantizeResult::quantize(&image, &options);
    // An exact palette has nothing to diffuse; skipping dithering also skips its float pass.
    result
        .set_dithering_level(if exact { 0.0 } else { 1.0 })
        .map_err(|e| Error::encode_failed("PNG8", e))?;
    let mut indexes = try_alloc(width * height)?;
    result
        .remap_image(&image, &mut indexes)
        .map_err(|e| Error::encode_failed("PNG8", e))?;
    let palette = result.get_palette();
    let mut entries = palette.entries[..palette.count as usize].to_vec();
    if !exact {
        entries.iter_mut().for_each(unpremultiply);
    }

    // Translucent entries first, so tRNS can stop after the last of them.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].a == 255);
    let mut new_index = [0u8; MAX_COLOURS];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u8;
    }
    for index in &mut indexes {
        *index = new_index[usize::from(*index)];
    }
    let rgb: Vec<u8> = order
        .iter()
        .flat_map(|&i| [entries[i].r, entries[i].g, entries[i].b])
        .collect();
    let trns: Vec<u8> = order
        .iter()
        .map(|&i| entries[i].a)
        .take_while(|&a| a != 255)
        .collect();

    let depth = bit_depth(entries.len());
    let packed = pack_rows(&indexes, width, depth)?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, img.width, img.height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(match depth {
            1 => png::BitDepth::One,
            2 => png::BitDepth::Two,
            4 => png::BitDepth::Four,
            _ => png::BitDepth::Eight,
        });
        encoder.set_palette(rgb);
        if !trns.is_empty() {
            encoder.set_trns(trns);
        }
        encoder.set_compression(png::Compression::Balanced);
        encoder.set_filter(png::Filter::NoFilter);
        let mut writer = encoder
            .write_header()
            .map_err(|e| Error::encode_failed("PNG8", e))?;
        writer
            .write_image_data(&packed)
            .map_err(|e| Error::encode_failed("PNG8", e))?;
        writer
            .finish()
            .map_err(|e| Error::encode_failed("PNG8", e))?;
    }
    Ok(out)
}

/// A premultiplied copy of straight RGBA pixels.
fn premultiply(rgba: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = try_alloc(rgba.len())?;
    for (dst, src) in out.chunks_exact_mut(4).zip(rgba.chunks_exact(4)) {
        let a = u32::from(src[3]);
        for k in 0..3 {
            dst[k] = div255(u32::from(src[k]) * a);
        }
        dst[3] = src[3];
    }
    Ok(out)
}

/// A premultiplied palette entry back to straight colour (rounded, clamped).
fn unpremultiply(c: &mut quantizr::Color) {
    let a = u32::from(c.a);
    if a == 0 || a == 255 {
        return;
    }
    let straight = |v: u8| ((u32::from(v) * 255 + a / 2) / a).min(255) as u8;
    (c.r, c.g, c.b) = (straight(c.r), straight(c.g), straight(c.b));
}

/// True when the RGBA pixels have at most 256 distinct colours (all fully transparent pixels
/// count as one). Stops at the 257th, so a photo costs a few hundred pixels.
fn fits_in_palette(rgba: &[u8]) -> bool {
    let mut seen = HashSet::with_capacity(MAX_COLOURS + 1);
    for p in rgba.chunks_exact(4) {
        let colour = if p[3] == 0 {
            0
        } else {
            u32::from_le_bytes([p[0], p[1], p[2], p[3]])
        };
        if seen.insert(colour) && seen.len() > MAX_COLOURS {
            return false;
        }
    }
    true
}

/// The smallest PNG bit depth whose index range covers `colours`.
fn bit_depth(colours: usize) -> u8 {
    match colours {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    }
}

/// Packs one index per pixel into PNG rows of `depth` bits per pixel (most significant first,
/// each row padded to a whole byte).
fn pack_rows(indexes: &[u8], width: usize, depth: u8) -> Result<Vec<u8>, Error> {
    if depth == 8 {
        return Ok(indexes.to_vec());
    }
    let depth = usize::from(depth);
    let per_byte = 8 / depth;
    let row_bytes = width.div_ceil(per_byte);
    let rows = indexes.len().checked_div(width).unwrap_or(0);
    let mut packed = try_alloc(row_bytes * rows)?;
    for (row, out) in indexes
        .chunks_exact(width.max(1))
        .zip(packed.chunks_exact_mut(row_bytes.max(1)))
    {
        for (x, &index) in row.iter().enumerate() {
            let shift = 8 - depth * (x % per_byte + 1);
            out[x / per_byte] |= index << shift;
        }
    }
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_to_palette_size() {
        assert_eq!(colours_for_quality(100), 256);
        assert_eq!(colours_for_quality(85), 237);
        assert_eq!(colours_for_quality(50), 182);
        assert_eq!(colours_for_quality(25), 128);
        assert_eq!(colours_for_quality(10), 81);
        assert_eq!(colours_for_quality(1), 26);
        assert_eq!(colours_for_quality(0), 26);
    }

    #[test]
    fn bit_depth_fits_the_palette() {
        assert_eq!(
            [1, 2, 3, 4, 5, 16, 17, 256].map(bit_depth),
            [1, 1, 2, 2, 4, 4, 8, 8]
        );
    }

    #[test]
    fn rows_pack_most_significant_first_and_pad() {
        // 2-bit, width 5: 4 pixels in the first byte, 1 padded in the second.
        let packed = pack_rows(&[1, 2, 3, 0, 3, 0, 1, 2, 3, 1], 5, 2).unwrap();
        assert_eq!(
            packed,
            [0b01_10_11_00, 0b11_00_00_00, 0b00_01_10_11, 0b01_00_00_00]
        );
        let packed = pack_rows(&[1, 0, 1], 3, 1).unwrap();
        assert_eq!(packed, [0b1010_0000]);
    }

    #[test]
    fn counts_distinct_colours_with_transparent_as_one() {
        let mut rgba: Vec<u8> = (0..256u32).flat_map(|i| [i as u8, 0, 0, 255]).collect();
        // Transparent pixels of any colour are one more colour: 257 in all.
        rgba.extend([1, 2, 3, 0, 4, 5, 6, 0]);
        assert!(!fits_in_palette(&rgba));
        // 255 opaque colours and two transparent pixels: 256.
        rgba.truncate(255 * 4);
        rgba.extend([9, 9, 9, 0, 7, 7, 7, 0]);
        assert!(fits_in_palette(&rgba));
    }
}
