//! The animation pipeline: an animated GIF or WebP canvas keeps its frames when the output is GIF
//! or WebP. The frame count and canvas are read from the container and checked against the
//! [`Limits`] before any frame is decoded; then the frames stream one at a time through the
//! canvas's steps (`steps.rs`) and into an animated encoder. Reading and writing each format is
//! its codec's job (`codecs/gif.rs`, `codecs/webp.rs`).
//!
//! Every frame runs the same canvas steps. Choices that depend on pixels (`trim: border`, and the
//! `auto`/`entropy`/`face` gravities) are made on the first frame and reused, so the frames stay
//! aligned and keep one size. Overlays are prepared once and drawn onto every frame; an animated
//! overlay contributes its first frame.

use std::num::NonZeroUsize;
use std::sync::mpsc;

use imgbind_wire::{Error, ErrorCode, OutputFormat, OutputOptions, Step, TransformStep};

use crate::codecs::gif::{self, GifFrames};
use crate::codecs::webp::{self, WebpFrames};
use crate::codecs::webp_anim;
use crate::codecs::{Loops, Probe};
use crate::format::{Format, Header};
use crate::output::{Encoded, OutputHead, OutputSink};
use crate::raster::Raster;
use crate::steps::{self, Pass};
use crate::{geometry, Clock, Limits};

/// Reads frame count, canvas and loop count of a GIF (any GIF) or an animated WebP; `None` for
/// every other input. GIF: the scan stops with 9413 as soon as the count passes `max_frames`.
pub(crate) fn probe(bytes: &[u8], format: Format, limits: &Limits) -> Result<Option<Probe>, Error> {
    match format {
        Format::Gif => gif::probe(bytes, limits).map(Some),
        Format::Webp => webp::probe(bytes),
        _ => Ok(None),
    }
}

/// The composited frames of a GIF or animated WebP, decoded one at a time.
pub(crate) struct Frames<'a> {
    source: FrameSource<'a>,
    remaining: u32,
}

enum FrameSource<'a> {
    Gif(GifFrames<'a>),
    Webp(WebpFrames<'a>),
}

impl<'a> Frames<'a> {
    /// Opens the frames of a file whose [`Probe`] passed the limits.
    pub(crate) fn open(bytes: &'a [u8], header: &Header, probe: &Probe) -> Result<Self, Error> {
        let source = match header.format {
            Format::Gif => FrameSource::Gif(GifFrames::open(bytes)?),
            Format::Webp => FrameSource::Webp(WebpFrames::open(bytes)?),
            _ => return Err(Error::internal("not an animation format")),
        };
        Ok(Frames {
            source,
            remaining: probe.frames,
        })
    }

    /// The next frame (the full canvas, as stored) and its delay in milliseconds.
    pub(crate) fn next_frame(&mut self) -> NextFrame {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let frame = match &mut self.source {
            FrameSource::Gif(frames) => frames.next_frame()?,
            FrameSource::Webp(frames) => frames.next_frame()?,
        };
        Ok(Some(frame))
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

/// Where [`run`] takes its frames from: the decoder on the job's own thread, or a decoder running
/// one frame ahead on a thread of its own (when the job may use a second core: decoding and
/// compositing a frame is a third to a half of an animated job, and it overlaps the steps of the
/// frame before). The same frames in the same order either way.
enum Feed<'a> {
    Here(Frames<'a>),
    Ahead(mpsc::Receiver<NextFrame>),
}

/// What [`Frames::next_frame`] answers: a frame and its delay, the end, or the error that ends it.
type NextFrame = Result<Option<(Raster, u32)>, Error>;

impl Feed<'_> {
    fn next_frame(&mut self) -> NextFrame {
        match self {
            Feed::Here(frames) => frames.next_frame(),
            // The sender goes away without an answer only when its thread panicked; the scope
            // passes that panic on when it ends.
            Feed::Ahead(frames) => frames
                .recv()
                .unwrap_or_else(|_| Err(Error::internal("the frame decoder stopped"))),
        }
    }
}

/// Moves `frames` to a thread of `scope` that decodes them, sending each (or the error that ends
/// them) as soon as the one before is taken: at most two decoded frames wait, which the memory
/// estimate covers (it counts every input frame). Stops when the receiver is dropped. Gives the
/// frames back when no thread could be started.
fn decode_ahead<'scope, 'a: 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    frames: Frames<'a>,
) -> Result<mpsc::Receiver<NextFrame>, Frames<'a>> {
    let (sender, receiver) = mpsc::sync_channel(1);
    // The decoder goes to the thread only once it has started; until then it stays here.
    let (start, started) = mpsc::sync_channel::<Frames<'a>>(1);
    let spawned = std::thread::Builder::new()
        .name("imgbind-frames".into())
        .spawn_scoped(scope, move || {
            let Ok(mut frames) = started.recv() else {
                return;
            };
            loop {
                let next = frames.next_frame();
                let last = !matches!(next, Ok(Some(_)));
                if sender.send(next).is_err() || last {
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => {
            // The thread holds `started` until it has the frames, so this send cannot fail.
            let _ = start.send(frames);
            Ok(receiver)
        }
        Err(_) => Err(frames),
    }
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
    // An overlay's own steps (and draws between overlays) run once, first.
    if let Some(i) = steps.iter().position(|s| {
        matches!(s, Step::Draw(d) if d.draw_image_index == 0) && !steps::touches_canvas(s)
    }) {
        return Err(Error::invalid(format!(
            "transforms[{i}]: image 0 cannot be drawn onto another image"
        )));
    }
    steps::apply(
        &mut images,
        steps,
        |s| !steps::touches_canvas(s),
        Pass::Once(clock),
        limits,
    )?;

    let Animation {
        probe,
        orientation,
        frames,
    } = animation;
    let mut writer = Writer::new(output, probe.loops, limits.threads);
    let size = std::thread::scope(|scope| {
        // With a second core, frames decode on their own thread and the steps get the rest.
        let ahead = match limits.threads.get() {
            1 => Err(frames),
            _ => decode_ahead(scope, frames),
        };
        let (mut feed, step_limits) = match ahead {
            Ok(receiver) => (
                Feed::Ahead(receiver),
                Limits {
                    threads: NonZeroUsize::new(limits.threads.get() - 1)
                        .unwrap_or(NonZeroUsize::MIN),
                    ..limits.clone()
                },
            ),
            Err(frames) => (Feed::Here(frames), limits.clone()),
        };
        // Transform steps as resolved on the first frame, in canvas-step order.
        let mut resolved: Vec<TransformStep> = Vec::new();
        let mut size: Option<(u32, u32)> = None;
        while let Some((img, delay)) = feed.next_frame()? {
            clock.check()?;
            let img = img.drop_opaque_alpha()?;
            let img = geometry::apply_orientation(img, orientation, &step_limits)?;
            images[0] = Some(img);
            let pass = Pass::Frame {
                resolved: &mut resolved,
            };
            steps::apply(
                &mut images,
                steps,
                steps::touches_canvas,
                pass,
                &step_limits,
            )?;
            let img = steps::take(&mut images, 0, steps.len())?;
            match size {
                None => {
                    // The result's frame-pixels are bounded like the input's.
                    let total =
                        u64::from(probe.frames) * u64::from(img.width) * u64::from(img.height);
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
        Ok::<_, Error>(size)
    })?;
    // The encode has the job's whole allowance: every frame is decoded by now.
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
    /// The job's allowance (GIF maps its frames to the palette on that many threads).
    threads: NonZeroUsize,
    frames: Vec<(Raster, u32)>,
}

impl Writer {
    fn new(output: &OutputOptions, loops: Loops, threads: NonZeroUsize) -> Writer {
        Writer {
            format: output.format,
            quality: output.quality_or_default().clamp(1, 100),
            background: output.background,
            loops,
            threads,
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
            OutputFormat::Gif => {
                gif::encode_animation(&self.frames, width, height, self.loops, self.threads)
            }
            _ => webp_anim::encode(&self.frames, width, height, self.quality, self.loops),
        }
    }
}
