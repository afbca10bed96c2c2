//! The op-list planner (`engine/src/plan.rs`) against step-by-step execution: random chains of
//! transforms (and draws) on every corpus image, run three ways:
//!
//! - as written: each step on its own, every source decoded at full size (the reference);
//! - planned, full decode: fused steps; must equal the reference byte for byte;
//! - planned (what `run` does): fused steps and shrink-on-load; same size as the reference, and
//!   within the shrink-on-load tolerance: at least [`MIN_PSNR`] dB against it, and no more than
//!   [`MAX_PSNR_LOSS`] dB below what shrink-on-load gives the same image's plain resize to that
//!   scale (so a window off by a pixel, which costs far more, fails).
//!
//! The chains are random but seeded (the seed is printed with any failure): run with
//! `IMGBIND_PLANNER_CHAINS=n` for more per image.

mod common;

use bytes::Bytes;
use common::corpus;
use imgbind_engine::{run_planned, Job, Limits, Planning, Source};
use imgbind_wire::{parse_steps, ErrorCode, OutputFormat, OutputOptions};

/// Shrink-on-load tolerance: the planned output against the full-decode reference.
const MIN_PSNR: f64 = 28.0;
/// How much worse than the plain resize's own shrink-on-load difference a chain may be.
const MAX_PSNR_LOSS: f64 = 3.0;

const IMAGES: [&str; 13] = [
    "anim-party-660x666.gif",
    "graphic-15mp-kay.png",
    "graphic-17mp-adwaita-lossy.webp",
    "graphic-3mp-emerald-alpha.png",
    "overlay-logo-337x330.png",
    "photo-16mp-seeding-progressive.jpg",
    "photo-20mp-kleiber.jpg",
    "photo-4mp-eveningglow.jpg",
    "photo-4mp-garden.avif",
    "photo-4mp-grey-grayscale.jpg",
    "photo-4mp-twowings.jpg",
    "photo-6mp-aitzgorri-exif6.jpg",
    "photo-6mp-life.webp",
];

/// A small seeded generator (xorshift64*), so a failing chain can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One random transform on `image`, whose size is about `size` (tracked loosely: the
/// generator only needs plausible numbers, the engine computes the real ones).
fn random_transform(rng: &mut Rng, image: usize, size: &mut (u32, u32)) -> String {
    let mut fields = vec![format!(r#""imageIndex":{image}"#)];
    let (w, h) = *size;
    if rng.chance(35) {
        let left = rng.below(u64::from(w / 4)) as u32;
        let top = rng.below(u64::from(h / 4)) as u32;
        let width = (w / 2 + rng.below(u64::from(w / 4)) as u32).max(1);
        let height = (h / 2 + rng.below(u64::from(h / 4)) as u32).max(1);
        if rng.chance(50) {
            fields.push(format!(
                r#""trim":{{"top":{top},"left":{left},"width":{width},"height":{height}}}"#
            ));
        } else {
            fields.push(format!(
                r#""trim":{{"top":{top},"left":{left},"right":{},"bottom":{}}}"#,
                w - left - width,
                h - top - height
            ));
        }
        *size = (width, height);
    }
    if rng.chance(35) {
        fields.push(format!(r#""flip":"{}""#, rng.pick(&["h", "v", "hv"])));
    }
    if rng.chance(40) {
        let turn = rng.pick(&["90", "180", "270"]);
        fields.push(format!(r#""rotate":{turn}"#));
        if turn != "180" {
            *size = (size.1, size.0);
        }
    }
    if rng.chance(45) {
        let target = 64 + rng.below(u64::from(size.0.max(65) / 2)) as u32;
        match rng.below(4) {
            0 => fields.push(format!(r#""width":{target}"#)),
            1 => fields.push(format!(r#""height":{target}"#)),
            _ => {
                let other = 64 + rng.below(u64::from(size.1.max(65) / 2)) as u32;
                let fit = rng.pick(&["scale-down", "contain", "cover", "crop", "pad"]);
                let gravity = rng.pick(&["center", "left", "bottom", "top", "right"]);
                fields.push(format!(
                    r#""width":{target},"height":{other},"fit":"{fit}","gravity":"{gravity}""#
                ));
            }
        }
        *size = (target, target);
    }
    if rng.chance(10) {
        fields.push(r#""background":"rgb(30,60,90)""#.to_owned());
    }
    if rng.chance(8) {
        fields.push(r#""blur":2"#.to_owned());
    }
    if rng.chance(8) {
        fields.push(r#""brightness":1.2"#.to_owned());
    }
    if rng.chance(5) {
        fields.push(r#""border":{"color":"red","width":3}"#.to_owned());
    }
    format!("{{{}}}", fields.join(","))
}

/// A random chain of 2–5 steps on image 0, sometimes with an overlay (image 1) transformed and
/// drawn part-way.
fn random_chain(rng: &mut Rng, size: (u32, u32), overlay: bool) -> String {
    let mut steps = Vec::new();
    let mut size = size;
    let mut overlay_size = (337, 330);
    let n = 2 + rng.below(4);
    let draw_at = overlay.then(|| rng.below(n));
    for i in 0..n {
        steps.push(random_transform(rng, 0, &mut size));
        if draw_at == Some(i) {
            if rng.chance(60) {
                steps.push(random_transform(rng, 1, &mut overlay_size));
            }
            steps.push(format!(
                r#"{{"drawImageIndex":1,"targetImageIndex":0,"{}":{},"{}":{}}}"#,
                rng.pick(&["top", "bottom"]),
                rng.below(40),
                rng.pick(&["left", "right"]),
                rng.below(40)
            ));
        }
    }
    format!("[{}]", steps.join(","))
}

fn run(
    sources: &[Bytes],
    steps: &str,
    planning: Planning,
) -> Result<(u32, u32, Vec<u8>), ErrorCode> {
    let job = Job {
        sources: sources.iter().cloned().map(Source::Image).collect(),
        steps: parse_steps(steps, sources.len()).map_err(|e| e.code())?,
        output: OutputOptions::new(OutputFormat::Rgba),
    };
    let limits = Limits {
        deadline: std::time::Duration::from_secs(120),
        ..Limits::default()
    };
    run_planned(job, &limits, planning)
        .map(|e| (e.width, e.height, e.bytes))
        .map_err(|e| {
            eprintln!("{planning:?}: {e}");
            e.code()
        })
}

/// Peak signal-to-noise ratio of two same-sized 8-bit buffers (infinite when equal).
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = sum / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Runs `steps` the three ways and checks them against each other; returns the shrink PSNR.
fn check(sources: &[Bytes], steps: &str, context: &str) -> Option<f64> {
    let reference = run(sources, steps, Planning::AsWritten);
    let fused = run(sources, steps, Planning::PlannedFullDecode);
    let planned = run(sources, steps, Planning::Planned);
    match (&reference, &fused, &planned) {
        (Ok(r), Ok(f), Ok(p)) => {
            assert!(
                r == f,
                "{context}: fused steps differ from the steps as written: {steps}"
            );
            assert_eq!(
                (p.0, p.1),
                (r.0, r.1),
                "{context}: planned size differs: {steps}"
            );
            let db = psnr(&p.2, &r.2);
            assert!(
                db >= MIN_PSNR,
                "{context}: planned output {db:.1} dB from the reference: {steps}"
            );
            Some(db)
        }
        (Err(r), Err(f), Err(p)) => {
            assert_eq!((r, r), (f, p), "{context}: different errors: {steps}");
            None
        }
        _ => panic!(
            "{context}: one way failed: as written {:?}, fused {:?}, planned {:?}: {steps}",
            reference.as_ref().map(|r| (r.0, r.1)),
            fused.as_ref().map(|r| (r.0, r.1)),
            planned.as_ref().map(|r| (r.0, r.1)),
        ),
    }
}

fn size_of(bytes: &Bytes) -> (u32, u32) {
    let info = imgbind_engine::info(bytes, &Limits::default()).unwrap();
    (info.width.unwrap(), info.height.unwrap())
}

#[test]
fn random_chains_on_every_corpus_image_equal_step_by_step() {
    let per_image: u64 = std::env::var("IMGBIND_PLANNER_CHAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let logo = corpus("overlay-logo-337x330.png");
    let mut checked = 0;
    for (n, name) in IMAGES.iter().enumerate() {
        let image = corpus(name);
        let size = size_of(&image);
        for chain in 0..per_image {
            let seed = 0x9E37_79B9_7F4A_7C15 ^ ((n as u64) << 32 | chain);
            let mut rng = Rng(seed);
            let overlay = rng.chance(30);
            let steps = random_chain(&mut rng, size, overlay);
            let sources = if overlay {
                vec![image.clone(), logo.clone()]
            } else {
                vec![image.clone()]
            };
            check(&sources, &steps, &format!("{name}, seed {seed:#x}"));
            checked += 1;
        }
    }
    assert!(checked >= IMAGES.len());
}

/// The chains the issue names, and a trim then resize, on the big JPEGs: each planned into one
/// step, shrunk on load, and as close to the full decode as the plain resize's shrink-on-load.
#[test]
fn shrink_on_load_after_trim_and_turns_stays_within_the_plain_resize_tolerance() {
    for name in [
        "photo-20mp-kleiber.jpg",
        "photo-16mp-seeding-progressive.jpg",
    ] {
        let image = corpus(name);
        let sources = [image];
        let plain = check(&sources, r#"[{"imageIndex":0,"width":600}]"#, name).unwrap();
        for steps in [
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"width":600}]"#,
            r#"[{"imageIndex":0,"flip":"h"},{"imageIndex":0,"rotate":180},{"imageIndex":0,"width":500,"height":500,"fit":"cover"}]"#,
            r#"[{"imageIndex":0,"trim":{"top":301,"left":523,"width":3000,"height":2000}},{"imageIndex":0,"width":600}]"#,
            r#"[{"imageIndex":0,"rotate":270},{"imageIndex":0,"trim":{"top":117,"left":95,"width":2001,"height":2999}},{"imageIndex":0,"flip":"v"},{"imageIndex":0,"width":450}]"#,
        ] {
            let db = check(&sources, steps, name).unwrap();
            eprintln!("{name}: {db:.1} dB (plain resize {plain:.1} dB): {steps}");
            assert!(
                db.is_infinite() || db >= plain - MAX_PSNR_LOSS,
                "{name}: {db:.1} dB against the plain resize's {plain:.1}: {steps}"
            );
        }
    }
}
