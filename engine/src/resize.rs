//! `width`/`height`/`fit`/`gravity`: the geometry as pure functions, then one resample with
//! `fast_image_resize` (Lanczos3, SIMD, alpha premultiplied while filtering).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use std::num::NonZeroUsize;

use imgbind_wire::{Error, Fit, Gravity, GravityMode, Rgba, TransformStep};

use crate::raster::{buffer_len, try_alloc, Raster};
use crate::{composite, smartcrop, Limits};

/// What a resize does, in the coordinates of the source it was planned for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    /// Width of the source region that is kept (source pixels, may be fractional).
    pub(crate) crop_width: f64,
    /// Height of the source region that is kept.
    pub(crate) crop_height: f64,
    /// Size the kept region is scaled to.
    pub(crate) width: u32,
    /// Size the kept region is scaled to.
    pub(crate) height: u32,
    /// `fit: pad`: the canvas the scaled image is placed on.
    pub(crate) canvas: Option<(u32, u32)>,
    /// The size the whole source is scaled to. A fit that crops (cover, crop) cuts its
    /// `width`×`height` window out of this grid at a whole output pixel, as libvips does (it
    /// resizes, then extracts): the kept region's size and start are whole multiples of one
    /// output pixel. For the other fits, `width`×`height`.
    pub(crate) grid: (u32, u32),
}

impl Plan {
    /// The smallest fraction of the source's resolution that still yields the result without
    /// enlarging: what a shrink-on-load decoder may go down to.
    pub(crate) fn min_scale(&self) -> f64 {
        (f64::from(self.width) / self.crop_width).max(f64::from(self.height) / self.crop_height)
    }
}

fn round_px(v: f64) -> u32 {
    v.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Plans a resize of a `src_width`×`src_height` image; `None` when neither width nor height is set.
///
/// With both sides given: scale-down fits inside and never enlarges; contain fits inside and may
/// enlarge; cover fills the box and crops the overflow; crop is cover that never enlarges (a smaller
/// image is only cut where it overflows the box); pad is contain on a canvas of exactly the box;
/// squeeze stretches to the box. With one side given the other follows the aspect ratio, and only
/// scale-down and crop refuse to enlarge.
pub(crate) fn plan(
    src_width: u32,
    src_height: u32,
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
) -> Option<Plan> {
    let (sw, sh) = (f64::from(src_width), f64::from(src_height));
    let full = |w: u32, h: u32| Plan {
        crop_width: sw,
        crop_height: sh,
        width: w,
        height: h,
        canvas: None,
        grid: (w, h),
    };
    let (bw, bh) = match (width, height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => {
            let h = round_px(sh * f64::from(w) / sw);
            let never_enlarge = matches!(fit, Fit::ScaleDown | Fit::Crop);
            return Some(if never_enlarge && w > src_width {
                full(src_width, src_height)
            } else {
                full(w, h)
            });
        }
        (None, Some(h)) => {
            let w = round_px(sw * f64::from(h) / sh);
            let never_enlarge = matches!(fit, Fit::ScaleDown | Fit::Crop);
            return Some(if never_enlarge && h > src_height {
                full(src_width, src_height)
            } else {
                full(w, h)
            });
        }
        (None, None) => return None,
    };
    let (fw, fh) = (f64::from(bw), f64::from(bh));
    let inside = (fw / sw).min(fh / sh);
    let outside = (fw / sw).max(fh / sh);
    Some(match fit {
        Fit::ScaleDown => {
            let s = inside.min(1.0);
            full(round_px(sw * s), round_px(sh * s))
        }
        Fit::Contain => full(round_px(sw * inside), round_px(sh * inside)),
        Fit::Pad => Plan {
            canvas: Some((bw, bh)),
            ..full(round_px(sw * inside), round_px(sh * inside))
        },
        Fit::Squeeze => full(bw, bh),
        // Scale the whole source to whole pixels so that it covers the box (crop: without
        // enlarging), then keep the box's worth of those pixels. The scale along the cut side is
        // that of the whole-pixel grid (sharp's too), a hair off the other side's.
        Fit::Cover | Fit::Crop => {
            let s = if fit == Fit::Crop {
                outside.min(1.0)
            } else {
                outside
            };
            let grid = (round_px(sw * s), round_px(sh * s));
            let (w, h) = (bw.min(grid.0), bh.min(grid.1));
            Plan {
                crop_width: (f64::from(w) * sw / f64::from(grid.0)).min(sw),
                crop_height: (f64::from(h) * sh / f64::from(grid.1)).min(sh),
                width: w,
                height: h,
                canvas: None,
                grid,
            }
        }
    })
}

/// Where a crop window sits along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Anchor {
    /// 0 = start, 1 = end: the fraction of the cut-away remainder that goes before the window.
    Remainder(f64),
    /// The window is centred on this fraction of the source, kept inside it.
    BoxCenter(f64),
}

/// The start of a `window`-long crop in a `length`-long source.
pub(crate) fn place(length: f64, window: f64, anchor: Anchor) -> f64 {
    let slack = (length - window).max(0.0);
    match anchor {
        Anchor::Remainder(f) => f * slack,
        Anchor::BoxCenter(f) => (f * length - window / 2.0).clamp(0.0, slack),
    }
}

/// The start, in pixels of a `length`-long source, of a `window`-pixel cut from the source scaled
/// to `grid` pixels: [`place`] on the grid, rounded to a whole output pixel (half up, so an odd
/// remainder centred leaves the extra pixel before the window: sharp's `(grid - window + 1) / 2`).
pub(crate) fn place_on_grid(length: f64, grid: u32, window: u32, anchor: Anchor) -> f64 {
    let grid_f = f64::from(grid);
    place(grid_f, f64::from(window), anchor).round() * length / grid_f
}

/// Horizontal and vertical anchors for a gravity. `auto` (saliency), `entropy` and `face` (no face
/// model is shipped: `auto`) look at the pixels, see [`smartcrop`].
fn anchors(
    gravity: Gravity,
    src: &Raster,
    window: (f64, f64),
    logical: (f64, f64),
) -> (Anchor, Anchor) {
    use Anchor::Remainder as R;
    match gravity {
        Gravity::Center => (R(0.5), R(0.5)),
        Gravity::Left => (R(0.0), R(0.5)),
        Gravity::Right => (R(1.0), R(0.5)),
        Gravity::Top => (R(0.5), R(0.0)),
        Gravity::Bottom => (R(0.5), R(1.0)),
        Gravity::Point { x, y, mode } => match mode {
            GravityMode::Remainder => (R(x), R(y)),
            GravityMode::BoxCenter => (Anchor::BoxCenter(x), Anchor::BoxCenter(y)),
        },
        Gravity::Auto | Gravity::Entropy | Gravity::Face => {
            let (fx, fy) =
                smartcrop::anchor(gravity, src, window.0 / logical.0, window.1 / logical.1);
            (R(fx), R(fy))
        }
    }
}

/// For the pixel-dependent gravities (`auto`, `entropy`, `face`) on a step that crops: the point
/// they pick on `src`, as a remainder gravity giving the same crop. Animations compute it on the
/// first frame and reuse it, so every frame is cut at the same place. `None` for other gravities
/// and steps that do not crop.
pub(crate) fn resolved_gravity(src: &Raster, step: &TransformStep) -> Option<Gravity> {
    let gravity = step.gravity?;
    if !matches!(gravity, Gravity::Auto | Gravity::Entropy | Gravity::Face) {
        return None;
    }
    let (lw, lh) = src.logical_size();
    let plan = plan(
        lw,
        lh,
        step.width,
        step.height,
        step.fit.unwrap_or(Fit::ScaleDown),
    )?;
    let (lwf, lhf) = (f64::from(lw), f64::from(lh));
    if plan.crop_width >= lwf && plan.crop_height >= lhf {
        return None;
    }
    let (x, y) = smartcrop::anchor(gravity, src, plan.crop_width / lwf, plan.crop_height / lhf);
    Some(Gravity::Point {
        x,
        y,
        mode: GravityMode::Remainder,
    })
}

/// Applies the step's width/height/fit/gravity (and `background` for `pad`). A shrunk-on-load
/// source is planned at its logical size so the result is identical to a full decode.
pub(crate) fn apply(src: Raster, step: &TransformStep, limits: &Limits) -> Result<Raster, Error> {
    let (lw, lh) = src.logical_size();
    let Some(plan) = plan(
        lw,
        lh,
        step.width,
        step.height,
        step.fit.unwrap_or(Fit::ScaleDown),
    ) else {
        return Ok(src);
    };
    limits.check_output(plan.width, plan.height)?;
    if let Some((cw, ch)) = plan.canvas {
        limits.check_output(cw, ch)?;
    }
    let (lwf, lhf) = (f64::from(lw), f64::from(lh));
    let gravity = step.gravity.unwrap_or(Gravity::Center);
    let cropping = plan.crop_width < lwf || plan.crop_height < lhf;
    let (ax, ay) = if cropping {
        anchors(
            gravity,
            &src,
            (plan.crop_width, plan.crop_height),
            (lwf, lhf),
        )
    } else {
        (Anchor::Remainder(0.5), Anchor::Remainder(0.5))
    };
    // Logical → actual pixel coordinates (the identity unless the decoder shrank the image).
    let (ox, oy, kx, ky) = src
        .logical
        .map_or((0.0, 0.0, 1.0, 1.0), |l| (l.x, l.y, l.scale_x, l.scale_y));
    let crop = CropBox {
        x: ox + place_on_grid(lwf, plan.grid.0, plan.width, ax) * kx,
        y: oy + place_on_grid(lhf, plan.grid.1, plan.height, ay) * ky,
        width: plan.crop_width * kx,
        height: plan.crop_height * ky,
    };
    let scaled = resample(&src, crop, plan.width, plan.height, limits.threads)?;
    drop(src);
    let Some((cw, ch)) = plan.canvas else {
        return Ok(scaled);
    };
    // Pad: gravity places the image on the canvas (centred by default; detail-based gravities
    // have nothing to choose between, so they centre too).
    let (px, py) = match gravity {
        Gravity::Left => (0.0, 0.5),
        Gravity::Right => (1.0, 0.5),
        Gravity::Top => (0.5, 0.0),
        Gravity::Bottom => (0.5, 1.0),
        Gravity::Point { x, y, .. } => (x, y),
        Gravity::Center | Gravity::Auto | Gravity::Entropy | Gravity::Face => (0.5, 0.5),
    };
    let background = step.background.unwrap_or(Rgba::WHITE);
    let has_alpha = background.a != 255;
    let mut canvas = Raster::filled(cw, ch, has_alpha, background, limits)?;
    // An odd remainder puts the extra pixel after the image (right/below), as libvips does.
    let x = (px * f64::from(cw.saturating_sub(scaled.width))).floor() as i64;
    let y = (py * f64::from(ch.saturating_sub(scaled.height))).floor() as i64;
    composite::over(&mut canvas, &scaled, x, y, 1.0);
    Ok(canvas)
}

/// A source rectangle in (fractional) pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CropBox {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
    pub(crate) height: f64,
}

/// Resamples `crop` of `src` to `width`×`height` on `threads` threads (in stripes: the same
/// pixels whatever the number, see `threads.rs`). A crop that needs no scaling is copied.
pub(crate) fn resample(
    src: &Raster,
    crop: CropBox,
    width: u32,
    height: u32,
    threads: NonZeroUsize,
) -> Result<Raster, Error> {
    let (sw, sh) = (f64::from(src.width), f64::from(src.height));
    // Rounding can push the box a hair outside the image; the resizer rejects that.
    let x = crop.x.clamp(0.0, sw);
    let y = crop.y.clamp(0.0, sh);
    let cw = crop.width.min(sw - x).max(f64::MIN_POSITIVE);
    let ch = crop.height.min(sh - y).max(f64::MIN_POSITIVE);
    let integral = |v: f64| (v - v.round()).abs() < 1e-9;
    if [x, y, cw, ch].into_iter().all(integral)
        && cw.round() as u32 == width
        && ch.round() as u32 == height
    {
        if width == src.width && height == src.height {
            let mut same = src.clone();
            same.logical = None;
            return Ok(same);
        }
        let rect = crate::geometry::Rect {
            x: x.round() as u32,
            y: y.round() as u32,
            width,
            height,
        };
        return crate::geometry::crop(src, rect);
    }
    let pixel_type = if src.has_alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let source = ImageRef::new(src.width, src.height, &src.data, pixel_type)
        .map_err(|e| Error::internal(format!("resize failed: {e}")))?;
    let buffer = try_alloc(buffer_len(width, height, src.channels())?)?;
    let mut target = Image::from_vec_u8(width, height, buffer, pixel_type)
        .map_err(|e| Error::internal(format!("resize failed: {e}")))?;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(x, y, cw, ch);
    crate::threads::run(threads, || {
        Resizer::new().resize(&source, &mut target, &options)
    })
    .map_err(|e| Error::internal(format!("resize failed: {e}")))?;
    Raster::from_vec(width, height, src.has_alpha, target.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(src: (u32, u32), w: Option<u32>, h: Option<u32>, fit: Fit) -> (u32, u32) {
        let p = plan(src.0, src.1, w, h, fit).unwrap();
        match p.canvas {
            Some(c) => c,
            None => (p.width, p.height),
        }
    }

    #[test]
    fn fit_dimension_table() {
        use Fit::*;
        let big = (400, 200); // shrinking into a 100x100 box
        let small = (40, 20); // enlarging into a 100x100 box
        let b = (Some(100), Some(100));
        let table = [
            (big, ScaleDown, (100, 50)),
            (small, ScaleDown, (40, 20)),
            (big, Contain, (100, 50)),
            (small, Contain, (100, 50)),
            (big, Cover, (100, 100)),
            (small, Cover, (100, 100)),
            (big, Crop, (100, 100)),
            (small, Crop, (40, 20)),
            ((400, 50), Crop, (100, 50)), // only the overflowing side is cut
            (big, Pad, (100, 100)),
            (small, Pad, (100, 100)),
            (big, Squeeze, (100, 100)),
            (small, Squeeze, (100, 100)),
        ];
        for (src, fit, want) in table {
            assert_eq!(dims(src, b.0, b.1, fit), want, "{src:?} {fit:?}");
        }
        // Pad's inner image keeps the aspect ratio.
        let pad = plan(400, 200, Some(100), Some(100), Pad).unwrap();
        assert_eq!((pad.width, pad.height), (100, 50));
        // One side given: aspect kept; only scale-down and crop refuse to enlarge.
        assert_eq!(dims((400, 200), Some(100), None, ScaleDown), (100, 50));
        assert_eq!(dims((400, 200), None, Some(50), Cover), (100, 50));
        assert_eq!(dims((40, 20), Some(100), None, ScaleDown), (40, 20));
        assert_eq!(dims((40, 20), Some(100), None, Crop), (40, 20));
        assert_eq!(dims((40, 20), Some(100), None, Contain), (100, 50));
        assert_eq!(dims((40, 20), None, Some(60), Squeeze), (120, 60));
        assert_eq!(dims((6028, 3391), Some(800), None, ScaleDown), (800, 450));
        assert!(plan(10, 10, None, None, Cover).is_none());
    }

    #[test]
    fn cover_and_crop_keep_the_right_region() {
        let cover = plan(400, 200, Some(100), Some(100), Fit::Cover).unwrap();
        assert_eq!((cover.crop_width, cover.crop_height), (200.0, 200.0));
        assert_eq!(cover.min_scale(), 0.5);
        // Crop never enlarges: a 40x20 image in a 10x100 box keeps 10x20 source pixels.
        let crop = plan(40, 20, Some(10), Some(100), Fit::Crop).unwrap();
        assert_eq!((crop.width, crop.height), (10, 20));
        assert_eq!((crop.crop_width, crop.crop_height), (10.0, 20.0));
        // The cut is whole pixels of the scaled grid, as libvips cuts after resizing: 4000×2250
        // covers 500×500 at 889×500, so 500/889 of the width is kept and the centred window
        // starts 195 grid pixels in (sharp: (889 - 500 + 1) / 2), not at 194.4.
        let cover = plan(4000, 2250, Some(500), Some(500), Fit::Cover).unwrap();
        assert_eq!(cover.grid, (889, 500));
        assert_eq!(cover.crop_width, 500.0 * 4000.0 / 889.0);
        assert_eq!(cover.crop_height, 2250.0);
        let x = place_on_grid(4000.0, 889, 500, Anchor::Remainder(0.5));
        assert_eq!(x, 195.0 * 4000.0 / 889.0);
        assert_eq!(place_on_grid(4000.0, 889, 500, Anchor::Remainder(0.0)), 0.0);
        assert_eq!(
            place_on_grid(4000.0, 889, 500, Anchor::Remainder(1.0)),
            389.0 * 4000.0 / 889.0
        );
    }

    #[test]
    fn gravity_offsets() {
        assert_eq!(place(400.0, 200.0, Anchor::Remainder(0.5)), 100.0);
        assert_eq!(place(400.0, 200.0, Anchor::Remainder(0.0)), 0.0);
        assert_eq!(place(400.0, 200.0, Anchor::Remainder(1.0)), 200.0);
        assert_eq!(place(400.0, 200.0, Anchor::Remainder(0.25)), 50.0);
        assert_eq!(place(400.0, 200.0, Anchor::BoxCenter(0.5)), 100.0);
        assert_eq!(place(400.0, 200.0, Anchor::BoxCenter(0.9)), 200.0); // kept inside
        assert_eq!(place(400.0, 100.0, Anchor::BoxCenter(0.25)), 50.0);
        assert_eq!(place(100.0, 100.0, Anchor::Remainder(0.7)), 0.0);
    }

    /// 8x2 RGB, black except column `bright` which is white.
    fn stripe(bright: u32) -> Raster {
        let mut data = vec![0u8; 8 * 2 * 3];
        for y in 0..2 {
            let i = ((y * 8 + bright) * 3) as usize;
            data[i..i + 3].copy_from_slice(&[255, 255, 255]);
        }
        Raster::from_vec(8, 2, false, data).unwrap()
    }

    #[test]
    fn gravity_crops_pick_the_named_side() {
        let l = Limits::default();
        let crop = |g: Gravity, bright: u32| {
            let step = TransformStep {
                width: Some(2),
                height: Some(2),
                fit: Some(Fit::Cover),
                gravity: Some(g),
                ..TransformStep::default()
            };
            apply(stripe(bright), &step, &l).unwrap()
        };
        let left = crop(Gravity::Left, 0);
        assert_eq!(left.pixel(0, 0)[0], 255);
        assert_eq!(left.pixel(1, 0)[0], 0);
        let right = crop(Gravity::Right, 7);
        assert_eq!(right.pixel(1, 0)[0], 255);
        // Pixel-based gravities find the only bright column, wherever it is.
        for g in [Gravity::Entropy, Gravity::Auto] {
            let found = crop(g, 5);
            assert!(found.data.contains(&255), "{g:?} crop missed the detail");
        }
        let point = crop(
            Gravity::Point {
                x: 0.75,
                y: 0.5,
                mode: GravityMode::BoxCenter,
            },
            6,
        );
        assert_eq!(point.pixel(1, 0)[0], 255); // window 5..7 centred on 6
    }

    #[test]
    fn pad_fills_with_background() {
        let step = TransformStep {
            width: Some(8),
            height: Some(8),
            fit: Some(Fit::Pad),
            ..TransformStep::default()
        };
        let out = apply(stripe(0), &step, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (8, 8));
        assert_eq!(out.pixel(4, 0), [255, 255, 255, 255]); // white pad above
        assert_eq!(out.pixel(4, 4)[..3], [0, 0, 0]); // the image in the middle
        let odd = TransformStep {
            height: Some(9),
            ..step
        };
        // 7 rows to share: 3 above, 4 below.
        let out = apply(stripe(0), &odd, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (8, 9));
        assert_eq!(out.pixel(4, 2), [255, 255, 255, 255]);
        assert_eq!(out.pixel(4, 3)[..3], [0, 0, 0]);
        assert_eq!(out.pixel(4, 4)[..3], [0, 0, 0]);
        assert_eq!(out.pixel(4, 5), [255, 255, 255, 255]);
    }

    /// A textured `width`×`height` image (alpha varying too), from a fixed pseudo-random sequence.
    fn noise(width: u32, height: u32, alpha: bool) -> Raster {
        let channels = if alpha { 4 } else { 3 };
        let mut state = 0x2545_f491_u32;
        let data = (0..width * height * channels)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Smooth gradients plus noise, so every filter tap matters.
                ((i / channels % width) as u8 / 2).wrapping_add((state >> 27) as u8)
            })
            .collect();
        Raster::from_vec(width, height, alpha, data).unwrap()
    }

    #[test]
    fn resample_gives_the_same_pixels_on_any_number_of_threads() {
        let threads = |n: usize| NonZeroUsize::new(n).unwrap();
        for alpha in [false, true] {
            let src = noise(1501, 997, alpha);
            let cases = [
                // Down, both ways; down with a fractional crop; up; down in width only.
                (
                    CropBox {
                        x: 0.0,
                        y: 0.0,
                        width: 1501.0,
                        height: 997.0,
                    },
                    800,
                    531,
                ),
                (
                    CropBox {
                        x: 10.25,
                        y: 33.5,
                        width: 900.75,
                        height: 600.5,
                    },
                    451,
                    300,
                ),
                (
                    CropBox {
                        x: 0.0,
                        y: 0.0,
                        width: 1501.0,
                        height: 997.0,
                    },
                    2200,
                    1461,
                ),
                (
                    CropBox {
                        x: 0.0,
                        y: 0.0,
                        width: 1501.0,
                        height: 997.0,
                    },
                    640,
                    997,
                ),
            ];
            for (crop, width, height) in cases {
                let one = resample(&src, crop, width, height, threads(1)).unwrap();
                for n in [2, 3, 4] {
                    let many = resample(&src, crop, width, height, threads(n)).unwrap();
                    assert!(
                        one.data == many.data,
                        "{n} threads changed the pixels ({width}x{height}, alpha {alpha})"
                    );
                }
            }
        }
    }

    #[test]
    fn resample_changes_size_and_keeps_flat_colour() {
        let src = Raster::filled(
            50,
            30,
            true,
            Rgba {
                r: 10,
                g: 200,
                b: 30,
                a: 255,
            },
            &Limits::default(),
        )
        .unwrap();
        let full = CropBox {
            x: 0.0,
            y: 0.0,
            width: 50.0,
            height: 30.0,
        };
        let out = resample(&src, full, 7, 5, NonZeroUsize::MIN).unwrap();
        assert_eq!((out.width, out.height, out.data.len()), (7, 5, 7 * 5 * 4));
        assert_eq!(out.pixel(3, 2), [10, 200, 30, 255]);
    }
}
