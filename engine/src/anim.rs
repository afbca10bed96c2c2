//! Animated GIF and WebP: read the frame count and canvas from the container, check them against
//! the [`Limits`] before any frame is decoded, then stream the frames through the canvas's steps
//! one at a time and into an animated encoder.
//!
//! - GIF: a block scan with the `gif` crate (LZW data skipped, not decoded) counts frames and reads
//!   the loop count; `image`'s `GifDecoder` then composites every frame onto the full canvas
//!   (disposal included).
//! - WebP: `image-webp` reads the chunk index (frame count, canvas, loop count) on open and
//!   composites each frame onto the canvas as it is read.
//! - Output: GIF through the `gif` crate (one NeuQuant palette per frame, `color_quant`, speed
//!   [`GIF_SPEED`]); WebP through libwebp's `WebPAnimEncoder` (the `webp` crate), lossy at the
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
use crate::raster::{try_alloc, Raster};
use crate::{composite, Clock, Encoded, Limits};

/// NeuQuant sampling speed for GIF output, 1 (best) to 30 (fastest). 10 keeps gradients smooth
/// while a 660×666 frame quantises in a few milliseconds.
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

fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::NotAnImage,
        format!("{what} image is corrupt or truncated: {detail}"),
    )
}

fn encode_error(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("{what} encoding failed: {detail}"),
    )
}

/// Reads frame count, canvas and loop count of a GIF (any GIF) or an animated WebP; `None` for
/// every other input. GIF: the scan stops with 9522 as soon as the count passes `max_frames`, so a
/// file of millions of tiny frames costs no more than reading it.
pub(crate) fn probe(bytes: &[u8], format: Format, limits: &Limits) -> Result<Option<Probe>, Error> {
    match format {
        Format::Gif => scan_gif(bytes, limits).map(Some),
        Format::Webp => {
            let decoder =
                image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| corrupt("WebP", e))?;
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
        .map_err(|e| corrupt("GIF", e))?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames: u32 = 0;
    while decoder
        .read_next_frame()
        .map_err(|e| corrupt("GIF", e))?
        .is_some()
    {
        frames += 1;
        if frames > limits.max_frames {
            return Err(Error::new(
                ErrorCode::ProcessingLimit,
                format!(
                    "Animation has more than {} frames; at most {} are allowed",
                    limits.max_frames, limits.max_frames
                ),
            ));
        }
    }
    if frames == 0 {
        return Err(corrupt("GIF", "no frames"));
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
                    .map_err(|e| corrupt("GIF", e))?;
                FrameSource::Gif(decoder.into_frames())
            }
            Format::Webp => {
                let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
                    .map_err(|e| corrupt("WebP", e))?;
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
                    .ok_or_else(|| corrupt("GIF", "fewer frames than its blocks"))?
                    .map_err(|e| corrupt("GIF", e))?;
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
                    .ok_or_else(|| corrupt("WebP", "canvas too large"))?;
                let mut data = try_alloc(len)?;
                let delay = decoder
                    .read_frame(&mut data)
                    .map_err(|e| corrupt("WebP", e))?;
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
        .ok_or_else(|| corrupt(header.format.mime(), "no frames"))?;
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
) -> Result<Encoded, Error> {
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
                        ErrorCode::ProcessingLimit,
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
    let (width, height) = size.ok_or_else(|| corrupt("animated", "no frames"))?;
    clock.check()?;
    let bytes = writer.finish(width, height)?;
    Ok(Encoded {
        bytes,
        format: output.format,
        width,
        height,
    })
}

/// Collects processed frames into an animated GIF or WebP.
struct Writer {
    format: OutputFormat,
    quality: u8,
    background: Option<imgbind_wire::Rgba>,
    loops: Loops,
    /// GIF frames are encoded as they come.
    gif: Option<gif::Encoder<Vec<u8>>>,
    /// WebP frames are kept until the end (the `webp` crate's encoder takes them all at once).
    webp: Vec<(Raster, u32)>,
}

impl Writer {
    fn new(output: &OutputOptions, loops: Loops) -> Writer {
        Writer {
            format: output.format,
            quality: output.quality_or_default().clamp(1, 100),
            background: output.background,
            loops,
            gif: None,
            webp: Vec::new(),
        }
    }

    fn push(&mut self, img: Raster, delay_ms: u32) -> Result<(), Error> {
        let img = match self.background {
            Some(bg) => img.flatten(bg)?,
            None => img,
        };
        match self.format {
            OutputFormat::Gif => self.push_gif(img, delay_ms),
            _ => {
                self.webp.push((img, delay_ms));
                Ok(())
            }
        }
    }

    fn push_gif(&mut self, mut img: Raster, delay_ms: u32) -> Result<(), Error> {
        let fail = |e| encode_error("GIF", e);
        let (w, h) = match (u16::try_from(img.width), u16::try_from(img.height)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => {
                return Err(Error::new(
                    ErrorCode::ProcessingLimit,
                    format!(
                        "GIF cannot be larger than 65535x65535 (image is {}x{})",
                        img.width, img.height
                    ),
                ))
            }
        };
        if self.gif.is_none() {
            let mut encoder = gif::Encoder::new(Vec::new(), w, h, &[]).map_err(fail)?;
            match self.loops {
                Loops::Forever => encoder.set_repeat(gif::Repeat::Infinite).map_err(fail)?,
                Loops::Times(1) => {}
                Loops::Times(n) => encoder
                    .set_repeat(gif::Repeat::Finite(
                        u16::try_from(n - 1).unwrap_or(u16::MAX),
                    ))
                    .map_err(fail)?,
            }
            self.gif = Some(encoder);
        }
        let mut frame = if img.has_alpha {
            // GIF has 1-bit transparency and the encoder makes any alpha above 0 opaque: cut at
            // half instead, so faint edges vanish rather than turn solid.
            for p in img.data.chunks_exact_mut(4) {
                p[3] = if p[3] < 128 { 0 } else { 255 };
            }
            let mut frame = gif::Frame::from_rgba_speed(w, h, &mut img.data, GIF_SPEED);
            // Every frame is a whole canvas: clear it before the next one so transparent pixels
            // show what is behind the image, not the previous frame.
            frame.dispose = gif::DisposalMethod::Background;
            frame
        } else {
            gif::Frame::from_rgb_speed(w, h, &img.data, GIF_SPEED)
        };
        frame.delay = u16::try_from(delay_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
        let encoder = self
            .gif
            .as_mut()
            .ok_or_else(|| encode_error("GIF", "no encoder"))?;
        encoder.write_frame(&frame).map_err(fail)
    }

    fn finish(self, width: u32, height: u32) -> Result<Vec<u8>, Error> {
        match self.format {
            OutputFormat::Gif => self
                .gif
                .ok_or_else(|| encode_error("GIF", "no frames"))?
                .into_inner()
                .map_err(|e| encode_error("GIF", e)),
            _ => encode_webp(&self.webp, width, height, self.quality, self.loops),
        }
    }
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
            ErrorCode::ProcessingLimit,
            format!("WebP cannot be larger than 16383x16383 (image is {width}x{height})"),
        ));
    }
    let mut config = webp::WebPConfig::new().map_err(|()| encode_error("WebP", "bad config"))?;
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
        .map_err(|e| encode_error("WebP", format!("{e:?}")))?;
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
    let bad = || encode_error("WebP", "unexpected container layout");
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
