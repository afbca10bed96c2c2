//! Animated GIF and WebP: read the frame count and canvas from the container, check them against
//! the [`Limits`] before any frame is decoded, then stream the frames through the canvas's steps
//! one at a time and into an animated encoder.
//!
//! - GIF: a block scan with the `gif` crate (LZW data skipped, not decoded) counts frames and reads
//!   the loop count; `image`'s `GifDecoder` then composites every frame onto the full canvas
//!   (disposal included).
//! - WebP: `image-webp` reads the chunk index (frame count, canvas, loop count) on open and
//!   composites each frame onto the canvas as it is read.
//! - Output: GIF through the `gif` crate (one palette for the whole animation, exact or NeuQuant
//!   via `color_quant` at [`GIF_SPEED`], and only the changed box of each frame); WebP through libwebp's `WebPAnimEncoder` (the `webp` crate), lossy at the
//!   requested quality, lossless at 100.
//!
//! Every frame runs the same canvas steps. Choices that depend on pixels (`trim: border`, and the
//! `auto`/`entropy`/`face` gravities) are made on the first frame and reused, so the frames stay
//! aligned and keep one size. Overlays are prepared once and drawn onto every frame; an animated
//! overlay contributes its first frame.

use std::io::Cursor;

use image::AnimationDecoder;
use imgbind_wire::{Error, ErrorCode, OutputFormat, OutputOptions, Step, TransformStep};

use crate::decode::{Format, Header};
use crate::output::{Encoded, OutputHead, OutputSink};
use crate::raster::{try_alloc, Raster};
use crate::{composite, Clock, Limits};

/// NeuQuant sampling factor for the GIF palette, 1 (best) to 30 (fastest): 10 is the usual
/// compromise (image-rs's default too).
pub(crate) const GIF_SPEED: i32 = 10;

/// How often an animation plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loops {
    /// Without end.
    Forever,
    /// This many times in all (≥ 1).
    Times(u32),
}

/// What the container says about an animation, read without decoding a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Frames in the file.
    pub(crate) frames: u32,
    /// Canvas width.
    pub(crate) width: u32,
    /// Canvas height.
    pub(crate) height: u32,
    /// Loop count.
    pub(crate) loops: Loops,
}

/// Reads frame count, canvas and loop count of a GIF (any GIF) or an animated WebP; `None` for
/// every other input. GIF: the scan stops with 9413 as soon as the count passes `max_frames`, so a
/// file of millions of tiny frames costs no more than reading it.
pub(crate) fn probe(bytes: &[u8], format: Format, limits: &Limits) -> Result<Option<Probe>, Error> {
    match format {
        Format::Gif => scan_gif(bytes, limits).map(Some),
        Format::Webp => {
            let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
                .map_err(|e| Error::corrupt("WebP", e))?;
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
        _ => Ok(None),
    }
}

fn scan_gif(bytes: &[u8], limits: &Limits) -> Result<Probe, Error> {
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

/// The composited frames of a GIF or animated WebP, decoded one at a time.
pub(crate) struct Frames<'a> {
    source: FrameSource<'a>,
    remaining: u32,
}

enum FrameSource<'a> {
    Gif(image::Frames<'a>),
    Webp(Box<image_webp::WebPDecoder<Cursor<&'a [u8]>>>),
}

impl<'a> Frames<'a> {
    /// Opens the frames of a file whose [`Probe`] passed the limits.
    pub(crate) fn open(bytes: &'a [u8], header: &Header, probe: &Probe) -> Result<Self, Error> {
        let source = match header.format {
            Format::Gif => {
                let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
                    .map_err(|e| Error::corrupt("GIF", e))?;
                FrameSource::Gif(decoder.into_frames())
            }
            Format::Webp => {
                let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
                    .map_err(|e| Error::corrupt("WebP", e))?;
                // Without a background colour image-webp ignores "dispose to background"; libwebp
                // (and browsers) clear the frame's rectangle to transparent, so do the same.
                decoder
                    .set_background_color([0, 0, 0, 0])
                    .map_err(|e| Error::corrupt("WebP", e))?;
                FrameSource::Webp(Box::new(decoder))
            }
            _ => return Err(Error::new(ErrorCode::Internal, "not an animation format")),
        };
        Ok(Frames {
            source,
            remaining: probe.frames,
        })
    }

    /// The next frame (the full canvas, as stored) and its delay in milliseconds.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(Raster, u32)>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let (raster, delay) = match &mut self.source {
            FrameSource::Gif(frames) => {
                let frame = frames
                    .next()
                    .ok_or_else(|| Error::corrupt("GIF", "fewer frames than its blocks"))?
                    .map_err(|e| Error::corrupt("GIF", e))?;
                let (numer, denom) = frame.delay().numer_denom_ms();
                let buffer = frame.into_buffer();
                let (w, h) = buffer.dimensions();
                (
                    Raster::from_vec(w, h, true, buffer.into_raw())?,
                    numer / denom.max(1),
                )
            }
            FrameSource::Webp(decoder) => {
                let (w, h) = decoder.dimensions();
                let len = decoder
                    .output_buffer_size()
                    .ok_or_else(|| Error::corrupt("WebP", "canvas too large"))?;
                let mut data = try_alloc(len)?;
                let delay = decoder
                    .read_frame(&mut data)
                    .map_err(|e| Error::corrupt("WebP", e))?;
                (Raster::from_vec(w, h, decoder.has_alpha(), data)?, delay)
            }
        };
        Ok(Some((raster, delay)))
    }
}

/// The first frame of a GIF or animated WebP, after the whole animation passed the limits (an
/// animation over the limits is refused even when only its first frame is wanted).
pub(crate) fn first_frame(
    bytes: &[u8],
    header: &Header,
    limits: &Limits,
    clock: &Clock,
) -> Result<Option<Raster>, Error> {
    let Some(probe) = probe(bytes, header.format, limits)? else {
        return Ok(None);
    };
    limits.check_animation(probe.frames, probe.width, probe.height)?;
    clock.check()?;
    let mut frames = Frames::open(bytes, header, &probe)?;
    let (raster, _) = frames
        .next_frame()?
        .ok_or_else(|| Error::corrupt(header.format.mime(), "no frames"))?;
    Ok(Some(raster))
}

/// An animated canvas that will keep its frames: opened when the output asks for animation
/// (`anim` not false, GIF or WebP output) and the input has more than one frame.
pub(crate) struct Animation<'a> {
    probe: Probe,
    orientation: u8,
    frames: Frames<'a>,
}

/// Opens image 0 as an animation when the output keeps animation and the input has several
/// frames, after checking the frame count and frame-pixels against the limits; `None` otherwise
/// (the still path then decodes the first frame).
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    header: &Header,
    output: &OutputOptions,
    limits: &Limits,
) -> Result<Option<Animation<'a>>, Error> {
    if !output.anim || !matches!(output.format, OutputFormat::Gif | OutputFormat::Webp) {
        return Ok(None);
    }
    let Some(probe) = probe(bytes, header.format, limits)? else {
        return Ok(None);
    };
    limits.check_animation(probe.frames, probe.width, probe.height)?;
    if probe.frames < 2 {
        return Ok(None);
    }
    let frames = Frames::open(bytes, header, &probe)?;
    Ok(Some(Animation {
        probe,
        orientation: header.orientation,
        frames,
    }))
}

/// True when a step changes image 0 (the canvas).
fn touches_canvas(step: &Step) -> bool {
    match step {
        Step::Transform(t) => t.image_index == 0,
        Step::Draw(d) => d.target_image_index == 0,
    }
}

/// Runs the job's steps on every frame of the canvas and encodes the animation.
///
/// Steps that never touch the canvas (an overlay's own transforms and the draws between overlays)
/// run once, first: the wire's tree check guarantees no step touches an overlay after it is drawn,
/// so this order gives each overlay exactly the state it has in call order. The canvas steps then
/// run per frame, drawing the prepared overlays by reference.
pub(crate) fn run(
    animation: Animation<'_>,
    mut images: Vec<Option<Raster>>,
    steps: &[Step],
    output: &OutputOptions,
    limits: &Limits,
    clock: &Clock,
    sink: &mut dyn OutputSink,
) -> Result<OutputHead, Error> {
    for (i, step) in steps.iter().enumerate() {
        if touches_canvas(step) {
            continue;
        }
        clock.check()?;
        match step {
            Step::Transform(t) => {
                let img = crate::take(&mut images, t.image_index, i)?;
                images[t.image_index] = Some(crate::transform(img, t, limits)?);
            }
            Step::Draw(d) => {
                if d.draw_image_index == 0 {
                    return Err(Error::invalid(format!(
                        "transforms[{i}]: image 0 cannot be drawn onto another image"
                    )));
                }
                let overlay = crate::take(&mut images, d.draw_image_index, i)?;
                let target = crate::take(&mut images, d.target_image_index, i)?;
                images[d.target_image_index] = Some(composite::draw(target, &overlay, d)?);
            }
        }
    }

    let Animation {
        probe,
        orientation,
        mut frames,
    } = animation;
    let mut writer = Writer::new(output, probe.loops);
    // Transform steps as resolved on the first frame, in canvas-step order.
    let mut resolved: Vec<TransformStep> = Vec::new();
    let mut size: Option<(u32, u32)> = None;
    while let Some((img, delay)) = frames.next_frame()? {
        clock.check()?;
        let img = crate::decode::drop_opaque_alpha(img)?;
        let mut img = crate::decode::apply_orientation(img, orientation, limits)?;
        let first = size.is_none();
        let mut transform_index = 0;
        for (i, step) in steps.iter().enumerate() {
            if !touches_canvas(step) {
                continue;
            }
            match step {
                Step::Transform(t) => {
                    if first {
                        let (out, choice) = crate::transform_resolving(img, t, limits)?;
                        img = out;
                        resolved.push(choice);
                    } else {
                        img = crate::transform(img, &resolved[transform_index], limits)?;
                    }
                    transform_index += 1;
                }
                Step::Draw(d) => {
                    let overlay = images
                        .get(d.draw_image_index)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "transforms[{i}]: image {} does not exist or was already drawn",
                                d.draw_image_index
                            ))
                        })?;
                    img = composite::draw(img, overlay, d)?;
                }
            }
        }
        match size {
            None => {
                // The result's frame-pixels are bounded like the input's.
                let total = u64::from(probe.frames) * u64::from(img.width) * u64::from(img.height);
                if total > limits.max_animation_pixels {
                    return Err(Error::new(
                        ErrorCode::TooManyPixels,
                        format!(
                            "The result would be {} frames of {}x{} ({total} pixels in all); \
                             at most {} are allowed",
                            probe.frames, img.width, img.height, limits.max_animation_pixels
                        ),
                    ));
                }
                size = Some((img.width, img.height));
            }
            Some(s) if s != (img.width, img.height) => {
                return Err(Error::new(
                    ErrorCode::Internal,
                    format!(
                        "animation frames came out in different sizes ({}x{} and {}x{})",
                        s.0, s.1, img.width, img.height
                    ),
                ));
            }
            Some(_) => {}
        }
        writer.push(img, delay)?;
    }
    let (width, height) = size.ok_or_else(|| Error::corrupt("animated", "no frames"))?;
    clock.check()?;
    let bytes = writer.finish(width, height)?;
    Encoded {
        bytes,
        format: output.format,
        width,
        height,
    }
    .write_to(sink)
}

/// Collects processed frames into an animated GIF or WebP. Both encoders take the frames at the
/// end: GIF builds one palette from all of them, WebP's `AnimEncoder` takes them together.
struct Writer {
    format: OutputFormat,
    quality: u8,
    background: Option<imgbind_wire::Rgba>,
    loops: Loops,
    frames: Vec<(Raster, u32)>,
}

impl Writer {
    fn new(output: &OutputOptions, loops: Loops) -> Writer {
        Writer {
            format: output.format,
            quality: output.quality_or_default().clamp(1, 100),
            background: output.background,
            loops,
            frames: Vec::new(),
        }
    }

    fn push(&mut self, img: Raster, delay_ms: u32) -> Result<(), Error> {
        let img = match self.background {
            Some(bg) => img.flatten(bg)?,
            None => img,
        };
        self.frames.push((img, delay_ms));
        Ok(())
    }

    fn finish(self, width: u32, height: u32) -> Result<Vec<u8>, Error> {
        match self.format {
            OutputFormat::Gif => encode_gif(&self.frames, width, height, self.loops),
            _ => encode_webp(&self.frames, width, height, self.quality, self.loops),
        }
    }
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

    /// Palette indices of a frame; pixels with alpha below 128 are [`GIF_TRANSPARENT`].
    fn indices(&self, frame: &Raster) -> Vec<u8> {
        let c = frame.channels();
        frame
            .data
            .chunks_exact(c)
            .map(|p| {
                if c == 4 && p[3] < 128 {
                    GIF_TRANSPARENT
                } else {
                    self.index(p[0], p[1], p[2])
                }
            })
            .collect()
    }
}

/// Encodes frames as an animated GIF with the `gif` crate: one global palette for all frames.
/// Opaque animations store only what changed (the bounding box of changed pixels, unchanged ones
/// transparent, disposal "keep"), which is what keeps GIF output small; animations with
/// transparency store whole frames disposed to background.
fn encode_gif(
    frames: &[(Raster, u32)],
    width: u32,
    height: u32,
    loops: Loops,
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
    for (img, delay_ms) in frames {
        let indices = palette.indices(img);
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

/// Encodes frames with libwebp's animation encoder: lossy at `quality`, lossless at 100.
fn encode_webp(
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
            scan_gif(&out, &Limits::default()).unwrap().loops
        };
        assert_eq!(gif_with(None), Loops::Times(1));
        assert_eq!(gif_with(Some(gif::Repeat::Infinite)), Loops::Forever);
        assert_eq!(gif_with(Some(gif::Repeat::Finite(2))), Loops::Times(3));
    }
}
