//! Protocol constants: paths, part names, headers. Spelled once, used by both sides.

/// Path of the transform endpoint.
pub const PATH_TRANSFORM: &str = "/transform";
/// Path of the info endpoint.
pub const PATH_INFO: &str = "/info";
/// Path of the liveness endpoint.
pub const PATH_HEALTH: &str = "/healthz";
/// Path of the readiness endpoint: 200 while serving, 503 from the moment shutdown begins.
pub const PATH_READY: &str = "/readyz";

/// The base (canvas) image bytes; always the first part.
pub const PART_IMAGE: &str = "image";
/// A text source used as the canvas instead of `image` (JSON `{text, font, size?, color?}`).
pub const PART_TEXT_INPUT: &str = "text_input";
/// An image drawn onto another; the n-th draw part (image or text) has image index n.
pub const PART_DRAW_IMAGE: &str = "draw_image";
/// A text source drawn onto another image (JSON, like `text_input`).
pub const PART_DRAW_TEXT: &str = "draw_text";
/// JSON array of steps; see [`crate::Step`].
pub const PART_TRANSFORMS: &str = "transforms";
/// Output MIME type (`image/jpeg`, …, `rgb`, `rgba`).
pub const PART_OUTPUT_FORMAT: &str = "output_format";
/// Output quality, 1–100.
pub const PART_OUTPUT_QUALITY: &str = "output_quality";
/// CSS colour that alpha is flattened onto.
pub const PART_BACKGROUND: &str = "background";
/// `true`/`false`: keep animation frames.
pub const PART_ANIM: &str = "anim";

/// Response header carrying `err=<code>` on failure.
pub const HEADER_ERROR: &str = "cf-images-binding";
/// Response headers carrying the pixel size of a raw `rgb`/`rgba` output (the body has no header).
pub const HEADER_WIDTH: &str = "imgbind-width";
/// See [`HEADER_WIDTH`].
pub const HEADER_HEIGHT: &str = "imgbind-height";
