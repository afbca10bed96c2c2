//! Embedded colour profiles: found in each container (JPEG APP2, PNG iCCP, WebP ICCP, AVIF colr)
//! and converted to sRGB on decode with `moxcms`, so every step and encoder works in sRGB (the
//! outputs carry no profile, which every viewer reads as sRGB).
//!
//! Profiles that already describe sRGB are recognised from their colorants and tone curves and
//! skipped (no transform is built). A profile that cannot be read, or whose colour space does not
//! match the pixels, is ignored, as libvips does: the pixels are then taken as sRGB.

use imgbind_wire::Error;
use moxcms::{
    ColorProfile, DataColorSpace, Layout, RenderingIntent, ToneReprCurve, TransformOptions,
};

use crate::raster::{buffer_len, try_alloc, Raster};

/// The ICC profile of a JPEG: the `ICC_PROFILE` APP2 segments, joined in sequence order.
pub(crate) fn jpeg_profile(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            break;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let segment = bytes.get(i + 4..i + 2 + len)?;
        if marker == 0xE2 {
            if let Some(rest) = segment.strip_prefix(b"ICC_PROFILE\0") {
                if rest.len() > 2 {
                    chunks.push((rest[0], &rest[2..]));
                }
            }
        }
        i += 2 + len;
    }
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    Some(
        chunks
            .into_iter()
            .flat_map(|c| c.1.iter().copied())
            .collect(),
    )
}

/// The ICC profile of a WebP: its `ICCP` chunk (extended format only).
pub(crate) fn webp_profile(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut i = 12;
    while let Some(head) = bytes.get(i..i + 8) {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if &head[..4] == b"ICCP" {
            return bytes.get(i + 8..i + 8 + len).map(<[u8]>::to_vec);
        }
        if &head[..4] == b"VP8 " || &head[..4] == b"VP8L" || &head[..4] == b"ANMF" {
            // ICCP must come before the image data.
            return None;
        }
        i = i.saturating_add(8).saturating_add(len + (len & 1));
    }
    None
}

/// Parses a profile; `None` when it is unreadable (then ignored).
fn parse(icc: &[u8]) -> Option<ColorProfile> {
    ColorProfile::new_from_slice(icc).ok()
}

/// Evaluates an ICC tone curve at `x` in 0–1 (device value → linear).
fn eval_curve(curve: &ToneReprCurve, x: f32) -> Option<f32> {
    match curve {
        ToneReprCurve::Lut(table) => match table.len() {
            0 => Some(x),
            1 => Some(x.powf(f32::from(table[0]) / 256.0)),
            n => {
                let pos = x * (n - 1) as f32;
                let lo = (pos.floor() as usize).min(n - 1);
                let hi = (lo + 1).min(n - 1);
                let t = pos - lo as f32;
                let v = f32::from(table[lo]) * (1.0 - t) + f32::from(table[hi]) * t;
                Some(v / 65535.0)
            }
        },
        ToneReprCurve::Parametric(p) => {
            let g = *p.first()?;
            Some(match p.len() {
                1 => x.powf(g),
                3 => {
                    let (a, b) = (p[1], p[2]);
                    if x >= -b / a {
                        (a * x + b).max(0.0).powf(g)
                    } else {
                        0.0
                    }
                }
                4 => {
                    let (a, b, c) = (p[1], p[2], p[3]);
                    if x >= -b / a {
                        (a * x + b).max(0.0).powf(g) + c
                    } else {
                        c
                    }
                }
                5 => {
                    let (a, b, c, d) = (p[1], p[2], p[3], p[4]);
                    if x >= d {
                        (a * x + b).max(0.0).powf(g)
                    } else {
                        c * x
                    }
                }
                7 => {
                    let (a, b, c, d, e, f) = (p[1], p[2], p[3], p[4], p[5], p[6]);
                    if x >= d {
                        (a * x + b).max(0.0).powf(g) + e
                    } else {
                        c * x + f
                    }
                }
                _ => return None,
            })
        }
    }
}

/// True when `profile` is (close enough to) sRGB: same colorants and tone curves within what an
/// 8-bit value can show. Such images are left untouched.
fn is_srgb(profile: &ColorProfile) -> bool {
    if profile.color_space != DataColorSpace::Rgb {
        return false;
    }
    let srgb = ColorProfile::new_srgb();
    let close = |a: &moxcms::Xyzd, b: &moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.003 && (a.y - b.y).abs() < 0.003 && (a.z - b.z).abs() < 0.003
    };
    if !(close(&profile.red_colorant, &srgb.red_colorant)
        && close(&profile.green_colorant, &srgb.green_colorant)
        && close(&profile.blue_colorant, &srgb.blue_colorant))
    {
        return false;
    }
    let Some(reference) = &srgb.red_trc else {
        return false;
    };
    [&profile.red_trc, &profile.green_trc, &profile.blue_trc]
        .iter()
        .all(|trc| {
            let Some(trc) = trc else { return false };
            (0..=32).all(|i| {
                let x = i as f32 / 32.0;
                match (eval_curve(trc, x), eval_curve(reference, x)) {
                    (Some(a), Some(b)) => (a - b).abs() < 0.5 / 255.0,
                    _ => false,
                }
            })
        })
}

/// Converts an RGB/RGBA raster from `icc` to sRGB in place. Unreadable, non-RGB and sRGB
/// profiles leave it as it is.
pub(crate) fn rgb_to_srgb(raster: Raster, icc: &[u8]) -> Result<Raster, Error> {
    let Some(profile) = parse(icc) else {
        return Ok(raster);
    };
    convert_rgb(raster, &profile)
}

/// Converts from a profile built from CICP values (AVIF without an ICC profile): Display P3 and
/// BT.2020 with an SDR transfer; anything else is taken as sRGB.
pub(crate) fn cicp_to_srgb(raster: Raster, primaries: u16, transfer: u16) -> Result<Raster, Error> {
    // Transfers read as the sRGB/BT.709 family; PQ (16) and HLG (18) need tone mapping we do not do.
    if !matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15) {
        return Ok(raster);
    }
    let profile = match primaries {
        12 => ColorProfile::new_display_p3(),
        9 => ColorProfile::new_bt2020(),
        _ => return Ok(raster),
    };
    convert_rgb(raster, &profile)
}

fn convert_rgb(mut raster: Raster, profile: &ColorProfile) -> Result<Raster, Error> {
    if profile.color_space != DataColorSpace::Rgb || is_srgb(profile) {
        return Ok(raster);
    }
    let layout = if raster.has_alpha {
        Layout::Rgba
    } else {
        Layout::Rgb
    };
    let Ok(transform) = profile.create_transform_8bit(
        layout,
        &ColorProfile::new_srgb(),
        layout,
        TransformOptions::default(),
    ) else {
        return Ok(raster);
    };
    let mut out = try_alloc(raster.data.len())?;
    transform
        .transform(&raster.data, &mut out)
        .map_err(|e| Error::internal(format!("colour conversion failed: {e:?}")))?;
    raster.data = out;
    Ok(raster)
}

/// Converts CMYK pixels (0 = no ink, 255 = full ink, 4 bytes a pixel) to sRGB through a CMYK
/// profile. `None` when the profile is not a usable CMYK profile (then the caller uses the naive
/// formula).
///
/// As libvips (sharp) does: perceptual intent with black point compensation, so the deepest
/// black the press can print becomes sRGB black instead of a dark grey (without it a photo's
/// shadows come out lifted and flat: 12 levels of mean difference from sharp on a corpus photo,
/// 4 with it). moxcms has no black point compensation, so it is applied here, after a 16-bit
/// transform, in linear light: `(v − black) / (1 − black)` with the black point made neutral,
/// which is lcms's compensation towards sRGB's zero black.
pub(crate) fn cmyk_to_srgb(
    cmyk: &[u8],
    width: u32,
    height: u32,
    icc: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    let Some(profile) = parse(icc) else {
        return Ok(None);
    };
    if profile.color_space != DataColorSpace::Cmyk {
        return Ok(None);
    }
    let srgb = ColorProfile::new_srgb();
    let options = TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    };
    let Ok(transform) = profile.create_transform_16bit(Layout::Rgba, &srgb, Layout::Rgb, options)
    else {
        return Ok(None);
    };
    let to_8bit = compensation_table(cmyk_black_luminance(&profile, &srgb, options));
    let mut out = try_alloc(buffer_len(width, height, 3)?)?;
    // In slices, so the 16-bit copies stay small whatever the image size.
    const PIXELS: usize = 16 * 1024;
    let mut wide_in = vec![0u16; PIXELS * 4];
    let mut wide_out = vec![0u16; PIXELS * 3];
    for (src, dst) in cmyk.chunks(PIXELS * 4).zip(out.chunks_mut(PIXELS * 3)) {
        let (wide_in, wide_out) = (&mut wide_in[..src.len()], &mut wide_out[..dst.len()]);
        for (w, &v) in wide_in.iter_mut().zip(src) {
            *w = u16::from(v) * 257;
        }
        transform
            .transform(wide_in, wide_out)
            .map_err(|e| Error::internal(format!("colour conversion failed: {e:?}")))?;
        for (d, &w) in dst.iter_mut().zip(wide_out.iter()) {
            *d = to_8bit[usize::from(w)];
        }
    }
    Ok(Some(out))
}

/// The luminance (0–1, linear) of the darkest black a CMYK profile reproduces, as lcms finds it
/// for an output profile: sRGB black taken into the profile (perceptual) and back. Profiles with
/// no way into CMYK (input profiles) use all four inks at 100 %. Made neutral and at most L* 50,
/// as lcms does.
fn cmyk_black_luminance(
    profile: &ColorProfile,
    srgb: &ColorProfile,
    options: TransformOptions,
) -> f32 {
    let mut ink = [1.0f32; 4];
    if let Ok(into) = srgb.create_transform_f32(Layout::Rgb, profile, Layout::Rgba, options) {
        let mut darkest = [0.0f32; 4];
        if into.transform(&[0.0, 0.0, 0.0], &mut darkest).is_ok() {
            ink = darkest;
        }
    }
    let Ok(back) = profile.create_transform_f32(Layout::Rgba, srgb, Layout::Rgb, options) else {
        return 0.0;
    };
    let mut rgb = [0.0f32; 3];
    if back.transform(&ink, &mut rgb).is_err() {
        return 0.0;
    }
    let [r, g, b] = rgb.map(srgb_to_linear);
    // L* 50 is Y 0.184.
    (0.2126 * r + 0.7152 * g + 0.0722 * b).clamp(0.0, 0.184)
}

/// 16-bit sRGB values to 8-bit sRGB with black point compensation from `black` (linear).
fn compensation_table(black: f32) -> Vec<u8> {
    (0..=u16::MAX)
        .map(|v| {
            let linear = (srgb_to_linear(f32::from(v) / 65535.0) - black) / (1.0 - black);
            (linear_to_srgb(linear) * 255.0).round() as u8
        })
        .collect()
}

/// The sRGB transfer curve, encoded (0..=1) → linear light.
pub(crate) fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_profiles_are_recognised_and_others_are_not() {
        let srgb = ColorProfile::new_srgb();
        assert!(is_srgb(&srgb));
        let round_trip = ColorProfile::new_from_slice(&srgb.encode().unwrap()).unwrap();
        assert!(is_srgb(&round_trip));
        assert!(!is_srgb(&ColorProfile::new_display_p3()));
        assert!(!is_srgb(&ColorProfile::new_adobe_rgb()));
    }

    #[test]
    fn display_p3_red_becomes_out_of_srgb_red() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let img = Raster::from_vec(2, 1, false, vec![255, 0, 0, 128, 128, 128]).unwrap();
        let out = rgb_to_srgb(img, &p3).unwrap();
        // P3's red is outside sRGB: clipped to full red; grey stays grey.
        assert_eq!(&out.data[..3], &[255, 0, 0]);
        let grey = &out.data[3..];
        assert!(grey.iter().all(|v| v.abs_diff(128) <= 1), "{grey:?}");
        // A P3 mid green maps to a more saturated-looking but different sRGB triple.
        let img = Raster::from_vec(1, 1, true, vec![0, 200, 0, 77]).unwrap();
        let out = rgb_to_srgb(img, &p3).unwrap();
        assert_eq!(out.data[3], 77, "alpha kept");
        assert!(out.data[0] == 0 && out.data[1] >= 200, "{:?}", out.data);
    }

    #[test]
    fn garbage_profiles_are_ignored() {
        let img = Raster::from_vec(1, 1, false, vec![1, 2, 3]).unwrap();
        assert_eq!(rgb_to_srgb(img.clone(), b"nonsense").unwrap(), img);
        assert_eq!(cmyk_to_srgb(&[0, 0, 0, 0], 1, 1, b"x").unwrap(), None);
    }

    #[test]
    fn black_point_compensation_maps_the_black_point_to_zero_and_keeps_white() {
        let table = compensation_table(0.02);
        assert_eq!(table.len(), 65536);
        assert_eq!(table[65535], 255);
        // sRGB 0.1559 is linear 0.0210: just above the black point.
        let just_above = (0.1559 * 65535.0) as usize;
        assert!(table[just_above] <= 3, "{}", table[just_above]);
        assert_eq!(table[(0.14 * 65535.0) as usize], 0, "below the black point");
        assert!(table.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        // No compensation: a plain 16 → 8-bit rounding.
        let plain = compensation_table(0.0);
        assert_eq!(plain[257 * 100], 100);
    }

    #[test]
    fn jpeg_profile_chunks_are_joined_in_order() {
        let mut jpeg = vec![0xFF, 0xD8];
        for (seq, body) in [(2u8, &b"world"[..]), (1, &b"hello "[..])] {
            let mut seg = b"ICC_PROFILE\0".to_vec();
            seg.extend([seq, 2]);
            seg.extend_from_slice(body);
            jpeg.extend([0xFF, 0xE2]);
            jpeg.extend(((seg.len() + 2) as u16).to_be_bytes());
            jpeg.extend(seg);
        }
        jpeg.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_profile(&jpeg).unwrap(), b"hello world");
        assert_eq!(jpeg_profile(&[0xFF, 0xD8, 0xFF, 0xD9]), None);
    }
}
