//! Parsing the `transforms` part: a JSON array of steps, applied in order, read through the
//! `Raw*` shapes and checked as a tree.
//!
//! Parsing is strict: unknown keys, wrong types and out-of-range values are 9401 errors naming the
//! step and the field, never silently ignored.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::colour::{parse_colour, Rgba};
use crate::steps::{
    Border, CompositeMode, DrawStep, Fit, Flip, Gravity, GravityMode, Repeat, Rotate, Segment,
    Step, TransformStep, Trim, TrimBorder,
};
use crate::Error;

/// Largest value accepted for any pixel size or offset in an option; real limits (pixels, sides)
/// are the engine's and are checked against the image.
const MAX_OPTION_PX: f64 = 1_000_000.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTransform {
    image_index: f64,
    width: Option<f64>,
    height: Option<f64>,
    fit: Option<Fit>,
    gravity: Option<Value>,
    background: Option<String>,
    rotate: Option<f64>,
    flip: Option<Flip>,
    blur: Option<f64>,
    sharpen: Option<f64>,
    brightness: Option<f64>,
    contrast: Option<f64>,
    gamma: Option<f64>,
    saturation: Option<f64>,
    trim: Option<Value>,
    border: Option<Value>,
    segment: Option<Segment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDraw {
    draw_image_index: f64,
    target_image_index: f64,
    opacity: Option<f64>,
    repeat: Option<Value>,
    composite: Option<CompositeMode>,
    top: Option<f64>,
    left: Option<f64>,
    bottom: Option<f64>,
    right: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGravityPoint {
    x: Option<f64>,
    y: Option<f64>,
    mode: GravityMode,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBorder {
    color: Option<String>,
    width: Option<f64>,
    top: Option<f64>,
    right: Option<f64>,
    bottom: Option<f64>,
    left: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrim {
    top: Option<f64>,
    right: Option<f64>,
    bottom: Option<f64>,
    left: Option<f64>,
    width: Option<f64>,
    height: Option<f64>,
    border: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrimBorder {
    color: Option<String>,
    tolerance: Option<f64>,
    keep: Option<f64>,
}

/// Parses and validates the `transforms` JSON for a request with `image_count` images
/// (1 canvas + the draw parts). Checks every index and the tree shape: a draw's target comes before
/// its overlay, each overlay is drawn exactly once, and no step touches an overlay after its draw.
pub fn parse_steps(json: &str, image_count: usize) -> Result<Vec<Step>, Error> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| Error::invalid(format!("transforms is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(Error::invalid("transforms must be a JSON array"));
    };
    let mut steps = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let step = parse_step(item)
            .map_err(|e| Error::invalid(format!("transforms[{i}]: {}", e.message())))?;
        steps.push(step);
    }
    check_tree(&steps, image_count)?;
    Ok(steps)
}

fn parse_step(item: Value) -> Result<Step, Error> {
    let Value::Object(map) = item else {
        return Err(Error::invalid("each step must be a JSON object"));
    };
    if map.contains_key("drawImageIndex") {
        let raw: RawDraw = from_map(map)?;
        parse_draw(raw).map(Step::Draw)
    } else {
        let raw: RawTransform = from_map(map)?;
        parse_transform(raw).map(Step::Transform)
    }
}

fn from_map<T: for<'de> Deserialize<'de>>(map: Map<String, Value>) -> Result<T, Error> {
    serde_json::from_value(Value::Object(map)).map_err(|e| Error::invalid(e.to_string()))
}

fn parse_transform(raw: RawTransform) -> Result<TransformStep, Error> {
    let rotate = match raw.rotate {
        None => None,
        Some(r) if r == 0.0 || r == 360.0 => Some(Rotate::R0),
        Some(90.0) => Some(Rotate::R90),
        Some(180.0) => Some(Rotate::R180),
        Some(270.0) => Some(Rotate::R270),
        Some(r) => {
            return Err(Error::invalid(format!(
                "rotate must be 0, 90, 180 or 270, not {r}"
            )))
        }
    };
    Ok(TransformStep {
        image_index: index("imageIndex", raw.image_index)?,
        width: raw.width.map(|v| size("width", v)).transpose()?,
        height: raw.height.map(|v| size("height", v)).transpose()?,
        fit: raw.fit,
        gravity: raw.gravity.map(parse_gravity).transpose()?,
        background: raw.background.as_deref().map(parse_colour).transpose()?,
        rotate,
        flip: raw.flip,
        blur: raw
            .blur
            .map(|v| ranged("blur", v, 0.0, 250.0))
            .transpose()?,
        sharpen: raw
            .sharpen
            .map(|v| ranged("sharpen", v, 0.0, 10.0))
            .transpose()?,
        brightness: raw
            .brightness
            .map(|v| ranged("brightness", v, 0.0, 100.0))
            .transpose()?,
        contrast: raw
            .contrast
            .map(|v| ranged("contrast", v, 0.0, 100.0))
            .transpose()?,
        gamma: raw
            .gamma
            .map(|v| ranged("gamma", v, 0.0, 100.0))
            .transpose()?,
        saturation: raw
            .saturation
            .map(|v| ranged("saturation", v, 0.0, 100.0))
            .transpose()?,
        trim: raw.trim.map(parse_trim).transpose()?,
        border: raw.border.map(parse_border).transpose()?,
        segment: raw.segment,
    })
}

fn parse_draw(raw: RawDraw) -> Result<DrawStep, Error> {
    if raw.left.is_some() && raw.right.is_some() {
        return Err(Error::invalid("draw: set left or right, not both"));
    }
    if raw.top.is_some() && raw.bottom.is_some() {
        return Err(Error::invalid("draw: set top or bottom, not both"));
    }
    let repeat = match raw.repeat {
        None | Some(Value::Bool(false)) => Repeat::No,
        Some(Value::Bool(true)) => Repeat::Both,
        Some(Value::String(s)) if s == "x" => Repeat::X,
        Some(Value::String(s)) if s == "y" => Repeat::Y,
        Some(other) => {
            return Err(Error::invalid(format!(
                "repeat must be true, false, \"x\" or \"y\", not {other}"
            )))
        }
    };
    Ok(DrawStep {
        draw_image_index: index("drawImageIndex", raw.draw_image_index)?,
        target_image_index: index("targetImageIndex", raw.target_image_index)?,
        opacity: raw
            .opacity
            .map(|v| ranged("opacity", v, 0.0, 1.0))
            .transpose()?
            .unwrap_or(1.0),
        repeat,
        composite: raw.composite.unwrap_or_default(),
        top: raw.top.map(|v| offset("top", v)).transpose()?,
        left: raw.left.map(|v| offset("left", v)).transpose()?,
        bottom: raw.bottom.map(|v| offset("bottom", v)).transpose()?,
        right: raw.right.map(|v| offset("right", v)).transpose()?,
    })
}

fn parse_gravity(value: Value) -> Result<Gravity, Error> {
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(Gravity::Auto),
            "face" => Ok(Gravity::Face),
            "left" => Ok(Gravity::Left),
            "right" => Ok(Gravity::Right),
            "top" => Ok(Gravity::Top),
            "bottom" => Ok(Gravity::Bottom),
            "center" | "centre" => Ok(Gravity::Center),
            "entropy" => Ok(Gravity::Entropy),
            other => Err(Error::invalid(format!(
                "gravity {other:?} is not one of auto, face, left, right, top, bottom, center, entropy"
            ))),
        },
        Value::Object(map) => {
            let p: RawGravityPoint = from_map(map).map_err(|e| Error::invalid(format!("gravity: {}", e.message())))?;
            Ok(Gravity::Point {
                x: ranged("gravity.x", p.x.unwrap_or(0.5), 0.0, 1.0)?,
                y: ranged("gravity.y", p.y.unwrap_or(0.5), 0.0, 1.0)?,
                mode: p.mode,
            })
        }
        other => Err(Error::invalid(format!("gravity must be a string or {{x, y, mode}}, not {other}"))),
    }
}

fn parse_border(value: Value) -> Result<Border, Error> {
    let Value::Object(map) = value else {
        return Err(Error::invalid("border must be an object"));
    };
    let b: RawBorder =
        from_map(map).map_err(|e| Error::invalid(format!("border: {}", e.message())))?;
    let color = b
        .color
        .as_deref()
        .map(parse_colour)
        .transpose()?
        .unwrap_or(Rgba::BLACK);
    let all = b.width.map(|v| px("border.width", v)).transpose()?;
    let side = |name: &str, v: Option<f64>| -> Result<u32, Error> {
        match (v, all) {
            (Some(_), Some(_)) => Err(Error::invalid(format!(
                "border: set width or {name}, not both"
            ))),
            (Some(v), None) => px(&format!("border.{name}"), v),
            (None, all) => Ok(all.unwrap_or(0)),
        }
    };
    Ok(Border {
        color,
        top: side("top", b.top)?,
        right: side("right", b.right)?,
        bottom: side("bottom", b.bottom)?,
        left: side("left", b.left)?,
    })
}

fn parse_trim(value: Value) -> Result<Trim, Error> {
    match value {
        Value::String(s) if s == "border" => Ok(Trim {
            border: Some(TrimBorder {
                color: None,
                tolerance: 0,
                keep: 0,
            }),
            ..Trim::default()
        }),
        Value::Object(map) => {
            let t: RawTrim =
                from_map(map).map_err(|e| Error::invalid(format!("trim: {}", e.message())))?;
            if t.right.is_some() && t.width.is_some() {
                return Err(Error::invalid("trim: set right or width, not both"));
            }
            if t.bottom.is_some() && t.height.is_some() {
                return Err(Error::invalid("trim: set bottom or height, not both"));
            }
            let border = match t.border {
                None | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some(TrimBorder {
                    color: None,
                    tolerance: 0,
                    keep: 0,
                }),
                Some(Value::Object(map)) => {
                    let b: RawTrimBorder = from_map(map)
                        .map_err(|e| Error::invalid(format!("trim.border: {}", e.message())))?;
                    Some(TrimBorder {
                        color: b.color.as_deref().map(parse_colour).transpose()?,
                        tolerance: ranged(
                            "trim.border.tolerance",
                            b.tolerance.unwrap_or(0.0),
                            0.0,
                            255.0,
                        )?
                        .round() as u8,
                        keep: b
                            .keep
                            .map(|v| px("trim.border.keep", v))
                            .transpose()?
                            .unwrap_or(0),
                    })
                }
                Some(other) => {
                    return Err(Error::invalid(format!(
                        "trim.border must be a boolean or object, not {other}"
                    )))
                }
            };
            Ok(Trim {
                top: t.top.map(|v| px("trim.top", v)).transpose()?.unwrap_or(0),
                right: t
                    .right
                    .map(|v| px("trim.right", v))
                    .transpose()?
                    .unwrap_or(0),
                bottom: t
                    .bottom
                    .map(|v| px("trim.bottom", v))
                    .transpose()?
                    .unwrap_or(0),
                left: t.left.map(|v| px("trim.left", v)).transpose()?.unwrap_or(0),
                width: t.width.map(|v| size("trim.width", v)).transpose()?,
                height: t.height.map(|v| size("trim.height", v)).transpose()?,
                border,
            })
        }
        other => Err(Error::invalid(format!(
            "trim must be \"border\" or an object, not {other}"
        ))),
    }
}

fn ranged(name: &str, v: f64, min: f64, max: f64) -> Result<f64, Error> {
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(format!(
            "{name} must be between {min} and {max}, not {v}"
        )))
    }
}

fn index(name: &str, v: f64) -> Result<usize, Error> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1e6 {
        Ok(v as usize)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a non-negative integer, not {v}"
        )))
    }
}

/// A size that must be at least 1 px; fractional sizes round to the nearest pixel.
fn size(name: &str, v: f64) -> Result<u32, Error> {
    if v.is_finite() && (0.5..=MAX_OPTION_PX).contains(&v) {
        Ok(v.round() as u32)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a positive number of pixels up to {MAX_OPTION_PX}, not {v}"
        )))
    }
}

/// A non-negative pixel amount.
fn px(name: &str, v: f64) -> Result<u32, Error> {
    if v.is_finite() && (0.0..=MAX_OPTION_PX).contains(&v) {
        Ok(v.round() as u32)
    } else {
        Err(Error::invalid(format!(
            "{name} must be 0 to {MAX_OPTION_PX} pixels, not {v}"
        )))
    }
}

/// A signed pixel offset.
fn offset(name: &str, v: f64) -> Result<i64, Error> {
    if v.is_finite() && v.abs() <= MAX_OPTION_PX {
        Ok(v.round() as i64)
    } else {
        Err(Error::invalid(format!(
            "{name} must be a pixel offset within ±{MAX_OPTION_PX}, not {v}"
        )))
    }
}

fn check_tree(steps: &[Step], image_count: usize) -> Result<(), Error> {
    let mut drawn = vec![false; image_count];
    for (i, step) in steps.iter().enumerate() {
        let fail = |msg: String| Err(Error::invalid(format!("transforms[{i}]: {msg}")));
        match step {
            Step::Transform(t) => {
                if t.image_index >= image_count {
                    return fail(format!(
                        "imageIndex {} but the request has {image_count} image(s)",
                        t.image_index
                    ));
                }
                if drawn[t.image_index] {
                    return fail(format!(
                        "image {} is transformed after it was drawn",
                        t.image_index
                    ));
                }
            }
            Step::Draw(d) => {
                let (child, target) = (d.draw_image_index, d.target_image_index);
                if child == 0 || child >= image_count {
                    return fail(format!(
                        "drawImageIndex {child} must be 1 to {}",
                        image_count.saturating_sub(1)
                    ));
                }
                if target >= child {
                    return fail(format!(
                        "targetImageIndex {target} must be less than drawImageIndex {child}"
                    ));
                }
                if drawn[child] {
                    return fail(format!("image {child} is drawn twice"));
                }
                if drawn[target] {
                    return fail(format!("image {target} is drawn onto after it was drawn"));
                }
                drawn[child] = true;
            }
        }
    }
    if let Some(orphan) = (1..image_count).find(|&n| !drawn[n]) {
        return Err(Error::invalid(format!(
            "draw image {orphan} is never drawn"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn err(json: &str, images: usize) -> String {
        let e = parse_steps(json, images).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArguments);
        e.message().to_string()
    }

    #[test]
    fn parses_cloudflare_client_output() {
        // What workerd's client sends for
        // input(a).transform({width:100,rotate:90}).draw(input(b).transform({width:10}), {bottom:5,right:5, opacity:0.5})
        let json = r#"[{"imageIndex":0,"width":100,"rotate":90},
            {"imageIndex":1,"width":10},
            {"drawImageIndex":1,"targetImageIndex":0,"bottom":5,"right":5,"opacity":0.5}]"#;
        let steps = parse_steps(json, 2).unwrap();
        assert_eq!(steps.len(), 3);
        let Step::Transform(t) = &steps[0] else {
            panic!()
        };
        assert_eq!((t.width, t.rotate), (Some(100), Some(Rotate::R90)));
        let Step::Draw(d) = &steps[2] else { panic!() };
        assert_eq!(
            (d.bottom, d.right, d.opacity, d.top),
            (Some(5), Some(5), 0.5, None)
        );
        assert_eq!(d.composite, CompositeMode::Over);
    }

    #[test]
    fn parses_every_option_shape() {
        let json = r##"[{"imageIndex":0,"fit":"scale-down","gravity":{"x":0.2,"y":0.8,"mode":"box-center"},
            "background":"rgba(0,0,255,0.5)","flip":"hv","blur":3,"sharpen":1,"brightness":1.2,"contrast":0.9,
            "gamma":1.1,"saturation":0,"trim":{"top":1,"left":2,"width":30,"border":{"color":"#fff","tolerance":10,"keep":2}},
            "border":{"color":"red","width":4},"segment":"foreground"},
            {"imageIndex":0,"trim":"border","border":{"top":1,"left":3},"gravity":"entropy","fit":"pad"}]"##;
        let steps = parse_steps(json, 1).unwrap();
        let Step::Transform(t) = &steps[0] else {
            panic!()
        };
        assert_eq!(
            t.gravity,
            Some(Gravity::Point {
                x: 0.2,
                y: 0.8,
                mode: GravityMode::BoxCenter
            })
        );
        assert_eq!(
            t.background,
            Some(Rgba {
                r: 0,
                g: 0,
                b: 255,
                a: 128
            })
        );
        assert_eq!(t.border.unwrap().left, 4);
        assert_eq!(t.trim.unwrap().border.unwrap().tolerance, 10);
        let Step::Transform(t) = &steps[1] else {
            panic!()
        };
        assert_eq!(
            t.border.unwrap(),
            Border {
                color: Rgba::BLACK,
                top: 1,
                right: 0,
                bottom: 0,
                left: 3
            }
        );
    }

    #[test]
    fn rejects_bad_values_with_named_fields() {
        assert!(err(r#"[{"imageIndex":0,"zoom":1}]"#, 1).contains("zoom"));
        assert!(err(r#"[{"imageIndex":0,"rotate":45}]"#, 1).contains("rotate"));
        assert!(err(r#"[{"imageIndex":0,"width":-5}]"#, 1).contains("width"));
        assert!(err(r#"[{"imageIndex":0,"width":"100"}]"#, 1).contains("transforms[0]"));
        assert!(err(r#"[{"imageIndex":0,"fit":"fill"}]"#, 1).contains("fill"));
        assert!(err(r#"[{"imageIndex":0,"blur":251}]"#, 1).contains("blur"));
        assert!(err(r#"[{"imageIndex":0,"background":"nope"}]"#, 1).contains("nope"));
        assert!(err(r#"{"imageIndex":0}"#, 1).contains("array"));
        assert!(err(r#"[1]"#, 1).contains("object"));
        assert!(err("not json", 1).contains("JSON"));
        assert!(err(r#"[{"width":10}]"#, 1).contains("imageIndex"));
    }

    #[test]
    fn rejects_bad_trees() {
        assert!(err(r#"[{"imageIndex":1}]"#, 1).contains("imageIndex 1"));
        assert!(err(
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"left":1,"right":1}]"#,
            2
        )
        .contains("left or right"));
        assert!(err(
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"top":1,"bottom":1}]"#,
            2
        )
        .contains("top or bottom"));
        assert!(err(r#"[{"drawImageIndex":1,"targetImageIndex":1}]"#, 2).contains("less than"));
        assert!(err(r#"[{"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":1,"targetImageIndex":0}]"#, 2)
            .contains("twice"));
        assert!(err(
            r#"[{"drawImageIndex":1,"targetImageIndex":0},{"imageIndex":1,"width":3}]"#,
            2
        )
        .contains("after it was drawn"));
        assert!(err(r#"[]"#, 2).contains("never drawn"));
        assert!(err(
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"repeat":"z"}]"#,
            2
        )
        .contains("repeat"));
    }
}
