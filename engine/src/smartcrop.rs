//! Where a crop window goes for the pixel-dependent gravities:
//!
//! - `auto` (and `face`, which falls back to it: no face model is shipped) — saliency by the
//!   *maximum symmetric surround* method (Achanta and Süsstrunk, ICIP 2010), the algorithm
//!   Cloudflare documents for `gravity=auto`: a pixel is salient by how far its (slightly blurred)
//!   CIELAB colour is from the mean colour of the largest window centred on it that fits in the
//!   image. The crop window is the one holding the most saliency.
//! - `entropy` — the window whose luma histogram has the highest Shannon entropy, each cropped axis
//!   on its own (a `cover` crop cuts one axis; `crop` may cut both).
//!
//! Both work on a sample of at most [`SAMPLE`] px on the long side, so the cost does not grow with
//! the input (about 65 000 sample points). A flat image, where every window scores the same, keeps
//! the centred window. The answer is a pair of remainder fractions (0 = window at the left/top edge,
//! 1 = at the right/bottom edge), what `gravity: {x, y, mode: 'remainder'}` means.

use imgbind_wire::Gravity;

use crate::icc;
use crate::raster::Raster;

/// Long side of the analysis sample, in sample points.
const SAMPLE: u32 = 256;

/// The remainder fractions of the window (`window_x`, `window_y`: its size as a fraction of each
/// side) that `gravity` picks on `src`. Gravities that do not look at pixels give the centre.
pub(crate) fn anchor(gravity: Gravity, src: &Raster, window_x: f64, window_y: f64) -> (f64, f64) {
    let grid = Grid::sample(src);
    let win = |fraction: f64, n: usize| ((fraction * n as f64).round() as usize).clamp(1, n);
    let (ww, wh) = (win(window_x, grid.cols), win(window_y, grid.rows));
    match gravity {
        Gravity::Auto | Gravity::Face => grid.most_salient_window(ww, wh),
        Gravity::Entropy => (
            grid.entropy_window(ww, Axis::X),
            grid.entropy_window(wh, Axis::Y),
        ),
        _ => (0.5, 0.5),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    X,
    Y,
}

/// The sampled image: CIELAB per point, and 8-bit luma for the histograms.
struct Grid {
    cols: usize,
    rows: usize,
    lab: Vec<[f32; 3]>,
    luma: Vec<u8>,
}

impl Grid {
    /// Averages a 2×2 set of pixels per sample point (less aliasing than one pixel, far cheaper
    /// than the whole cell). Alpha is premultiplied: transparent areas count as black.
    fn sample(src: &Raster) -> Grid {
        let step = (src.width.max(src.height) / SAMPLE).max(1);
        let (cols, rows) = (src.width.div_ceil(step), src.height.div_ceil(step));
        let half = step / 2; // 0 when every pixel is a sample point
        let lin = srgb_to_linear_table();
        let mut lab = Vec::with_capacity((cols * rows) as usize);
        let mut luma = Vec::with_capacity((cols * rows) as usize);
        for r in 0..rows {
            for c in 0..cols {
                let (x, y) = (c * step, r * step);
                let mut sum = [0u32; 3];
                for (dx, dy) in [(0, 0), (half, 0), (0, half), (half, half)] {
                    let p = src.pixel((x + dx).min(src.width - 1), (y + dy).min(src.height - 1));
                    for (s, v) in sum.iter_mut().zip(p) {
                        *s += u32::from(v) * u32::from(p[3]);
                    }
                }
                // Four pixels, each premultiplied by alpha/255: divide by 4·255, rounding.
                let rgb = sum.map(|s| ((s + 510) / 1020).min(255) as u8);
                luma.push(
                    ((u32::from(rgb[0]) * 77 + u32::from(rgb[1]) * 150 + u32::from(rgb[2]) * 29)
                        >> 8) as u8,
                );
                lab.push(to_lab(rgb.map(|v| lin[usize::from(v)])));
            }
        }
        Grid {
            cols: cols as usize,
            rows: rows as usize,
            lab,
            luma,
        }
    }

    /// Maximum symmetric surround saliency per point, then the `ww`×`wh` window with the largest sum.
    fn most_salient_window(&self, ww: usize, wh: usize) -> (f64, f64) {
        let (cols, rows) = (self.cols, self.rows);
        let blurred = self.blurred_lab();
        // Integral image of the Lab values: the mean of any rectangle in O(1).
        let integral = Integral::new(cols, rows, |i| blurred[i].map(f64::from));
        let mut saliency = vec![0f64; cols * rows];
        for y in 0..rows {
            let y0 = y.min(rows - 1 - y);
            for x in 0..cols {
                let x0 = x.min(cols - 1 - x);
                let (sum, area) = integral.sum(x - x0, y - y0, x + x0 + 1, y + y0 + 1);
                let here = blurred[y * cols + x];
                saliency[y * cols + x] = (0..3)
                    .map(|k| (sum[k] / area - f64::from(here[k])).powi(2))
                    .sum();
            }
        }
        let integral = Integral::new(cols, rows, |i| [saliency[i], 0.0, 0.0]);
        best_position(cols - ww + 1, rows - wh + 1, |x, y| {
            integral.sum(x, y, x + ww, y + wh).0[0]
        })
    }

    /// The Lab grid blurred with a separable [1 2 1]/4 kernel (edges clamped), as the method
    /// prescribes to take out fine texture and noise.
    fn blurred_lab(&self) -> Vec<[f32; 3]> {
        let (cols, rows) = (self.cols, self.rows);
        let pass = |src: &[[f32; 3]], horizontal: bool| {
            let mut out = vec![[0f32; 3]; src.len()];
            for y in 0..rows {
                for x in 0..cols {
                    let at = |x: usize, y: usize| src[y * cols + x];
                    let (a, b, c) = if horizontal {
                        (
                            at(x.saturating_sub(1), y),
                            at(x, y),
                            at((x + 1).min(cols - 1), y),
                        )
                    } else {
                        (
                            at(x, y.saturating_sub(1)),
                            at(x, y),
                            at(x, (y + 1).min(rows - 1)),
                        )
                    };
                    out[y * cols + x] = [0, 1, 2].map(|k| (a[k] + 2.0 * b[k] + c[k]) / 4.0);
                }
            }
            out
        };
        pass(&pass(&self.lab, true), false)
    }

    /// The window of `win` columns (or rows) whose luma histogram has the highest entropy.
    fn entropy_window(&self, win: usize, axis: Axis) -> f64 {
        let (n, across) = match axis {
            Axis::X => (self.cols, self.rows),
            Axis::Y => (self.rows, self.cols),
        };
        let value = |along: usize, i: usize| match axis {
            Axis::X => self.luma[i * self.cols + along],
            Axis::Y => self.luma[along * self.cols + i],
        };
        // Slide the window one line at a time, keeping its histogram; score every position.
        let mut hist = [0u32; 256];
        for along in 0..win {
            (0..across).for_each(|i| hist[usize::from(value(along, i))] += 1);
        }
        let total = (win * across) as f64;
        let mut scores = Vec::with_capacity(n - win + 1);
        scores.push(entropy(&hist, total));
        for start in 1..=n - win {
            for i in 0..across {
                hist[usize::from(value(start - 1, i))] -= 1;
                hist[usize::from(value(start + win - 1, i))] += 1;
            }
            scores.push(entropy(&hist, total));
        }
        best_position(n - win + 1, 1, |start, _| scores[start]).0
    }
}

/// Shannon entropy (bits) of a histogram holding `total` values.
fn entropy(hist: &[u32; 256], total: f64) -> f64 {
    hist.iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / total;
            -p * p.log2()
        })
        .sum()
}

/// Of the `nx`×`ny` window offsets, the one scoring highest, as remainder fractions (0.5 on an
/// axis without slack). Near-ties go to the offset closest to the centre, so a flat image keeps the
/// centred window.
fn best_position(nx: usize, ny: usize, score: impl Fn(usize, usize) -> f64) -> (f64, f64) {
    let centre = ((nx - 1) as f64 / 2.0, (ny - 1) as f64 / 2.0);
    let mut best = (f64::MIN, f64::MAX, (0usize, 0usize));
    for y in 0..ny {
        for x in 0..nx {
            let s = score(x, y);
            let distance = (x as f64 - centre.0).hypot(y as f64 - centre.1);
            let tolerance = 1e-9 * best.0.abs().max(1.0);
            if s > best.0 + tolerance || ((s - best.0).abs() <= tolerance && distance < best.1) {
                best = (s, distance, (x, y));
            }
        }
    }
    let fraction = |offset: usize, n: usize| {
        if n <= 1 {
            0.5
        } else {
            offset as f64 / (n - 1) as f64
        }
    };
    (fraction(best.2 .0, nx), fraction(best.2 .1, ny))
}

/// A summed-area table of three channels.
struct Integral {
    stride: usize,
    sums: Vec<[f64; 3]>,
}

impl Integral {
    fn new(cols: usize, rows: usize, value: impl Fn(usize) -> [f64; 3]) -> Integral {
        let stride = cols + 1;
        let mut sums = vec![[0f64; 3]; stride * (rows + 1)];
        for y in 0..rows {
            let mut row = [0f64; 3];
            for x in 0..cols {
                let v = value(y * cols + x);
                for k in 0..3 {
                    row[k] += v[k];
                    sums[(y + 1) * stride + x + 1][k] = sums[y * stride + x + 1][k] + row[k];
                }
            }
        }
        Integral { stride, sums }
    }

    /// Sum over the half-open rectangle [x0, x1) × [y0, y1), and its area.
    fn sum(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> ([f64; 3], f64) {
        let at = |x: usize, y: usize| self.sums[y * self.stride + x];
        let (a, b, c, d) = (at(x1, y1), at(x0, y1), at(x1, y0), at(x0, y0));
        (
            [0, 1, 2].map(|k| a[k] - b[k] - c[k] + d[k]),
            ((x1 - x0) * (y1 - y0)) as f64,
        )
    }
}

fn srgb_to_linear_table() -> [f32; 256] {
    std::array::from_fn(|i| icc::srgb_to_linear(i as f32 / 255.0))
}

/// Linear sRGB (D65) → CIELAB.
fn to_lab([r, g, b]: [f32; 3]) -> [f32; 3] {
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.950_47;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.088_83;
    let f = |t: f32| {
        if t > 0.008_856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` RGB raster from a pixel function.
    fn raster(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Raster {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(x, y));
            }
        }
        Raster::from_vec(w, h, false, data).unwrap()
    }

    /// A deterministic, low-contrast noise value in -20..=20 (xorshift on the coordinates).
    fn noise(x: u32, y: u32) -> i32 {
        let mut s = x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B) ^ 0x2545_F491;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s % 41) as i32 - 20
    }

    /// Left third: grey with low-contrast noise (much entropy, little saliency); right third: a
    /// saturated red square on flat grey (little entropy, very salient); flat grey between.
    fn noise_left_red_right() -> Raster {
        raster(600, 200, |x, y| {
            if x < 200 {
                let v = (128 + noise(x, y)) as u8;
                [v, v, v]
            } else if (450..530).contains(&x) && (60..140).contains(&y) {
                [220, 20, 30]
            } else {
                [128, 128, 128]
            }
        })
    }

    #[test]
    fn auto_is_saliency_and_entropy_is_entropy() {
        let img = noise_left_red_right();
        // A 200×200 window in a 600×200 image: 1/3 of the width, the full height.
        let (ax, ay) = anchor(Gravity::Auto, &img, 1.0 / 3.0, 1.0);
        let (ex, ey) = anchor(Gravity::Entropy, &img, 1.0 / 3.0, 1.0);
        // Window left edge = fraction × (600 − 200) px.
        let (auto_left, entropy_left) = (ax * 400.0, ex * 400.0);
        assert!(
            auto_left <= 450.0 && auto_left + 200.0 >= 530.0,
            "auto window at {auto_left} px misses the red square (450..530)"
        );
        assert!(
            entropy_left < 20.0,
            "entropy window at {entropy_left} px is not over the noise (0..200)"
        );
        assert_eq!((ay, ey), (0.5, 0.5), "no vertical slack: centred");
        // `face` has no model: the same window as `auto`.
        assert_eq!(anchor(Gravity::Face, &img, 1.0 / 3.0, 1.0), (ax, ay));
    }

    #[test]
    fn flat_images_keep_the_centred_window() {
        let img = raster(300, 300, |_, _| [90, 140, 200]);
        for g in [Gravity::Auto, Gravity::Entropy] {
            let (fx, fy) = anchor(g, &img, 0.5, 0.25);
            // Within one sample point of the centre (an odd slack has no exact middle).
            assert!(
                (fx - 0.5).abs() <= 1.0 / 150.0 && (fy - 0.5).abs() <= 1.0 / 225.0,
                "{g:?}: ({fx}, {fy})"
            );
        }
    }

    #[test]
    fn saliency_follows_the_subject_on_both_axes() {
        // A blue disc near the bottom-left corner of a flat beige field.
        let img = raster(400, 400, |x, y| {
            let (dx, dy) = (x as i32 - 70, y as i32 - 320);
            if dx * dx + dy * dy < 30 * 30 {
                [30, 60, 200]
            } else {
                [230, 220, 190]
            }
        });
        let (fx, fy) = anchor(Gravity::Auto, &img, 0.5, 0.5);
        let (left, top) = (fx * 200.0, fy * 200.0);
        assert!(
            left <= 40.0 && top + 200.0 >= 350.0,
            "window at ({left}, {top}) misses the disc"
        );
    }

    #[test]
    fn transparent_areas_are_not_interesting() {
        // RGBA: an opaque textured patch on the right, the rest fully transparent noise.
        let (w, h) = (300u32, 100u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = (128 + 4 * noise(x, y)) as u8;
                data.extend_from_slice(&[v, 255 - v, v / 2, if x >= 200 { 255 } else { 0 }]);
            }
        }
        let img = Raster::from_vec(w, h, true, data).unwrap();
        let (ex, _) = anchor(Gravity::Entropy, &img, 1.0 / 3.0, 1.0);
        assert!(
            ex > 0.95,
            "entropy window at {ex} is not over the opaque patch"
        );
    }
}
