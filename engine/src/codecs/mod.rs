//! One file per format, each with everything that format needs: reading its header, decoding,
//! its animation frames (GIF, WebP) and encoding (as image-rs's `src/codecs/`). The pipeline
//! that picks among them is above: `format.rs` (sniffing, headers), `decode.rs`, `encode.rs` and
//! `animation.rs`.

use imgbind_wire::Error;

pub(crate) mod avif;
pub(crate) mod gif;
pub(crate) mod jpeg;
mod jpeg_dc;
pub(crate) mod jpeg_window;
pub(crate) mod png;
pub(crate) mod raw;
pub(crate) mod svg;
pub(crate) mod webp;
pub(crate) mod webp_anim;

/// The PNG stream writer's IDAT chunk size, and the size of the row blocks raw outputs are
/// written in.
pub(crate) const BLOCK: usize = 64 * 1024;

/// How often an animation plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loops {
    /// Without end.
    Forever,
    /// This many times in all (≥ 1).
    Times(u32),
}

/// What the container says about an animation, read without decoding a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Frames in the file.
    pub(crate) frames: u32,
    /// Canvas width.
    pub(crate) width: u32,
    /// Canvas height.
    pub(crate) height: u32,
    /// Loop count.
    pub(crate) loops: Loops,
}

/// A decoder's `usize` dimension as `u32` (9412 when it does not fit).
pub(crate) fn dimension(v: usize) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::not_an_image("Image dimensions overflow"))
}
