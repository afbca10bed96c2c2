//! Resource limits: one typed struct, checked from headers before any pixel buffer exists.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use imgbind_wire::{Error, ErrorCode};

/// What one request may cost. [`Limits::default`] gives Cloudflare's documented limits;
/// [`Limits::no_limits`] turns every check off (tests and trusted batch jobs only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sum of all input image bytes in one request. Default 20 MiB (the binding's "20 MB").
    /// Exceeding it is 9402.
    pub max_input_bytes: u64,
    /// Pixels of one decoded image (width × height). Default 100 000 000 (100 MP). Exceeding it is 9413.
    pub max_pixels: u64,
    /// Longest side of one decoded image. Default 12 000 px. Exceeding it is 9413.
    pub max_side: u32,
    /// Frames in one animated input. Default 1 000. Exceeding it is 9413. Checked from the
    /// container (GIF block scan, WebP chunk index) before any frame is decoded.
    pub max_frames: u32,
    /// Frame-pixels of one animated input (canvas width × height × frames), and of the animation a
    /// job produces. Default 100 000 000: Cloudflare's documented "100 MP summed over all frames".
    /// Exceeding it is 9413, for an input or a result. Checked before any frame is decoded.
    pub max_animation_pixels: u64,
    /// Draw steps in one request. Default 100. Exceeding it is 9413.
    pub max_draw_layers: u32,
    /// Pixels of any image the steps create (resize, pad, border). Default 100 000 000. Exceeding it is 9413.
    pub max_output_pixels: u64,
    /// Wall-clock budget for one job, checked between steps. Default 6.5 s (Cloudflare's). Exceeding it is 9529.
    pub deadline: Duration,
    /// Characters (Unicode scalar values) of one text source. Default 10 000. Exceeding it is 9401.
    pub max_text_chars: u32,
    /// Bytes of one font file (a `data:` URL's decoded bytes or a file in `font_dir`). Default
    /// 32 MiB (large CJK fonts are ~20 MB). Exceeding it is 9402.
    pub max_font_bytes: u64,
    /// The directory whose font files a text source may name in `font.url` (`--font-dir`). Default
    /// none: only the bundled font and `data:` URLs. Not a cost, but what a request may read.
    pub font_dir: Option<PathBuf>,
    /// Threads one job may keep busy at once, its own included: not a cost check but the job's
    /// share of the machine. Default 1 (everything on the caller's thread). The server gives a
    /// job the cores that are idle when it starts (`backend/src/jobs.rs`); the engine then
    /// resizes in stripes (`threads.rs`), encodes WebP on two threads and decodes AVIF on as many.
    /// The output is the same bytes whatever the number.
    pub threads: NonZeroUsize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 20 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_side: 12_000,
            max_frames: 1_000,
            max_animation_pixels: 100_000_000,
            max_draw_layers: 100,
            max_output_pixels: 100_000_000,
            deadline: Duration::from_millis(6_500),
            max_text_chars: 10_000,
            max_font_bytes: 32 * 1024 * 1024,
            font_dir: None,
            threads: NonZeroUsize::MIN,
        }
    }
}

impl Limits {
    /// Every limit off. Memory is still allocated fallibly, so an absurd image fails with 9522
    /// instead of aborting the process.
    pub fn no_limits() -> Self {
        Limits {
            max_input_bytes: u64::MAX,
            max_pixels: u64::MAX,
            max_side: u32::MAX,
            max_frames: u32::MAX,
            max_animation_pixels: u64::MAX,
            max_draw_layers: u32::MAX,
            max_output_pixels: u64::MAX,
            deadline: Duration::MAX,
            max_text_chars: u32::MAX,
            max_font_bytes: u64::MAX,
            font_dir: None,
            threads: NonZeroUsize::MIN,
        }
    }

    /// Checks a decoded image's size, from its header (9413 when too large).
    pub fn check_dimensions(&self, width: u32, height: u32) -> Result<(), Error> {
        if width == 0 || height == 0 {
            return Err(Error::new(
                ErrorCode::NotAnImage,
                format!("Image has an empty size {width}x{height}"),
            ));
        }
        if width.max(height) > self.max_side {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "Image is {width}x{height}; the longest side may be at most {} px",
                    self.max_side
                ),
            ));
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "Image is {width}x{height}; at most {} pixels are allowed",
                    self.max_pixels
                ),
            ));
        }
        Ok(())
    }

    /// Checks the size of an image a step is about to create (9413 when too large).
    pub fn check_output(&self, width: u32, height: u32) -> Result<(), Error> {
        if u64::from(width) * u64::from(height) > self.max_output_pixels {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "The result would be {width}x{height}; at most {} pixels are allowed",
                    self.max_output_pixels
                ),
            ));
        }
        Ok(())
    }

    /// Checks an animated input from its container, before any frame is decoded: frame count
    /// and frames × canvas pixels (both 9413).
    pub fn check_animation(&self, frames: u32, width: u32, height: u32) -> Result<(), Error> {
        if frames > self.max_frames {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "Animation has {frames} frames; at most {} are allowed",
                    self.max_frames
                ),
            ));
        }
        let total = u64::from(frames) * u64::from(width) * u64::from(height);
        if total > self.max_animation_pixels {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "Animation is {frames} frames of {width}x{height} ({total} pixels in all); \
                     at most {} are allowed",
                    self.max_animation_pixels
                ),
            ));
        }
        Ok(())
    }

    /// Checks the request's total input size (9402 when too large).
    pub fn check_input_bytes(&self, bytes: u64) -> Result<(), Error> {
        if bytes > self.max_input_bytes {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "Input is {bytes} bytes; at most {} are allowed",
                    self.max_input_bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cloudflare_and_checks_fire() {
        let l = Limits::default();
        assert!(l.check_dimensions(12_000, 8_000).is_ok());
        assert_eq!(
            l.check_dimensions(12_001, 10).unwrap_err().code(),
            ErrorCode::TooManyPixels
        );
        assert_eq!(
            l.check_dimensions(11_000, 11_000).unwrap_err().code(),
            ErrorCode::TooManyPixels
        );
        assert_eq!(
            l.check_input_bytes(21 * 1024 * 1024).unwrap_err().code(),
            ErrorCode::TooLarge
        );
        assert_eq!(
            l.check_output(20_000, 20_000).unwrap_err().code(),
            ErrorCode::TooManyPixels
        );
        assert!(l.check_animation(1_000, 100, 1_000).is_ok());
        assert_eq!(
            l.check_animation(1_001, 1, 1).unwrap_err().code(),
            ErrorCode::TooManyPixels
        );
        assert_eq!(
            l.check_animation(1_000, 100, 1_001).unwrap_err().code(),
            ErrorCode::TooManyPixels
        );
        let none = Limits::no_limits();
        assert!(none.check_dimensions(65_535, 65_535).is_ok());
        assert!(none.check_output(u32::MAX, u32::MAX).is_ok());
    }
}
