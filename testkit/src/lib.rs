//! Crafted hostile images, shared by the engine's tests (`engine/tests/hostile.rs`) and the
//! backend's (`backend/tests/{hostile,load}.rs`): a dev-dependency of both, so neither reaches
//! into the other's test folder.

/// Headers claiming 65535×65535 (4.3 GP, 17 GB as RGBA) followed by a few bytes of body, one per
/// format, with the side each claims. `/info` reports the size; a transform is refused with 9413
/// before any pixel buffer. JPEG claims 65500×65500: libjpeg-turbo itself refuses anything larger
/// (9412), so 65500 is the largest JPEG bomb that reaches our own size check; WebP cannot say more
/// than 16384×16384.
pub fn bomb_headers() -> Vec<(&'static str, u32, Vec<u8>)> {
    let side = 65535u16;
    let png = png_header_only(u32::from(side), u32::from(side));
    // GIF: logical screen and one image descriptor of 65535×65535, one LZW block.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&side.to_le_bytes());
    gif.extend_from_slice(&side.to_le_bytes());
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0]);
    gif.extend_from_slice(&side.to_le_bytes());
    gif.extend_from_slice(&side.to_le_bytes());
    gif.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3B]);
    // JPEG: SOI, a baseline SOF0 of 65500×65500 with three components.
    let jpeg_side = 65500u16;
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
    jpeg.extend_from_slice(&jpeg_side.to_be_bytes());
    jpeg.extend_from_slice(&jpeg_side.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    // SOS for the three components (the header ends here), a few bytes of scan, EOI.
    jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    jpeg.extend_from_slice(&[0x12, 0x34, 0x56, 0xFF, 0xD9]);
    // WebP: a lossless VP8L header of 16384×16384, the largest a still WebP can be (14-bit
    // sizes; a VP8X canvas must match its bitstream), 268 MP.
    let mut vp8l = b"VP8L\x0a\0\0\0\x2f\xff\xff\xff\x0f".to_vec();
    vp8l.extend_from_slice(&[0; 5]);
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&((vp8l.len() + 4) as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBP");
    webp.extend_from_slice(&vp8l);
    let side = u32::from(side);
    vec![
        ("png", side, png),
        ("gif", side, gif),
        ("jpeg", u32::from(jpeg_side), jpeg),
        ("webp", 16384, webp),
    ]
}

/// A PNG that claims `width`×`height` (RGBA 8-bit) in its IHDR, followed by a tiny IDAT: what
/// a header check sees, with almost no bytes behind it.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01";
    png.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    png.extend_from_slice(idat);
    png.extend_from_slice(&crc32(idat).to_be_bytes());
    png
}

/// CRC-32 (IEEE) of a PNG chunk's type and data.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A GIF of `frames` 1×1 frames (each 17 bytes), looping forever.
pub fn many_frame_gif(frames: usize) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    gif.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
    for _ in 0..frames {
        // Graphic control (10 ms), then a 1×1 image: clear, pixel 0, end.
        gif.extend_from_slice(b"\x21\xF9\x04\x00\x01\x00\x00\x00");
        gif.extend_from_slice(b"\x2C\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    gif.push(0x3B);
    gif
}
