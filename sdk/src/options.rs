//! Typed step and output options for Rust callers (the `worker`-crate API in
//! [`crate::rust_api`]), serialised to exactly the JSON Cloudflare's client sends for the same
//! JavaScript options, and the `/transform` parts for a tree built with them.
//!
//! The shapes mirror `ImageTransform`, `ImageDrawOptions` and `ImageOutputOptions` from
//! `@cloudflare/workers-types`; the value enums (`Fit`, `Flip`, `Rotate`, …) are the wire crate's
//! own, so the names the backend parses are written in one place. Unset fields are left out, as
//! `undefined` members are by `JSON.stringify`.
//!
//! Plain data: compiled and tested on every target.

use serde::{Deserialize, Serialize, Serializer};

use imgbind_wire::{
    CompositeMode, ErrorCode, Fit, Flip, GravityMode, OutputFields, OutputFormat, Repeat, Rotate,
    Segment,
};

use crate::builder::{Plan, Tree};
use crate::errors::{ImagesError, Operation};
use crate::serialize::{ops_json, Part};

/// One `.transform({...})`: every field optional, applied in the backend's fixed order within the
/// step (trim → flip → rotate → resize → background → filters → border).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transform {
    /// Target width in px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Target height in px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// How `width`/`height` apply (the backend's default is scale-down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
    /// Which part survives a crop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gravity: Option<GravityOption>,
    /// Padding / flatten colour, any CSS colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Clockwise rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate: Option<Rotate>,
    /// Mirroring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flip: Option<Flip>,
    /// Gaussian blur radius, 0–250.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blur: Option<f64>,
    /// Sharpen strength, 0–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharpen: Option<f64>,
    /// Brightness factor, 1 = unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brightness: Option<f64>,
    /// Contrast factor, 1 = unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contrast: Option<f64>,
    /// Gamma factor, 1 = unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Saturation factor, 1 = unchanged, 0 = greyscale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<f64>,
    /// Edge trimming, before resizing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trim: Option<TrimOption>,
    /// Border added around the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub border: Option<BorderOption>,
    /// Segmentation (the backend answers 9520: not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
}

/// `gravity`: a side, a strategy, or a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GravityOption {
    /// `"auto"`.
    Auto,
    /// `"face"`.
    Face,
    /// `"entropy"`.
    Entropy,
    /// `"left"`.
    Left,
    /// `"right"`.
    Right,
    /// `"top"`.
    Top,
    /// `"bottom"`.
    Bottom,
    /// `"center"`.
    Center,
    /// `{x, y, mode}`: a point in 0–1 coordinates.
    Point {
        /// 0 = left edge, 1 = right edge.
        x: f64,
        /// 0 = top edge, 1 = bottom edge.
        y: f64,
        /// How the point places the crop.
        mode: GravityMode,
    },
}

impl Serialize for GravityOption {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Point {
            x: f64,
            y: f64,
            mode: GravityMode,
        }
        let side = match *self {
            GravityOption::Auto => "auto",
            GravityOption::Face => "face",
            GravityOption::Entropy => "entropy",
            GravityOption::Left => "left",
            GravityOption::Right => "right",
            GravityOption::Top => "top",
            GravityOption::Bottom => "bottom",
            GravityOption::Center => "center",
            GravityOption::Point { x, y, mode } => {
                return Point { x, y, mode }.serialize(serializer)
            }
        };
        serializer.serialize_str(side)
    }
}

/// `trim`: fixed edges, or automatic border detection.
#[derive(Debug, Clone, PartialEq)]
pub enum TrimOption {
    /// `"border"`: remove a uniform border of the top-left pixel's colour.
    Border,
    /// `{top, right, bottom, left, width, height, border}`.
    Edges(TrimEdges),
}

/// The object form of `trim`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrimEdges {
    /// Pixels off the top.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Pixels off the right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<u32>,
    /// Pixels off the bottom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottom: Option<u32>,
    /// Pixels off the left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u32>,
    /// Width to keep after `left`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height to keep after `top`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Border detection settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub border: Option<TrimBorderOption>,
}

/// `trim.border`: `{color?, tolerance?, keep?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrimBorderOption {
    /// Border colour (CSS); unset = the top-left pixel's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Per-channel tolerance, 0–255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<u8>,
    /// Pixels of border to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
}

impl Serialize for TrimOption {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TrimOption::Border => serializer.serialize_str("border"),
            TrimOption::Edges(edges) => edges.serialize(serializer),
        }
    }
}

/// `border`: `{color, width}` or per side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BorderOption {
    /// CSS colour (the backend's default is black).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// All four sides, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Top side, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Right side, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<u32>,
    /// Bottom side, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottom: Option<u32>,
    /// Left side, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u32>,
}

/// `.draw(overlay, {...})`: where and how the overlay goes. With no offsets it is centred.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DrawOptions {
    /// 0–1 (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opacity: Option<f64>,
    /// Tiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// Porter-Duff mode (default over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeMode>,
    /// Offset from the top edge, px (not with `bottom`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<i64>,
    /// Offset from the left edge, px (not with `right`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<i64>,
    /// Offset from the bottom edge, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottom: Option<i64>,
    /// Offset from the right edge, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<i64>,
}

/// `.output({...})`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOutputOptions {
    /// The encoding.
    pub format: OutputFormat,
    /// 1–100; unset = the backend's default (85).
    pub quality: Option<u8>,
    /// Colour to flatten transparency onto (CSS).
    pub background: Option<String>,
    /// Keep animation (animated input is reduced to its first frame for now).
    pub anim: Option<bool>,
}

impl ImageOutputOptions {
    /// Just a format, everything else default.
    pub fn new(format: OutputFormat) -> Self {
        ImageOutputOptions {
            format,
            quality: None,
            background: None,
            anim: None,
        }
    }

    /// The form fields, as Cloudflare's client writes them (`quality.toString()`, …).
    pub fn fields(&self) -> OutputFields {
        OutputFields {
            format: Some(self.format.as_str().to_string()),
            quality: self.quality.map(|q| q.to_string()),
            background: self.background.clone(),
            anim: self.anim.map(|a| a.to_string()),
        }
    }
}

impl From<OutputFormat> for ImageOutputOptions {
    fn from(format: OutputFormat) -> Self {
        ImageOutputOptions::new(format)
    }
}

/// The options of one step in a Rust-built tree: serialises as the bare options object, which
/// [`ops_json`] spreads after the indices.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StepOptions {
    /// A transform's options.
    Transform(Transform),
    /// A draw's options.
    Draw(DrawOptions),
}

/// The `/transform` parts for a tree of typed steps: canvas and draw sources, `transforms`,
/// output fields. Shared by the `worker`-crate API and its host tests.
pub fn transform_parts<S>(
    tree: Tree<S, StepOptions>,
    output: &ImageOutputOptions,
) -> Result<Vec<Part<S>>, ImagesError> {
    let plan: Plan<S, StepOptions> = tree.plan();
    let transforms = ops_json(&plan.ops).map_err(|e| {
        ImagesError::client(
            Operation::Transform,
            ErrorCode::InvalidArguments,
            &e.to_string(),
        )
    })?;
    Ok(plan.into_parts(transforms, output.fields()))
}

/// `text(content, {font, size?, color?})`: text to rasterise as an image (the backend renders it).
#[derive(Debug, Clone, PartialEq)]
pub struct TextOptions {
    /// The font: a bundled font's file name (`DejaVuSans.ttf`), a file in the backend's font
    /// folder, or a `data:` URL of a TTF/OTF file.
    pub font: String,
    /// Size in px (the backend's default when unset).
    pub size: Option<f64>,
    /// CSS colour (the backend's default when unset).
    pub color: Option<String>,
}

impl TextOptions {
    /// Text in `font` at the default size and colour.
    pub fn new(font: impl Into<String>) -> Self {
        TextOptions {
            font: font.into(),
            size: None,
            color: None,
        }
    }
}

/// The `text_input`/`draw_text` JSON, as Cloudflare's `serializeTextSource` writes it:
/// `{"text", "font": {"url"}, "size"?, "color"?}`.
pub fn text_json(content: &str, options: &TextOptions) -> String {
    #[derive(Serialize)]
    struct Font<'a> {
        url: &'a str,
    }
    #[derive(Serialize)]
    struct Text<'a> {
        text: &'a str,
        font: Font<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        color: Option<&'a str>,
    }
    let text = Text {
        text: content,
        font: Font { url: &options.font },
        size: options.size,
        color: options.color.as_deref(),
    };
    // Strings and finite-or-null numbers: serialising cannot fail.
    serde_json::to_string(&text).unwrap_or_default()
}

/// What `info()` answers, with Cloudflare's JSON keys (`fileSize`, …). SVG has only `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// MIME type, e.g. `image/jpeg`.
    pub format: String,
    /// Input size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Displayed width, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Displayed height, px.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl From<imgbind_wire::InfoResponse> for ImageInfo {
    fn from(r: imgbind_wire::InfoResponse) -> Self {
        ImageInfo {
            format: r.format,
            file_size: r.file_size,
            width: r.width,
            height: r.height,
        }
    }
}

/// Parses a backend `/info` body; anything but the documented JSON is 9523.
pub fn parse_info(body: &str) -> Result<ImageInfo, ImagesError> {
    serde_json::from_str::<imgbind_wire::InfoResponse>(body)
        .map(ImageInfo::from)
        .map_err(|e| {
            ImagesError::client(
                Operation::Info,
                ErrorCode::Internal,
                &format!("the backend's /info answer is not the expected JSON: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use imgbind_wire::{parse_steps, Step};

    use super::*;
    use crate::builder::Source;
    use crate::serialize::{frame, BodyPiece, PartBody};

    fn input(name: &str) -> Tree<String, StepOptions> {
        Tree::new(Source::Image(name.to_string()))
    }

    fn ops(tree: Tree<String, StepOptions>) -> String {
        let parts = transform_parts(tree, &OutputFormat::Png.into()).unwrap();
        let transforms = parts.iter().find(|p| p.name == "transforms").unwrap();
        match &transforms.body {
            PartBody::Text(t) => t.clone(),
            PartBody::Stream(_) => unreachable!("transforms is a text field"),
        }
    }

    #[test]
    fn unset_fields_are_left_out_like_undefined() {
        let t = Transform {
            width: Some(800),
            fit: Some(Fit::ScaleDown),
            ..Transform::default()
        };
        assert_eq!(
            ops(input("a").transform(StepOptions::Transform(t))),
            r#"[{"imageIndex":0,"width":800,"fit":"scale-down"}]"#
        );
        assert_eq!(
            ops(input("a").transform(StepOptions::Transform(Transform::default()))),
            r#"[{"imageIndex":0}]"#
        );
    }

    #[test]
    fn every_transform_field_is_written_as_cloudflares_json_and_parsed_back() {
        let t = Transform {
            width: Some(300),
            height: Some(200),
            fit: Some(Fit::Cover),
            gravity: Some(GravityOption::Point {
                x: 0.25,
                y: 1.0,
                mode: GravityMode::BoxCenter,
            }),
            background: Some("#ff000080".into()),
            rotate: Some(Rotate::R270),
            flip: Some(Flip::Both),
            blur: Some(2.5),
            sharpen: Some(1.0),
            brightness: Some(1.2),
            contrast: Some(0.9),
            gamma: Some(1.1),
            saturation: Some(0.0),
            trim: Some(TrimOption::Edges(TrimEdges {
                top: Some(1),
                left: Some(2),
                width: Some(50),
                border: Some(TrimBorderOption {
                    color: Some("white".into()),
                    tolerance: Some(10),
                    keep: Some(1),
                }),
                ..TrimEdges::default()
            })),
            border: Some(BorderOption {
                color: Some("red".into()),
                width: Some(4),
                ..BorderOption::default()
            }),
            segment: None,
        };
        let text = ops(input("a").transform(StepOptions::Transform(t)));
        assert_eq!(
            text,
            concat!(
                r#"[{"imageIndex":0,"width":300,"height":200,"fit":"cover","#,
                r##""gravity":{"x":0.25,"y":1.0,"mode":"box-center"},"background":"#ff000080","##,
                r#""rotate":270,"flip":"hv","blur":2.5,"sharpen":1.0,"brightness":1.2,"#,
                r#""contrast":0.9,"gamma":1.1,"saturation":0.0,"#,
                r#""trim":{"top":1,"left":2,"width":50,"border":{"color":"white","tolerance":10,"keep":1}},"#,
                r#""border":{"color":"red","width":4}}]"#
            )
        );
        // The backend's own parser accepts it and reads back the same values.
        let steps = parse_steps(&text, 1).unwrap();
        let Step::Transform(step) = &steps[0] else {
            panic!("a transform step: {steps:?}")
        };
        assert_eq!((step.width, step.height), (Some(300), Some(200)));
        assert_eq!(step.fit, Some(Fit::Cover));
        assert_eq!(step.rotate, Some(Rotate::R270));
        assert_eq!(step.flip, Some(Flip::Both));
        assert_eq!(
            step.background,
            Some(imgbind_wire::Rgba {
                r: 255,
                g: 0,
                b: 0,
                a: 128
            })
        );
        assert_eq!(
            step.gravity,
            Some(imgbind_wire::Gravity::Point {
                x: 0.25,
                y: 1.0,
                mode: GravityMode::BoxCenter
            })
        );
        let trim = step.trim.unwrap();
        assert_eq!((trim.top, trim.left, trim.width), (1, 2, Some(50)));
        assert_eq!(trim.border.unwrap().tolerance, 10);
        let border = step.border.unwrap();
        assert_eq!((border.top, border.left), (4, 4));
    }

    #[test]
    fn named_gravity_and_trim_border_are_strings() {
        for (gravity, name) in [
            (GravityOption::Auto, "auto"),
            (GravityOption::Face, "face"),
            (GravityOption::Entropy, "entropy"),
            (GravityOption::Left, "left"),
            (GravityOption::Right, "right"),
            (GravityOption::Top, "top"),
            (GravityOption::Bottom, "bottom"),
            (GravityOption::Center, "center"),
        ] {
            let t = Transform {
                gravity: Some(gravity),
                trim: Some(TrimOption::Border),
                ..Transform::default()
            };
            let text = ops(input("a").transform(StepOptions::Transform(t)));
            assert_eq!(
                text,
                format!(r#"[{{"imageIndex":0,"gravity":"{name}","trim":"border"}}]"#)
            );
            parse_steps(&text, 1).unwrap();
        }
    }

    #[test]
    fn draws_nest_in_cloudflares_order_with_typed_options() {
        let overlay = input("logo").transform(StepOptions::Transform(Transform {
            width: Some(64),
            ..Transform::default()
        }));
        let tree = input("photo")
            .draw(
                overlay,
                StepOptions::Draw(DrawOptions {
                    opacity: Some(0.5),
                    bottom: Some(10),
                    right: Some(-3),
                    repeat: Some(Repeat::X),
                    composite: Some(CompositeMode::Atop),
                    ..DrawOptions::default()
                }),
            )
            .draw(input("tile"), StepOptions::Draw(DrawOptions::default()))
            .transform(StepOptions::Transform(Transform {
                rotate: Some(Rotate::R90),
                ..Transform::default()
            }));
        let text = ops(tree);
        assert_eq!(
            text,
            concat!(
                r#"[{"imageIndex":1,"width":64},"#,
                r#"{"drawImageIndex":1,"targetImageIndex":0,"opacity":0.5,"repeat":"x","composite":"atop","bottom":10,"right":-3},"#,
                r#"{"drawImageIndex":2,"targetImageIndex":0},{"imageIndex":0,"rotate":90}]"#
            )
        );
        let steps = parse_steps(&text, 3).unwrap();
        let Step::Draw(draw) = &steps[1] else {
            panic!("a draw step: {steps:?}")
        };
        assert_eq!(draw.opacity, 0.5);
        assert_eq!(draw.repeat, Repeat::X);
        assert_eq!(draw.composite, CompositeMode::Atop);
        assert_eq!((draw.bottom, draw.right), (Some(10), Some(-3)));
        for repeat in [Repeat::No, Repeat::Both, Repeat::Y] {
            let tree = input("a").draw(
                input("b"),
                StepOptions::Draw(DrawOptions {
                    repeat: Some(repeat),
                    ..DrawOptions::default()
                }),
            );
            let Step::Draw(draw) = &parse_steps(&ops(tree), 2).unwrap()[0] else {
                panic!("a draw step")
            };
            assert_eq!(draw.repeat, repeat);
        }
    }

    #[test]
    fn output_fields_are_what_the_backend_validates() {
        let options = ImageOutputOptions {
            format: OutputFormat::Webp,
            quality: Some(70),
            background: Some("#000".into()),
            anim: Some(false),
        };
        let fields = options.fields();
        assert_eq!(
            fields,
            OutputFields {
                format: Some("image/webp".into()),
                quality: Some("70".into()),
                background: Some("#000".into()),
                anim: Some("false".into()),
            }
        );
        let parsed = imgbind_wire::OutputOptions::from_fields(&fields).unwrap();
        assert_eq!(parsed.format, OutputFormat::Webp);
        assert_eq!(parsed.quality, Some(70));
        for format in OutputFormat::ALL {
            assert_eq!(
                ImageOutputOptions::new(format).fields().format.as_deref(),
                Some(format.as_str())
            );
        }
    }

    #[test]
    fn request_body_is_the_js_paths_framing() {
        let tree = input("PHOTO").draw(input("LOGO"), StepOptions::Draw(DrawOptions::default()));
        let output = ImageOutputOptions {
            quality: Some(80),
            ..ImageOutputOptions::new(OutputFormat::Jpeg)
        };
        let parts = transform_parts(tree, &output).unwrap();
        let body: String = frame("B", parts)
            .into_iter()
            .map(|s| match s {
                BodyPiece::Bytes(b) => String::from_utf8(b).unwrap(),
                BodyPiece::Stream(s) => s,
            })
            .collect();
        assert_eq!(
            body,
            concat!(
                "--B\r\ncontent-disposition: form-data; name=\"image\"; filename=\"image\"\r\n\r\nPHOTO\r\n",
                "--B\r\ncontent-disposition: form-data; name=\"draw_image\"; filename=\"draw_image\"\r\n\r\nLOGO\r\n",
                "--B\r\ncontent-disposition: form-data; name=\"transforms\"\r\n\r\n",
                "[{\"drawImageIndex\":1,\"targetImageIndex\":0}]\r\n",
                "--B\r\ncontent-disposition: form-data; name=\"output_format\"\r\n\r\nimage/jpeg\r\n",
                "--B\r\ncontent-disposition: form-data; name=\"output_quality\"\r\n\r\n80\r\n",
                "--B--\r\n"
            )
        );
    }

    #[test]
    fn text_sources_are_cloudflares_json_in_the_text_parts() {
        let options = TextOptions {
            size: Some(48.0),
            color: Some("#ff0000".into()),
            ..TextOptions::new("DejaVuSans.ttf")
        };
        let json = text_json("Hello \"you\"", &options);
        assert_eq!(
            json,
            r##"{"text":"Hello \"you\"","font":{"url":"DejaVuSans.ttf"},"size":48.0,"color":"#ff0000"}"##
        );
        assert_eq!(
            text_json("a", &TextOptions::new("x.ttf")),
            r#"{"text":"a","font":{"url":"x.ttf"}}"#
        );
        let caption: Tree<String, StepOptions> = Tree::new(Source::Text(json.clone()));
        let tree = input("photo").draw(caption, StepOptions::Draw(DrawOptions::default()));
        let parts = transform_parts(tree, &OutputFormat::Png.into()).unwrap();
        assert_eq!(parts[1].name, "draw_text");
        assert_eq!(parts[1].body, PartBody::Text(json));
    }

    #[test]
    fn info_answers_map_to_cloudflares_keys() {
        let info =
            parse_info(r#"{"format":"image/png","file_size":12,"width":3,"height":4}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"format":"image/png","fileSize":12,"width":3,"height":4}"#
        );
        let svg = parse_info(r#"{"format":"image/svg+xml"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&svg).unwrap(),
            r#"{"format":"image/svg+xml"}"#
        );
        let bad = parse_info("<html>").unwrap_err();
        assert_eq!(bad.code, 9523);
        assert!(bad.message.starts_with("IMAGES_INFO_ERROR 9523: "), "{bad}");
    }
}
