//! `draw()`: composite one image onto another with opacity, position, tiling and a Porter-Duff mode.
//! The target keeps its size; blending is done on premultiplied values.

use imgbind_wire::{CompositeMode, DrawStep, Error, Repeat};

use crate::raster::{div255, Raster};

/// Draws `overlay` onto `target` as `step` says and returns the target.
pub(crate) fn draw(target: Raster, overlay: &Raster, step: &DrawStep) -> Result<Raster, Error> {
    let (tw, th) = (i64::from(target.width), i64::from(target.height));
    let (ow, oh) = (i64::from(overlay.width), i64::from(overlay.height));
    let (x, y) = position(step, (tw, th), (ow, oh));
    let repeat_x = matches!(step.repeat, Repeat::X | Repeat::Both);
    let repeat_y = matches!(step.repeat, Repeat::Y | Repeat::Both);
    // Tiles start at the first multiple of the overlay size at or before the target's edge.
    let xs = tile_starts(x, ow, tw, repeat_x);
    let ys = tile_starts(y, oh, th, repeat_y);
    let opacity = step.opacity.clamp(0.0, 1.0) as f32;
    let mode = step.composite;

    let mut target = target;
    if mode == CompositeMode::Over {
        for &ty in &ys {
            for &tx in &xs {
                over(&mut target, overlay, tx, ty, opacity);
            }
        }
        return Ok(target);
    }
    // Modes other than `over` can make an opaque target transparent (in, out, xor), so they work
    // on RGBA; atop and lighter keep an opaque target opaque, which `drop_alpha_if` restores.
    let was_opaque = !target.has_alpha;
    let mut target = target.into_rgba()?;
    for &ty in &ys {
        for &tx in &xs {
            blend(&mut target, overlay, tx, ty, opacity, mode);
        }
    }
    if matches!(mode, CompositeMode::In | CompositeMode::Out) {
        // Where there is no source at all, `in` and `out` leave nothing of the destination.
        let cover_x = if repeat_x {
            (0, tw)
        } else {
            (x.max(0), (x + ow).min(tw))
        };
        let cover_y = if repeat_y {
            (0, th)
        } else {
            (y.max(0), (y + oh).min(th))
        };
        clear_outside(&mut target, cover_x, cover_y);
    }
    if was_opaque && matches!(mode, CompositeMode::Atop | CompositeMode::Lighter) {
        return drop_alpha(target);
    }
    Ok(target)
}

/// Where `step` puts the top-left corner of an `overlay`-sized layer on a `target`-sized image.
/// No position on an axis centres the layer on it. The planner (`plan.rs`) places layers with
/// this too, so what it cuts is exactly what the draw would cover.
pub(crate) fn position(step: &DrawStep, target: (i64, i64), overlay: (i64, i64)) -> (i64, i64) {
    let ((tw, th), (ow, oh)) = (target, overlay);
    let x = match (step.left, step.right) {
        (Some(left), _) => left,
        (None, Some(right)) => tw - ow - right,
        (None, None) => (tw - ow) / 2,
    };
    let y = match (step.top, step.bottom) {
        (Some(top), _) => top,
        (None, Some(bottom)) => th - oh - bottom,
        (None, None) => (th - oh) / 2,
    };
    (x, y)
}

fn tile_starts(pos: i64, size: i64, extent: i64, repeat: bool) -> Vec<i64> {
    if !repeat || size <= 0 {
        return vec![pos];
    }
    let r = pos.rem_euclid(size);
    let first = if r == 0 { 0 } else { r - size };
    (0..)
        .map(|k| first + k * size)
        .take_while(|&p| p < extent)
        .collect()
}

/// The overlapping rectangle of an overlay at (x, y): (target x0, target y0, overlay x0, overlay y0, w, h).
fn overlap(target: &Raster, overlay: &Raster, x: i64, y: i64) -> Option<[usize; 6]> {
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + i64::from(overlay.width)).min(i64::from(target.width));
    let y1 = (y + i64::from(overlay.height)).min(i64::from(target.height));
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    Some([
        x0 as usize,
        y0 as usize,
        (x0 - x) as usize,
        (y0 - y) as usize,
        (x1 - x0) as usize,
        (y1 - y0) as usize,
    ])
}

/// Source-over at (x, y) with opacity: the common watermark case, in integer arithmetic.
pub(crate) fn over(target: &mut Raster, overlay: &Raster, x: i64, y: i64, opacity: f32) {
    let Some([tx, ty, ox, oy, w, h]) = overlap(target, overlay, x, y) else {
        return;
    };
    let (tc, oc) = (target.channels(), overlay.channels());
    let (tstride, ostride) = (target.stride(), overlay.stride());
    let op = (opacity * 255.0).round() as u32;
    for row in 0..h {
        let trow = &mut target.data[(ty + row) * tstride + tx * tc..][..w * tc];
        let orow = &overlay.data[(oy + row) * ostride + ox * oc..][..w * oc];
        for (d, s) in trow.chunks_exact_mut(tc).zip(orow.chunks_exact(oc)) {
            let sa = u32::from(div255(if oc == 4 { u32::from(s[3]) } else { 255 } * op));
            if sa == 0 {
                continue;
            }
            if tc == 3 {
                for k in 0..3 {
                    d[k] = div255(u32::from(s[k]) * sa + u32::from(d[k]) * (255 - sa));
                }
            } else {
                // Straight alpha on both sides: premultiply, blend, divide back out.
                let da = u32::from(d[3]);
                let ra = sa * 255 + da * (255 - sa); // ×255
                if ra == 0 {
                    continue;
                }
                for k in 0..3 {
                    let premul = u32::from(s[k]) * sa * 255 + u32::from(d[k]) * da * (255 - sa);
                    d[k] = ((premul + ra / 2) / ra).min(255) as u8;
                }
                d[3] = div255(ra);
            }
        }
    }
}

/// The general Porter-Duff blend on an RGBA target, in floating point.
fn blend(target: &mut Raster, overlay: &Raster, x: i64, y: i64, opacity: f32, mode: CompositeMode) {
    let Some([tx, ty, ox, oy, w, h]) = overlap(target, overlay, x, y) else {
        return;
    };
    let oc = overlay.channels();
    let (tstride, ostride) = (target.stride(), overlay.stride());
    for row in 0..h {
        let trow = &mut target.data[(ty + row) * tstride + tx * 4..][..w * 4];
        let orow = &overlay.data[(oy + row) * ostride + ox * oc..][..w * oc];
        for (d, s) in trow.chunks_exact_mut(4).zip(orow.chunks_exact(oc)) {
            let sa = if oc == 4 {
                f32::from(s[3]) / 255.0
            } else {
                1.0
            } * opacity;
            let da = f32::from(d[3]) / 255.0;
            let (fa, fb) = match mode {
                CompositeMode::Over => (1.0, 1.0 - sa),
                CompositeMode::In => (da, 0.0),
                CompositeMode::Atop => (da, 1.0 - sa),
                CompositeMode::Out => (1.0 - da, 0.0),
                CompositeMode::Xor => (1.0 - da, 1.0 - sa),
                CompositeMode::Lighter => (1.0, 1.0),
            };
            let ra = (sa * fa + da * fb).min(1.0);
            for k in 0..3 {
                let premul = f32::from(s[k]) * sa * fa + f32::from(d[k]) * da * fb;
                d[k] = if ra > 0.0 {
                    (premul / ra).round().clamp(0.0, 255.0) as u8
                } else {
                    0
                };
            }
            d[3] = (ra * 255.0).round() as u8;
        }
    }
}

fn clear_outside(target: &mut Raster, (x0, x1): (i64, i64), (y0, y1): (i64, i64)) {
    let w = i64::from(target.width);
    for (y, row) in target.data.chunks_exact_mut(w as usize * 4).enumerate() {
        let y = y as i64;
        for (x, p) in row.chunks_exact_mut(4).enumerate() {
            let x = x as i64;
            if !(x0..x1).contains(&x) || !(y0..y1).contains(&y) {
                p.copy_from_slice(&[0, 0, 0, 0]);
            }
        }
    }
}

fn drop_alpha(raster: Raster) -> Result<Raster, Error> {
    let mut data = Vec::new();
    data.try_reserve_exact(raster.data.len() / 4 * 3)
        .map_err(|_| Error::new(imgbind_wire::ErrorCode::ProcessingLimit, "Out of memory"))?;
    for p in raster.data.chunks_exact(4) {
        data.extend_from_slice(&p[..3]);
    }
    Raster::from_vec(raster.width, raster.height, false, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use imgbind_wire::Rgba;

    const RED: Rgba = Rgba {
        r: 255,
        g: 0,
        b: 0,
        a: 255,
    };

    fn solid(w: u32, h: u32, alpha: bool, c: Rgba) -> Raster {
        Raster::filled(w, h, alpha, c, &Limits::default()).unwrap()
    }

    fn step() -> DrawStep {
        DrawStep {
            draw_image_index: 1,
            target_image_index: 0,
            opacity: 1.0,
            repeat: Repeat::No,
            composite: CompositeMode::Over,
            top: None,
            left: None,
            bottom: None,
            right: None,
        }
    }

    fn red_cells(r: &Raster) -> Vec<(u32, u32)> {
        let mut cells = Vec::new();
        for y in 0..r.height {
            for x in 0..r.width {
                if r.pixel(x, y)[..3] == [255, 0, 0] {
                    cells.push((x, y));
                }
            }
        }
        cells
    }

    #[test]
    fn positions_default_to_centre_and_follow_edges() {
        let target = || solid(6, 4, false, Rgba::WHITE);
        let dot = solid(2, 2, false, RED);
        let centred = draw(target(), &dot, &step()).unwrap();
        assert_eq!((centred.width, centred.height), (6, 4));
        assert_eq!(red_cells(&centred), vec![(2, 1), (3, 1), (2, 2), (3, 2)]);
        let corner = DrawStep {
            bottom: Some(0),
            right: Some(1),
            ..step()
        };
        let out = draw(target(), &dot, &corner).unwrap();
        assert_eq!(red_cells(&out), vec![(3, 2), (4, 2), (3, 3), (4, 3)]);
        let clipped = DrawStep {
            top: Some(-1),
            left: Some(-1),
            ..step()
        };
        assert_eq!(
            red_cells(&draw(target(), &dot, &clipped).unwrap()),
            vec![(0, 0)]
        );
        let tiled = DrawStep {
            repeat: Repeat::X,
            top: Some(0),
            left: Some(1),
            ..step()
        };
        let out = draw(target(), &solid(1, 1, false, RED), &tiled).unwrap();
        assert_eq!(red_cells(&out).len(), 6);
        assert!(red_cells(&out).iter().all(|&(_, y)| y == 0));
    }

    #[test]
    fn opacity_and_alpha_blend_premultiplied() {
        let half = DrawStep {
            opacity: 0.5,
            ..step()
        };
        let out = draw(
            solid(1, 1, false, Rgba::WHITE),
            &solid(1, 1, false, RED),
            &half,
        )
        .unwrap();
        assert_eq!(out.pixel(0, 0), [255, 127, 127, 255]);
        // Transparent overlay changes nothing.
        let clear = Rgba { a: 0, ..RED };
        let out = draw(
            solid(1, 1, false, Rgba::WHITE),
            &solid(1, 1, true, clear),
            &step(),
        )
        .unwrap();
        assert_eq!(out.pixel(0, 0), [255, 255, 255, 255]);
        // Half-transparent red over fully transparent: colour stays red, alpha is the source's.
        let translucent = Rgba { a: 128, ..RED };
        let empty = Rgba::TRANSPARENT;
        let out = draw(
            solid(1, 1, true, empty),
            &solid(1, 1, true, translucent),
            &step(),
        )
        .unwrap();
        assert_eq!(out.pixel(0, 0), [255, 0, 0, 128]);
    }

    #[test]
    fn porter_duff_modes() {
        let with = |mode| DrawStep {
            composite: mode,
            left: Some(0),
            top: Some(0),
            ..step()
        };
        let target = || solid(2, 1, false, Rgba::WHITE);
        let dot = solid(1, 1, false, RED);
        let inside = draw(target(), &dot, &with(CompositeMode::In)).unwrap();
        assert_eq!(inside.pixel(0, 0), [255, 0, 0, 255]);
        assert_eq!(inside.pixel(1, 0)[3], 0);
        let out = draw(target(), &dot, &with(CompositeMode::Out)).unwrap();
        assert_eq!(out.pixel(0, 0)[3], 0);
        let atop = draw(target(), &dot, &with(CompositeMode::Atop)).unwrap();
        assert!(!atop.has_alpha);
        assert_eq!(atop.pixel(0, 0), [255, 0, 0, 255]);
        assert_eq!(atop.pixel(1, 0), [255, 255, 255, 255]);
        let grey = Rgba {
            r: 100,
            g: 100,
            b: 100,
            a: 255,
        };
        let lighter = draw(
            solid(1, 1, false, grey),
            &solid(1, 1, false, grey),
            &with(CompositeMode::Lighter),
        )
        .unwrap();
        assert_eq!(lighter.pixel(0, 0), [200, 200, 200, 255]);
        let xor = draw(target(), &dot, &with(CompositeMode::Xor)).unwrap();
        assert_eq!(xor.pixel(0, 0)[3], 0);
        assert_eq!(xor.pixel(1, 0), [255, 255, 255, 255]);
    }

    #[test]
    fn tiles_cover_negative_offsets() {
        assert_eq!(tile_starts(3, 2, 6, true), vec![-1, 1, 3, 5]);
        assert_eq!(tile_starts(0, 2, 6, true), vec![0, 2, 4]);
        assert_eq!(tile_starts(-3, 2, 6, true), vec![-1, 1, 3, 5]);
        assert_eq!(tile_starts(3, 2, 6, false), vec![3]);
    }
}
