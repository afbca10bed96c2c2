//! The op-list planner: before anything is decoded, rewrite the job's steps so a chain of
//! `.transform()` calls costs what its one-step form costs, and tell each decoder how far it may
//! shrink on load.
//!
//! Every rewrite is exact: the planned steps give the same pixels as the steps as written
//! (`tests/planner.rs` runs random chains on the corpus both ways and compares them byte for byte
//! with shrink-on-load off, and within the shrink-on-load tolerance with it on). The rewrites:
//!
//! - **Fuse** a transform into the previous step on the same image when every operation of the
//!   earlier step comes before every operation of the later one in the applier's order
//!   (`steps.rs`: trim → flip → rotate → resize → background → blur → sharpen →
//!   brightness/contrast/gamma → saturation → border). The fused step runs the same operations in
//!   the same order. Steps on other images in between do not matter: they neither read nor write
//!   this one.
//! - **Absorb** flips, quarter turns and explicit trims into an earlier step that only trims,
//!   flips and turns: flips and turns compose (the dihedral group of the rectangle), a later trim
//!   maps back through them to a rectangle of the earlier image, and two trims compose into one.
//!   Then the rest of the later step fuses as above. `[{rotate: 90}, {flip: 'h'}, {trim}, {width}]`
//!   becomes one step.
//! - **Shrink on load** for an image whose first step (after fusing) resizes it down, including
//!   after an explicit trim, a flip or a turn: the decoder may return any size at least
//!   `min_scale` of the original; a trim then cuts the shrunk raster's logical window
//!   (`raster::Logical`), so the resize samples the region a full decode would have kept.
//!
//! - **Cut drawn layers** to the part that lands on their target (sizes known before decoding, no
//!   tiling): a trim of the layer before the draw, and the draw placing it at the same spot.
//! - **Crop on load**: an image whose first step trims explicitly has that window as its
//!   [`Plan::window`]; a JPEG stored upright decodes only the pixels covering it
//!   (`codecs/jpeg_window.rs`), and a PNG only the rows down to its bottom, keeping the window's
//!   columns (`codecs/png.rs`).
//!
//! What is left alone: `trim: border` and the `auto`/`entropy`/`face` gravities (they look at the
//! pixels, so they never run on a shrunk raster and never move), resizes followed by a turn
//! (already cheap: the turn sees the small image), filters (a blur or a tone curve does not
//! commute with a resize).

use imgbind_wire::{DrawStep, Fit, Flip, Gravity, Repeat, Rotate, Step, TransformStep, Trim};

use crate::geometry::{cut, Rect};
use crate::{composite, resize};

/// The planned op list and each source's shrink-on-load allowance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The steps to run, in order (fewer than, or as many as, the job's).
    pub(crate) steps: Vec<Step>,
    /// Per source: how far its decoder may shrink it (1.0 = not at all).
    pub(crate) min_scale: Vec<f64>,
    /// Per source: the part of it (upright, full-size pixels) the steps look at, when that is
    /// known before decoding (its first step trims explicitly); a JPEG or PNG decodes only that.
    pub(crate) window: Vec<Option<Rect>>,
}

/// Plans `steps` for sources of the given upright sizes (`None`: unknown before decoding, e.g.
/// text). With `shrink_on_load` false every `min_scale` is 1.
pub(crate) fn plan(steps: &[Step], sizes: &[Option<(u32, u32)>], shrink_on_load: bool) -> Plan {
    let steps = fuse_all(steps, sizes);
    let min_scale = sizes
        .iter()
        .enumerate()
        .map(|(index, size)| match size {
            Some(size) if shrink_on_load => shrink_hint(&steps, index, *size),
            _ => 1.0,
        })
        .collect();
    let window = sizes
        .iter()
        .enumerate()
        .map(|(index, size)| {
            let size = (*size)?;
            let Some(Step::Transform(t)) = first_step(&steps, index) else {
                return None;
            };
            let trim = t.trim.filter(|t| t.border.is_none())?;
            cut(whole(size), &trim, size).ok()
        })
        .collect();
    Plan {
        steps,
        min_scale,
        window,
    }
}

/// The step list as written: no fusing, no shrinking on load (the planner's reference).
pub(crate) fn unplanned(steps: &[Step], sources: usize) -> Plan {
    Plan {
        steps: steps.to_vec(),
        min_scale: vec![1.0; sources],
        window: vec![None; sources],
    }
}

/// The last step on an image, while it is a transform that a later one may fuse into.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Its index in the planned list.
    at: usize,
    /// The image's size before it, when known.
    before: Option<(u32, u32)>,
}

fn fuse_all(steps: &[Step], sizes: &[Option<(u32, u32)>]) -> Vec<Step> {
    let mut state = Fusing {
        size: sizes.to_vec(),
        open: vec![None; sizes.len()],
        out: Vec::with_capacity(steps.len()),
    };
    for step in steps {
        match step {
            Step::Transform(t) if t.image_index < sizes.len() => state.transform(t),
            Step::Draw(d) => {
                let d = match state.visible_part(d) {
                    Some((trim, drawn)) => {
                        state.transform(&trim);
                        drawn
                    }
                    None => d.clone(),
                };
                for i in [d.target_image_index, d.draw_image_index] {
                    if let Some(slot) = state.open.get_mut(i) {
                        *slot = None;
                    }
                }
                if let Some(slot) = state.size.get_mut(d.draw_image_index) {
                    *slot = None;
                }
                state.out.push(Step::Draw(d));
            }
            // An image that does not exist: left for the applier to refuse.
            Step::Transform(_) => state.out.push(step.clone()),
        }
    }
    state.out
}

/// The planned list as it grows, and what is known of each image at its end.
struct Fusing {
    /// Each image's size, when known without its pixels.
    size: Vec<Option<(u32, u32)>>,
    /// Each image's last step, while a later transform may fuse into it.
    open: Vec<Option<Open>>,
    out: Vec<Step>,
}

impl Fusing {
    /// Appends transform `t`, fused into the image's open step where that is exact.
    fn transform(&mut self, t: &TransformStep) {
        let i = t.image_index;
        let fused = self.open[i].and_then(|o| match &self.out[o.at] {
            Step::Transform(a) => fuse(a, t, o.before).map(|m| (o, m)),
            Step::Draw(_) => None,
        });
        if let Some((o, merged)) = fused {
            self.size[i] = o.before.and_then(|s| size_after(&merged, s));
            self.out[o.at] = Step::Transform(merged);
        } else {
            self.open[i] = Some(Open {
                at: self.out.len(),
                before: self.size[i],
            });
            self.size[i] = self.size[i].and_then(|s| size_after(t, s));
            self.out.push(Step::Transform(t.clone()));
        }
    }

    /// For a draw whose layer reaches past its target: a trim of the layer to what lands on the
    /// target, and the draw placing that part at the same spot (what the draw does outside the
    /// target is nothing, whatever the mode). `None` when the sizes are not known, the layer
    /// tiles, or all of it (or none) lands.
    fn visible_part(&self, d: &DrawStep) -> Option<(TransformStep, DrawStep)> {
        if d.repeat != Repeat::No {
            return None;
        }
        let (tw, th) = (*self.size.get(d.target_image_index)?)?;
        let (ow, oh) = (*self.size.get(d.draw_image_index)?)?;
        let (tw, th, ow, oh) = (i64::from(tw), i64::from(th), i64::from(ow), i64::from(oh));
        let (x, y) = composite::position(d, (tw, th), (ow, oh));
        let (x0, x1) = ((-x).max(0), (tw - x).min(ow));
        let (y0, y1) = ((-y).max(0), (th - y).min(oh));
        if x0 >= x1 || y0 >= y1 || (x0 == 0 && y0 == 0 && x1 == ow && y1 == oh) {
            return None;
        }
        let trim = TransformStep {
            image_index: d.draw_image_index,
            trim: Some(Trim {
                left: u32::try_from(x0).ok()?,
                top: u32::try_from(y0).ok()?,
                width: Some(u32::try_from(x1 - x0).ok()?),
                height: Some(u32::try_from(y1 - y0).ok()?),
                ..Trim::default()
            }),
            ..TransformStep::default()
        };
        let drawn = DrawStep {
            left: Some(x + x0),
            top: Some(y + y0),
            right: None,
            bottom: None,
            ..d.clone()
        };
        Some((trim, drawn))
    }
}

/// Where each operation runs within one step (`steps.rs`); brightness, contrast and gamma share
/// one rank because the applier folds them into one tone curve.
fn ranks(t: &TransformStep) -> impl Iterator<Item = u8> + '_ {
    let resize = t.width.is_some() || t.height.is_some() || t.fit.is_some() || t.gravity.is_some();
    let tone = t.brightness.is_some() || t.contrast.is_some() || t.gamma.is_some();
    [
        (t.trim.is_some(), 0),
        (t.flip.is_some(), 1),
        (t.rotate.is_some(), 2),
        (resize, 3),
        (t.background.is_some(), 4),
        (t.blur.is_some(), 5),
        (t.sharpen.is_some(), 6),
        (tone, 7),
        (t.saturation.is_some(), 8),
        (t.border.is_some(), 9),
        (t.segment.is_some(), 10),
    ]
    .into_iter()
    .filter_map(|(present, rank)| present.then_some(rank))
}

/// `b` fused into `a` (the step before it on the same image, `before` the image's size ahead of
/// `a`), or `None` when the fused step would not give the same pixels.
fn fuse(a: &TransformStep, b: &TransformStep, before: Option<(u32, u32)>) -> Option<TransformStep> {
    if let Some(merged) = by_rank(a, b) {
        return Some(merged);
    }
    // Absorb b's trim, flip and turn into an a that only trims, flips and turns.
    if ranks(a).any(|r| r > 2) || a.trim.is_some_and(|t| t.border.is_some()) {
        return None;
    }
    let mut a2 = a.clone();
    let mut rest = b.clone();
    if let Some(trim) = &b.trim {
        if trim.border.is_some() {
            return None;
        }
        let size = before?;
        let kept = match &a.trim {
            Some(t) => cut(whole(size), t, size).ok()?,
            None => whole(size),
        };
        let turn = Dihedral::of(a.flip, a.rotate);
        let after = turn.size((kept.width, kept.height));
        let wanted = cut(whole(after), trim, after).ok()?;
        let back = turn.rect_back(wanted, (kept.width, kept.height));
        a2.trim = Some(Trim {
            top: kept.y + back.y,
            left: kept.x + back.x,
            width: Some(back.width),
            height: Some(back.height),
            ..Trim::default()
        });
        rest.trim = None;
    }
    let turn = Dihedral::of(a2.flip, a2.rotate).then(Dihedral::of(b.flip, b.rotate));
    (a2.flip, a2.rotate) = turn.as_options();
    rest.flip = None;
    rest.rotate = None;
    by_rank(&a2, &rest)
}

/// `a` then `b` as one step, when each operation of `a` runs before each of `b`'s.
fn by_rank(a: &TransformStep, b: &TransformStep) -> Option<TransformStep> {
    if a.image_index != b.image_index {
        return None;
    }
    let last_a = ranks(a).max();
    let first_b = ranks(b).min();
    if let (Some(last_a), Some(first_b)) = (last_a, first_b) {
        if last_a >= first_b {
            return None;
        }
    }
    // `pad` fills with the step's background: a later background must not become the padding.
    if a.fit == Some(Fit::Pad) && b.background.is_some() {
        return None;
    }
    fn pick<T>(x: Option<T>, y: Option<T>) -> Option<T> {
        x.or(y)
    }
    Some(TransformStep {
        image_index: a.image_index,
        width: pick(a.width, b.width),
        height: pick(a.height, b.height),
        fit: pick(a.fit, b.fit),
        gravity: pick(a.gravity, b.gravity),
        background: pick(a.background, b.background),
        rotate: pick(a.rotate, b.rotate),
        flip: pick(a.flip, b.flip),
        blur: pick(a.blur, b.blur),
        sharpen: pick(a.sharpen, b.sharpen),
        brightness: pick(a.brightness, b.brightness),
        contrast: pick(a.contrast, b.contrast),
        gamma: pick(a.gamma, b.gamma),
        saturation: pick(a.saturation, b.saturation),
        trim: pick(a.trim, b.trim),
        border: pick(a.border, b.border),
        segment: pick(a.segment, b.segment),
    })
}

fn whole((width, height): (u32, u32)) -> Rect {
    Rect {
        x: 0,
        y: 0,
        width,
        height,
    }
}

/// The image's size after one transform step, when it can be known without its pixels.
fn size_after(t: &TransformStep, size: (u32, u32)) -> Option<(u32, u32)> {
    let mut size = size;
    if let Some(trim) = &t.trim {
        if trim.border.is_some() {
            return None;
        }
        let r = cut(whole(size), trim, size).ok()?;
        size = (r.width, r.height);
    }
    size = Dihedral::of(t.flip, t.rotate).size(size);
    if let Some(p) = resize::plan(
        size.0,
        size.1,
        t.width,
        t.height,
        t.fit.unwrap_or(Fit::ScaleDown),
    ) {
        size = p.canvas.unwrap_or((p.width, p.height));
    }
    if let Some(b) = &t.border {
        size = (
            size.0.checked_add(b.left)?.checked_add(b.right)?,
            size.1.checked_add(b.top)?.checked_add(b.bottom)?,
        );
    }
    Some(size)
}

/// How far source `index` may be shrunk on load: only when the first step on it is a transform
/// whose resize is planned from a size known before decoding (an explicit trim, a flip and a turn
/// may come first), and no pixel-dependent choice (`trim: border`, an `auto`/`entropy`/`face`
/// gravity) would see the shrunk pixels.
fn shrink_hint(steps: &[Step], index: usize, size: (u32, u32)) -> f64 {
    let Some(Step::Transform(t)) = first_step(steps, index) else {
        return 1.0;
    };
    if matches!(
        t.gravity,
        Some(Gravity::Auto | Gravity::Entropy | Gravity::Face)
    ) {
        return 1.0;
    }
    let mut size = size;
    if let Some(trim) = &t.trim {
        if trim.border.is_some() {
            return 1.0;
        }
        let Ok(r) = cut(whole(size), trim, size) else {
            return 1.0;
        };
        size = (r.width, r.height);
    }
    let (w, h) = Dihedral::of(t.flip, t.rotate).size(size);
    resize::plan(w, h, t.width, t.height, t.fit.unwrap_or(Fit::ScaleDown))
        .map_or(1.0, |p| p.min_scale().min(1.0))
}

/// The first step that reads or writes image `index`.
fn first_step(steps: &[Step], index: usize) -> Option<&Step> {
    steps.iter().find(|s| match s {
        Step::Transform(t) => t.image_index == index,
        Step::Draw(d) => d.target_image_index == index || d.draw_image_index == index,
    })
}

/// A flip followed by a clockwise turn: every way to lay a rectangle on itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dihedral {
    mirror_x: bool,
    mirror_y: bool,
    quarter_turns: u8,
}

impl Dihedral {
    fn of(flip: Option<Flip>, rotate: Option<Rotate>) -> Dihedral {
        let (mirror_x, mirror_y) = match flip {
            None => (false, false),
            Some(Flip::Horizontal) => (true, false),
            Some(Flip::Vertical) => (false, true),
            Some(Flip::Both) => (true, true),
        };
        let quarter_turns = match rotate {
            None | Some(Rotate::R0) => 0,
            Some(Rotate::R90) => 1,
            Some(Rotate::R180) => 2,
            Some(Rotate::R270) => 3,
        };
        Dihedral {
            mirror_x,
            mirror_y,
            quarter_turns,
        }
    }

    /// `self`, then `next`. A mirror after an odd turn is the other mirror before it.
    fn then(self, next: Dihedral) -> Dihedral {
        let (nx, ny) = if self.quarter_turns % 2 == 1 {
            (next.mirror_y, next.mirror_x)
        } else {
            (next.mirror_x, next.mirror_y)
        };
        Dihedral {
            mirror_x: self.mirror_x ^ nx,
            mirror_y: self.mirror_y ^ ny,
            quarter_turns: (self.quarter_turns + next.quarter_turns) % 4,
        }
    }

    fn as_options(self) -> (Option<Flip>, Option<Rotate>) {
        let flip = match (self.mirror_x, self.mirror_y) {
            (false, false) => None,
            (true, false) => Some(Flip::Horizontal),
            (false, true) => Some(Flip::Vertical),
            (true, true) => Some(Flip::Both),
        };
        let rotate = match self.quarter_turns {
            0 => None,
            1 => Some(Rotate::R90),
            2 => Some(Rotate::R180),
            _ => Some(Rotate::R270),
        };
        (flip, rotate)
    }

    fn size(self, (w, h): (u32, u32)) -> (u32, u32) {
        if self.quarter_turns % 2 == 1 {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// The rectangle of a `size` image that `self` lays onto `r` (a rectangle of the result).
    fn rect_back(self, r: Rect, size: (u32, u32)) -> Rect {
        // Undo the turn: turn the result on by the rest of a full turn.
        let mut r = r;
        let mut at = self.size(size);
        for _ in 0..(4 - self.quarter_turns) % 4 {
            r = quarter_turn(r, at);
            at = (at.1, at.0);
        }
        // Undo the mirrors (each its own inverse).
        if self.mirror_x {
            r.x = size.0 - r.x - r.width;
        }
        if self.mirror_y {
            r.y = size.1 - r.y - r.height;
        }
        r
    }
}

/// Where `r`, a rectangle of a `(w, h)` image, lands when the image turns a quarter clockwise
/// (pixel (x, y) goes to (h - 1 - y, x), as `geometry::rotate`).
fn quarter_turn(r: Rect, (_w, h): (u32, u32)) -> Rect {
    Rect {
        x: h - r.y - r.height,
        y: r.x,
        width: r.height,
        height: r.width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgbind_wire::parse_steps;

    fn planned(json: &str, images: usize, size: (u32, u32)) -> Plan {
        plan(
            &parse_steps(json, images).unwrap(),
            &vec![Some(size); images],
            true,
        )
    }

    fn one(p: &Plan) -> &TransformStep {
        assert_eq!(p.steps.len(), 1, "{:?}", p.steps);
        match &p.steps[0] {
            Step::Transform(t) => t,
            Step::Draw(_) => panic!("a draw"),
        }
    }

    #[test]
    fn the_issues_chains_become_their_one_step_forms() {
        let p = planned(
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"width":1200}]"#,
            1,
            (6000, 4000),
        );
        let t = one(&p);
        assert_eq!((t.rotate, t.width), (Some(Rotate::R90), Some(1200)));
        assert!((p.min_scale[0] - 1200.0 / 4000.0).abs() < 1e-9);

        let p = planned(
            r#"[{"imageIndex":0,"flip":"h"},{"imageIndex":0,"rotate":180},
                {"imageIndex":0,"width":500,"height":500,"fit":"cover"}]"#,
            1,
            (6000, 4000),
        );
        let t = one(&p);
        assert_eq!(
            (t.flip, t.rotate),
            (Some(Flip::Horizontal), Some(Rotate::R180))
        );
        assert_eq!(
            (t.width, t.height, t.fit),
            (Some(500), Some(500), Some(Fit::Cover))
        );

        // A trim no longer turns shrink-on-load off.
        let p = planned(
            r#"[{"imageIndex":0,"trim":{"top":100,"left":200,"width":3000,"height":2000}},
                {"imageIndex":0,"width":600}]"#,
            1,
            (4000, 3000),
        );
        one(&p);
        assert!((p.min_scale[0] - 600.0 / 3000.0).abs() < 1e-9);
    }

    #[test]
    fn flips_and_turns_compose_into_the_earlier_step() {
        // Turn, then mirror: the other mirror before the turn.
        let p = planned(
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"flip":"h"},{"imageIndex":0,"rotate":90}]"#,
            1,
            (30, 20),
        );
        let t = one(&p);
        assert_eq!(
            (t.flip, t.rotate),
            (Some(Flip::Vertical), Some(Rotate::R180))
        );
        // Two mirrors cancel.
        let p = planned(
            r#"[{"imageIndex":0,"flip":"h"},{"imageIndex":0,"flip":"h"}]"#,
            1,
            (30, 20),
        );
        let t = one(&p);
        assert_eq!((t.flip, t.rotate), (None, None));
    }

    #[test]
    fn a_later_trim_maps_back_through_the_turn() {
        // 30x20 turned clockwise is 20x30; keeping its top-left 5x7 keeps the source's
        // bottom-left 7x5 (pixel (x, y) of the result is source (y, 19 - x)).
        let p = planned(
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"trim":{"top":0,"left":0,"width":5,"height":7}}]"#,
            1,
            (30, 20),
        );
        let t = one(&p);
        let trim = t.trim.unwrap();
        assert_eq!(
            (trim.left, trim.top, trim.width, trim.height),
            (0, 15, Some(7), Some(5))
        );
        // Two trims compose.
        let p = planned(
            r#"[{"imageIndex":0,"trim":{"top":2,"left":3}},{"imageIndex":0,"trim":{"top":1,"left":1,"width":4,"height":4}}]"#,
            1,
            (30, 20),
        );
        let trim = one(&p).trim.unwrap();
        assert_eq!(
            (trim.left, trim.top, trim.width, trim.height),
            (4, 3, Some(4), Some(4))
        );
    }

    #[test]
    fn what_does_not_commute_stays_apart() {
        for json in [
            // A resize, then a trim of the resized image.
            r#"[{"imageIndex":0,"width":10},{"imageIndex":0,"trim":{"top":1}}]"#,
            // A blur before a resize.
            r#"[{"imageIndex":0,"blur":3},{"imageIndex":0,"width":10}]"#,
            // Brightness rounds before the next step's contrast.
            r#"[{"imageIndex":0,"brightness":1.2},{"imageIndex":0,"contrast":1.2}]"#,
            // A later background must not become pad's fill.
            r#"[{"imageIndex":0,"width":10,"height":10,"fit":"pad"},{"imageIndex":0,"background":"red"}]"#,
            // A border trim looks at the pixels.
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"trim":"border"}]"#,
        ] {
            let p = planned(json, 1, (30, 20));
            assert_eq!(p.steps.len(), 2, "{json}: {:?}", p.steps);
        }
        // A draw in between ends the chain on its target (the layer, wider than the turned
        // target, is cut first).
        let p = planned(
            r#"[{"imageIndex":0,"rotate":90},{"drawImageIndex":1,"targetImageIndex":0},{"imageIndex":0,"width":10}]"#,
            2,
            (30, 20),
        );
        assert_eq!(p.steps.len(), 4, "{:?}", p.steps);
        assert!(
            matches!(&p.steps[3], Step::Transform(t) if t.image_index == 0 && t.rotate.is_none())
        );
        // Steps on another image in between do not.
        let p = planned(
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":1,"width":5},{"imageIndex":0,"width":10},{"drawImageIndex":1,"targetImageIndex":0}]"#,
            2,
            (30, 20),
        );
        assert_eq!(p.steps.len(), 3);
    }

    #[test]
    fn a_drawn_layer_is_cut_to_what_lands_and_decoded_as_a_window() {
        let steps = parse_steps(
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"bottom":10,"right":-20}]"#,
            2,
        )
        .unwrap();
        // A 10 000 px layer whose bottom-right corner sits on a 200 x 100 canvas.
        let p = plan(&steps, &[Some((200, 100)), Some((10_000, 10_000))], true);
        assert_eq!(p.steps.len(), 2, "{:?}", p.steps);
        let Step::Transform(t) = &p.steps[0] else {
            panic!("{:?}", p.steps)
        };
        let trim = t.trim.unwrap();
        // x = 200 - 10 000 + 20 = -9780: columns 9780..9980 land; y = -9910: rows 9910..10 000.
        assert_eq!(
            (t.image_index, trim.left, trim.top, trim.width, trim.height),
            (1, 9780, 9910, Some(200), Some(90))
        );
        let Step::Draw(d) = &p.steps[1] else {
            panic!("{:?}", p.steps)
        };
        assert_eq!(
            (d.left, d.top, d.right, d.bottom),
            (Some(0), Some(0), None, None)
        );
        assert_eq!(
            p.window[1],
            Some(Rect {
                x: 9780,
                y: 9910,
                width: 200,
                height: 90
            })
        );
        // Tiling needs the whole layer; one that fits needs no cut.
        for json in [
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"repeat":true}]"#,
            r#"[{"imageIndex":1,"width":50},{"drawImageIndex":1,"targetImageIndex":0}]"#,
        ] {
            let steps = parse_steps(json, 2).unwrap();
            let p = plan(&steps, &[Some((200, 100)), Some((10_000, 10_000))], true);
            assert!(
                !p.steps
                    .iter()
                    .any(|s| matches!(s, Step::Transform(t) if t.trim.is_some())),
                "{json}: {:?}",
                p.steps
            );
        }
    }

    #[test]
    fn shrink_on_load_only_where_no_pixel_choice_sees_it() {
        let hint = |json: &str, images: usize| planned(json, images, (6028, 3391)).min_scale[0];
        let plain = hint(r#"[{"imageIndex":0,"width":800}]"#, 1);
        assert!((plain - 800.0 / 6028.0).abs() < 1e-9);
        // Rotation first: the box applies to the turned image.
        let turned = hint(r#"[{"imageIndex":0,"width":800,"rotate":90}]"#, 1);
        assert!((turned - 800.0 / 3391.0).abs() < 1e-9);
        let chained = hint(
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"width":8}]"#,
            1,
        );
        assert!((chained - 8.0 / 3391.0).abs() < 1e-9);
        assert_eq!(
            hint(r#"[{"imageIndex":0,"trim":"border","width":800}]"#, 1),
            1.0
        );
        assert_eq!(
            hint(
                r#"[{"imageIndex":0,"width":800,"height":800,"fit":"cover","gravity":"auto"}]"#,
                1
            ),
            1.0
        );
        assert_eq!(
            hint(
                r#"[{"drawImageIndex":1,"targetImageIndex":0},{"imageIndex":0,"width":8}]"#,
                2
            ),
            1.0
        );
        assert_eq!(
            hint(r#"[{"imageIndex":0,"width":9000,"fit":"contain"}]"#, 1),
            1.0
        );
        // Off when asked.
        let steps = parse_steps(r#"[{"imageIndex":0,"width":800}]"#, 1).unwrap();
        assert_eq!(
            plan(&steps, &[Some((6028, 3391))], false).min_scale,
            vec![1.0]
        );
    }
}
