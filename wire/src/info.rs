//! The `/info` answer.

use serde::{Deserialize, Serialize};

/// JSON body of a successful `/info`: `{format, file_size, width, height}`; SVG gives `{format}` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoResponse {
    /// MIME type, e.g. `image/jpeg`.
    pub format: String,
    /// Input size in bytes (absent for SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Width in pixels as displayed (absent for SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels as displayed (absent for SVG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}
