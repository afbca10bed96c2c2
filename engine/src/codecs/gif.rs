//! GIF: the logical screen size, a frame-count scan (for the limits, before any frame is decoded),
//! the frames decoded by the `gif` crate and composited here by image-rs's rules (disposal
//! included; tested equal to image-rs's `GifDecoder`), one-frame encoding
//! through image-rs, and animated encoding through the `gif` crate: one palette for the whole
//! animation, exact or NeuQuant via `color_quant` at [`GIF_SPEED`], and only the changed box of
//! each frame.

use std::io::Cursor;
use std::num::NonZeroUsize;

use imgbind_wire::{Error, ErrorCode};
use rayon::prelude::*;

use crate::codecs::{dimension, Loops, Probe};
use crate::raster::{try_alloc, Raster};
use crate::{threads, Limits};

/// NeuQuant sampling factor for the GIF palette, 1 (best) to 30 (fastest): 10 is the usual
/// compromise (image-rs's default too).
pub(crate) const GIF_SPEED: i32 = 10;

/// Stored width and height, from the logical screen descriptor.
pub(crate) fn read_size(bytes: &[u8]) -> Result<(u32, u32), Error> {
    if bytes.len() < 13 {
        return Err(Error::corrupt("GIF", "header cut short"));
    }
    let w = u32::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    let h = u32::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    Ok((w, h))
}

/// Frame count, canvas and loop count, from a block scan that skips the LZW data. The scan stops
/// with 9413 as soon as the count passes `max_frames`, so a file of millions of tiny frames costs
/// no more than reading it.
pub(crate) fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, Error> {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    let mut decoder = options
        .read_info(Cursor::new(bytes))
        .map_err(|e| Error::corrupt("GIF", e))?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames: u32 = 0;
    while decoder
        .read_next_frame()
        .map_err(|e| Error::corrupt("GIF", e))?
        .is_some()
    {
        frames += 1;
        if frames > limits.max_frames {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "Animation has more than {} frames; at most {} are allowed",
                    limits.max_frames, limits.max_frames
                ),
            ));
        }
    }
    if frames == 0 {
        return Err(Error::corrupt("GIF", "no frames"));
    }
    // No NETSCAPE block plays once; a count n repeats n times after the first play.
    let loops = match decoder.repeat() {
        gif::Repeat::Infinite => Loops::Forever,
        gif::Repeat::Finite(n) => Loops::Times(u32::from(n) + 1),
    };
    Ok(Probe {
        frames,
        width,
        height,
        loops,
    })
}

/// The composited frames of a GIF, decoded one at a time.
pub(crate) struct GifFrames<'a> {
    /// Boxed: its state is ~500 bytes, and a `Frames` holding it is moved by value.
    decoder: Box<gif::Decoder<Cursor<&'a [u8]>>>,
    /// The canvas the next frame is drawn onto: what the frames before it left, after their
    /// disposal (transparent black at first).
    canvas: Vec<u8>,
    /// The logical screen.
    width: usize,
    height: usize,
}

impl<'a> GifFrames<'a> {
    /// Opens the frames of a GIF whose [`probe`] passed the limits.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let decoder = Box::new(
            options
                .read_info(Cursor::new(bytes))
                .map_err(|e| Error::corrupt("GIF", e))?,
        );
        let (width, height) = (usize::from(decoder.width()), usize::from(decoder.height()));
        let canvas = try_alloc(width * height * 4)?;
        Ok(GifFrames {
            decoder,
            canvas,
            width,
            height,
        })
    }

    /// The next frame (the full canvas) and its delay in milliseconds.
    ///
    /// Composited as image-rs's GIF frame iterator composites (its rules, row by row instead of
    /// pixel by pixel, which was a fifth of an animated job): a frame's transparent pixels show
    /// the canvas; then "keep" (and "any") leaves the frame's pixels on the canvas, "background"
    /// clears them to transparent, "previous" leaves the canvas as it was. A frame reaching past
    /// the screen is cut to it. `tests` hold it equal to image-rs.
    pub(crate) fn next_frame(&mut self) -> Result<(Raster, u32), Error> {
        let corrupt = |e: &dyn std::fmt::Display| Error::corrupt("GIF", e);
        let info = self
            .decoder
            .next_frame_info()
            .map_err(|e| corrupt(&e))?
            .ok_or_else(|| corrupt(&"fewer frames than its blocks"))?;
        let (left, top) = (usize::from(info.left), usize::from(info.top));
        let frame_width = usize::from(info.width);
        let (right, bottom) = (
            (left + frame_width).min(self.width),
            (top + usize::from(info.height)).min(self.height),
        );
        let dispose = info.dispose;
        let delay_ms = u32::from(info.delay) * 10;
        let mut frame = try_alloc(self.decoder.buffer_size())?;
        self.decoder
            .read_into_buffer(&mut frame)
            .map_err(|e| corrupt(&e))?;
        let mut out = try_alloc(self.canvas.len())?;
        out.copy_from_slice(&self.canvas);
        if left < right {
            for y in top..bottom {
                let from = (y - top) * frame_width * 4;
                let pixels = &frame[from..from + (right - left) * 4];
                let row = (y * self.width + left) * 4..(y * self.width + right) * 4;
                let canvas = &mut self.canvas[row.clone()];
                let out = &mut out[row];
                for ((c, p), o) in canvas
                    .chunks_exact_mut(4)
                    .zip(pixels.chunks_exact(4))
                    .zip(out.chunks_exact_mut(4))
                {
                    if p[3] != 0 {
                        o.copy_from_slice(p);
                    }
                    match dispose {
                        gif::DisposalMethod::Any | gif::DisposalMethod::Keep => {
                            c.copy_from_slice(o)
                        }
                        gif::DisposalMethod::Background => c.fill(0),
                        gif::DisposalMethod::Previous => {}
                    }
                }
            }
        }
        let (width, height) = (dimension(self.width)?, dimension(self.height)?);
        Ok((Raster::from_vec(width, height, true, out)?, delay_ms))
    }
}

/// One frame, through image-rs's encoder (NeuQuant at [`GIF_SPEED`]).
pub(crate) fn encode(img: Raster) -> Result<Vec<u8>, Error> {
    use image::codecs::gif::GifEncoder;
    let (w, h) = (img.width, img.height);
    let rgba = img.into_rgba()?;
    let buffer = image::RgbaImage::from_raw(w, h, rgba.data)
        .ok_or_else(|| Error::encode_failed("GIF", "buffer size"))?;
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, GIF_SPEED);
        encoder
            .encode_frame(image::Frame::new(buffer))
            .map_err(|e| Error::encode_failed("GIF", e))?;
    }
    Ok(out)
}

/// Most pixels the GIF palette is trained on (sampled evenly from every frame).
const GIF_PALETTE_SAMPLE: usize = 512 * 1024;

/// The palette index GIF output reserves for transparency (real, and "unchanged since the
/// previous frame").
const GIF_TRANSPARENT: u8 = 255;

/// Maps colours to one palette of at most 255 entries: exact when the frames have that few
/// colours, NeuQuant (`color_quant`) otherwise.
enum Palette {
    Exact(std::collections::HashMap<[u8; 3], u8>),
    Learned(color_quant::NeuQuant),
}

impl Palette {
    /// Builds the palette from a sample of every frame's opaque pixels; also returns it as RGB
    /// triplets, 256 entries (the last is the transparent one).
    fn build(frames: &[(Raster, u32)]) -> (Palette, Vec<u8>) {
        let total: usize = frames
            .iter()
            .map(|(f, _)| f.width as usize * f.height as usize)
            .sum();
        let step = total.div_ceil(GIF_PALETTE_SAMPLE).max(1);
        let mut sample = Vec::with_capacity(total / step * 4 + 4);
        let mut exact: std::collections::HashMap<[u8; 3], u8> = Default::default();
        // Opaque pixels seen so far.
        let mut n = 0usize;
        for (frame, _) in frames {
            let c = frame.channels();
            for p in frame.data.chunks_exact(c) {
                let opaque = c == 3 || p[3] >= 128;
                if opaque && exact.len() <= 255 {
                    let len = exact.len();
                    exact.entry([p[0], p[1], p[2]]).or_insert(len as u8);
                }
                if opaque {
                    if n.is_multiple_of(step) {
                        sample.extend_from_slice(&[p[0], p[1], p[2], 255]);
                    }
                    n += 1;
                }
            }
        }
        let mut rgb = vec![0u8; 256 * 3];
        if exact.len() <= 255 {
            for (colour, index) in &exact {
                let at = usize::from(*index) * 3;
                rgb[at..at + 3].copy_from_slice(colour);
            }
            return (Palette::Exact(exact), rgb);
        }
        let quant = color_quant::NeuQuant::new(GIF_SPEED, 255, &sample);
        rgb[..255 * 3].copy_from_slice(&quant.color_map_rgb());
        (Palette::Learned(quant), rgb)
    }

    /// The index of an opaque colour.
    fn index(&self, r: u8, g: u8, b: u8) -> u8 {
        match self {
            Palette::Exact(map) => map.get(&[r, g, b]).copied().unwrap_or(0),
            Palette::Learned(quant) => quant.index_of(&[r, g, b, 255]) as u8,
        }
    }

    /// Palette indices of a frame; pixels with alpha below 128 are [`GIF_TRANSPARENT`]. The search
    /// (NeuQuant's nearest neuron, or the exact map's hash) is remembered per colour in a small
    /// direct-mapped table: a frame repeats its colours, and the answer for a colour never changes.
    fn indices(&self, frame: &Raster, memo: &mut [u32]) -> Vec<u8> {
        let c = frame.channels();
        frame
            .data
            .chunks_exact(c)
            .map(|p| {
                if c == 4 && p[3] < 128 {
                    return GIF_TRANSPARENT;
                }
                let rgb = u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]);
                // Fibonacci hashing of the colour to a slot; an entry is `1 rgb index` (the top
                // bit tells a filled slot from an empty one).
                let slot = (rgb.wrapping_mul(0x9E37_79B1) >> (32 - MEMO_BITS)) as usize;
                let entry = memo[slot];
                if entry >> 31 == 1 && (entry >> 8) & 0xFF_FFFF == rgb {
                    return entry as u8;
                }
                let index = self.index(p[0], p[1], p[2]);
                memo[slot] = 1 << 31 | rgb << 8 | u32::from(index);
                index
            })
            .collect()
    }
}

/// Bits of the colour memo's slot number ([`Palette::indices`]): 256 Ki slots, 1 MiB per lane.
const MEMO_BITS: u32 = 18;
const MEMO_SLOTS: usize = 1 << MEMO_BITS;

/// Frames whose indices are worked out at once: enough to keep a job's threads busy, few enough
/// that the indices held beside the frames stay a few frames' worth.
const FRAMES_AT_ONCE_PER_THREAD: usize = 2;

/// Encodes frames as an animated GIF with the `gif` crate: one global palette for all frames.
/// Opaque animations store only what changed (the bounding box of changed pixels, unchanged ones
/// transparent, disposal "keep"), which is what keeps GIF output small; animations with
/// transparency store whole frames disposed to background.
pub(crate) fn encode_animation(
    frames: &[(Raster, u32)],
    width: u32,
    height: u32,
    loops: Loops,
    threads: NonZeroUsize,
) -> Result<Vec<u8>, Error> {
    let fail = |e| Error::encode_failed("GIF", e);
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(Error::new(
            ErrorCode::TooManyPixels,
            format!("GIF cannot be larger than 65535x65535 (image is {width}x{height})"),
        ));
    };
    let (palette, rgb) = Palette::build(frames);
    let mut encoder = gif::Encoder::new(Vec::new(), w, h, &rgb).map_err(fail)?;
    match loops {
        Loops::Forever => encoder.set_repeat(gif::Repeat::Infinite).map_err(fail)?,
        Loops::Times(1) => {}
        Loops::Times(n) => encoder
            .set_repeat(gif::Repeat::Finite(
                u16::try_from(n - 1).unwrap_or(u16::MAX),
            ))
            .map_err(fail)?,
    }
    let transparent = frames
        .iter()
        .any(|(f, _)| f.has_alpha && f.data.chunks_exact(4).any(|p| p[3] < 128));
    let mut previous: Option<Vec<u8>> = None;
    // Each frame's indices depend only on the palette, so a batch of frames is mapped on the
    // job's threads at once (`threads.rs`); the frames are then written in order, one thread.
    let lanes = threads.get().min(frames.len()).max(1);
    // One memo per lane, kept from batch to batch: the frames of an animation share colours.
    let mut memos = vec![vec![0u32; MEMO_SLOTS]; lanes];
    for frames in frames.chunks(lanes * FRAMES_AT_ONCE_PER_THREAD) {
        let mapped: Vec<Vec<u8>> = threads::run(threads, || {
            let groups: Vec<_> = frames.chunks(FRAMES_AT_ONCE_PER_THREAD).collect();
            memos
                .par_iter_mut()
                .zip(groups)
                .flat_map_iter(|(memo, group)| {
                    group
                        .iter()
                        .map(|(img, _)| palette.indices(img, memo))
                        .collect::<Vec<_>>()
                })
                .collect()
        });
        for ((_, delay_ms), indices) in frames.iter().zip(mapped) {
            let delay = u16::try_from(delay_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
            let mut frame = gif::Frame {
                delay,
                width: w,
                height: h,
                ..gif::Frame::default()
            };
            match (&previous, transparent) {
                (_, true) => {
                    // Whole canvases, cleared after display so transparent pixels stay transparent.
                    frame.dispose = gif::DisposalMethod::Background;
                    frame.transparent = Some(GIF_TRANSPARENT);
                    frame.buffer = std::borrow::Cow::Owned(indices);
                }
                (None, false) => {
                    frame.buffer = std::borrow::Cow::Owned(indices.clone());
                    previous = Some(indices);
                }
                (Some(before), false) => {
                    let (x0, y0, x1, y1) =
                        changed_box(before, &indices, width as usize).unwrap_or((0, 0, 1, 1));
                    let mut part = Vec::with_capacity((x1 - x0) * (y1 - y0));
                    for y in y0..y1 {
                        let row = y * width as usize;
                        for x in x0..x1 {
                            let i = row + x;
                            part.push(if indices[i] == before[i] {
                                GIF_TRANSPARENT
                            } else {
                                indices[i]
                            });
                        }
                    }
                    frame.left = x0 as u16;
                    frame.top = y0 as u16;
                    frame.width = (x1 - x0) as u16;
                    frame.height = (y1 - y0) as u16;
                    frame.transparent = Some(GIF_TRANSPARENT);
                    frame.buffer = std::borrow::Cow::Owned(part);
                    previous = Some(indices);
                }
            }
            encoder.write_frame(&frame).map_err(fail)?;
        }
    }
    encoder.into_inner().map_err(fail)
}

/// The smallest box `(x0, y0, x1, y1)` (exclusive ends) holding every index that differs, or
/// `None` when the frames are the same.
fn changed_box(before: &[u8], after: &[u8], width: usize) -> Option<(usize, usize, usize, usize)> {
    let mut found: Option<(usize, usize, usize, usize)> = None;
    for (y, (a, b)) in before
        .chunks_exact(width)
        .zip(after.chunks_exact(width))
        .enumerate()
    {
        let Some(first) = a.iter().zip(b).position(|(p, q)| p != q) else {
            continue;
        };
        let last = a.iter().zip(b).rposition(|(p, q)| p != q).unwrap_or(first);
        found = Some(match found {
            None => (first, y, last + 1, y + 1),
            Some((x0, y0, x1, _)) => (x0.min(first), y0, x1.max(last + 1), y + 1),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_loop_counts_map_to_plays() {
        let gif_with = |repeat: Option<gif::Repeat>| {
            let mut out = Vec::new();
            {
                let mut e = gif::Encoder::new(&mut out, 1, 1, &[]).unwrap();
                if let Some(r) = repeat {
                    e.set_repeat(r).unwrap();
                }
                e.write_frame(&gif::Frame::from_rgb(1, 1, &[1, 2, 3]))
                    .unwrap();
            }
            probe(&out, &Limits::default()).unwrap().loops
        };
        assert_eq!(gif_with(None), Loops::Times(1));
        assert_eq!(gif_with(Some(gif::Repeat::Infinite)), Loops::Forever);
        assert_eq!(gif_with(Some(gif::Repeat::Finite(2))), Loops::Times(3));
    }

    /// A 12×10 GIF whose frames cover parts of the screen (one reaching past its right and
    /// bottom edges), each with a transparent index and each disposal method, over a global
    /// palette of 8 colours.
    fn disposal_gif() -> Vec<u8> {
        let palette: Vec<u8> = (0..8u8)
            .flat_map(|i| [i * 30, 255 - i * 30, i * 17])
            .collect();
        let mut out = Vec::new();
        {
            let mut e = gif::Encoder::new(&mut out, 12, 10, &palette).unwrap();
            let frames = [
                (0, 0, 12, 10, gif::DisposalMethod::Keep),
                (2, 1, 5, 4, gif::DisposalMethod::Background),
                (4, 3, 6, 5, gif::DisposalMethod::Previous),
                (1, 2, 4, 6, gif::DisposalMethod::Any),
                (9, 7, 6, 6, gif::DisposalMethod::Keep),
                (0, 0, 12, 10, gif::DisposalMethod::Background),
                (3, 3, 3, 3, gif::DisposalMethod::Keep),
            ];
            for (n, (left, top, width, height, dispose)) in frames.into_iter().enumerate() {
                let buffer: Vec<u8> = (0..usize::from(width) * usize::from(height))
                    .map(|i| ((i * 5 + n * 3) % 8) as u8)
                    .collect();
                let frame = gif::Frame {
                    left,
                    top,
                    width,
                    height,
                    dispose,
                    delay: n as u16 + 1,
                    transparent: Some((n % 8) as u8),
                    buffer: std::borrow::Cow::Owned(buffer),
                    ..gif::Frame::default()
                };
                e.write_frame(&frame).unwrap();
            }
        }
        out
    }

    #[test]
    fn frames_composite_as_image_rs_composites_them() {
        use image::AnimationDecoder;
        let bytes = disposal_gif();
        let reference: Vec<_> = image::codecs::gif::GifDecoder::new(Cursor::new(&bytes[..]))
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap();
        let mut ours = GifFrames::open(&bytes).unwrap();
        assert_eq!(reference.len(), 7);
        for (n, expected) in reference.into_iter().enumerate() {
            let (raster, delay) = ours.next_frame().unwrap();
            let (numer, denom) = expected.delay().numer_denom_ms();
            assert_eq!(delay, numer / denom, "frame {n}");
            assert_eq!((raster.width, raster.height), (12, 10));
            assert_eq!(raster.data, expected.into_buffer().into_raw(), "frame {n}");
        }
        assert!(ours.next_frame().is_err(), "past the last frame");
    }
}
