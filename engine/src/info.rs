//! `/info`: format, byte size and displayed dimensions, from the header alone.

use imgbind_wire::{Error, ErrorCode, InfoResponse};

use crate::format::{self, Format};
use crate::Limits;

/// Describes an image without decoding its pixels. Sizes are as displayed (EXIF orientation
/// applied); SVG reports only its format. Large dimensions are reported, not rejected: nothing is
/// allocated for them here.
pub fn info(bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
    limits.check_input_bytes(bytes.len() as u64)?;
    // SVG: the format only (as Cloudflare answers), without parsing the document.
    if format::sniff(bytes) == Some(Format::Svg) {
        return Ok(InfoResponse {
            format: Format::Svg.mime().to_string(),
            file_size: None,
            width: None,
            height: None,
        });
    }
    let header = format::read_header(bytes)?;
    let (width, height) = header.display_size();
    if width == 0 || height == 0 {
        return Err(Error::new(
            ErrorCode::NotAnImage,
            "Image header gives an empty size",
        ));
    }
    Ok(InfoResponse {
        format: header.format.mime().to_string(),
        file_size: Some(bytes.len() as u64),
        width: Some(width),
        height: Some(height),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_images_and_reports_svg_format_only() {
        let l = Limits::default();
        assert_eq!(info(b"", &l).unwrap_err().code(), ErrorCode::NotAnImage);
        assert_eq!(
            info(b"hello world", &l).unwrap_err().code(),
            ErrorCode::NotAnImage
        );
        let svg = info(b"<svg xmlns='http://www.w3.org/2000/svg'/>", &l).unwrap();
        assert_eq!(svg.format, "image/svg+xml");
        assert_eq!(svg.width, None);
        assert_eq!(
            info(
                b"BM\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                &l
            )
            .unwrap_err()
            .code(),
            ErrorCode::UnsupportedFormat
        );
    }
}
