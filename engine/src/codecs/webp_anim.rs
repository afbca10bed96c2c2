//! Animated WebP encoding through libwebp's `WebPAnimEncoder` (`libwebp-sys`), fed the way libvips
//! feeds it.
//!
//! A lossy frame is handed to the encoder as a YUV 4:2:0 picture, as libvips (sharp) does: libwebp
//! converts it back to ARGB before it looks for the rectangle that changed since the previous
//! frame, so the comparison sees the chroma VP8 keeps, not the full-resolution chroma it would
//! throw away. Handing it full-resolution ARGB (what the `webp` crate's `AnimEncoder` does) found
//! larger changed rectangles: on the same 45 frames (the corpus GIF at 320 px, quality 80) it
//! wrote 59 288 bytes where libvips writes 40 724. Lossless frames (quality 100) go in as ARGB,
//! as libvips does too.
//!
//! Calling the encoder here also ends the animation at the last frame's real end (the `webp`
//! crate ended it at timestamp 0, which libwebp refuses, so the last frame got a guessed
//! duration), and writes the loop count without re-muxing.
//!
//! libwebp is a C library, so this file needs `unsafe`: every object it allocates is owned by a
//! guard below that frees it on every path, and the pixel buffers are ours and outlive the calls
//! that read them.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::ptr;

use imgbind_wire::Error;
use libwebp_sys as sys;

use crate::codecs::{webp, Loops};
use crate::raster::Raster;

/// Encodes `frames` (each with its delay in ms, each `width`×`height`): lossy at `quality`,
/// lossless at 100.
pub(crate) fn encode(
    frames: &[(Raster, u32)],
    width: u32,
    height: u32,
    quality: u8,
    loops: Loops,
) -> Result<Vec<u8>, Error> {
    webp::check_size(width, height)?;
    let fail = |detail: &str| Error::encode_failed("WebP", detail);
    let lossless = quality == 100;
    let config = webp::config(quality)?;
    // Both fit in an i32: `check_size` above.
    let (w, h) = (width as i32, height as i32);
    // SAFETY: every pointer below is owned by a guard; frame pixels outlive the imports.
    unsafe {
        if sys::WebPValidateConfig(&config) == 0 {
            return Err(fail("invalid config"));
        }
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::uninit();
        if sys::WebPAnimEncoderOptionsInitInternal(
            options.as_mut_ptr(),
            sys::WebPGetMuxABIVersion(),
        ) == 0
        {
            return Err(fail("libwebp version mismatch"));
        }
        let mut options = options.assume_init();
        options.anim_params.loop_count = match loops {
            Loops::Forever => 0,
            Loops::Times(n) => i32::from(u16::try_from(n).unwrap_or(u16::MAX)),
        };
        // Transparent black, as before: a hint players are free to ignore.
        options.anim_params.bgcolor = 0;
        let encoder = Encoder(sys::WebPAnimEncoderNewInternal(
            w,
            h,
            &options,
            sys::WebPGetMuxABIVersion(),
        ));
        if encoder.0.is_null() {
            return Err(fail("out of memory"));
        }
        let mut timestamp: i32 = 0;
        for (img, delay) in frames {
            if (img.width, img.height) != (width, height) {
                return Err(Error::internal(format!(
                    "animation frame is {}x{}, the canvas {width}x{height}",
                    img.width, img.height
                )));
            }
            let mut picture = Picture(sys::WebPPicture::new().map_err(|()| fail("bad picture"))?);
            let p = &mut picture.0;
            p.width = w;
            p.height = h;
            p.use_argb = i32::from(lossless);
            let stride = i32::try_from(img.stride()).map_err(|_| fail("row too long"))?;
            let imported = if img.has_alpha {
                sys::WebPPictureImportRGBA(p, img.data.as_ptr(), stride)
            } else {
                sys::WebPPictureImportRGB(p, img.data.as_ptr(), stride)
            };
            if imported == 0 {
                return Err(fail("out of memory"));
            }
            if sys::WebPAnimEncoderAdd(encoder.0, p, timestamp, &config) == 0 {
                return Err(fail(&encoder.error()));
            }
            timestamp = i32::try_from(i64::from(timestamp) + i64::from(*delay))
                .map_err(|_| Error::invalid("the animation is longer than 24 days"))?;
        }
        // The end of the last frame.
        if sys::WebPAnimEncoderAdd(encoder.0, ptr::null_mut(), timestamp, ptr::null()) == 0 {
            return Err(fail(&encoder.error()));
        }
        let mut data = Data(sys::WebPData::default());
        if sys::WebPAnimEncoderAssemble(encoder.0, &mut data.0) == 0 {
            return Err(fail(&encoder.error()));
        }
        if data.0.bytes.is_null() {
            return Err(fail("no output"));
        }
        Ok(std::slice::from_raw_parts(data.0.bytes, data.0.size).to_vec())
    }
}

/// Owns a `WebPAnimEncoder`.
struct Encoder(*mut sys::WebPAnimEncoder);

impl Encoder {
    /// The encoder's last error message.
    fn error(&self) -> String {
        // SAFETY: the encoder is live; libwebp returns a NUL-terminated string it owns, or null.
        unsafe {
            let message = sys::WebPAnimEncoderGetError(self.0);
            if message.is_null() {
                "unknown error".to_owned()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: allocated by WebPAnimEncoderNewInternal (null is allowed), freed once.
        unsafe { sys::WebPAnimEncoderDelete(self.0) }
    }
}

/// Owns a `WebPPicture`'s pixel buffers.
struct Picture(sys::WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: initialised by WebPPictureInit; frees what an import allocated (or nothing).
        unsafe { sys::WebPPictureFree(&mut self.0) }
    }
}

/// Owns an assembled `WebPData`.
struct Data(sys::WebPData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: allocated by libwebp (or null), freed once.
        unsafe { sys::WebPDataClear(&mut self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::webp::{check_complete, probe, tests::texture};

    #[test]
    fn frames_delays_and_loops_survive_and_every_cut_is_refused() {
        let frames: Vec<(Raster, u32)> = (0..3)
            .map(|n| (texture(48 + n, 32, n == 1), 40 + 30 * n))
            .map(|(img, delay)| {
                // One canvas size: crop each texture to 48×32.
                let rect = crate::geometry::Rect {
                    x: 0,
                    y: 0,
                    width: 48,
                    height: 32,
                };
                (crate::geometry::crop(&img, rect).unwrap(), delay)
            })
            .collect();
        for quality in [60, 100] {
            let bytes = encode(&frames, 48, 32, quality, Loops::Times(3)).unwrap();
            let p = probe(&bytes).unwrap().unwrap();
            assert_eq!((p.frames, p.width, p.height), (3, 48, 32));
            assert!(matches!(p.loops, Loops::Times(3)));
            check_complete(&bytes).unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    check_complete(&bytes[..cut]).is_err(),
                    "q{quality}: cut at {cut} accepted"
                );
            }
        }
    }

    #[test]
    fn a_frame_of_another_size_is_an_error_not_a_crash() {
        let frames = vec![(texture(10, 10, false), 100), (texture(12, 10, false), 100)];
        assert!(encode(&frames, 10, 10, 80, Loops::Forever).is_err());
    }
}
