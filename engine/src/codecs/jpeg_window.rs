//! Crop-on-load: decoding only a window of a JPEG, through TurboJPEG's cropping region (libjpeg's
//! `jpeg_crop_scanline` + `jpeg_skip_scanlines`). The `turbojpeg` crate's `Decompressor` does not
//! expose the region, so this file drives its raw API (`turbojpeg::raw`) and, like
//! `codecs/avif.rs`, is where the engine needs `unsafe`: every call passes a handle this file owns
//! and buffers whose lengths it has checked.
//!
//! libjpeg-turbo still entropy-decodes the rows it skips (a baseline JPEG has no index into its
//! Huffman stream), so the saving is the IDCT, colour conversion and, above all, memory: a
//! 100 MP layer of which 200 × 200 px land on the canvas holds 200 × 200 px.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::c_int;

use turbojpeg::raw;

use crate::geometry::Rect;

/// One TurboJPEG decompressor, destroyed on drop.
struct Handle(raw::tjhandle);

impl Handle {
    fn new() -> Result<Handle, String> {
        // SAFETY: tj3Init takes no pointers; a null result is an error, checked here.
        let raw = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if raw.is_null() {
            return Err("cannot start the JPEG decoder".to_owned());
        }
        Ok(Handle(raw))
    }

    fn error(&self) -> String {
        // SAFETY: the handle is live; TurboJPEG returns a NUL-terminated string it owns.
        unsafe { CStr::from_ptr(raw::tj3GetErrorStr(self.0)) }
            .to_string_lossy()
            .into_owned()
    }

    fn check(&self, status: c_int) -> Result<(), String> {
        if status == 0 {
            Ok(())
        } else {
            Err(self.error())
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tj3Init, destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

/// Decodes `region` of `bytes` (in the coordinates of the image scaled by `eighths`/8; `x` a
/// multiple of the scaled iMCU width) as `channels`-byte pixels of TurboJPEG format `format` into
/// `pixels` (exactly `region.width * channels * region.height` bytes). Errors are TurboJPEG's
/// messages, warnings included (the caller decides which it forgives).
pub(crate) fn decompress(
    bytes: &[u8],
    eighths: usize,
    region: Rect,
    format: raw::TJPF,
    channels: usize,
    pixels: &mut [u8],
) -> Result<(), String> {
    let pitch = region.width as usize * channels;
    if pixels.len() != pitch * region.height as usize {
        return Err("window buffer does not match its size".to_owned());
    }
    let int = |v: u32| c_int::try_from(v).map_err(|_| "window too large".to_owned());
    let handle = Handle::new()?;
    // SAFETY: the handle is live and `bytes` outlives the call.
    handle
        .check(unsafe { raw::tj3DecompressHeader(handle.0, bytes.as_ptr(), bytes.len() as _) })?;
    // TurboJPEG knows its factors in lowest terms (1/1, 1/2, 3/4, …).
    let divisor = [8, 4, 2, 1]
        .into_iter()
        .find(|d| eighths.is_multiple_of(*d))
        .unwrap_or(1);
    let factor = raw::tjscalingfactor {
        num: (eighths / divisor) as c_int,
        denom: (8 / divisor) as c_int,
    };
    // SAFETY: plain values on a live handle whose header has been read.
    handle.check(unsafe { raw::tj3SetScalingFactor(handle.0, factor) })?;
    let region_c = raw::tjregion {
        x: int(region.x)?,
        y: int(region.y)?,
        w: int(region.width)?,
        h: int(region.height)?,
    };
    // SAFETY: as above.
    handle.check(unsafe { raw::tj3SetCroppingRegion(handle.0, region_c) })?;
    // SAFETY: `pixels` holds exactly `pitch` × region height bytes (checked above), which is what
    // TurboJPEG writes for a cropped decode.
    handle.check(unsafe {
        raw::tj3Decompress8(
            handle.0,
            bytes.as_ptr(),
            bytes.len() as _,
            pixels.as_mut_ptr(),
            int(pitch as u32)?,
            format,
        )
    })
}
