//! One test per binding option and value, through the engine's public entry point: the op list is
//! the JSON Cloudflare's client sends, parsed by `imgbind_wire::parse_steps`, run by
//! `imgbind_engine::run`, and the result read back as raw RGBA. Inputs are small synthetic PNGs
//! whose pixels are known, so dimensions and pixels can be checked exactly.
//!
//! Fit tables follow Cloudflare's `fit` documentation (`images/partials/fit.mdx`), including its
//! worked examples (1080×720 into 500×500, 1296×1296, 1080×1080, …). The unit tests beside the
//! code check the building blocks; these check that each option, as a Worker sends it, does what
//! the documentation says. `docs/COMPATIBILITY.md` maps every option to the tests here.

mod common;

use bytes::Bytes;
use imgbind_engine::{run, Encoded, Job, Limits, Source};
use imgbind_wire::{parse_steps, Error, ErrorCode, OutputFields, OutputFormat, OutputOptions};

use common::png;

// ---------------------------------------------------------------------------------------------
// Helpers

fn solid(width: u32, height: u32, rgba: [u8; 4]) -> Bytes {
    png(width, height, |_, _| rgba)
}

const RED: [u8; 4] = [255, 0, 0, 255];
const GREEN: [u8; 4] = [0, 255, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];
const BLACK: [u8; 4] = [0, 0, 0, 255];
const YELLOW: [u8; 4] = [255, 255, 0, 255];
const CLEAR: [u8; 4] = [0, 0, 0, 0];

/// `[{"imageIndex":0, <options>}]` for one transform of the canvas.
fn one(options: &str) -> String {
    if options.is_empty() {
        return r#"[{"imageIndex":0}]"#.to_string();
    }
    format!(r#"[{{"imageIndex":0,{options}}}]"#)
}

fn job(images: &[&Bytes], transforms: &str, output: OutputOptions) -> Result<Job, Error> {
    Ok(Job {
        sources: images.iter().map(|b| Source::Image((*b).clone())).collect(),
        steps: parse_steps(transforms, images.len())?,
        output,
    })
}

/// Runs a job end to end (parse + run); any error is returned with its code.
fn try_run(images: &[&Bytes], transforms: &str, output: OutputOptions) -> Result<Encoded, Error> {
    run(job(images, transforms, output)?, &Limits::default())
}

fn encoded(images: &[&Bytes], transforms: &str, output: OutputOptions) -> Encoded {
    try_run(images, transforms, output).unwrap_or_else(|e| panic!("{transforms}: {e}"))
}

/// Raw RGBA pixels of a result.
#[derive(Debug, Clone, PartialEq)]
struct Pixels {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Pixels {
    fn at(&self, x: u32, y: u32) -> [u8; 4] {
        assert!(
            x < self.width && y < self.height,
            "({x}, {y}) outside {}x{}",
            self.width,
            self.height
        );
        let i = ((y * self.width + x) * 4) as usize;
        self.data[i..i + 4].try_into().unwrap()
    }

    fn dims(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The four corners: top-left, top-right, bottom-left, bottom-right.
    fn corners(&self) -> [[u8; 4]; 4] {
        let (r, b) = (self.width - 1, self.height - 1);
        [self.at(0, 0), self.at(r, 0), self.at(0, b), self.at(r, b)]
    }

    /// Cells whose colour is exactly `rgba`.
    fn cells(&self, rgba: [u8; 4]) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for y in 0..self.height {
            for x in 0..self.width {
                if self.at(x, y) == rgba {
                    out.push((x, y));
                }
            }
        }
        out
    }
}

/// Runs `transforms` on `images` and returns the canvas as raw RGBA.
fn pixels(images: &[&Bytes], transforms: &str) -> Pixels {
    let out = encoded(images, transforms, OutputOptions::new(OutputFormat::Rgba));
    Pixels {
        width: out.width,
        height: out.height,
        data: out.bytes,
    }
}

/// Output dimensions of one transform of a `w`×`h` image.
fn dims_of(w: u32, h: u32, options: &str) -> (u32, u32) {
    // A flat image: the geometry is all that is measured, and flat PNGs decode fast.
    let out = encoded(
        &[&solid(w, h, [90, 120, 150, 255])],
        &one(options),
        OutputOptions::new(OutputFormat::Rgb),
    );
    assert_eq!(out.bytes.len(), (out.width * out.height * 3) as usize);
    (out.width, out.height)
}

fn code(images: &[&Bytes], transforms: &str) -> ErrorCode {
    try_run(images, transforms, OutputOptions::new(OutputFormat::Png))
        .unwrap_err()
        .code()
}

fn close(a: [u8; 4], b: [u8; 4], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

#[track_caller]
fn assert_close(got: [u8; 4], want: [u8; 4], tolerance: u8, what: &str) {
    assert!(
        close(got, want, tolerance),
        "{what}: got {got:?}, want {want:?} ±{tolerance}"
    );
}

/// A 4×3 image with a distinct colour in each corner and grey elsewhere: any rotation or flip
/// moves the corners to a unique arrangement.
fn corners_image() -> Bytes {
    png(4, 3, |x, y| match (x, y) {
        (0, 0) => RED,
        (3, 0) => GREEN,
        (0, 2) => BLUE,
        (3, 2) => YELLOW,
        _ => [128, 128, 128, 255],
    })
}

/// A `w`×`h` image whose pixel (x, y) is (x, y, 0): crops can be read off the first pixel.
fn coordinates(w: u32, h: u32) -> Bytes {
    png(w, h, |x, y| [x as u8, y as u8, 0, 255])
}

// ---------------------------------------------------------------------------------------------
// width / height / fit: Cloudflare's documented rules, several sizes each, enlarging included

/// (source size, options, expected output size).
type FitRow = ((u32, u32), &'static str, (u32, u32));

fn check_table(rows: &[FitRow]) {
    for &((w, h), options, want) in rows {
        assert_eq!(dims_of(w, h, options), want, "{w}x{h} {{{options}}}");
    }
}

#[test]
fn fit_default_is_scale_down() {
    check_table(&[
        ((1080, 720), r#""width":500,"height":500"#, (500, 333)),
        ((1080, 720), r#""width":2000,"height":2000"#, (1080, 720)),
    ]);
}

#[test]
fn fit_scale_down_table() {
    check_table(&[
        // The documentation's examples.
        (
            (1080, 720),
            r#""width":500,"height":500,"fit":"scale-down""#,
            (500, 333),
        ),
        (
            (1080, 720),
            r#""width":2000,"height":2000,"fit":"scale-down""#,
            (1080, 720),
        ),
        // Portrait, the other side limits.
        (
            (720, 1080),
            r#""width":500,"height":500,"fit":"scale-down""#,
            (333, 500),
        ),
        // Only one side of the box is too small: still shrinks to fit.
        (
            (1080, 720),
            r#""width":2000,"height":360,"fit":"scale-down""#,
            (540, 360),
        ),
        // Exactly the box: unchanged.
        (
            (1080, 720),
            r#""width":1080,"height":720,"fit":"scale-down""#,
            (1080, 720),
        ),
        // One side given: the other follows the aspect ratio; never enlarged.
        ((1080, 720), r#""width":540,"fit":"scale-down""#, (540, 360)),
        (
            (1080, 720),
            r#""height":180,"fit":"scale-down""#,
            (270, 180),
        ),
        (
            (1080, 720),
            r#""width":2160,"fit":"scale-down""#,
            (1080, 720),
        ),
        (
            (1080, 720),
            r#""height":1440,"fit":"scale-down""#,
            (1080, 720),
        ),
    ]);
}

#[test]
fn fit_contain_table() {
    check_table(&[
        (
            (1080, 720),
            r#""width":500,"height":500,"fit":"contain""#,
            (500, 333),
        ),
        // Smaller than the box: enlarged to fit it.
        (
            (1080, 720),
            r#""width":2000,"height":2000,"fit":"contain""#,
            (2000, 1333),
        ),
        (
            (720, 1080),
            r#""width":2000,"height":2000,"fit":"contain""#,
            (1333, 2000),
        ),
        (
            (108, 72),
            r#""width":1000,"height":100,"fit":"contain""#,
            (150, 100),
        ),
        // One side given: exactly that side, shrunk or enlarged.
        ((1080, 720), r#""width":2160,"fit":"contain""#, (2160, 1440)),
        ((1080, 720), r#""height":360,"fit":"contain""#, (540, 360)),
    ]);
}

#[test]
fn fit_cover_table() {
    check_table(&[
        // The documentation's example: resized to 750×500, then cut to 500×500.
        (
            (1080, 720),
            r#""width":500,"height":500,"fit":"cover""#,
            (500, 500),
        ),
        // Smaller than the box: enlarged to fill it.
        (
            (1080, 720),
            r#""width":2000,"height":2000,"fit":"cover""#,
            (2000, 2000),
        ),
        (
            (1080, 720),
            r#""width":1080,"height":100,"fit":"cover""#,
            (1080, 100),
        ),
        (
            (108, 72),
            r#""width":300,"height":50,"fit":"cover""#,
            (300, 50),
        ),
        // One side given: aspect kept, enlarging allowed.
        ((1080, 720), r#""width":2160,"fit":"cover""#, (2160, 1440)),
        ((1080, 720), r#""height":360,"fit":"cover""#, (540, 360)),
    ]);
}

#[test]
fn fit_crop_table() {
    check_table(&[
        // The documentation's example: smaller than the box, kept as it is.
        (
            (1080, 720),
            r#""width":1296,"height":1296,"fit":"crop""#,
            (1080, 720),
        ),
        // Larger than the box: like cover.
        (
            (1080, 720),
            r#""width":500,"height":500,"fit":"crop""#,
            (500, 500),
        ),
        (
            (1080, 720),
            r#""width":300,"height":100,"fit":"crop""#,
            (300, 100),
        ),
        // Larger on one side only: cut where it overflows, never enlarged.
        (
            (1080, 720),
            r#""width":2000,"height":100,"fit":"crop""#,
            (1080, 100),
        ),
        (
            (1080, 720),
            r#""width":500,"height":1000,"fit":"crop""#,
            (500, 720),
        ),
        // One side given: like scale-down.
        ((1080, 720), r#""width":540,"fit":"crop""#, (540, 360)),
        ((1080, 720), r#""width":2160,"fit":"crop""#, (1080, 720)),
    ]);
}

#[test]
fn fit_pad_table() {
    check_table(&[
        // The documentation's example: 1080×720 into 1080×1080.
        (
            (1080, 720),
            r#""width":1080,"height":1080,"fit":"pad""#,
            (1080, 1080),
        ),
        (
            (1080, 720),
            r#""width":500,"height":500,"fit":"pad""#,
            (500, 500),
        ),
        // Enlarges like contain, then pads.
        (
            (108, 72),
            r#""width":400,"height":100,"fit":"pad""#,
            (400, 100),
        ),
        // One side given: nothing to pad to, so it is contain.
        ((1080, 720), r#""width":540,"fit":"pad""#, (540, 360)),
    ]);
}

#[test]
fn fit_pad_fills_with_background_and_centres_the_image() {
    // 1080×720 red into 1080×1080: 180 px of white above and below (the documented default).
    let out = pixels(
        &[&solid(1080, 720, RED)],
        &one(r#""width":1080,"height":1080,"fit":"pad""#),
    );
    assert_eq!(out.dims(), (1080, 1080));
    assert_eq!(out.at(540, 0), WHITE);
    assert_eq!(out.at(540, 179), WHITE);
    assert_eq!(out.at(540, 180), RED);
    assert_eq!(out.at(540, 899), RED);
    assert_eq!(out.at(540, 900), WHITE);
    // A background colour fills the pad; gravity places the image on the canvas.
    let out = pixels(
        &[&solid(40, 20, RED)],
        &one(r##""width":100,"height":100,"fit":"pad","background":"#00f","gravity":"top""##),
    );
    assert_eq!(out.dims(), (100, 100));
    assert_eq!(out.at(50, 0), RED);
    assert_eq!(out.at(50, 49), RED);
    assert_eq!(out.at(50, 50), BLUE);
    assert_eq!(out.at(50, 99), BLUE);
}

#[test]
fn fit_squeeze_table() {
    check_table(&[
        // The documentation's examples.
        (
            (1080, 720),
            r#""width":1080,"height":540,"fit":"squeeze""#,
            (1080, 540),
        ),
        (
            (1080, 1080),
            r#""width":1080,"height":540,"fit":"squeeze""#,
            (1080, 540),
        ),
        // Enlarging on one side, shrinking on the other.
        (
            (108, 72),
            r#""width":500,"height":10,"fit":"squeeze""#,
            (500, 10),
        ),
        // One side given: aspect kept.
        ((108, 72), r#""height":144,"fit":"squeeze""#, (216, 144)),
    ]);
}

#[test]
fn squeeze_distorts_and_cover_does_not() {
    // Left half red, right half blue. Squeezed to 10×10 the split stays in the middle; cover
    // centres a 10×10 window on the split as well, but from a region of the same aspect.
    let img = png(40, 10, |x, _| if x < 20 { RED } else { BLUE });
    let squeezed = pixels(&[&img], &one(r#""width":10,"height":10,"fit":"squeeze""#));
    assert_close(squeezed.at(0, 5), RED, 2, "squeeze left");
    assert_close(squeezed.at(9, 5), BLUE, 2, "squeeze right");
    let covered = pixels(&[&img], &one(r#""width":10,"height":10,"fit":"cover""#));
    // Cover scales by 1 here (10/10 on the height) and keeps the centre 10 columns: 15..25.
    assert_eq!(covered.at(0, 5), RED);
    assert_eq!(covered.at(4, 5), RED);
    assert_eq!(covered.at(5, 5), BLUE);
}

// ---------------------------------------------------------------------------------------------
// gravity

/// 300×100, pixel = (x, y, 0): a 100×100 cover/crop window starts where the first pixel says.
fn window_start(gravity: &str, fit: &str) -> (u8, u8) {
    let out = pixels(
        &[&coordinates(300, 100)],
        &one(&format!(
            r#""width":100,"height":100,"fit":"{fit}","gravity":{gravity}"#
        )),
    );
    assert_eq!(out.dims(), (100, 100));
    let p = out.at(0, 0);
    (p[0], p[1])
}

#[test]
fn gravity_sides_and_center_for_cover_and_crop() {
    for fit in ["cover", "crop"] {
        assert_eq!(window_start(r#""left""#, fit), (0, 0), "{fit}");
        assert_eq!(window_start(r#""right""#, fit), (200, 0), "{fit}");
        assert_eq!(window_start(r#""center""#, fit), (100, 0), "{fit}");
        // top/bottom only move the window vertically: it stays centred horizontally.
        assert_eq!(window_start(r#""top""#, fit), (100, 0), "{fit}");
        assert_eq!(window_start(r#""bottom""#, fit), (100, 0), "{fit}");
    }
    // Vertically: a 100×300 source.
    let vertical = |gravity: &str| {
        let out = pixels(
            &[&coordinates(100, 255)],
            &one(&format!(
                r#""width":100,"height":55,"fit":"cover","gravity":"{gravity}""#
            )),
        );
        out.at(0, 0)[1]
    };
    assert_eq!(vertical("top"), 0);
    assert_eq!(vertical("bottom"), 200);
    assert_eq!(vertical("center"), 100);
    assert_eq!(vertical("left"), 100);
}

#[test]
fn an_odd_remainder_cuts_at_a_whole_pixel_as_libvips_does() {
    // 251×100 → 100×100: 151 columns to cut. An exact centre would start at 75.5 and resample
    // every pixel; libvips (and imgbind) start at (151 + 1) / 2 = 76 and copy the pixels as they are.
    for fit in ["cover", "crop"] {
        let out = pixels(
            &[&coordinates(251, 100)],
            &one(&format!(r#""width":100,"height":100,"fit":"{fit}""#)),
        );
        assert_eq!(out.dims(), (100, 100), "{fit}");
        for (x, y) in [(0, 0), (1, 0), (50, 37), (99, 99)] {
            assert_eq!(
                out.at(x, y)[..2],
                [76 + x as u8, y as u8],
                "{fit} at ({x}, {y})"
            );
        }
    }
    // Scaled, the cut sits on the scaled grid: tests/fidelity.test.js compares it with sharp.
}

#[test]
fn gravity_defaults_to_center() {
    let out = pixels(
        &[&coordinates(300, 100)],
        &one(r#""width":100,"height":100,"fit":"cover""#),
    );
    assert_eq!(out.at(0, 0)[..2], [100, 0]);
}

#[test]
fn gravity_point_remainder_mode() {
    // The point splits the cut-away remainder (200 px here): x = 0.25 → 50 px left of the window.
    let at = |x: f64| {
        window_start(
            &format!(r#"{{"x":{x},"y":0.5,"mode":"remainder"}}"#),
            "cover",
        )
    };
    assert_eq!(at(0.0), (0, 0));
    assert_eq!(at(0.25), (50, 0));
    assert_eq!(at(0.5), (100, 0));
    assert_eq!(at(1.0), (200, 0));
    // x and y may be left out: 0.5 each.
    assert_eq!(window_start(r#"{"mode":"remainder"}"#, "cover"), (100, 0));
}

#[test]
fn gravity_point_box_center_mode() {
    // The point becomes the centre of the window, kept inside the image.
    let at = |x: f64| {
        window_start(
            &format!(r#"{{"x":{x},"y":0.5,"mode":"box-center"}}"#),
            "crop",
        )
    };
    assert_eq!(at(0.5), (100, 0)); // centre 150
    assert_eq!(at(0.4), (70, 0)); // centre 120
    assert_eq!(at(0.1), (0, 0)); // centre 30: clamped
    assert_eq!(at(0.9), (200, 0)); // centre 270: clamped
}

/// 400×100 flat grey with a checkerboard patch at x 300..380: the only detail in the image.
fn detail_on_the_right() -> Bytes {
    png(400, 100, |x, y| {
        if (300..380).contains(&x) && (20..80).contains(&y) && (x / 4 + y / 4).is_multiple_of(2) {
            BLACK
        } else {
            [200, 200, 200, 255]
        }
    })
}

#[test]
fn gravity_auto_and_entropy_keep_the_detailed_region() {
    for gravity in ["auto", "entropy"] {
        let out = pixels(
            &[&detail_on_the_right()],
            &one(&format!(
                r#""width":100,"height":100,"fit":"cover","gravity":"{gravity}""#
            )),
        );
        assert_eq!(out.dims(), (100, 100));
        // The window holds the patch: plenty of black cells.
        assert!(
            out.cells(BLACK).len() > 1000,
            "{gravity}: the window missed the detail"
        );
        // A centred window would hold none of it.
        let centred = pixels(
            &[&detail_on_the_right()],
            &one(r#""width":100,"height":100,"fit":"cover""#),
        );
        assert!(centred.cells(BLACK).is_empty());
    }
}

/// Left third: grey with low-contrast noise (much entropy, little saliency); right third: a
/// saturated red square on flat grey (little entropy, very salient).
fn noise_left_red_square_right() -> Bytes {
    png(600, 200, |x, y| {
        if x < 200 {
            // A deterministic hash of the coordinates, ±20 around mid-grey.
            let h = (x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B)).rotate_left(13);
            let v = (108 + h % 41) as u8;
            [v, v, v, 255]
        } else if (450..530).contains(&x) && (60..140).contains(&y) {
            RED_SQUARE
        } else {
            [128, 128, 128, 255]
        }
    })
}

const RED_SQUARE: [u8; 4] = [220, 20, 30, 255];

#[test]
fn gravity_auto_is_saliency_and_entropy_is_entropy() {
    // The two gravities disagree on this image, as Cloudflare's do: `auto` (maximum symmetric
    // surround saliency) keeps the red square, `entropy` keeps the noisy third.
    let img = noise_left_red_square_right();
    let crop = |gravity: &str| {
        pixels(
            &[&img],
            &one(&format!(
                r#""width":200,"height":200,"fit":"cover","gravity":"{gravity}""#
            )),
        )
    };
    let auto = crop("auto");
    assert_eq!(
        auto.cells(RED_SQUARE).len(),
        80 * 80,
        "auto: the whole square"
    );
    let entropy = crop("entropy");
    assert!(entropy.cells(RED_SQUARE).is_empty());
    let distinct: std::collections::HashSet<[u8; 4]> =
        (0..200).map(|x| entropy.at(x, 100)).collect();
    assert!(
        distinct.len() > 20,
        "entropy: not over the noise ({} grey levels)",
        distinct.len()
    );
}

#[test]
fn gravity_face_falls_back_to_auto() {
    // No face model is shipped: `face` uses the same detail-based window as `auto`
    // (docs/COMPATIBILITY.md). The result is identical, not merely similar.
    let run_with = |gravity: &str| {
        pixels(
            &[&detail_on_the_right()],
            &one(&format!(
                r#""width":100,"height":100,"fit":"cover","gravity":"{gravity}""#
            )),
        )
    };
    assert_eq!(run_with("face"), run_with("auto"));
}

#[test]
fn gravity_does_not_move_an_uncropped_resize() {
    let img = coordinates(300, 100);
    let plain = pixels(&[&img], &one(r#""width":150"#));
    for gravity in [
        r#""left""#,
        r#""auto""#,
        r#"{"x":0,"y":0,"mode":"remainder"}"#,
    ] {
        let with = pixels(
            &[&img],
            &one(&format!(r#""width":150,"gravity":{gravity}"#)),
        );
        assert_eq!(with, plain, "{gravity}");
    }
}

#[test]
fn segment_is_refused_with_9520() {
    assert_eq!(
        code(&[&solid(8, 8, RED)], &one(r#""segment":"foreground""#)),
        ErrorCode::UnsupportedFormat
    );
}

// ---------------------------------------------------------------------------------------------
// rotate / flip

#[test]
fn rotate_each_angle_moves_the_corners() {
    let img = corners_image();
    // [top-left, top-right, bottom-left, bottom-right] after each clockwise turn.
    let cases = [
        ("0", (4, 3), [RED, GREEN, BLUE, YELLOW]),
        ("90", (3, 4), [BLUE, RED, YELLOW, GREEN]),
        ("180", (4, 3), [YELLOW, BLUE, GREEN, RED]),
        ("270", (3, 4), [GREEN, YELLOW, RED, BLUE]),
    ];
    for (angle, dims, corners) in cases {
        let out = pixels(&[&img], &one(&format!(r#""rotate":{angle}"#)));
        assert_eq!(out.dims(), dims, "rotate {angle}");
        assert_eq!(out.corners(), corners, "rotate {angle}");
    }
}

#[test]
fn flip_each_mode_mirrors_the_corners() {
    let img = corners_image();
    let cases = [
        ("h", [GREEN, RED, YELLOW, BLUE]),
        ("v", [BLUE, YELLOW, RED, GREEN]),
        ("hv", [YELLOW, BLUE, GREEN, RED]),
    ];
    for (flip, corners) in cases {
        let out = pixels(&[&img], &one(&format!(r#""flip":"{flip}""#)));
        assert_eq!(out.dims(), (4, 3), "flip {flip}");
        assert_eq!(out.corners(), corners, "flip {flip}");
    }
}

#[test]
fn flip_comes_before_rotate_within_a_step_and_call_order_between_steps() {
    let img = corners_image();
    // One step: flip h, then rotate 90 (Cloudflare's documented order).
    let together = pixels(&[&img], &one(r#""flip":"h","rotate":90"#));
    let flip_then_rotate = pixels(
        &[&img],
        r#"[{"imageIndex":0,"flip":"h"},{"imageIndex":0,"rotate":90}]"#,
    );
    assert_eq!(together, flip_then_rotate);
    assert_eq!(together.corners(), [YELLOW, GREEN, BLUE, RED]);
    // Two steps the other way round give a different image: each step runs in call order.
    let rotate_then_flip = pixels(
        &[&img],
        r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"flip":"h"}]"#,
    );
    assert_eq!(rotate_then_flip.corners(), [RED, BLUE, GREEN, YELLOW]);
}

#[test]
fn rotate_comes_before_resize_so_width_means_the_turned_width() {
    assert_eq!(dims_of(200, 100, r#""rotate":90,"width":50"#), (50, 100));
    assert_eq!(dims_of(200, 100, r#""rotate":270,"height":50"#), (25, 50));
    assert_eq!(dims_of(200, 100, r#""rotate":180,"width":50"#), (50, 25));
}

// ---------------------------------------------------------------------------------------------
// Filters: blur, sharpen, brightness, contrast, gamma, saturation

/// Standard deviation of the red channel.
fn spread(p: &Pixels) -> f64 {
    let values: Vec<f64> = p.data.chunks_exact(4).map(|c| f64::from(c[0])).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

fn checkerboard(size: u32, cell: u32) -> Bytes {
    png(size, size, |x, y| {
        if (x / cell + y / cell).is_multiple_of(2) {
            WHITE
        } else {
            BLACK
        }
    })
}

#[test]
fn blur_values() {
    let img = checkerboard(64, 4);
    let at = |blur: &str| pixels(&[&img], &one(&format!(r#""blur":{blur}"#)));
    let original = pixels(&[&img], "[]");
    // 0 is no blur at all.
    assert_eq!(at("0"), original);
    // Larger radii smooth more; every value in 1..=250 is accepted.
    let s1 = spread(&at("1"));
    let s5 = spread(&at("5"));
    let s50 = spread(&at("50"));
    let s250 = spread(&at("250"));
    let s0 = spread(&original);
    assert!(s0 > s1 && s1 > s5 && s5 > s50, "{s0} {s1} {s5} {s50}");
    assert!(s250 <= s50 + 0.5, "{s250} vs {s50}");
    assert!(
        s50 < 10.0,
        "radius 50 leaves a 4 px checkerboard nearly flat: {s50}"
    );
    // A flat image stays flat (to the 8-bit premultiplied round trip), and alpha is kept.
    for blur in ["1", "20"] {
        let flat = pixels(
            &[&solid(16, 16, [10, 100, 200, 128])],
            &one(&format!(r#""blur":{blur}"#)),
        );
        assert!(flat.data.chunks_exact(4).all(|p| close(
            p.try_into().unwrap(),
            [10, 100, 200, 128],
            1
        ) && p[3] == 128));
    }
    assert_eq!(
        code(&[&img], &one(r#""blur":251"#)),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn sharpen_values() {
    // A soft edge: a linear ramp from 64 to 192 over 8 px, flat either side.
    let ramp = png(32, 4, |x, _| {
        let v = (64 + (x.saturating_sub(12).min(8) * 16)) as u8;
        [v, v, v, 255]
    });
    let original = pixels(&[&ramp], "[]");
    let at = |s: &str| pixels(&[&ramp], &one(&format!(r#""sharpen":{s}"#)));
    assert_eq!(at("0"), original);
    // Sharpening overshoots at the ends of the ramp: darker before it, brighter after it.
    let mild = at("1");
    let strong = at("10");
    let low = |p: &Pixels| p.at(12, 1)[0];
    let high = |p: &Pixels| p.at(20, 1)[0];
    assert!(low(&mild) < low(&original) && high(&mild) > high(&original));
    assert!(low(&strong) < low(&mild) && high(&strong) > high(&mild));
    // Flat areas far from the edge are untouched.
    assert_eq!(mild.at(2, 1), original.at(2, 1));
    assert_eq!(
        code(&[&ramp], &one(r#""sharpen":10.5"#)),
        ErrorCode::InvalidArguments
    );
}

/// The red channel of a 4×4 grey(`v`) image after one transform.
fn tone(v: u8, options: &str) -> u8 {
    let out = pixels(&[&solid(4, 4, [v, v, v, 255])], &one(options));
    let p = out.at(1, 1);
    assert!(p[0] == p[1] && p[1] == p[2], "grey stays grey: {p:?}");
    p[0]
}

#[test]
fn brightness_values() {
    // A factor: 0.5 is half as bright, 2 twice as bright, 1 and 0 (ignored) change nothing.
    assert_eq!(tone(100, r#""brightness":0.5"#), 50);
    assert_eq!(tone(100, r#""brightness":2"#), 200);
    assert_eq!(tone(200, r#""brightness":2"#), 255); // clipped
    assert_eq!(tone(100, r#""brightness":1"#), 100);
    assert_eq!(tone(100, r#""brightness":0"#), 100);
}

#[test]
fn contrast_values() {
    // Around the middle grey: (v − 127.5) × c + 127.5.
    assert!(tone(100, r#""contrast":0.5"#).abs_diff(114) <= 1);
    assert!(tone(100, r#""contrast":2"#).abs_diff(73) <= 1);
    assert!(tone(200, r#""contrast":2"#) == 255);
    assert_eq!(tone(100, r#""contrast":1"#), 100);
    assert_eq!(tone(100, r#""contrast":0"#), 100);
}

#[test]
fn gamma_values() {
    // Cloudflare: 2 lightens, 0.5 darkens, 0 is ignored. v' = v^(1/gamma) on 0..1.
    assert_eq!(tone(100, r#""gamma":2"#), 160);
    assert_eq!(tone(100, r#""gamma":0.5"#), 39);
    assert_eq!(tone(0, r#""gamma":2"#), 0);
    assert_eq!(tone(255, r#""gamma":0.5"#), 255);
    assert_eq!(tone(100, r#""gamma":1"#), 100);
    assert_eq!(tone(100, r#""gamma":0"#), 100);
}

#[test]
fn saturation_values() {
    let colour = [200, 100, 50, 200];
    let at = |s: &str| {
        pixels(
            &[&solid(4, 4, colour)],
            &one(&format!(r#""saturation":{s}"#)),
        )
        .at(0, 0)
    };
    // 0 = greyscale (Rec. 601 luma: 0.299 R + 0.587 G + 0.114 B = 124.2), alpha untouched.
    assert_eq!(at("0"), [124, 124, 124, 200]);
    assert_eq!(at("1"), colour);
    // 0.5: halfway to the grey; 2: twice as far from it (clipped).
    assert_close(at("0.5"), [162, 112, 87, 200], 1, "saturation 0.5");
    assert_close(at("2"), [255, 76, 0, 200], 1, "saturation 2");
}

#[test]
fn filters_keep_the_size_and_run_after_the_resize() {
    // Every filter at once after a resize: the resize alone decides the size.
    assert_eq!(
        dims_of(
            200,
            100,
            r#""width":50,"blur":3,"sharpen":1,"brightness":1.1,"contrast":1.1,"gamma":1.1,"saturation":0.5"#
        ),
        (50, 25)
    );
}

// ---------------------------------------------------------------------------------------------
// background

#[test]
fn background_accepts_css_colour_syntaxes_and_flattens_transparency() {
    let clear = solid(4, 4, CLEAR);
    let red = [
        "#f00",
        "#ff0000",
        "#FF0000FF",
        "red",
        "rgb(255,0,0)",
        "rgb(255 0 0)",
        "rgba(255, 0, 0, 1)",
        "rgb(255 0 0 / 100%)",
        "hsl(0, 100%, 50%)",
        "hsl(0deg 100% 50%)",
        "hwb(0 0% 0%)",
    ];
    for colour in red {
        let out = pixels(&[&clear], &one(&format!(r#""background":"{colour}""#)));
        assert_eq!(out.at(2, 2), RED, "{colour}");
    }
    // Translucent backgrounds keep alpha: half-transparent blue under a transparent image.
    for colour in ["rgba(0,0,255,0.5)", "#0000ff80", "rgb(0 0 255 / 50%)"] {
        let out = pixels(&[&clear], &one(&format!(r#""background":"{colour}""#)));
        assert_close(out.at(0, 0), [0, 0, 255, 128], 1, colour);
    }
    // A half-transparent pixel blends with the background.
    let half = solid(2, 2, [255, 0, 0, 128]);
    let out = pixels(&[&half], &one(r#""background":"white""#));
    assert_close(out.at(0, 0), [255, 127, 127, 255], 1, "red 50% over white");
    // Opaque images are unchanged.
    let out = pixels(&[&solid(2, 2, GREEN)], &one(r#""background":"red""#));
    assert_eq!(out.at(0, 0), GREEN);
    assert_eq!(
        code(&[&clear], &one(r#""background":"not-a-colour""#)),
        ErrorCode::InvalidArguments
    );
}

// ---------------------------------------------------------------------------------------------
// trim

#[test]
fn trim_explicit_sides() {
    let out = pixels(
        &[&coordinates(20, 10)],
        &one(r#""trim":{"top":1,"right":2,"bottom":3,"left":4}"#),
    );
    assert_eq!(out.dims(), (14, 6));
    assert_eq!(out.at(0, 0)[..2], [4, 1]);
    assert_eq!(out.at(13, 5)[..2], [17, 6]);
    // Sides may be given alone.
    let out = pixels(&[&coordinates(20, 10)], &one(r#""trim":{"left":5}"#));
    assert_eq!(out.dims(), (15, 10));
    assert_eq!(out.at(0, 0)[..2], [5, 0]);
}

#[test]
fn trim_width_and_height_keep_that_much_after_left_and_top() {
    let out = pixels(
        &[&coordinates(20, 10)],
        &one(r#""trim":{"left":3,"top":2,"width":5,"height":4}"#),
    );
    assert_eq!(out.dims(), (5, 4));
    assert_eq!(out.at(0, 0)[..2], [3, 2]);
    assert_eq!(out.at(4, 3)[..2], [7, 5]);
    // Without left/top they are measured from the top-left corner; too large is clamped.
    let out = pixels(
        &[&coordinates(20, 10)],
        &one(r#""trim":{"width":6,"height":100}"#),
    );
    assert_eq!(out.dims(), (6, 10));
    assert_eq!(out.at(0, 0)[..2], [0, 0]);
    // right and width (or bottom and height) together are contradictory.
    assert_eq!(
        code(
            &[&coordinates(20, 10)],
            &one(r#""trim":{"right":1,"width":5}"#)
        ),
        ErrorCode::InvalidArguments
    );
}

/// A `w`×`h` `frame`-coloured image with a `block`-coloured rectangle at (bx, by, bw, bh).
fn framed(
    (w, h): (u32, u32),
    frame: [u8; 4],
    (bx, by, bw, bh): (u32, u32, u32, u32),
    block: [u8; 4],
) -> Bytes {
    png(w, h, |x, y| {
        if (bx..bx + bw).contains(&x) && (by..by + bh).contains(&y) {
            block
        } else {
            frame
        }
    })
}

#[test]
fn trim_border_string_removes_a_uniform_frame() {
    let img = framed((30, 20), WHITE, (5, 4, 12, 7), RED);
    let out = pixels(&[&img], &one(r#""trim":"border""#));
    assert_eq!(out.dims(), (12, 7));
    assert!(out.data.chunks_exact(4).all(|p| p == RED));
    // trim.border: true is the same.
    let same = pixels(&[&img], &one(r#""trim":{"border":true}"#));
    assert_eq!(same, out);
}

#[test]
fn trim_border_color_tolerance_and_keep() {
    // An almost-white (250) frame around a red block.
    let img = framed((30, 20), [250, 250, 250, 255], (5, 4, 12, 7), RED);
    let trimmed =
        |border: &str| pixels(&[&img], &one(&format!(r#""trim":{{"border":{border}}}"#))).dims();
    // The colour given is white: only within the tolerance does the frame count as border.
    assert_eq!(trimmed(r##"{"color":"#fff","tolerance":0}"##), (30, 20));
    assert_eq!(trimmed(r##"{"color":"#fff","tolerance":4}"##), (30, 20));
    assert_eq!(trimmed(r##"{"color":"#fff","tolerance":5}"##), (12, 7));
    // Without a colour the top-left pixel's colour is the border's.
    assert_eq!(trimmed(r#"{"tolerance":0}"#), (12, 7));
    // keep: that many pixels of border stay on each side (bounded by the image).
    assert_eq!(trimmed(r#"{"keep":2}"#), (16, 11));
    assert_eq!(trimmed(r#"{"keep":100}"#), (30, 20));
    let kept = pixels(&[&img], &one(r#""trim":{"border":{"keep":1}}"#));
    assert_eq!(kept.at(0, 0), [250, 250, 250, 255]);
    assert_eq!(kept.at(1, 1), RED);
    // A colour the image does not have trims nothing.
    assert_eq!(trimmed(r##"{"color":"#000","tolerance":10}"##), (30, 20));
    assert_eq!(
        code(&[&img], &one(r#""trim":{"border":{"tolerance":256}}"#)),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn trim_comes_before_resize_and_rotate() {
    // 200×100, trim 100 px off the right: the resize sees 100×100.
    assert_eq!(
        dims_of(200, 100, r#""trim":{"right":100},"width":50"#),
        (50, 50)
    );
    // Trim counts in the unrotated image's pixels: 10 off the top of 200×100, then a quarter turn.
    assert_eq!(
        dims_of(200, 100, r#""trim":{"top":10},"rotate":90"#),
        (90, 200)
    );
}

#[test]
fn trim_of_everything_is_9401() {
    assert_eq!(
        code(
            &[&coordinates(20, 10)],
            &one(r#""trim":{"left":10,"right":10}"#)
        ),
        ErrorCode::InvalidArguments
    );
}

// ---------------------------------------------------------------------------------------------
// border

#[test]
fn border_color_and_width() {
    let out = pixels(
        &[&solid(4, 2, BLUE)],
        &one(r##""border":{"color":"#00ff00","width":3}"##),
    );
    assert_eq!(out.dims(), (10, 8));
    assert_eq!(out.cells(BLUE).len(), 8);
    assert_eq!(out.cells(GREEN).len(), 80 - 8);
    assert_eq!(out.at(3, 3), BLUE);
    assert_eq!(out.at(6, 4), BLUE);
    assert_eq!(out.at(2, 3), GREEN);
    assert_eq!(out.at(7, 4), GREEN);
}

#[test]
fn border_per_side() {
    let out = pixels(
        &[&solid(4, 2, BLUE)],
        &one(r#""border":{"color":"red","top":1,"right":2,"bottom":3,"left":4}"#),
    );
    assert_eq!(out.dims(), (10, 6));
    // The image sits 4 from the left and 1 from the top.
    assert_eq!(out.cells(BLUE).first(), Some(&(4, 1)));
    assert_eq!(out.cells(BLUE).last(), Some(&(7, 2)));
    assert_eq!(out.at(8, 1), RED);
    assert_eq!(out.at(4, 3), RED);
    // Per-side without a colour: black; sides left out are 0.
    let out = pixels(&[&solid(4, 2, BLUE)], &one(r#""border":{"left":2}"#));
    assert_eq!(out.dims(), (6, 2));
    assert_eq!(out.at(0, 0), BLACK);
    assert_eq!(out.at(2, 0), BLUE);
}

#[test]
fn border_translucent_colour_makes_alpha() {
    let out = pixels(
        &[&solid(2, 2, BLUE)],
        &one(r#""border":{"color":"rgb(0 0 0 / 0)","width":1}"#),
    );
    assert_eq!(out.dims(), (4, 4));
    assert_eq!(out.at(0, 0)[3], 0);
    assert_eq!(out.at(1, 1), BLUE);
}

#[test]
fn border_is_added_after_resize() {
    // 200×100 → 50×25, then 5 px all round: 60×35 (the border is not scaled).
    assert_eq!(
        dims_of(200, 100, r#""width":50,"border":{"color":"red","width":5}"#),
        (60, 35)
    );
    let out = pixels(
        &[&solid(200, 100, BLUE)],
        &one(r#""width":50,"border":{"color":"red","width":5}"#),
    );
    assert_eq!(out.at(4, 4), RED);
    assert_eq!(out.at(5, 5), BLUE);
}

// ---------------------------------------------------------------------------------------------
// draw()

/// `[<canvas steps>, {drawImageIndex:1, targetImageIndex:0, <options>}]`.
fn draw(options: &str) -> String {
    if options.is_empty() {
        return r#"[{"drawImageIndex":1,"targetImageIndex":0}]"#.to_string();
    }
    format!(r#"[{{"drawImageIndex":1,"targetImageIndex":0,{options}}}]"#)
}

/// Red cells after drawing a 2×2 red square onto a 10×8 white canvas with `options`.
fn placed(options: &str) -> Vec<(u32, u32)> {
    let out = pixels(&[&solid(10, 8, WHITE), &solid(2, 2, RED)], &draw(options));
    assert_eq!(out.dims(), (10, 8));
    out.cells(RED)
}

fn square(x: u32, y: u32) -> Vec<(u32, u32)> {
    vec![(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
}

#[test]
fn draw_positions_top_left_bottom_right_and_centre() {
    assert_eq!(placed(""), square(4, 3)); // none: centred
    assert_eq!(placed(r#""top":1,"left":2"#), square(2, 1));
    assert_eq!(placed(r#""bottom":1,"right":2"#), square(6, 5));
    assert_eq!(placed(r#""top":0,"right":0"#), square(8, 0));
    assert_eq!(placed(r#""bottom":0,"left":0"#), square(0, 6));
    // One axis given: the other is centred.
    assert_eq!(placed(r#""top":0"#), square(4, 0));
    assert_eq!(placed(r#""left":0"#), square(0, 3));
    assert_eq!(placed(r#""bottom":2"#), square(4, 4));
    assert_eq!(placed(r#""right":3"#), square(5, 3));
    // Offsets past an edge clip the overlay.
    assert_eq!(placed(r#""top":-1,"left":-1"#), vec![(0, 0)]);
    assert_eq!(placed(r#""bottom":-1,"right":-1"#), vec![(9, 7)]);
    assert!(placed(r#""top":100,"left":0"#).is_empty());
}

#[test]
fn draw_left_and_right_or_top_and_bottom_together_is_9401() {
    let images = [solid(10, 8, WHITE), solid(2, 2, RED)];
    let images = [&images[0], &images[1]];
    assert_eq!(
        code(&images, &draw(r#""left":1,"right":1"#)),
        ErrorCode::InvalidArguments
    );
    assert_eq!(
        code(&images, &draw(r#""top":1,"bottom":1"#)),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn draw_output_keeps_the_base_size() {
    // An overlay larger than the canvas is clipped to it.
    let out = pixels(&[&solid(10, 8, WHITE), &solid(30, 30, RED)], &draw(""));
    assert_eq!(out.dims(), (10, 8));
    assert_eq!(out.cells(RED).len(), 80);
    // And a canvas resized first keeps its new size.
    let out = pixels(
        &[&solid(100, 80, WHITE), &solid(2, 2, RED)],
        r#"[{"imageIndex":0,"width":10},{"drawImageIndex":1,"targetImageIndex":0}]"#,
    );
    assert_eq!(out.dims(), (10, 8));
}

#[test]
fn draw_opacity_values() {
    let at = |opacity: &str| {
        pixels(
            &[&solid(2, 2, WHITE), &solid(2, 2, RED)],
            &draw(&format!(r#""opacity":{opacity}"#)),
        )
        .at(0, 0)
    };
    assert_eq!(at("0"), WHITE);
    assert_close(at("0.25"), [255, 191, 191, 255], 1, "opacity 0.25");
    assert_close(at("0.5"), [255, 127, 127, 255], 1, "opacity 0.5");
    assert_eq!(at("1"), RED);
    // Opacity multiplies the overlay's own alpha.
    let translucent = pixels(
        &[&solid(2, 2, WHITE), &solid(2, 2, [255, 0, 0, 128])],
        &draw(r#""opacity":0.5"#),
    );
    assert_close(
        translucent.at(0, 0),
        [255, 191, 191, 255],
        1,
        "50% of 50% red",
    );
    assert_eq!(
        code(
            &[&solid(2, 2, WHITE), &solid(2, 2, RED)],
            &draw(r#""opacity":1.5"#)
        ),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn draw_repeat_true_x_and_y() {
    // A 1×1 red dot at (2, 1) on a 6×4 canvas.
    let tiled = |repeat: &str| {
        pixels(
            &[&solid(6, 4, WHITE), &solid(1, 1, RED)],
            &draw(&format!(r#""top":1,"left":2,"repeat":{repeat}"#)),
        )
        .cells(RED)
    };
    assert_eq!(tiled("false"), vec![(2, 1)]);
    assert_eq!(tiled("true").len(), 24); // the whole canvas
    assert_eq!(tiled(r#""x""#), (0..6).map(|x| (x, 1)).collect::<Vec<_>>());
    assert_eq!(tiled(r#""y""#), (0..4).map(|y| (2, y)).collect::<Vec<_>>());
    // A 2×2 tile with one red cell keeps its phase from the given position.
    let tile = png(2, 2, |x, y| if (x, y) == (0, 0) { RED } else { CLEAR });
    let out = pixels(
        &[&solid(6, 4, WHITE), &tile],
        &draw(r#""top":1,"left":1,"repeat":true"#),
    );
    assert_eq!(
        out.cells(RED),
        vec![(1, 1), (3, 1), (5, 1), (1, 3), (3, 3), (5, 3)]
    );
    assert_eq!(
        code(&[&solid(6, 4, WHITE), &tile], &draw(r#""repeat":"z""#)),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn draw_composite_modes_on_known_alpha() {
    // Target: blue at alpha 1, 0.5 and 0 (three columns); source: red at alpha 0.5 everywhere.
    // Expected values are Porter-Duff on premultiplied colour, stored straight (s = 128/255):
    //   over:    αr = αs + αd(1−αs)
    //   in:      αr = αs·αd, colour = source
    //   out:     αr = αs(1−αd), colour = source
    //   atop:    αr = αd, colour = Cs·αs + Cd(1−αs)
    //   xor:     αr = αs(1−αd) + αd(1−αs)
    //   lighter: αr = min(1, αs + αd), colour = (Cs·αs + Cd·αd)/αr
    let target = png(3, 1, |x, _| [0, 0, 255, [255, 128, 0][x as usize]]);
    let source = solid(3, 1, [255, 0, 0, 128]);
    let cases: [(&str, [[u8; 4]; 3]); 6] = [
        (
            "over",
            [[128, 0, 127, 255], [170, 0, 85, 192], [255, 0, 0, 128]],
        ),
        ("in", [[255, 0, 0, 128], [255, 0, 0, 64], CLEAR]),
        ("out", [CLEAR, [255, 0, 0, 64], [255, 0, 0, 128]]),
        ("atop", [[128, 0, 127, 255], [128, 0, 127, 128], CLEAR]),
        (
            "xor",
            [[0, 0, 255, 127], [128, 0, 127, 127], [255, 0, 0, 128]],
        ),
        (
            "lighter",
            [[128, 0, 255, 255], [128, 0, 128, 255], [255, 0, 0, 128]],
        ),
    ];
    for (mode, want) in cases {
        let out = pixels(
            &[&target, &source],
            &draw(&format!(r#""composite":"{mode}""#)),
        );
        assert_eq!(out.dims(), (3, 1));
        for (x, want) in want.into_iter().enumerate() {
            let got = out.at(x as u32, 0);
            if want[3] == 0 {
                assert_eq!(got[3], 0, "{mode} column {x}: {got:?}");
            } else {
                assert_close(got, want, 1, &format!("{mode} column {x}"));
            }
        }
    }
    // Without `composite` the mode is `over`.
    let default = pixels(&[&target, &source], &draw(""));
    let over = pixels(&[&target, &source], &draw(r#""composite":"over""#));
    assert_eq!(default, over);
}

#[test]
fn draw_composite_outside_the_overlay() {
    // A 1×1 red overlay at (0, 0) on a 3×1 opaque blue canvas: outside the overlay there is no
    // source, so `in` and `out` leave nothing of the canvas, and the other modes leave it alone.
    let canvas = solid(3, 1, BLUE);
    let dot = solid(1, 1, RED);
    for (mode, outside_alpha) in [
        ("over", 255),
        ("atop", 255),
        ("xor", 255),
        ("lighter", 255),
        ("in", 0),
        ("out", 0),
    ] {
        let out = pixels(
            &[&canvas, &dot],
            &draw(&format!(r#""composite":"{mode}","top":0,"left":0"#)),
        );
        assert_eq!(out.at(2, 0)[3], outside_alpha, "{mode}");
        if outside_alpha == 255 {
            assert_eq!(out.at(2, 0), BLUE, "{mode}");
        }
    }
    assert_eq!(
        code(&[&canvas, &dot], &draw(r#""composite":"multiply""#)),
        ErrorCode::InvalidArguments
    );
}

#[test]
fn draw_nested_transformers_apply_child_steps_before_the_draw() {
    // input(white 10×10).draw(input(red|blue 4×2).transform({rotate: 90}), {top: 0, left: 0})
    let canvas = solid(10, 10, WHITE);
    let child = png(4, 2, |x, _| if x < 2 { RED } else { BLUE });
    let out = pixels(
        &[&canvas, &child],
        r#"[{"imageIndex":1,"rotate":90},{"drawImageIndex":1,"targetImageIndex":0,"top":0,"left":0}]"#,
    );
    assert_eq!(out.dims(), (10, 10));
    // Turned clockwise, the red half is on top: a 2×4 overlay, red rows 0–1, blue rows 2–3.
    assert_eq!(out.cells(RED), vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
    assert_eq!(out.cells(BLUE), vec![(0, 2), (1, 2), (0, 3), (1, 3)]);

    // Two levels: a green dot drawn onto the child, then the child turned, then drawn, then the
    // canvas turned. The client's depth-first order: child steps, grandchild draw, child transform,
    // child draw, canvas transform.
    let grandchild = solid(1, 1, GREEN);
    let out = pixels(
        &[&canvas, &child, &grandchild],
        r#"[{"drawImageIndex":2,"targetImageIndex":1,"top":0,"left":0},
            {"imageIndex":1,"rotate":90},
            {"drawImageIndex":1,"targetImageIndex":0,"top":0,"left":0},
            {"imageIndex":0,"rotate":180}]"#,
    );
    assert_eq!(out.dims(), (10, 10));
    // The green dot was the child's top-left; after the child's 90° turn it is at (1, 0) of the
    // overlay, and after the canvas's 180° turn at (8, 9).
    assert_eq!(out.cells(GREEN), vec![(8, 9)]);
    assert_eq!(out.cells(RED).len(), 3);
    assert_eq!(out.cells(BLUE).len(), 4);
}

// ---------------------------------------------------------------------------------------------
// output()

fn output(format: OutputFormat, quality: Option<u8>, background: Option<&str>) -> OutputOptions {
    OutputOptions::from_fields(&OutputFields {
        format: Some(format.as_str().to_string()),
        quality: quality.map(|q| q.to_string()),
        background: background.map(String::from),
        anim: None,
    })
    .unwrap()
}

/// A photo-like 64×48 image with texture, so quality shows in the size.
fn textured() -> Bytes {
    png(64, 48, |x, y| {
        [
            (x * 7 + y * 3) as u8,
            (x * y % 251) as u8,
            (255 - x * 3) as u8,
            255,
        ]
    })
}

#[test]
fn output_formats_have_their_signatures() {
    let img = textured();
    let signature = |format| encoded(&[&img], "[]", output(format, None, None)).bytes;
    assert_eq!(signature(OutputFormat::Jpeg)[..3], [0xFF, 0xD8, 0xFF]);
    assert_eq!(signature(OutputFormat::Png)[..8], *b"\x89PNG\r\n\x1a\n");
    assert_eq!(signature(OutputFormat::Gif)[..6], *b"GIF89a");
    let webp = signature(OutputFormat::Webp);
    assert_eq!((&webp[..4], &webp[8..12]), (&b"RIFF"[..], &b"WEBP"[..]));
    assert_eq!(signature(OutputFormat::Rgb).len(), 64 * 48 * 3);
    assert_eq!(signature(OutputFormat::Rgba).len(), 64 * 48 * 4);
}

#[test]
fn output_quality_default_is_85_and_lower_is_smaller() {
    let img = textured();
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let size = |q: Option<u8>| encoded(&[&img], "[]", output(format, q, None)).bytes;
        assert_eq!(size(None), size(Some(85)), "{format:?}: default quality");
        assert!(
            size(Some(10)).len() < size(Some(50)).len()
                && size(Some(50)).len() < size(Some(95)).len(),
            "{format:?}"
        );
    }
    for bad in ["0", "101", "abc"] {
        assert!(OutputOptions::from_fields(&OutputFields {
            format: Some("image/jpeg".into()),
            quality: Some(bad.into()),
            ..Default::default()
        })
        .is_err());
    }
}

#[test]
fn output_webp_quality_100_is_lossless() {
    let img = textured();
    let out = encoded(&[&img], "[]", output(OutputFormat::Webp, Some(100), None));
    assert_eq!(&out.bytes[12..16], b"VP8L", "lossless bitstream");
    let back = pixels(&[&Bytes::from(out.bytes)], "[]");
    assert_eq!(back, pixels(&[&img], "[]"));
    let lossy = encoded(&[&img], "[]", output(OutputFormat::Webp, Some(99), None));
    assert_ne!(&lossy.bytes[12..16], b"VP8L");
}

#[test]
fn output_background_flattens_alpha() {
    let clear = solid(4, 4, [0, 255, 0, 0]);
    // PNG and WebP keep alpha without a background, lose it with one.
    for format in [OutputFormat::Png, OutputFormat::Webp] {
        let plain = encoded(&[&clear], "[]", output(format, Some(100), None));
        assert_eq!(pixels(&[&Bytes::from(plain.bytes)], "[]").at(1, 1)[3], 0);
        let flat = encoded(&[&clear], "[]", output(format, Some(100), Some("#0000ff")));
        assert_eq!(
            pixels(&[&Bytes::from(flat.bytes)], "[]").at(1, 1),
            BLUE,
            "{format:?}"
        );
    }
    // JPEG has no alpha: white unless a background is given.
    let jpeg = encoded(&[&clear], "[]", output(OutputFormat::Jpeg, None, None));
    assert_close(
        pixels(&[&Bytes::from(jpeg.bytes)], "[]").at(1, 1),
        WHITE,
        2,
        "jpeg default",
    );
    let jpeg = encoded(
        &[&clear],
        "[]",
        output(OutputFormat::Jpeg, None, Some("red")),
    );
    assert_close(
        pixels(&[&Bytes::from(jpeg.bytes)], "[]").at(1, 1),
        RED,
        3,
        "jpeg red",
    );
    // Raw rgba with a background is opaque.
    let raw = encoded(
        &[&clear],
        "[]",
        output(OutputFormat::Rgba, None, Some("red")),
    );
    assert_eq!(raw.bytes[..4], RED);
}

/// The SOFn marker of a JPEG: 0xC0 baseline, 0xC2 progressive.
fn frame_marker(jpeg: &[u8]) -> u8 {
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        let marker = jpeg[i + 1];
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            return marker;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    panic!("no SOF marker");
}

#[test]
fn output_jpeg_is_progressive_except_below_50_or_above_3000() {
    let cases = [
        ((50, 50), 0xC2),
        ((49, 200), 0xC0),
        ((200, 49), 0xC0),
        ((3000, 50), 0xC2),
        ((3001, 50), 0xC0),
        ((50, 3001), 0xC0),
        ((800, 450), 0xC2),
    ];
    for ((w, h), marker) in cases {
        let out = encoded(
            &[&solid(w, h, RED)],
            "[]",
            output(OutputFormat::Jpeg, None, None),
        );
        assert_eq!(frame_marker(&out.bytes), marker, "{w}x{h}");
    }
}

// ---------------------------------------------------------------------------------------------
// Call order across .transform() steps

#[test]
fn transforms_apply_in_call_order() {
    // rotate then resize vs resize then rotate: different sizes.
    assert_eq!(
        pixels(
            &[&solid(200, 100, RED)],
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"width":50}]"#
        )
        .dims(),
        (50, 100)
    );
    assert_eq!(
        pixels(
            &[&solid(200, 100, RED)],
            r#"[{"imageIndex":0,"width":50},{"imageIndex":0,"rotate":90}]"#
        )
        .dims(),
        (25, 50)
    );
    // border then trim keeps less of the border than trim then border.
    let border_then_trim = pixels(
        &[&solid(4, 4, BLUE)],
        r#"[{"imageIndex":0,"border":{"color":"red","width":2}},{"imageIndex":0,"trim":{"left":2}}]"#,
    );
    assert_eq!(border_then_trim.dims(), (6, 8));
    assert_eq!(border_then_trim.at(0, 2), BLUE);
    let trim_then_border = pixels(
        &[&solid(4, 4, BLUE)],
        r#"[{"imageIndex":0,"trim":{"left":2}},{"imageIndex":0,"border":{"color":"red","width":2}}]"#,
    );
    assert_eq!(trim_then_border.dims(), (6, 8));
    assert_eq!(trim_then_border.at(0, 2), RED);
    // Two brightness steps compound: 100 → 50 → 25.
    let twice = pixels(
        &[&solid(2, 2, [100, 100, 100, 255])],
        r#"[{"imageIndex":0,"brightness":0.5},{"imageIndex":0,"brightness":0.5}]"#,
    );
    assert_eq!(twice.at(0, 0), [25, 25, 25, 255]);
}

#[test]
fn steps_apply_to_their_own_image_only() {
    // The overlay's rotate does not touch the canvas, and the canvas's resize not the overlay.
    let out = pixels(
        &[&solid(20, 10, WHITE), &solid(4, 2, RED)],
        r#"[{"imageIndex":1,"rotate":90},{"imageIndex":0,"width":10},
            {"drawImageIndex":1,"targetImageIndex":0,"top":0,"left":0}]"#,
    );
    assert_eq!(out.dims(), (10, 5));
    assert_eq!(out.cells(RED).len(), 8);
    assert_eq!(out.cells(RED).last(), Some(&(1, 3)));
}
