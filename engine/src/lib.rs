//! The pixel work of imgbind, with no I/O: decode the inputs, apply the steps in call order,
//! composite draws, encode. [`run`] is one whole `/transform` job; [`info`] answers `/info`.
//!
//! The flow of one job, top to bottom in [`run`]:
//!
//! 1. check the request against the [`Limits`] that need no decoding (input bytes, draw layers);
//! 2. read every source's header and check its dimensions; plan the op list (`plan.rs`: chained
//!    transforms fused where that gives the same pixels, and how far each source may shrink on
//!    load);
//! 3. decode each source, a JPEG shrunk on load as planned; EXIF orientation is applied right
//!    after decoding; a text source (`text_input`/`draw_text`) is rendered to RGBA instead
//!    (`text.rs`, fonts from `fonts.rs`);
//! 4. apply every planned step in order, checking the deadline between steps (`steps.rs`, the one
//!    step applier, which an animated canvas's frames go through too: `animation.rs`);
//! 5. encode image 0 into the sink (`encode.rs`, each format's codec in `codecs/`).
//!
//! Not supported yet (9520, never silently ignored): `segment`, AVIF and HEIC input,
//! AVIF output. Animated GIF/WebP keep every frame when the output is GIF or WebP (`animation.rs`).

mod animation;
mod codecs;
mod composite;
mod cost;
mod decode;
mod encode;
mod filters;
mod fonts;
mod format;
mod geometry;
mod icc;
mod info;
mod limits;
mod metadata;
mod output;
mod palette;
mod plan;
mod raster;
mod resize;
mod smartcrop;
mod steps;
mod text;
mod threads;

use std::time::{Duration, Instant};

use imgbind_wire::{Error, ErrorCode, OutputOptions, Step};

pub use cost::{memory_needed, TEXT_SOURCE_BYTES};
pub use info::info;
pub use limits::Limits;
pub use output::{Encoded, OutputHead, OutputSink};

/// One `/transform` request: the images, the steps and the output options.
#[derive(Debug, Clone)]
pub struct Job {
    /// Image 0 is the canvas; image n ≥ 1 is the n-th draw part.
    pub sources: Vec<Source>,
    /// Validated steps, in call order (see `imgbind_wire::parse_steps`).
    pub steps: Vec<Step>,
    /// Output encoding.
    pub output: OutputOptions,
}

/// One input image.
#[derive(Debug, Clone)]
pub enum Source {
    /// Encoded image bytes (`image` / `draw_image` part).
    Image(bytes::Bytes),
    /// Raw JSON of a `text_input` / `draw_text` part, rendered by `text.rs`.
    Text(String),
}

/// Where one job's time went (the server's metrics and logs). Filled as far as the job got: a job
/// that fails while decoding has zero `transform` and `encode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Reading headers and decoding every source.
    pub decode: Duration,
    /// Applying the steps (transforms and draws).
    pub transform: Duration,
    /// Encoding the result.
    pub encode: Duration,
}

/// Adds the time until it is dropped to one [`Timings`] field, on every exit path.
struct PhaseTimer<'a> {
    slot: &'a mut Duration,
    started: Instant,
}

impl PhaseTimer<'_> {
    fn start(slot: &mut Duration) -> PhaseTimer<'_> {
        PhaseTimer {
            slot,
            started: Instant::now(),
        }
    }
}

impl Drop for PhaseTimer<'_> {
    fn drop(&mut self) {
        *self.slot += self.started.elapsed();
    }
}

/// Runs one job. CPU-bound and synchronous: call it from a blocking thread. Never panics on bad
/// input; every failure is a coded [`Error`].
pub fn run(job: Job, limits: &Limits) -> Result<Encoded, Error> {
    run_timed(job, limits, &mut Timings::default())
}

/// [`run`], also adding the time spent decoding, applying steps and encoding to `timings`.
pub fn run_timed(job: Job, limits: &Limits, timings: &mut Timings) -> Result<Encoded, Error> {
    let mut encoded = Encoded::empty(job.output.format);
    run_into(job, limits, timings, &mut encoded)?;
    Ok(encoded)
}

/// How a job's steps are run: [`Planning::Planned`] is what [`run`] does; the others are the
/// references the planner is tested and measured against (`tests/planner.rs`, the bench).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// Fused steps, shrink-on-load (`plan.rs`).
    Planned,
    /// Fused steps, every source decoded at full size.
    PlannedFullDecode,
    /// The steps as written, one by one, every source decoded at full size.
    AsWritten,
}

/// [`run`] with the steps run as `planning` says.
#[doc(hidden)]
pub fn run_planned(job: Job, limits: &Limits, planning: Planning) -> Result<Encoded, Error> {
    let mut encoded = Encoded::empty(job.output.format);
    run_with(job, limits, planning, &mut Timings::default(), &mut encoded)?;
    Ok(encoded)
}

/// [`run_timed`], writing the output into `sink` as the encoder produces it (PNG, raw; see
/// `output.rs`) or as one block once complete (every other format). Returns the output's head.
/// Nothing reaches the sink before encoding starts, so every error up to then comes before any
/// byte; an error after [`OutputSink::begin`] means the output written so far is incomplete.
pub fn run_into(
    job: Job,
    limits: &Limits,
    timings: &mut Timings,
    sink: &mut dyn OutputSink,
) -> Result<OutputHead, Error> {
    run_with(job, limits, Planning::Planned, timings, sink)
}

fn run_with(
    job: Job,
    limits: &Limits,
    planning: Planning,
    timings: &mut Timings,
    sink: &mut dyn OutputSink,
) -> Result<OutputHead, Error> {
    let clock = Clock::start(limits);

    // 1. Limits that need no decoding.
    let input_bytes: u64 = job
        .sources
        .iter()
        .map(|s| match s {
            Source::Image(b) => b.len() as u64,
            Source::Text(t) => t.len() as u64,
        })
        .sum();
    limits.check_input_bytes(input_bytes)?;
    let draws = job
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Draw(_)))
        .count();
    if draws as u64 > u64::from(limits.max_draw_layers) {
        return Err(Error::new(
            ErrorCode::TooManyPixels,
            format!(
                "{draws} draws; at most {} are allowed",
                limits.max_draw_layers
            ),
        ));
    }
    if let Some(step) = job.steps.iter().find_map(|s| match s {
        Step::Transform(t) if t.segment.is_some() => Some(t),
        _ => None,
    }) {
        return Err(Error::new(
            ErrorCode::UnsupportedFormat,
            format!("segment (image {}) is not supported yet", step.image_index),
        ));
    }

    // 2. Every header, checked against the limits; then the plan (`plan.rs`): the steps fused
    //    where that gives the same pixels, and how far each source may shrink on load.
    let decoding = PhaseTimer::start(&mut timings.decode);
    let mut headers = Vec::with_capacity(job.sources.len());
    for source in &job.sources {
        let Source::Image(bytes) = source else {
            headers.push(None);
            continue;
        };
        let header = format::read_header(bytes)?;
        format::check_decodable(header.format)?;
        let (width, height) = header.display_size();
        limits.check_dimensions(width, height)?;
        headers.push(Some(header));
    }
    let sizes: Vec<_> = headers
        .iter()
        .map(|h| h.as_ref().map(format::Header::display_size))
        .collect();
    let plan = match planning {
        Planning::Planned => plan::plan(&job.steps, &sizes, true),
        Planning::PlannedFullDecode => plan::plan(&job.steps, &sizes, false),
        Planning::AsWritten => plan::unplanned(&job.steps, sizes.len()),
    };

    // 3. Decode every source, upright, shrunk on load as planned; two at once when the job may
    //    use a second core (`decode::sources`).
    let mut animation = None;
    let mut work = Vec::with_capacity(job.sources.len());
    for (index, (source, header)) in job.sources.iter().zip(&headers).enumerate() {
        work.push(match (source, header) {
            (Source::Text(json), _) => decode::Work::Text { json, index },
            (Source::Image(bytes), Some(header)) => {
                // A canvas that keeps its frames is decoded frame by frame in step 4.
                let frames = match index {
                    0 => animation::open(bytes, header, &job.output, limits)?,
                    _ => None,
                };
                match frames {
                    Some(frames) => {
                        animation = Some(frames);
                        decode::Work::Later
                    }
                    None => decode::Work::Image {
                        bytes,
                        header,
                        min_scale: plan.min_scale[index],
                        window: plan.window[index],
                    },
                }
            }
            // Every image source has its header (step 2 returned otherwise).
            (Source::Image(_), None) => decode::Work::Later,
        });
    }
    let mut images = decode::sources(&work, limits, &clock)?;
    if images.is_empty() {
        return Err(Error::invalid("the request has no image"));
    }

    drop(decoding);

    // 4. Steps, in (planned) call order.
    let transforming = PhaseTimer::start(&mut timings.transform);
    if let Some(animation) = animation {
        // Every frame through the canvas's steps, then an animated encode (animation.rs).
        return animation::run(
            animation,
            images,
            &plan.steps,
            &job.output,
            limits,
            &clock,
            sink,
        );
    }
    steps::apply(
        &mut images,
        &plan.steps,
        |_| true,
        steps::Pass::Once(&clock),
        limits,
    )?;

    drop(transforming);

    // 5. Encode the canvas.
    let _encoding = PhaseTimer::start(&mut timings.encode);
    let canvas = steps::take(&mut images, 0, plan.steps.len())?;
    clock.check()?;
    let source = match job.sources.first() {
        Some(Source::Image(bytes)) => Some(&bytes[..]),
        _ => None,
    };
    encode::encode(canvas, &job.output, source, limits.threads, &clock, sink)
}

/// The job's deadline, checked cooperatively between steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    deadline: Option<Instant>,
}

impl Clock {
    /// Starts the clock for one job.
    pub(crate) fn start(limits: &Limits) -> Clock {
        Clock {
            deadline: Instant::now().checked_add(limits.deadline),
        }
    }

    /// 9529 once the deadline has passed.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.deadline {
            Some(deadline) if Instant::now() > deadline => Err(Error::new(
                ErrorCode::Timeout,
                "The image timed out while processing",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgbind_wire::{parse_steps, OutputFormat, TransformStep};
    use raster::Raster;

    #[test]
    fn run_timed_reports_the_phases_the_job_reached() {
        let limits = Limits::default();
        let src = Raster::filled(64, 40, false, imgbind_wire::Rgba::BLACK, &limits).unwrap();
        let png = encode::encode_whole(src, &OutputOptions::new(OutputFormat::Png))
            .unwrap()
            .bytes;
        let job = |bytes: Vec<u8>| Job {
            sources: vec![Source::Image(bytes.into())],
            steps: parse_steps(r#"[{"imageIndex":0,"width":32}]"#, 1).unwrap(),
            output: OutputOptions::new(OutputFormat::Png),
        };
        let mut timings = Timings::default();
        let started = Instant::now();
        let encoded = run_timed(job(png), &limits, &mut timings).unwrap();
        let wall = started.elapsed();
        assert_eq!((encoded.width, encoded.height), (32, 20));
        assert!(timings.decode > Duration::ZERO, "{timings:?}");
        assert!(timings.transform > Duration::ZERO, "{timings:?}");
        assert!(timings.encode > Duration::ZERO, "{timings:?}");
        assert!(timings.decode + timings.transform + timings.encode <= wall);

        // Not an image: the job ends while decoding; later phases stay zero.
        let mut timings = Timings::default();
        let error = run_timed(job(vec![0; 64]), &limits, &mut timings).unwrap_err();
        assert_eq!(error.code(), ErrorCode::NotAnImage);
        assert_eq!(
            (timings.transform, timings.encode),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn jpeg_shrinks_on_load_and_remembers_its_size() {
        let limits = Limits::default();
        let src = Raster::filled(64, 40, false, imgbind_wire::Rgba::BLACK, &limits).unwrap();
        let jpeg = encode::encode_whole(src, &OutputOptions::new(OutputFormat::Jpeg))
            .unwrap()
            .bytes;
        let header = format::read_header(&jpeg).unwrap();
        let small =
            decode::decode(&jpeg, &header, 0.25, None, &limits, &Clock::start(&limits)).unwrap();
        assert_eq!((small.width, small.height), (16, 10));
        assert_eq!(small.logical_size(), (64, 40));
        let out = steps::transform(
            small,
            &TransformStep {
                width: Some(15),
                ..TransformStep::default()
            },
            &limits,
        )
        .unwrap();
        // 40 * 15 / 64 = 9.375: planned from the logical size, exactly as a full decode would be.
        assert_eq!((out.width, out.height, out.logical), (15, 9, None));
    }
}
