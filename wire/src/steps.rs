//! The op list's types: each step of the `transforms` part, validated (parsing is in
//! [`parse`]).
//!
//! Each element is either a transform of one image (`{imageIndex, ...ImageTransform}`) or a draw of
//! one image onto another (`{drawImageIndex, targetImageIndex, ...ImageDrawOptions}`). Image 0 is
//! the canvas (`image`/`text_input` part); image n ≥ 1 is the n-th `draw_image`/`draw_text` part.
//! A child's steps come before the draw that consumes it.

use serde::{Deserialize, Serialize, Serializer};

use crate::colour::Rgba;

pub(crate) mod parse;

/// One validated step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Transform one image.
    Transform(TransformStep),
    /// Draw one image onto another.
    Draw(DrawStep),
}

/// `fit`: how `width`/`height` are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Fit inside the box, never enlarging (the default).
    ScaleDown,
    /// Fit inside the box, enlarging if needed.
    Contain,
    /// Fill the box exactly, cropping the overflow (enlarges if needed).
    Cover,
    /// Like cover, but never enlarges: a smaller image is cropped to the box only where it overflows.
    Crop,
    /// Fit inside the box and pad to its exact size with the background colour.
    Pad,
    /// Stretch to exactly the box, ignoring aspect ratio.
    Squeeze,
}

/// `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Flip {
    /// Mirror left-right.
    #[serde(rename = "h")]
    Horizontal,
    /// Mirror top-bottom.
    #[serde(rename = "v")]
    Vertical,
    /// Both.
    #[serde(rename = "hv", alias = "vh")]
    Both,
}

/// `rotate`, clockwise degrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotate {
    /// 0° (no-op).
    R0,
    /// 90° clockwise.
    R90,
    /// 180°.
    R180,
    /// 270° clockwise.
    R270,
}

/// How a `{x, y}` gravity point is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GravityMode {
    /// The point splits the cropped-away remainder (0.5 = centre).
    Remainder,
    /// The point becomes the centre of the crop box where possible.
    BoxCenter,
}

/// `gravity`: which part of the image survives a crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gravity {
    /// Saliency-based.
    Auto,
    /// Faces (no model is shipped; the engine documents its fallback).
    Face,
    /// Keep the left edge.
    Left,
    /// Keep the right edge.
    Right,
    /// Keep the top edge.
    Top,
    /// Keep the bottom edge.
    Bottom,
    /// Centre (the default).
    Center,
    /// The most detailed region.
    Entropy,
    /// A point in 0–1 coordinates.
    Point {
        /// Horizontal, 0 = left, 1 = right.
        x: f64,
        /// Vertical, 0 = top, 1 = bottom.
        y: f64,
        /// How the point is used.
        mode: GravityMode,
    },
}

/// `border`: added around the image after the other operations of its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Border {
    /// Colour (default black).
    pub color: Rgba,
    /// Top width in px.
    pub top: u32,
    /// Right width in px.
    pub right: u32,
    /// Bottom width in px.
    pub bottom: u32,
    /// Left width in px.
    pub left: u32,
}

/// `trim: 'border'` or `trim.border`: remove a uniform border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimBorder {
    /// Border colour; `None` = the top-left pixel's colour.
    pub color: Option<Rgba>,
    /// Per-channel tolerance, 0–255.
    pub tolerance: u8,
    /// Pixels of border to keep.
    pub keep: u32,
}

/// `trim`: cut pixels off the edges, before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trim {
    /// Pixels off the top.
    pub top: u32,
    /// Pixels off the right.
    pub right: u32,
    /// Pixels off the bottom.
    pub bottom: u32,
    /// Pixels off the left.
    pub left: u32,
    /// Width to keep after `left` (alternative to `right`).
    pub width: Option<u32>,
    /// Height to keep after `top` (alternative to `bottom`).
    pub height: Option<u32>,
    /// Automatic border detection.
    pub border: Option<TrimBorder>,
}

/// `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Segment {
    /// Keep the foreground, make the background transparent.
    Foreground,
}

/// One `.transform({...})` call, applied to image `image_index`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransformStep {
    /// Which image (0 = canvas).
    pub image_index: usize,
    /// Target width in px.
    pub width: Option<u32>,
    /// Target height in px.
    pub height: Option<u32>,
    /// How width/height apply (default scale-down).
    pub fit: Option<Fit>,
    /// Crop anchor.
    pub gravity: Option<Gravity>,
    /// Padding / flatten colour.
    pub background: Option<Rgba>,
    /// Clockwise rotation.
    pub rotate: Option<Rotate>,
    /// Mirroring.
    pub flip: Option<Flip>,
    /// Gaussian blur radius, 0–250.
    pub blur: Option<f64>,
    /// Sharpen strength, 0–10.
    pub sharpen: Option<f64>,
    /// Brightness factor, 1 = unchanged (0 = ignored).
    pub brightness: Option<f64>,
    /// Contrast factor, 1 = unchanged (0 = ignored).
    pub contrast: Option<f64>,
    /// Gamma factor, 1 = unchanged (0 = ignored).
    pub gamma: Option<f64>,
    /// Saturation factor, 1 = unchanged, 0 = greyscale.
    pub saturation: Option<f64>,
    /// Edge trimming.
    pub trim: Option<Trim>,
    /// Border added around the result.
    pub border: Option<Border>,
    /// Segmentation.
    pub segment: Option<Segment>,
}

/// How an overlay repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Once (default).
    No,
    /// Tile both ways.
    Both,
    /// Tile horizontally.
    X,
    /// Tile vertically.
    Y,
}

/// Porter-Duff compositing mode of a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CompositeMode {
    /// Source over destination (default).
    #[default]
    Over,
    /// Source where destination is.
    In,
    /// Source atop destination.
    Atop,
    /// Source where destination is not.
    Out,
    /// Either but not both.
    Xor,
    /// Sum.
    Lighter,
}

/// One `.draw(child, {...})`: image `draw_image_index` onto `target_image_index`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawStep {
    /// The overlay (≥ 1).
    pub draw_image_index: usize,
    /// The image drawn onto (< overlay).
    pub target_image_index: usize,
    /// 0–1, default 1.
    pub opacity: f64,
    /// Tiling.
    pub repeat: Repeat,
    /// Blend mode.
    pub composite: CompositeMode,
    /// Offset from the top edge (px).
    pub top: Option<i64>,
    /// Offset from the left edge (px).
    pub left: Option<i64>,
    /// Offset from the bottom edge (px).
    pub bottom: Option<i64>,
    /// Offset from the right edge (px).
    pub right: Option<i64>,
}

impl Rotate {
    /// The angle in clockwise degrees, as the `rotate` option gives it.
    pub const fn degrees(self) -> u16 {
        match self {
            Rotate::R0 => 0,
            Rotate::R90 => 90,
            Rotate::R180 => 180,
            Rotate::R270 => 270,
        }
    }
}

/// As the option is written: a number of degrees.
impl Serialize for Rotate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.degrees())
    }
}

/// As the option is written: `false`, `true`, `"x"` or `"y"`.
impl Serialize for Repeat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Repeat::No => serializer.serialize_bool(false),
            Repeat::Both => serializer.serialize_bool(true),
            Repeat::X => serializer.serialize_str("x"),
            Repeat::Y => serializer.serialize_str("y"),
        }
    }
}
