//! Pixel-exact geometry: rotate by quarter turns, flip, trim edges, add a border.

use imgbind_wire::{Border, Error, Flip, Rotate, Trim};

use crate::raster::{buffer_len, try_alloc, Logical, Raster};
use crate::Limits;

/// Rotates clockwise by a quarter-turn multiple. A shrunk-on-load raster keeps its logical size,
/// turned the same way.
pub(crate) fn rotate(src: Raster, rotation: Rotate, limits: &Limits) -> Result<Raster, Error> {
    let (w, h) = (src.width as usize, src.height as usize);
    let c = src.channels();
    match rotation {
        Rotate::R0 => Ok(src),
        Rotate::R180 => {
            let mut out = src;
            out.logical = out.logical.map(|l| l.rotated(2, out.width, out.height));
            // Reversing the pixel order of the whole buffer is a 180° turn.
            let pixels = out.data.len() / c;
            for i in 0..pixels / 2 {
                let j = pixels - 1 - i;
                for k in 0..c {
                    out.data.swap(i * c + k, j * c + k);
                }
            }
            Ok(out)
        }
        Rotate::R90 | Rotate::R270 => {
            limits.check_output(src.height, src.width)?;
            let mut data = try_alloc(buffer_len(src.height, src.width, c)?)?;
            let clockwise = rotation == Rotate::R90;
            // Walk the source in row-major order in tiles so both buffers stay cache-friendly.
            const TILE: usize = 64;
            for ty in (0..h).step_by(TILE) {
                for tx in (0..w).step_by(TILE) {
                    for y in ty..(ty + TILE).min(h) {
                        for x in tx..(tx + TILE).min(w) {
                            // Output is h wide, w tall.
                            let (ox, oy) = if clockwise {
                                (h - 1 - y, x)
                            } else {
                                (y, w - 1 - x)
                            };
                            let s = (y * w + x) * c;
                            let d = (oy * h + ox) * c;
                            data[d..d + c].copy_from_slice(&src.data[s..s + c]);
                        }
                    }
                }
            }
            Ok(Raster {
                width: src.height,
                height: src.width,
                has_alpha: src.has_alpha,
                data,
                logical: src
                    .logical
                    .map(|l| l.rotated(if clockwise { 1 } else { 3 }, src.width, src.height)),
            })
        }
    }
}

/// Mirrors horizontally, vertically or both.
pub(crate) fn flip(src: Raster, flip: Flip) -> Result<Raster, Error> {
    let mut out = src;
    out.logical = out.logical.map(|l| {
        l.flipped(
            matches!(flip, Flip::Horizontal | Flip::Both),
            matches!(flip, Flip::Vertical | Flip::Both),
            out.width,
            out.height,
        )
    });
    let c = out.channels();
    let stride = out.stride();
    let (w, h) = (out.width as usize, out.height as usize);
    if matches!(flip, Flip::Horizontal | Flip::Both) {
        for row in out.data.chunks_exact_mut(stride) {
            for x in 0..w / 2 {
                let (a, b) = (x * c, (w - 1 - x) * c);
                for k in 0..c {
                    row.swap(a + k, b + k);
                }
            }
        }
    }
    if matches!(flip, Flip::Vertical | Flip::Both) {
        for y in 0..h / 2 {
            let (top, bottom) = out.data.split_at_mut((h - 1 - y) * stride);
            top[y * stride..(y + 1) * stride].swap_with_slice(&mut bottom[..stride]);
        }
    }
    Ok(out)
}

/// A pixel rectangle inside an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Copies a rectangle out of an image (the rectangle must lie inside it).
pub(crate) fn crop(src: &Raster, r: Rect) -> Result<Raster, Error> {
    let c = src.channels();
    let mut data = try_alloc(buffer_len(r.width, r.height, c)?)?;
    let row_len = r.width as usize * c;
    for (y, dst) in data.chunks_exact_mut(row_len.max(1)).enumerate() {
        let s = ((r.y as usize + y) * src.width as usize + r.x as usize) * c;
        dst.copy_from_slice(&src.data[s..s + row_len]);
    }
    Raster::from_vec(r.width, r.height, src.has_alpha, data)
}

/// Cuts a rectangle of a shrunk-on-load raster's logical image (see [`Logical`]): the raster keeps
/// the pixels covering it, and the logical window moves by the fraction left over.
pub(crate) fn crop_logical(src: &Raster, logical: Logical, r: Rect) -> Result<Raster, Error> {
    let x0 = logical.x + f64::from(r.x) * logical.scale_x;
    let y0 = logical.y + f64::from(r.y) * logical.scale_y;
    let x1 = x0 + f64::from(r.width) * logical.scale_x;
    let y1 = y0 + f64::from(r.height) * logical.scale_y;
    let (w, h) = (f64::from(src.width), f64::from(src.height));
    let bx = x0.floor().clamp(0.0, w - 1.0);
    let by = y0.floor().clamp(0.0, h - 1.0);
    let bx1 = x1.ceil().clamp(bx + 1.0, w);
    let by1 = y1.ceil().clamp(by + 1.0, h);
    let mut out = crop(
        src,
        Rect {
            x: bx as u32,
            y: by as u32,
            width: (bx1 - bx) as u32,
            height: (by1 - by) as u32,
        },
    )?;
    out.logical = Some(Logical {
        width: r.width,
        height: r.height,
        x: x0 - bx,
        y: y0 - by,
        ..logical
    });
    Ok(out)
}

/// Where `trim` cuts, as a rectangle of what is kept; 9401 when nothing would be left.
pub(crate) fn trim_rect(src: &Raster, trim: &Trim) -> Result<Rect, Error> {
    let (w, h) = src.logical_size();
    let rect = if let Some(border) = trim.border {
        // The planner never shrinks on load before a border trim: it looks at full-size pixels.
        debug_assert!(src.logical.is_none());
        border_rect(src, border)
    } else {
        Rect {
            x: 0,
            y: 0,
            width: w,
            height: h,
        }
    };
    cut(rect, trim, (w, h))
}

/// The explicit part of `trim` (top/left/right/bottom/width/height) applied to `rect`, what the
/// border detection left of a `w`×`h` image (or all of it); 9401 when nothing would be left.
pub(crate) fn cut(rect: Rect, trim: &Trim, (w, h): (u32, u32)) -> Result<Rect, Error> {
    let mut rect = rect;
    // Explicit amounts cut from what the border detection left.
    let left = trim.left.min(rect.width);
    let top = trim.top.min(rect.height);
    let width = match trim.width {
        Some(keep) => keep.min(rect.width - left),
        None => (rect.width - left).saturating_sub(trim.right),
    };
    let height = match trim.height {
        Some(keep) => keep.min(rect.height - top),
        None => (rect.height - top).saturating_sub(trim.bottom),
    };
    rect = Rect {
        x: rect.x + left,
        y: rect.y + top,
        width,
        height,
    };
    if rect.width == 0 || rect.height == 0 {
        return Err(Error::invalid(format!(
            "trim would remove the whole {w}x{h} image"
        )));
    }
    Ok(rect)
}

/// The rectangle inside a uniform border (colour within tolerance of the given or top-left colour),
/// grown by `keep` pixels. A uniform image keeps everything.
fn border_rect(src: &Raster, border: imgbind_wire::TrimBorder) -> Rect {
    let reference = border
        .color
        .map(|c| [c.r, c.g, c.b, c.a])
        .unwrap_or_else(|| src.pixel(0, 0));
    let tol = i16::from(border.tolerance);
    let is_border = |x: u32, y: u32| {
        let p = src.pixel(x, y);
        (0..4).all(|k| (i16::from(p[k]) - i16::from(reference[k])).abs() <= tol)
    };
    let (w, h) = (src.width, src.height);
    let row_is_border = |y: u32| (0..w).all(|x| is_border(x, y));
    let col_is_border = |x: u32, y0: u32, y1: u32| (y0..y1).all(|y| is_border(x, y));
    let Some(top) = (0..h).find(|&y| !row_is_border(y)) else {
        return Rect {
            x: 0,
            y: 0,
            width: w,
            height: h,
        };
    };
    let bottom = (0..h).rev().find(|&y| !row_is_border(y)).unwrap_or(top) + 1;
    let left = (0..w)
        .find(|&x| !col_is_border(x, top, bottom))
        .unwrap_or(0);
    let right = (0..w)
        .rev()
        .find(|&x| !col_is_border(x, top, bottom))
        .unwrap_or(w - 1)
        + 1;
    let x0 = left.saturating_sub(border.keep);
    let y0 = top.saturating_sub(border.keep);
    let x1 = right.saturating_add(border.keep).min(w);
    let y1 = bottom.saturating_add(border.keep).min(h);
    Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// Adds a solid border around the image. A translucent colour makes the result RGBA.
pub(crate) fn add_border(src: Raster, border: &Border, limits: &Limits) -> Result<Raster, Error> {
    if border.top == 0 && border.right == 0 && border.bottom == 0 && border.left == 0 {
        return Ok(src);
    }
    let too_big = || Error::invalid("border makes the image too large");
    let width = src
        .width
        .checked_add(border.left)
        .and_then(|v| v.checked_add(border.right))
        .ok_or_else(too_big)?;
    let height = src
        .height
        .checked_add(border.top)
        .and_then(|v| v.checked_add(border.bottom))
        .ok_or_else(too_big)?;
    let has_alpha = src.has_alpha || border.color.a != 255;
    let src = if has_alpha { src.into_rgba()? } else { src };
    let mut out = Raster::filled(width, height, has_alpha, border.color, limits)?;
    paste(&mut out, &src, border.left, border.top);
    Ok(out)
}

/// Copies `src` into `dst` at (x, y), replacing pixels (same channel count; must fit).
pub(crate) fn paste(dst: &mut Raster, src: &Raster, x: u32, y: u32) {
    let c = src.channels();
    debug_assert_eq!(c, dst.channels());
    let row_len = src.stride();
    for (row, line) in src.data.chunks_exact(row_len.max(1)).enumerate() {
        let d = ((y as usize + row) * dst.width as usize + x as usize) * c;
        dst.data[d..d + row_len].copy_from_slice(line);
    }
}

/// Turns a decoded image upright according to its EXIF orientation (1–8).
pub(crate) fn apply_orientation(
    raster: Raster,
    orientation: u8,
    limits: &Limits,
) -> Result<Raster, Error> {
    let turn = |r, rotation| rotate(r, rotation, limits);
    match orientation {
        2 => flip(raster, Flip::Horizontal),
        3 => turn(raster, Rotate::R180),
        4 => flip(raster, Flip::Vertical),
        // Transpose and transverse are a quarter turn plus a mirror.
        5 => flip(turn(raster, Rotate::R90)?, Flip::Horizontal),
        6 => turn(raster, Rotate::R90),
        7 => flip(turn(raster, Rotate::R90)?, Flip::Vertical),
        8 => turn(raster, Rotate::R270),
        _ => Ok(raster),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgbind_wire::{Rgba, TrimBorder};

    /// A w×h RGB image whose pixel (x, y) is (x, y, 7).
    fn coords(w: u32, h: u32) -> Raster {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[x as u8, y as u8, 7]);
            }
        }
        Raster::from_vec(w, h, false, data).unwrap()
    }

    fn at(r: &Raster, x: u32, y: u32) -> (u8, u8) {
        let p = r.pixel(x, y);
        (p[0], p[1])
    }

    #[test]
    fn rotate_moves_corners_clockwise() {
        let l = Limits::default();
        // 3 wide, 2 tall. Top-left (0,0) goes to the top-right after 90° clockwise.
        let r90 = rotate(coords(3, 2), Rotate::R90, &l).unwrap();
        assert_eq!((r90.width, r90.height), (2, 3));
        assert_eq!(at(&r90, 1, 0), (0, 0));
        assert_eq!(at(&r90, 0, 0), (0, 1)); // bottom-left comes to top-left
        assert_eq!(at(&r90, 0, 2), (2, 1));
        let r270 = rotate(coords(3, 2), Rotate::R270, &l).unwrap();
        assert_eq!((r270.width, r270.height), (2, 3));
        assert_eq!(at(&r270, 0, 2), (0, 0)); // top-left goes to bottom-left
        assert_eq!(at(&r270, 0, 0), (2, 0));
        let r180 = rotate(coords(3, 2), Rotate::R180, &l).unwrap();
        assert_eq!((r180.width, r180.height), (3, 2));
        assert_eq!(at(&r180, 0, 0), (2, 1));
        assert_eq!(at(&r180, 2, 1), (0, 0));
        let back = rotate(r90, Rotate::R270, &l).unwrap();
        assert_eq!(back, coords(3, 2));
    }

    #[test]
    fn flips_mirror() {
        let h = flip(coords(3, 2), Flip::Horizontal).unwrap();
        assert_eq!(at(&h, 0, 0), (2, 0));
        assert_eq!(at(&h, 1, 1), (1, 1));
        let v = flip(coords(3, 3), Flip::Vertical).unwrap();
        assert_eq!(at(&v, 0, 0), (0, 2));
        assert_eq!(at(&v, 2, 1), (2, 1));
        let both = flip(coords(3, 2), Flip::Both).unwrap();
        assert_eq!(at(&both, 0, 0), (2, 1));
    }

    #[test]
    fn trims_explicit_edges_and_uniform_borders() {
        let img = coords(10, 8);
        let keep = trim_rect(
            &img,
            &Trim {
                top: 1,
                left: 2,
                right: 3,
                bottom: 0,
                ..Trim::default()
            },
        )
        .unwrap();
        assert_eq!(
            keep,
            Rect {
                x: 2,
                y: 1,
                width: 5,
                height: 7
            }
        );
        let sized = trim_rect(
            &img,
            &Trim {
                left: 2,
                width: Some(4),
                height: Some(100),
                ..Trim::default()
            },
        )
        .unwrap();
        assert_eq!((sized.x, sized.width, sized.height), (2, 4, 8));
        assert!(trim_rect(
            &img,
            &Trim {
                left: 10,
                ..Trim::default()
            }
        )
        .is_err());

        // White 6x5 with a black 2x1 block at (2, 3).
        let mut white = Raster::filled(6, 5, false, Rgba::WHITE, &Limits::default()).unwrap();
        for x in 2..4 {
            let i = (3 * 6 + x) * 3;
            white.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
        }
        let border = TrimBorder {
            color: None,
            tolerance: 10,
            keep: 0,
        };
        let found = trim_rect(
            &white,
            &Trim {
                border: Some(border),
                ..Trim::default()
            },
        )
        .unwrap();
        assert_eq!(
            found,
            Rect {
                x: 2,
                y: 3,
                width: 2,
                height: 1
            }
        );
        let kept = trim_rect(
            &white,
            &Trim {
                border: Some(TrimBorder { keep: 1, ..border }),
                ..Trim::default()
            },
        )
        .unwrap();
        assert_eq!(
            kept,
            Rect {
                x: 1,
                y: 2,
                width: 4,
                height: 3
            }
        );
    }

    #[test]
    fn border_surrounds_image() {
        let red = Rgba {
            r: 255,
            g: 0,
            b: 0,
            a: 255,
        };
        let b = Border {
            color: red,
            top: 1,
            right: 2,
            bottom: 3,
            left: 4,
        };
        let out = add_border(coords(3, 2), &b, &Limits::default()).unwrap();
        assert_eq!((out.width, out.height), (9, 6));
        assert_eq!(out.pixel(0, 0), [255, 0, 0, 255]);
        assert_eq!(at(&out, 4, 1), (0, 0));
        assert_eq!(at(&out, 6, 2), (2, 1));
        assert_eq!(out.pixel(7, 2), [255, 0, 0, 255]);
        assert_eq!(out.pixel(4, 3), [255, 0, 0, 255]);
    }
}
