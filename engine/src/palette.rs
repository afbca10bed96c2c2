//! Palette PNG (PNG8): what `output({format: 'image/png', quality})` gives. Cloudflare documents
//! that an explicit `quality` enables PNG8; without one PNG stays truecolour (`encode.rs`).
//!
//! Quantising is `quantizr` (MIT; median cut + k-means refinement, Floyd–Steinberg dithering).
//! `quality` means what it means to sharp (libvips → libimagequant): an error target, not a
//! palette size.
//! - The target is libimagequant's `quality_to_mse(quality)` (100 → 0), scaled to quantizr's
//!   error by a measured share ([`error_share`]).
//! - The palette gets the fewest colours (2–256) whose undithered mean square error on an even
//!   sample of the image meets the target: a binary search over quantizr palettes of the sample
//!   ([`Sample`], at most 64 Ki pixels). A photo usually needs all 256 above quality 60, a
//!   graphic far fewer; then the whole image is quantised to that many colours.
//! - An image with at most 256 distinct colours (fully transparent pixels all count as one) keeps
//!   exactly those, undithered, at quality 100 or when every one of them is needed to meet the
//!   target; otherwise it is quantised like any other (libimagequant does the same: a 256-level
//!   grey photo at quality 60 gets about 20 levels from sharp and from us).
//! - The palette is chosen on premultiplied colours, and the remap is dithered at 0.8
//!   ([`DITHERING`]). libimagequant (sharp's default 1.0) restricts dithering to where an
//!   undithered remap shows edges; quantizr has no such map, only its own clamp of large errors,
//!   so its full dithering is noisier than sharp's.
//!
//! The PNG is written with the `png` crate: translucent palette entries first so `tRNS` only lists
//! those (none for an opaque image), the smallest bit depth the palette fits (1, 2, 4 or 8), no row
//! filter (filters rarely help indexed data; libpng and libvips leave them off too).

use std::collections::HashSet;

use imgbind_wire::Error;

use crate::raster::{div255, try_alloc, Raster};

/// The most colours a PNG palette can hold.
const MAX_COLOURS: usize = 256;

/// The palette size search runs on at most this many pixels, taken evenly from the image. On the
/// 20 MP corpus photo a 64 Ki-pixel sample gives the errors of a 256 Ki one within 3 % at every
/// palette size, and the whole search (up to nine palettes) costs about 0.1 s of CPU against
/// 0.35 s for quantizr's full-image palette and 1.8 s for its dithered remap.
const SEARCH_SAMPLE: usize = 1 << 16;

/// libimagequant's `quality_to_mse` (2.x and 4.x alike): the mean square error a quality allows,
/// in its units (channels 0..1, summed over colour channels). 100 → 0, lower quality → larger.
fn quality_to_mse(quality: u8) -> f64 {
    let q = f64::from(quality.min(100));
    if quality == 0 {
        return f64::INFINITY;
    }
    if quality >= 100 {
        return 0.0;
    }
    let extra_low_quality_fudge = (0.016 / (0.001 + q) - 0.001).max(0.0);
    extra_low_quality_fudge + 2.5 / (210.0 + q).powf(1.2) * (100.1 - q) / 100.0
}

/// quantizr's error at `quality` as a share of libimagequant's allowance. Their errors differ in
/// kind: ours is the plain mean over pixels of the squared distance to the palette entry, summed
/// over the four premultiplied 0–255 channels; libimagequant's sums the colour channels in 0–1
/// units (gamma 0.55, premultiplied) over a histogram that weighs noisy areas below smooth ones,
/// and its palettes and edge-aware dithering differ from quantizr's. The share is measured, not
/// derived: at each quality it puts the corpus's mean SSIM against the lossless image on
/// sharp's (`tests/png8-quality.test.js`; the sweeps are in `docs/BENCHMARKS.md`), with the remap
/// dithered at [`DITHERING`]: 0.49 at quality 30 and below, 0.42 at 60, 0.2 at 95 and above
/// (photos keep all 256 colours there on both sides), straight lines between. (With full
/// dithering, until session 12: 0.41, 0.36 and 0.2.)
fn error_share(quality: u8) -> f64 {
    let q = f64::from(quality.clamp(30, 95));
    if q <= 60.0 {
        0.49 - 0.07 * (q - 30.0) / 30.0
    } else {
        0.42 - 0.22 * (q - 60.0) / 35.0
    }
}

/// How strongly quantizr diffuses the remap error: 0.8, at every quality. libimagequant (sharp,
/// dithering 1.0) dithers only where an undithered remap shows edges; quantizr diffuses every
/// pixel's whole error, so at full strength its noise alone cost 0.002–0.004 SSIM against sharp's
/// where both keep all 256 colours (corpus mean at quality 80 and 95), and larger files. One level
/// for every quality keeps a lower quality from ever giving a larger file (fewer colours, same
/// diffusion). Measured with [`error_share`] (`tests/png8-quality.test.js`, session 12): the
/// corpus mean SSIM within 0.0015 of sharp's at 30, 60, 80 and 95 in files 0.82–0.98× its size,
/// where full dithering gave 0.91–1.01× and −0.004 at 95.
const DITHERING: f32 = 0.8;

/// The largest error (as [`Sample::error_with`] measures it) a palette may have at `quality`.
fn error_target(quality: u8) -> f64 {
    quality_to_mse(quality) * 255.0 * 255.0 * error_share(quality)
}

/// The fewest colours (2..=`most`) whose palette for `sample` has an error within `target`, or
/// `None` when even `most` colours miss it. The error falls as colours are added (not strictly:
/// k-means can land a little higher with one more entry), so a binary search finds the count.
fn fewest_colours(sample: &Sample, most: usize, target: f64) -> Result<Option<usize>, Error> {
    if most < 2 || sample.error_with(most)? > target {
        return Ok(None);
    }
    // error_with(high) meets the target; find the smallest such count.
    let (mut low, mut high) = (1, most);
    while high - low > 1 {
        let mid = (low + high) / 2;
        if sample.error_with(mid)? <= target {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(Some(high))
}

/// An even sample of at most [`SEARCH_SAMPLE`] premultiplied pixels, with its histogram.
struct Sample {
    pixels: Vec<u8>,
    histogram: quantizr::Histogram,
}

impl Sample {
    fn of(rgba: &[u8]) -> Result<Self, Error> {
        let count = rgba.len() / 4;
        let step = count.div_ceil(SEARCH_SAMPLE).max(1);
        let mut pixels = try_alloc(count.div_ceil(step) * 4)?;
        for (dst, src) in pixels
            .chunks_exact_mut(4)
            .zip(rgba.chunks_exact(4).step_by(step))
        {
            dst.copy_from_slice(src);
        }
        let mut histogram = quantizr::Histogram::new();
        histogram.add_image(&Self::image(&pixels)?);
        Ok(Self { pixels, histogram })
    }

    fn image(pixels: &[u8]) -> Result<quantizr::Image<'_>, Error> {
        quantizr::Image::new(pixels, pixels.len() / 4, 1)
            .map_err(|e| Error::encode_failed("PNG8", e))
    }

    /// The mean square error (summed over the four premultiplied 0–255 channels) of the sample
    /// mapped, undithered, to a palette of `colours` quantizr chooses for it. (quantizr's own
    /// `get_error` divides an unweighted sum over distinct colours by the pixel count, so it
    /// depends on how many distinct colours an image has and cannot serve as a target.)
    fn error_with(&self, colours: usize) -> Result<f64, Error> {
        let mut options = quantizr::Options::default();
        options
            .set_max_colors(colours as i32)
            .map_err(|e| Error::encode_failed("PNG8", e))?;
        let mut result = quantizr::QuantizeResult::quantize_histogram(&self.histogram, &options);
        result
            .set_dithering_level(0.0)
            .map_err(|e| Error::encode_failed("PNG8", e))?;
        let image = Self::image(&self.pixels)?;
        let mut indexes = try_alloc(self.pixels.len() / 4)?;
        result
            .remap_image(&image, &mut indexes)
            .map_err(|e| Error::encode_failed("PNG8", e))?;
        let entries = &result.get_palette().entries;
        let mut sum = 0u64;
        for (p, &i) in self.pixels.chunks_exact(4).zip(&indexes) {
            let e = &entries[usize::from(i)];
            for (v, w) in p.iter().zip([e.r, e.g, e.b, e.a]) {
                let d = i64::from(*v) - i64::from(w);
                sum += (d * d) as u64;
            }
        }
        Ok(sum as f64 / indexes.len().max(1) as f64)
    }
}

/// Encodes `img` as an indexed PNG with at most 256 colours (see the module doc for the mapping).
pub(crate) fn encode_png8(img: Raster, quality: u8) -> Result<Vec<u8>, Error> {
    let img = img.into_rgba()?;
    let (width, height) = (img.width as usize, img.height as usize);
    let distinct = distinct_colours(&img.data);
    // A lossy palette is chosen on premultiplied colours: a faint pixel's colour matters as
    // little as it shows, so entries go where composited colours differ (on an alpha gradient
    // this lowers the mean premultiplied error by about a fifth, `tests/png8.rs`).
    let premultiplied = premultiply(&img.data)?;
    // The fewest colours whose error meets the quality's target, as libimagequant picks them;
    // quality 100 (target 0) and an image whose own colours are all needed stay exact.
    let most = distinct.map_or(MAX_COLOURS, |n| n - 1);
    let chosen = match quality {
        100.. => None,
        _ => fewest_colours(&Sample::of(&premultiplied)?, most, error_target(quality))?,
    };
    let exact = distinct.is_some() && chosen.is_none();
    let colours = chosen.unwrap_or(MAX_COLOURS);
    let pixels = if exact { &img.data } else { &premultiplied };
    let image =
        quantizr::Image::new(pixels, width, height).map_err(|e| Error::encode_failed("PNG8", e))?;

    let mut options = quantizr::Options::default();
    options
        .set_max_colors(colours as i32)
        .map_err(|e| Error::encode_failed("PNG8", e))?;
    let mut result = quantizr::QuantizeResult::quantize(&image, &options);
    // An exact palette has nothing to diffuse; skipping dithering also skips its float pass.
    result
        .set_dithering_level(if exact { 0.0 } else { DITHERING })
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

/// The number of distinct colours of the RGBA pixels when at most 256 (all fully transparent
/// pixels count as one), else `None`. Stops at the 257th, so a photo costs a few hundred pixels.
fn distinct_colours(rgba: &[u8]) -> Option<usize> {
    let mut seen = HashSet::with_capacity(MAX_COLOURS + 1);
    for p in rgba.chunks_exact(4) {
        let colour = if p[3] == 0 {
            0
        } else {
            u32::from_le_bytes([p[0], p[1], p[2], p[3]])
        };
        if seen.insert(colour) && seen.len() > MAX_COLOURS {
            return None;
        }
    }
    Some(seen.len())
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
    fn quality_maps_to_libimagequants_error() {
        // libimagequant's values: 100 → 0 (exact), 0 → no limit, and a falling curve between.
        assert_eq!(quality_to_mse(100), 0.0);
        assert!(quality_to_mse(0).is_infinite());
        let near = |a: f64, b: f64| (a - b).abs() < 1e-3 * b;
        assert!(
            near(quality_to_mse(95), 1.3315e-4),
            "{}",
            quality_to_mse(95)
        );
        assert!(
            near(quality_to_mse(80), 5.5752e-4),
            "{}",
            quality_to_mse(80)
        );
        assert!(
            near(quality_to_mse(60), 1.2118e-3),
            "{}",
            quality_to_mse(60)
        );
        assert!(
            near(quality_to_mse(30), 2.4401e-3),
            "{}",
            quality_to_mse(30)
        );
        assert!((1..100).all(|q| quality_to_mse(q) > quality_to_mse(q + 1)));
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
        assert_eq!(distinct_colours(&rgba), None);
        // 255 opaque colours and two transparent pixels: 256.
        rgba.truncate(255 * 4);
        rgba.extend([9, 9, 9, 0, 7, 7, 7, 0]);
        assert_eq!(distinct_colours(&rgba), Some(256));
    }
}
