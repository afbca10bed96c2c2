//! WebP: the size from the bitstream features, still decoding and encoding through libwebp (the
//! `webp` crate), animated frames through `image-webp` (which reads the chunk index on open and
//! composites each frame onto the canvas). Animated encoding is `webp_anim.rs`.

use std::io::Cursor;
use std::num::NonZeroUsize;

use imgbind_wire::{Error, ErrorCode};

use crate::codecs::{Loops, Probe};
use crate::raster::{try_alloc, Raster};

/// Stored width and height, from the bitstream features.
pub(crate) fn read_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    let f = webp::BitstreamFeatures::new(bytes)
        .ok_or_else(|| Error::corrupt("WebP", "unreadable header"))?;
    Ok((f.width(), f.height()))
}

/// Whether the file is an animation (its first frame is then decoded through `animation.rs`).
pub(crate) fn is_animated(bytes: &[u8]) -> Result<bool, Error> {
    let features = webp::BitstreamFeatures::new(bytes)
        .ok_or_else(|| Error::corrupt("WebP", "unreadable header"))?;
    Ok(features.has_animation())
}

/// Decodes a still WebP (an animated one goes through `animation.rs`).
pub(crate) fn decode(bytes: &[u8]) -> Result<Raster, Error> {
    let image = webp::Decoder::new(bytes)
        .decode()
        .ok_or_else(|| Error::corrupt("WebP", "decoding failed"))?;
    let mut data = try_alloc(image.len())?;
    data.copy_from_slice(&image);
    Raster::from_vec(image.width(), image.height(), image.is_alpha(), data)
}

/// Frame count, canvas and loop count of an animated WebP; `None` for a still one. A file cut
/// short is an error here, wherever the cut falls (see [`check_complete`]).
pub(crate) fn probe(bytes: &[u8]) -> Result<Option<Probe>, Error> {
    check_complete(bytes)?;
    let decoder =
        image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| Error::corrupt("WebP", e))?;
    if !decoder.is_animated() {
        return Ok(None);
    }
    let (width, height) = decoder.dimensions();
    let loops = match decoder.loop_count() {
        image_webp::LoopCount::Forever => Loops::Forever,
        image_webp::LoopCount::Times(n) => Loops::Times(u32::from(n.get())),
    };
    Ok(Some(Probe {
        frames: decoder.num_frames(),
        width,
        height,
        loops,
    }))
}

/// Checks that the RIFF container holds every byte it announces and that each chunk in it ends
/// inside it. image-webp indexes an animation's frames on open by seeking past their data, so a
/// file cut inside a frame's data would otherwise open, and a still output (which decodes only
/// frame 0) would never notice.
pub(crate) fn check_complete(bytes: &[u8]) -> Result<(), Error> {
    let truncated = || {
        Error::corrupt(
            "WebP",
            "truncated: the file is shorter than its RIFF header says",
        )
    };
    let riff = bytes
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(truncated)?;
    let end = riff.checked_add(8).ok_or_else(truncated)?;
    if end > bytes.len() {
        return Err(truncated());
    }
    let mut at = 12;
    while at + 8 <= end {
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let chunk_end = (at + 8).checked_add(size as usize).ok_or_else(truncated)?;
        if chunk_end > end {
            return Err(Error::corrupt(
                "WebP",
                "truncated: a chunk runs past the end of the file",
            ));
        }
        // Chunks are padded to an even length.
        at = chunk_end + (size as usize & 1);
    }
    Ok(())
}

/// The composited frames of an animated WebP, decoded one at a time.
pub(crate) struct WebpFrames<'a>(Box<image_webp::WebPDecoder<Cursor<&'a [u8]>>>);

impl<'a> WebpFrames<'a> {
    /// Opens the frames of an animated WebP whose [`probe`] passed the limits.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
            .map_err(|e| Error::corrupt("WebP", e))?;
        // Without a background colour image-webp ignores "dispose to background"; libwebp
        // (and browsers) clear the frame's rectangle to transparent, so do the same.
        decoder
            .set_background_color([0, 0, 0, 0])
            .map_err(|e| Error::corrupt("WebP", e))?;
        Ok(WebpFrames(Box::new(decoder)))
    }

    /// The next frame (the full canvas) and its delay in milliseconds.
    pub(crate) fn next_frame(&mut self) -> Result<(Raster, u32), Error> {
        let decoder = &mut self.0;
        let (w, h) = decoder.dimensions();
        let len = decoder
            .output_buffer_size()
            .ok_or_else(|| Error::corrupt("WebP", "canvas too large"))?;
        let mut data = try_alloc(len)?;
        let delay = decoder
            .read_frame(&mut data)
            .map_err(|e| Error::corrupt("WebP", e))?;
        Ok((Raster::from_vec(w, h, decoder.has_alpha(), data)?, delay))
    }
}

/// The largest side a WebP can have.
const MAX_SIDE: u32 = 16_383;

/// 9413 for a still or animated WebP larger than the format allows.
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), Error> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::new(
            ErrorCode::TooManyPixels,
            format!("WebP cannot be larger than {MAX_SIDE}x{MAX_SIDE} (image is {width}x{height})"),
        ));
    }
    Ok(())
}

/// libwebp's settings for `quality` (1–100): lossy, and lossless at 100, as Cloudflare documents.
/// Stills and animations both start from these.
pub(crate) fn config(quality: u8) -> Result<webp::WebPConfig, Error> {
    let mut config =
        webp::WebPConfig::new().map_err(|()| Error::encode_failed("WebP", "bad config"))?;
    config.lossless = i32::from(quality == 100);
    config.quality = f32::from(quality);
    config.alpha_compression = i32::from(quality != 100);
    Ok(config)
}

/// One frame at `quality` (1–100; 100 is lossless, as Cloudflare documents), on up to two threads
/// when `threads` allows more than one (libwebp uses no more).
pub(crate) fn encode(img: &Raster, quality: u8, threads: NonZeroUsize) -> Result<Vec<u8>, Error> {
    check_size(img.width, img.height)?;
    let mut config = config(quality)?;
    // With a second thread libwebp analyses the macroblocks in two halves and compresses the alpha
    // plane beside the colour: the same bytes (`codecs/webp.rs` tests), sooner.
    config.thread_level = i32::from(threads.get() > 1);
    let layout = if img.has_alpha {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let memory = webp::Encoder::new(&img.data, layout, img.width, img.height)
        .encode_advanced(&config)
        .map_err(|e| Error::encode_failed("WebP", format!("{e:?}")))?;
    Ok(memory.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A photo-like `width`×`height` image: gradients, noise and, with alpha, a soft edge.
    pub(crate) fn texture(width: u32, height: u32, alpha: bool) -> Raster {
        let channels: u32 = if alpha { 4 } else { 3 };
        let mut state = 0x9e37_79b9_u32;
        let mut data = Vec::with_capacity((width * height * channels) as usize);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let v = if c == 3 {
                        (x * 255 / width) as u8
                    } else {
                        ((x * (c + 1) + y * (3 - c)) / 4) as u8 ^ ((state >> 28) as u8)
                    };
                    data.push(v);
                }
            }
        }
        Raster::from_vec(width, height, alpha, data).unwrap()
    }

    #[test]
    fn more_threads_give_the_same_bytes() {
        for alpha in [false, true] {
            let img = texture(800, 450, alpha);
            for quality in [80, 100] {
                let one = encode(&img, quality, NonZeroUsize::MIN).unwrap();
                let two = encode(&img, quality, NonZeroUsize::new(2).unwrap()).unwrap();
                assert!(one == two, "alpha {alpha}, quality {quality}");
            }
        }
    }
}
