//! The in-memory image every step works on: 8-bit RGB or straight-alpha RGBA, row-major, no padding.

use imgbind_wire::{Error, ErrorCode, Rgba};

use crate::Limits;

/// An 8-bit image. RGB is kept when there is no alpha so opaque photos never pay for a fourth channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raster {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// True for RGBA (straight alpha), false for RGB.
    pub(crate) has_alpha: bool,
    pub(crate) data: Vec<u8>,
    /// When the decoder shrank on load (JPEG DCT scaling), the full-size image this raster stands
    /// for; the first resize computes its geometry from it so the result matches a full-size decode.
    pub(crate) logical: Option<Logical>,
}

/// The full-size image a shrunk-on-load raster stands for: `width`×`height` logical pixels, whose
/// logical point (lx, ly) is the raster's point (x + lx·scale_x, y + ly·scale_y) (continuous
/// coordinates, pixel edges at integers). Right after decoding the window is the whole raster; a
/// planned `trim` (`plan.rs`) cuts the raster to the pixels covering the kept window and moves
/// the origin by the fraction left over, so the resize that follows samples exactly the region
/// a full-size decode would have kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Logical {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) scale_x: f64,
    pub(crate) scale_y: f64,
}

impl Eq for Logical {}

impl Logical {
    /// A `width`×`height` image decoded whole into a `raster_width`×`raster_height` raster.
    pub(crate) fn whole(width: u32, height: u32, raster_width: u32, raster_height: u32) -> Logical {
        Logical {
            width,
            height,
            x: 0.0,
            y: 0.0,
            scale_x: f64::from(raster_width) / f64::from(width),
            scale_y: f64::from(raster_height) / f64::from(height),
        }
    }

    /// The same logical image after the raster (`raster_width`×`raster_height`) is turned
    /// clockwise by `quarter_turns`.
    pub(crate) fn rotated(
        self,
        quarter_turns: u8,
        raster_width: u32,
        raster_height: u32,
    ) -> Logical {
        let (rw, rh) = (f64::from(raster_width), f64::from(raster_height));
        let (ww, wh) = (
            f64::from(self.width) * self.scale_x,
            f64::from(self.height) * self.scale_y,
        );
        match quarter_turns % 4 {
            0 => self,
            // A raster point (x, y) goes to (rh - y, x).
            1 => Logical {
                width: self.height,
                height: self.width,
                x: rh - (self.y + wh),
                y: self.x,
                scale_x: self.scale_y,
                scale_y: self.scale_x,
            },
            2 => Logical {
                x: rw - (self.x + ww),
                y: rh - (self.y + wh),
                ..self
            },
            // A raster point (x, y) goes to (y, rw - x).
            _ => Logical {
                width: self.height,
                height: self.width,
                x: self.y,
                y: rw - (self.x + ww),
                scale_x: self.scale_y,
                scale_y: self.scale_x,
            },
        }
    }

    /// The same logical image after the raster is mirrored (`horizontal`, `vertical`).
    pub(crate) fn flipped(
        self,
        horizontal: bool,
        vertical: bool,
        raster_width: u32,
        raster_height: u32,
    ) -> Logical {
        let mut out = self;
        if horizontal {
            out.x = f64::from(raster_width) - (self.x + f64::from(self.width) * self.scale_x);
        }
        if vertical {
            out.y = f64::from(raster_height) - (self.y + f64::from(self.height) * self.scale_y);
        }
        out
    }
}

/// Allocates a zeroed buffer without aborting the process when memory is short (9522 instead).
pub(crate) fn try_alloc(len: usize) -> Result<Vec<u8>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::new(
            ErrorCode::ProcessingLimit,
            format!("Out of memory allocating {len} bytes"),
        )
    })?;
    v.resize(len, 0);
    Ok(v)
}

/// Bytes for a `width`×`height` image with `channels`, or 9413 if that overflows.
pub(crate) fn buffer_len(width: u32, height: u32, channels: usize) -> Result<usize, Error> {
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(|| Error::new(ErrorCode::TooManyPixels, "Image size overflows memory"))
}

impl Raster {
    /// A new image filled with `colour`, after checking it against the output limit.
    pub(crate) fn filled(
        width: u32,
        height: u32,
        has_alpha: bool,
        colour: Rgba,
        limits: &Limits,
    ) -> Result<Raster, Error> {
        limits.check_output(width, height)?;
        let channels = if has_alpha { 4 } else { 3 };
        let mut data = try_alloc(buffer_len(width, height, channels)?)?;
        let px = [colour.r, colour.g, colour.b, colour.a];
        for chunk in data.chunks_exact_mut(channels) {
            chunk.copy_from_slice(&px[..channels]);
        }
        Ok(Raster {
            width,
            height,
            has_alpha,
            data,
            logical: None,
        })
    }

    /// Wraps a buffer; the length must match (checked, 9523 otherwise).
    pub(crate) fn from_vec(
        width: u32,
        height: u32,
        has_alpha: bool,
        data: Vec<u8>,
    ) -> Result<Raster, Error> {
        let channels = if has_alpha { 4 } else { 3 };
        if data.len() != buffer_len(width, height, channels)? {
            return Err(Error::new(
                ErrorCode::Internal,
                "pixel buffer does not match its size",
            ));
        }
        Ok(Raster {
            width,
            height,
            has_alpha,
            data,
            logical: None,
        })
    }

    /// The size the steps see: the logical size of a shrunk-on-load raster, else its own.
    pub(crate) fn logical_size(&self) -> (u32, u32) {
        self.logical
            .map_or((self.width, self.height), |l| (l.width, l.height))
    }

    /// 3 or 4.
    pub(crate) fn channels(&self) -> usize {
        if self.has_alpha {
            4
        } else {
            3
        }
    }

    /// Bytes per row.
    pub(crate) fn stride(&self) -> usize {
        self.width as usize * self.channels()
    }

    /// The pixel at (x, y) as RGBA (opaque when there is no alpha).
    pub(crate) fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let c = self.channels();
        let i = (y as usize * self.width as usize + x as usize) * c;
        let p = &self.data[i..i + c];
        [p[0], p[1], p[2], if c == 4 { p[3] } else { 255 }]
    }

    /// The same image with an alpha channel (a copy when it had none).
    pub(crate) fn into_rgba(self) -> Result<Raster, Error> {
        if self.has_alpha {
            return Ok(self);
        }
        let mut data = try_alloc(buffer_len(self.width, self.height, 4)?)?;
        rgb_to_rgba(&self.data, &mut data);
        Ok(Raster {
            data,
            has_alpha: true,
            ..self
        })
    }

    /// RGBA whose alpha is 255 everywhere becomes RGB: cheaper to resize, and encoders need not
    /// flatten.
    ///
    /// Both passes are written for the compiler to vectorise (they were an eighth of a 15 MP PNG
    /// re-encode): the alpha test folds blocks of pixels without an early exit inside a block, and
    /// the RGB rows are packed in place, block by block through a small buffer, so no second image
    /// is allocated (the buffer is then shrunk, which returns its tail without copying).
    pub(crate) fn drop_opaque_alpha(self) -> Result<Raster, Error> {
        /// Pixels per block of either pass.
        const BLOCK: usize = 1024;
        if !self.has_alpha
            || !self.data.chunks(BLOCK * 4).all(|b| {
                b.chunks_exact(4).fold(u32::MAX, |a, p| {
                    a & u32::from_le_bytes([p[0], p[1], p[2], p[3]])
                }) >> 24
                    == 255
            })
        {
            return Ok(self);
        }
        let mut data = self.data;
        let pixels = data.len() / 4;
        let mut block = [0u8; BLOCK * 4];
        for start in (0..pixels).step_by(BLOCK) {
            let n = BLOCK.min(pixels - start);
            // The block's RGB lands at or before where its RGBA was read, so reading it out
            // first makes the in-place write safe.
            block[..n * 4].copy_from_slice(&data[start * 4..(start + n) * 4]);
            let out = &mut data[start * 3..(start + n) * 3];
            // Four bytes a pixel, each overwriting the last one's spare byte, then the last
            // pixel's three.
            for (i, s) in block[..(n - 1) * 4].chunks_exact(4).enumerate() {
                out[i * 3..i * 3 + 4].copy_from_slice(s);
            }
            out[(n - 1) * 3..].copy_from_slice(&block[(n - 1) * 4..(n - 1) * 4 + 3]);
        }
        data.truncate(pixels * 3);
        data.shrink_to_fit();
        Ok(Raster {
            data,
            has_alpha: false,
            ..self
        })
    }

    /// Composites the image over `background`. An opaque background gives RGB; a translucent one
    /// keeps alpha (`over` in premultiplied terms, stored straight again).
    pub(crate) fn flatten(self, background: Rgba) -> Result<Raster, Error> {
        if !self.has_alpha {
            return Ok(self);
        }
        if background.a == 255 {
            let mut data = try_alloc(buffer_len(self.width, self.height, 3)?)?;
            rgba_onto_opaque(&self.data, &mut data, background);
            return Ok(Raster {
                data,
                has_alpha: false,
                ..self
            });
        }
        let mut out = self;
        let (bg, bga) = (
            [background.r, background.g, background.b],
            f32::from(background.a) / 255.0,
        );
        for p in out.data.chunks_exact_mut(4) {
            let sa = f32::from(p[3]) / 255.0;
            let ra = sa + bga * (1.0 - sa);
            for k in 0..3 {
                let premul = f32::from(p[k]) * sa + f32::from(bg[k]) * bga * (1.0 - sa);
                p[k] = if ra > 0.0 {
                    (premul / ra).round().clamp(0.0, 255.0) as u8
                } else {
                    0
                };
            }
            p[3] = (ra * 255.0).round() as u8;
        }
        Ok(out)
    }
}

/// RGB pixels to opaque RGBA (`dst` holds as many pixels as `src`).
pub(crate) fn rgb_to_rgba(src: &[u8], dst: &mut [u8]) {
    for (dst, src) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
        dst[..3].copy_from_slice(src);
        dst[3] = 255;
    }
}

/// RGBA pixels composited onto an opaque `background`, as RGB (`dst` holds as many pixels as
/// `src`).
pub(crate) fn rgba_onto_opaque(src: &[u8], dst: &mut [u8], background: Rgba) {
    let bg = [background.r, background.g, background.b];
    for (dst, src) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
        let a = u32::from(src[3]);
        for k in 0..3 {
            dst[k] = div255(u32::from(src[k]) * a + u32::from(bg[k]) * (255 - a));
        }
    }
}

/// Rounded `v / 255` for `v` ≤ 255 × 255.
pub(crate) fn div255(v: u32) -> u8 {
    ((v + 128 + ((v + 128) >> 8)) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_alpha_is_dropped_in_place_and_any_translucent_pixel_keeps_it() {
        // Sizes around the 1024-pixel block, with a pattern in every sample.
        for (width, height) in [(1, 1), (3, 1), (1023, 1), (1024, 1), (1025, 1), (77, 61)] {
            let n = (width * height) as usize;
            let rgba: Vec<u8> = (0..n)
                .flat_map(|i| [(i * 7) as u8, (i * 13) as u8, (i * 29) as u8, 255])
                .collect();
            let want: Vec<u8> = rgba
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            let img = Raster::from_vec(width, height, true, rgba.clone()).unwrap();
            let rgb = img.drop_opaque_alpha().unwrap();
            assert!(!rgb.has_alpha);
            assert_eq!(rgb.data, want, "{width}x{height}");
            // One pixel below 255 anywhere (first, last) keeps the image as it was.
            for at in [0, n - 1] {
                let mut translucent = rgba.clone();
                translucent[at * 4 + 3] = 254;
                let img = Raster::from_vec(width, height, true, translucent.clone()).unwrap();
                let kept = img.drop_opaque_alpha().unwrap();
                assert!(kept.has_alpha);
                assert_eq!(kept.data, translucent);
            }
        }
    }

    #[test]
    fn div255_is_exact_rounding() {
        for v in 0..=255 * 255u32 {
            assert_eq!(
                u32::from(div255(v)),
                (v as f64 / 255.0).round() as u32,
                "{v}"
            );
        }
    }

    #[test]
    fn flatten_onto_opaque_and_translucent() {
        let img = Raster::from_vec(2, 1, true, vec![255, 0, 0, 128, 0, 0, 255, 0]).unwrap();
        let flat = img.clone().flatten(Rgba::WHITE).unwrap();
        assert!(!flat.has_alpha);
        assert_eq!(flat.pixel(0, 0), [255, 127, 127, 255]);
        assert_eq!(flat.pixel(1, 0), [255, 255, 255, 255]);
        let clear = Rgba::TRANSPARENT;
        let same = img.flatten(clear).unwrap();
        assert_eq!(same.pixel(0, 0), [255, 0, 0, 128]);
        assert_eq!(same.pixel(1, 0)[3], 0);
    }
}
