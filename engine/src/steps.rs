//! The step applier: each `.transform()` and `.draw()` in call order, for a still job
//! (`lib.rs`) and for every frame of an animation (`animation.rs`), which both go through here.
//!
//! Within one transform step the operations run in Cloudflare's documented URL order:
//! trim → flip → rotate → resize (fit, gravity, pad) → background → filters (blur, sharpen,
//! brightness, contrast, gamma, saturation) → border. Flip before rotate is what the URL interface
//! documents; callers wanting the other order use two `.transform()` calls.

use imgbind_wire::{Error, Step, TransformStep};

use crate::raster::Raster;
use crate::{composite, filters, geometry, resize, Clock, Limits};

/// How [`apply`] treats the image table.
pub(crate) enum Pass<'a> {
    /// Each step once (a still job; an animation's overlays, prepared before its frames): a draw
    /// takes its overlay out of the table, and the deadline is checked before each step.
    Once(&'a Clock),
    /// One frame of an animated canvas (image 0): a draw borrows its overlay (prepared once,
    /// drawn onto every frame). While `resolved` is empty (the first frame) each transform's
    /// pixel-dependent choices (`trim: border`, an `auto`/`entropy`/`face` gravity) are recorded
    /// in it; later frames reuse them, so every frame is cut alike and keeps one size.
    Frame {
        /// The canvas transforms as resolved on the first frame, in step order.
        resolved: &'a mut Vec<TransformStep>,
    },
}

/// Applies the steps for which `selected` is true, in call order, to the image table (image n at
/// index n), as `pass` says.
pub(crate) fn apply(
    images: &mut [Option<Raster>],
    steps: &[Step],
    selected: impl Fn(&Step) -> bool,
    mut pass: Pass<'_>,
    limits: &Limits,
) -> Result<(), Error> {
    let recording = matches!(&pass, Pass::Frame { resolved } if resolved.is_empty());
    let mut transform_index = 0;
    for (i, step) in steps.iter().enumerate() {
        if !selected(step) {
            continue;
        }
        if let Pass::Once(clock) = &pass {
            clock.check()?;
        }
        match step {
            Step::Transform(t) => {
                let img = take(images, t.image_index, i)?;
                let img = match &mut pass {
                    Pass::Once(_) => transform(img, t, limits)?,
                    Pass::Frame { resolved } if recording => {
                        let (img, choice) = transform_resolving(img, t, limits)?;
                        resolved.push(choice);
                        img
                    }
                    Pass::Frame { resolved } => transform(img, &resolved[transform_index], limits)?,
                };
                transform_index += 1;
                images[t.image_index] = Some(img);
            }
            Step::Draw(d) => {
                let taken = match pass {
                    Pass::Once(_) => Some(take(images, d.draw_image_index, i)?),
                    Pass::Frame { .. } => None,
                };
                let target = take(images, d.target_image_index, i)?;
                let overlay = match &taken {
                    Some(overlay) => overlay,
                    None => images
                        .get(d.draw_image_index)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| missing(i, d.draw_image_index))?,
                };
                let drawn = composite::draw(target, overlay, d)?;
                images[d.target_image_index] = Some(drawn);
            }
        }
    }
    Ok(())
}

/// True when a step changes image 0 (the canvas).
pub(crate) fn touches_canvas(step: &Step) -> bool {
    match step {
        Step::Transform(t) => t.image_index == 0,
        Step::Draw(d) => d.target_image_index == 0,
    }
}

/// One `.transform()` step, in the order documented at the top of this file.
pub(crate) fn transform(
    img: Raster,
    step: &TransformStep,
    limits: &Limits,
) -> Result<Raster, Error> {
    transform_resolving(img, step, limits).map(|(img, _)| img)
}

/// [`transform`], also returning the step with its pixel-dependent choices made explicit (the
/// `trim: border` rectangle, the point an `auto`/`entropy`/`face` gravity picked), so the other
/// frames of an animation are cut exactly like this one.
pub(crate) fn transform_resolving(
    img: Raster,
    step: &TransformStep,
    limits: &Limits,
) -> Result<(Raster, TransformStep), Error> {
    let mut resolved = step.clone();
    let mut img = img;
    if let Some(trim) = &step.trim {
        let rect = geometry::trim_rect(&img, trim)?;
        if trim.border.is_some() {
            resolved.trim = Some(imgbind_wire::Trim {
                top: rect.y,
                left: rect.x,
                width: Some(rect.width),
                height: Some(rect.height),
                ..imgbind_wire::Trim::default()
            });
        }
        img = match img.logical {
            Some(logical) => geometry::crop_logical(&img, logical, rect)?,
            None => geometry::crop(&img, rect)?,
        };
    }
    if let Some(flip) = step.flip {
        img = geometry::flip(img, flip)?;
    }
    if let Some(rotation) = step.rotate {
        img = geometry::rotate(img, rotation, limits)?;
    }
    if let Some(point) = resize::resolved_gravity(&img, step) {
        resolved.gravity = Some(point);
    }
    img = resize::apply(img, step, limits)?;
    // Whatever the decoder skipped has been accounted for by the resize.
    img.logical = None;
    if let Some(background) = step.background {
        img = img.flatten(background)?;
    }
    img = filters::apply(img, step)?;
    if let Some(border) = &step.border {
        img = geometry::add_border(img, border, limits)?;
    }
    Ok((img, resolved))
}

/// Takes image `index` out of the table for a step (9401 if it does not exist or was drawn).
pub(crate) fn take(
    images: &mut [Option<Raster>],
    index: usize,
    step: usize,
) -> Result<Raster, Error> {
    images
        .get_mut(index)
        .and_then(Option::take)
        .ok_or_else(|| missing(step, index))
}

/// The 9401 for a step naming an image that does not exist or was already drawn.
fn missing(step: usize, index: usize) -> Error {
    Error::invalid(format!(
        "transforms[{step}]: image {index} does not exist or was already drawn"
    ))
}
