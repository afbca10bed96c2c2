//! WebP: the size from the bitstream features, still decoding and encoding through libwebp (the
//! `webp` crate), animated frames through `image-webp` (which reads the chunk index on open and
//! composites each frame onto the canvas), and animated encoding through libwebp's
//! `WebPAnimEncoder`, lossy at the requested quality, lossless at 100.

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

/// Frame count, canvas and loop count of an animated WebP; `None` for a still one.
pub(crate) fn probe(bytes: &[u8]) -> Result<Option<Probe>, Error> {
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

/// One frame at `quality` (1–100; 100 is lossless, as Cloudflare documents), on up to two threads
/// when `threads` allows more than one (libwebp uses no more).
pub(crate) fn encode(img: &Raster, quality: u8, threads: NonZeroUsize) -> Result<Vec<u8>, Error> {
    if img.width > 16_383 || img.height > 16_383 {
        return Err(Error::new(
            ErrorCode::TooManyPixels,
            format!(
                "WebP cannot be larger than 16383x16383 (image is {}x{})",
                img.width, img.height
            ),
        ));
    }
    let mut config =
        webp::WebPConfig::new().map_err(|()| Error::encode_failed("WebP", "bad config"))?;
    // Quality 100 means lossless, as Cloudflare documents.
    config.lossless = i32::from(quality == 100);
    config.quality = f32::from(quality);
    config.alpha_compression = i32::from(quality != 100);
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

/// Encodes frames with libwebp's animation encoder: lossy at `quality`, lossless at 100.
pub(crate) fn encode_animation(
    frames: &[(Raster, u32)],
    width: u32,
    height: u32,
    quality: u8,
    loops: Loops,
) -> Result<Vec<u8>, Error> {
    if width > 16_383 || height > 16_383 {
        return Err(Error::new(
            ErrorCode::TooManyPixels,
            format!("WebP cannot be larger than 16383x16383 (image is {width}x{height})"),
        ));
    }
    let mut config =
        webp::WebPConfig::new().map_err(|()| Error::encode_failed("WebP", "bad config"))?;
    config.lossless = i32::from(quality == 100);
    config.quality = f32::from(quality);
    config.alpha_compression = i32::from(quality != 100);
    let mut encoder = webp::AnimEncoder::new(width, height, &config);
    encoder.set_loop_count(match loops {
        Loops::Forever => 0,
        Loops::Times(n) => i32::from(u16::try_from(n).unwrap_or(u16::MAX)),
    });
    let mut start: u64 = 0;
    for (img, delay) in frames {
        let timestamp = i32::try_from(start)
            .map_err(|_| Error::invalid("the animation is longer than 24 days"))?;
        let layout = if img.has_alpha {
            webp::PixelLayout::Rgba
        } else {
            webp::PixelLayout::Rgb
        };
        encoder.add_frame(webp::AnimFrame::new(
            &img.data, layout, img.width, img.height, timestamp, None,
        ));
        start += u64::from(*delay);
    }
    let memory = encoder
        .try_encode()
        .map_err(|e| Error::encode_failed("WebP", format!("{e:?}")))?;
    let mut bytes = memory.to_vec();
    set_total_duration(&mut bytes, start)?;
    Ok(bytes)
}

/// Makes the ANMF durations of an animated WebP add up to `total_ms` by setting the last one.
///
/// The `webp` crate ends the encoder's input with a zero timestamp, which libwebp rejects, so the
/// last frame gets the average duration instead of its own. Every other duration is exact
/// (identical neighbours merged by libwebp carry their summed durations), so the difference
/// belongs to the last frame.
fn set_total_duration(webp: &mut [u8], total_ms: u64) -> Result<(), Error> {
    let bad = || Error::encode_failed("WebP", "unexpected container layout");
    let mut at = 12;
    let mut sum: u64 = 0;
    let mut last = None;
    while let Some(head) = webp.get(at..at + 8) {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if &head[..4] == b"ANMF" {
            let d = webp.get(at + 20..at + 23).ok_or_else(bad)?;
            let duration = u32::from_le_bytes([d[0], d[1], d[2], 0]);
            sum += u64::from(duration);
            last = Some((at + 20, duration));
        }
        at = at.checked_add(8 + len + (len & 1)).ok_or_else(bad)?;
    }
    let (offset, duration) = last.ok_or_else(bad)?;
    let others = sum - u64::from(duration);
    let wanted = total_ms.saturating_sub(others).min(0xFF_FFFF) as u32;
    webp[offset..offset + 3].copy_from_slice(&wanted.to_le_bytes()[..3]);
    Ok(())
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
