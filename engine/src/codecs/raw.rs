//! Raw `rgb`/`rgba` output: 8-bit pixels, row-major, no header; the length is known up front.

use imgbind_wire::{Error, OutputFormat, Rgba};

use crate::codecs::BLOCK;
use crate::output::{OutputHead, OutputSink};
use crate::raster::{buffer_len, rgb_to_rgba, rgba_onto_opaque, try_alloc, Raster};

/// Raw pixels with a known length: the buffer itself when it already has the asked channels,
/// otherwise converted in blocks of rows.
pub(crate) fn encode(
    img: Raster,
    alpha: bool,
    background: Rgba,
    sink: &mut dyn OutputSink,
) -> Result<OutputHead, Error> {
    let name = if alpha { "RGBA" } else { "RGB" };
    let fail = |e: std::io::Error| Error::encode_failed(name, e);
    let channels = if alpha { 4 } else { 3 };
    let length = buffer_len(img.width, img.height, channels)?;
    let head = OutputHead {
        format: if alpha {
            OutputFormat::Rgba
        } else {
            OutputFormat::Rgb
        },
        width: img.width,
        height: img.height,
        length: Some(length as u64),
        incremental: true,
    };
    sink.begin(&head).map_err(fail)?;
    if img.has_alpha == alpha {
        sink.write_owned(img.data).map_err(fail)?;
        return Ok(head);
    }
    let (src_row, dst_row) = (img.stride(), img.width as usize * channels);
    if length == 0 {
        return Ok(head);
    }
    let rows = (BLOCK / dst_row.max(1)).max(1);
    for src in img.data.chunks(src_row * rows) {
        let mut dst = try_alloc(src.len() / src_row * dst_row)?;
        if alpha {
            rgb_to_rgba(src, &mut dst);
        } else {
            rgba_onto_opaque(src, &mut dst, background);
        }
        sink.write_owned(dst).map_err(fail)?;
    }
    Ok(head)
}
