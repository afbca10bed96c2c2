//! Pixel filters, applied after the resize in this order: blur, sharpen, brightness, contrast,
//! gamma, saturation. Alpha is never changed; blurs work on premultiplied values so transparent
//! pixels do not bleed their hidden colour.

use imgbind_wire::{Error, TransformStep};

use crate::raster::{div255, try_alloc, Raster};

/// Applies every filter the step sets. Factors of 0 (brightness, contrast, gamma) are ignored, as
/// Cloudflare documents.
pub(crate) fn apply(mut img: Raster, step: &TransformStep) -> Result<Raster, Error> {
    if let Some(radius) = step.blur.filter(|r| *r > 0.0) {
        // Cloudflare's blur is a "radius"; a Gaussian's visible reach is about 2σ.
        blur(&mut img, radius / 2.0)?;
    }
    if let Some(amount) = step.sharpen.filter(|s| *s > 0.0) {
        sharpen(&mut img, amount)?;
    }
    let active = |v: Option<f64>| v.filter(|f| *f > 0.0 && *f != 1.0);
    let (b, c, g) = (
        active(step.brightness),
        active(step.contrast),
        active(step.gamma),
    );
    if b.is_some() || c.is_some() || g.is_some() {
        let mut lut = [0u8; 256];
        for (i, slot) in lut.iter_mut().enumerate() {
            let mut v = i as f64 / 255.0;
            if let Some(b) = b {
                v *= b;
            }
            if let Some(c) = c {
                v = (v - 0.5) * c + 0.5;
            }
            if let Some(g) = g {
                // Gamma > 1 brightens (Cloudflare: "increase exposure").
                v = v.clamp(0.0, 1.0).powf(1.0 / g);
            }
            *slot = (v * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        let c = img.channels();
        for p in img.data.chunks_exact_mut(c) {
            for v in &mut p[..3] {
                *v = lut[usize::from(*v)];
            }
        }
    }
    if let Some(s) = step.saturation.filter(|s| *s != 1.0) {
        let s = s as f32;
        let c = img.channels();
        for p in img.data.chunks_exact_mut(c) {
            let luma = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
            for v in &mut p[..3] {
                *v = (luma + (f32::from(*v) - luma) * s)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(img)
}

/// Below this σ the three box passes of [`blur`] would be 1 px wide (no blur at all), so a
/// sampled Gaussian kernel is used instead; above it the box passes are close to a Gaussian and
/// cost the same whatever the radius.
const SMALL_SIGMA: f64 = 2.0;

/// Gaussian blur: a sampled kernel for small σ, three box blurs per axis otherwise (sizes from σ,
/// after W. Jarosz).
pub(crate) fn blur(img: &mut Raster, sigma: f64) -> Result<(), Error> {
    if sigma < 0.2 {
        return Ok(());
    }
    premultiply(img, true);
    let (w, h, c) = (img.width as usize, img.height as usize, img.channels());
    let mut scratch = try_alloc(img.data.len())?;
    if sigma < SMALL_SIGMA {
        let kernel = gaussian_kernel(sigma);
        kernel_pass(&img.data, &mut scratch, w, h, c, &kernel, true);
        kernel_pass(&scratch, &mut img.data, w, h, c, &kernel, false);
    } else {
        for r in box_radii(sigma) {
            box_pass(&img.data, &mut scratch, w, h, c, r, true);
            box_pass(&scratch, &mut img.data, w, h, c, r, false);
        }
    }
    premultiply(img, false);
    Ok(())
}

/// Weights of a Gaussian sampled at −3σ…3σ, summing to 1 (fixed point, 1 << 16).
fn gaussian_kernel(sigma: f64) -> Vec<u32> {
    let radius = (3.0 * sigma).ceil() as i64;
    let raw: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    let mut weights: Vec<u32> = raw
        .iter()
        .map(|v| (v / total * 65536.0).round() as u32)
        .collect();
    // Put the rounding error on the centre tap so a flat area stays exactly flat.
    let sum: u32 = weights.iter().sum();
    let centre = radius as usize;
    weights[centre] = (weights[centre] + 65536).saturating_sub(sum);
    weights
}

/// One convolution pass along rows (`horizontal`) or columns, edges clamped.
fn kernel_pass(
    src: &[u8],
    dst: &mut [u8],
    w: usize,
    h: usize,
    c: usize,
    kernel: &[u32],
    horizontal: bool,
) {
    let (len, lines) = if horizontal { (w, h) } else { (h, w) };
    let radius = (kernel.len() / 2) as i64;
    let last = len as i64 - 1;
    let at = |line: usize, i: usize| -> usize {
        if horizontal {
            (line * w + i) * c
        } else {
            (i * w + line) * c
        }
    };
    for line in 0..lines {
        for i in 0..len {
            let d = at(line, i);
            for k in 0..c {
                let mut sum = 0u32;
                for (t, weight) in kernel.iter().enumerate() {
                    let j = (i as i64 + t as i64 - radius).clamp(0, last) as usize;
                    sum += u32::from(src[at(line, j) + k]) * weight;
                }
                dst[d + k] = ((sum + 32768) >> 16).min(255) as u8;
            }
        }
    }
}

/// Unsharp mask: original + amount × (original − blur σ=1), on colour channels only.
pub(crate) fn sharpen(img: &mut Raster, amount: f64) -> Result<(), Error> {
    let mut soft = img.clone();
    blur(&mut soft, 1.0)?;
    let k = amount as f32;
    let c = img.channels();
    for (p, q) in img.data.chunks_exact_mut(c).zip(soft.data.chunks_exact(c)) {
        for i in 0..3 {
            let (v, s) = (f32::from(p[i]), f32::from(q[i]));
            p[i] = (v + (v - s) * k).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(())
}

fn box_radii(sigma: f64) -> [usize; 3] {
    let n = 3.0;
    let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
    let mut wl = ideal.floor() as i64;
    if wl % 2 == 0 {
        wl -= 1;
    }
    let wu = wl + 2;
    let (wlf, wuf) = (wl as f64, wu as f64);
    let m = ((12.0 * sigma * sigma - n * wlf * wlf - 4.0 * n * wlf - 3.0 * n) / (-4.0 * wlf - 4.0))
        .round() as i64;
    let mut radii = [0usize; 3];
    for (i, r) in radii.iter_mut().enumerate() {
        let width = if (i as i64) < m { wlf } else { wuf };
        *r = ((width - 1.0) / 2.0).max(0.0) as usize;
    }
    radii
}

/// One running-sum box blur along rows (`horizontal`) or columns, with clamped edges.
fn box_pass(src: &[u8], dst: &mut [u8], w: usize, h: usize, c: usize, r: usize, horizontal: bool) {
    let (len, lines) = if horizontal { (w, h) } else { (h, w) };
    let at = |line: usize, i: usize| -> usize {
        if horizontal {
            (line * w + i) * c
        } else {
            (i * w + line) * c
        }
    };
    let div = (2 * r + 1) as u32;
    let last = len - 1;
    for line in 0..lines {
        for k in 0..c {
            // The window around position 0 is [-r, r], edges clamped.
            let mut sum: u32 = (0..=2 * r)
                .map(|i| {
                    let idx = (i as i64 - r as i64).clamp(0, last as i64) as usize;
                    u32::from(src[at(line, idx) + k])
                })
                .sum();
            for i in 0..len {
                dst[at(line, i) + k] = ((sum + div / 2) / div) as u8;
                let add = (i + r + 1).min(last);
                let sub = i.saturating_sub(r);
                sum = sum + u32::from(src[at(line, add) + k]) - u32::from(src[at(line, sub) + k]);
            }
        }
    }
}

/// Premultiplies (or un-premultiplies) RGBA in place; RGB is left alone.
fn premultiply(img: &mut Raster, forward: bool) {
    if !img.has_alpha {
        return;
    }
    for p in img.data.chunks_exact_mut(4) {
        let a = u32::from(p[3]);
        for v in &mut p[..3] {
            *v = if forward {
                div255(u32::from(*v) * a)
            } else {
                ((u32::from(*v) * 255 + a / 2).checked_div(a).unwrap_or(0)).min(255) as u8
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use imgbind_wire::Rgba;

    fn grey(v: u8) -> Raster {
        Raster::filled(
            4,
            4,
            false,
            Rgba {
                r: v,
                g: v,
                b: v,
                a: 255,
            },
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn tone_filters_move_values_the_documented_way() {
        let step = |f: fn(&mut TransformStep)| {
            let mut s = TransformStep::default();
            f(&mut s);
            s
        };
        let bright = apply(grey(100), &step(|s| s.brightness = Some(2.0))).unwrap();
        assert_eq!(bright.pixel(0, 0)[0], 200);
        let ignored = apply(grey(100), &step(|s| s.brightness = Some(0.0))).unwrap();
        assert_eq!(ignored.pixel(0, 0)[0], 100);
        let contrast = apply(grey(100), &step(|s| s.contrast = Some(2.0))).unwrap();
        assert!(contrast.pixel(0, 0)[0] < 100);
        let gamma = apply(grey(100), &step(|s| s.gamma = Some(2.0))).unwrap();
        assert!(gamma.pixel(0, 0)[0] > 100);
        let mut colour = grey(0);
        colour.data[..3].copy_from_slice(&[200, 50, 50]);
        let desaturated = apply(colour, &step(|s| s.saturation = Some(0.0))).unwrap();
        let p = desaturated.pixel(0, 0);
        assert!(p[0] == p[1] && p[1] == p[2]);
    }

    #[test]
    fn blur_spreads_a_dot_and_keeps_flat_areas() {
        let mut flat = grey(90);
        blur(&mut flat, 3.0).unwrap();
        assert!(flat.data.iter().all(|&v| v == 90));
        let mut dot = Raster::filled(9, 9, false, Rgba::BLACK, &Limits::default()).unwrap();
        let centre = (4 * 9 + 4) * 3;
        dot.data[centre..centre + 3].copy_from_slice(&[255, 255, 255]);
        let mut blurred = dot.clone();
        blur(&mut blurred, 1.5).unwrap();
        assert!(blurred.pixel(4, 4)[0] < 255);
        assert!(blurred.pixel(5, 4)[0] > 0);
        // A small σ (Cloudflare's blur 1 = σ 0.5) still spreads the dot a little.
        let mut slight = dot.clone();
        blur(&mut slight, 0.5).unwrap();
        assert!(slight.pixel(4, 4)[0] < 255 && slight.pixel(4, 4)[0] > 128);
        assert!(slight.pixel(5, 4)[0] > 0);
        let mut flat_small = grey(90);
        blur(&mut flat_small, 1.2).unwrap();
        assert!(flat_small.data.iter().all(|&v| v == 90));
        let mut sharp = dot;
        sharpen(&mut sharp, 1.0).unwrap();
        assert_eq!(sharp.pixel(4, 4)[0], 255);
    }
}
