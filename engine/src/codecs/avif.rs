//! AVIF in and out through libavif 1.0 with libaom (both built from the `libavif-sys` and
//! `libaom-sys` crates' vendored sources).
//!
//! libavif is a C library, so this is the one file of the engine that needs `unsafe`: every
//! pointer it touches is owned by a guard below that frees it on every path, and pixel buffers
//! are ours (allocated fallibly) and outlive the calls that write them.
//!
//! Encoding settings (measured in `docs/FORMATS.md`): 8-bit 4:4:4 (sharp's AVIF default), full
//! range, sRGB CICP, aom speed 6, one tile and one thread. Decoding uses the job's thread allowance
//! ([`Limits::threads`]; the same pixels on any number). Encoding does not (session 8): aom's
//! row-based threading within one tile measured no faster at 800 px (CPU stayed at one core) and
//! gives a few bytes different from one thread (the same size within 2 %, the same picture:
//! tested below), and tiles, which do split the work, change the bitstream with their number and
//! cost size.
//! `quality` means what it means to sharp/libvips/libheif: [`libavif_quality`] passes it through,
//! and libavif turns it into the AV1 quantizer with libheif's formula, so at the same number the
//! luma SSIM matches sharp's over the corpus (`tests/avif-quality.test.js`).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::num::NonZeroUsize;

use imgbind_wire::{Error, ErrorCode};
use libavif_sys as sys;

use crate::raster::{buffer_len, try_alloc, Raster};
use crate::Limits;

/// libaom speed (0 slowest … 10 fastest). 6 keeps a 800 px photo well under 200 ms at about the
/// size sharp's slower effort-4 (speed 5) encode gives.
const ENCODER_SPEED: i32 = 6;

/// Stored size and EXIF-style orientation (from `irot`/`imir`) of an AVIF, from its boxes alone.
pub(crate) struct AvifHeader {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) orientation: u8,
}

/// A decoded AVIF: upright pixels are not produced here (see `orientation` in the header), but
/// the ICC profile and the colour description are returned for conversion to sRGB.
pub(crate) struct DecodedAvif {
    pub(crate) raster: Raster,
    /// The embedded ICC profile (`colr` box of type `prof`/`rICC`), if any.
    pub(crate) icc: Option<Vec<u8>>,
    /// CICP colour primaries (1 = BT.709/sRGB, 12 = Display P3, 9 = BT.2020; 2 = unspecified).
    pub(crate) color_primaries: u16,
    /// CICP transfer characteristics (13 = sRGB, 1/6 = BT.709/601, 2 = unspecified).
    pub(crate) transfer: u16,
}

/// The text of a libavif result plus whatever its diagnostics say.
fn describe(result: sys::avifResult, diag: &sys::avifDiagnostics) -> String {
    // SAFETY: avifResultToString returns a static NUL-terminated string for every value.
    let name = unsafe { CStr::from_ptr(sys::avifResultToString(result)) }.to_string_lossy();
    // SAFETY: `error` is a NUL-terminated buffer libavif owns inside the decoder/encoder.
    let detail = unsafe { CStr::from_ptr(diag.error.as_ptr()) }.to_string_lossy();
    if detail.is_empty() {
        name.into_owned()
    } else {
        format!("{name} ({detail})")
    }
}

/// Owns an `avifDecoder` reading from a borrowed byte slice.
struct Decoder<'a> {
    raw: *mut sys::avifDecoder,
    _bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Creates a decoder over `bytes` and parses the container (no pixels yet).
    fn parse(bytes: &'a [u8], limits: &Limits) -> Result<Decoder<'a>, Error> {
        // SAFETY: create returns an owned decoder or null.
        let raw = unsafe { sys::avifDecoderCreate() };
        if raw.is_null() {
            return Err(Error::new(ErrorCode::Internal, "libavif: out of memory"));
        }
        let decoder = Decoder { raw, _bytes: bytes };
        // SAFETY: `raw` is valid until `decoder` drops; `bytes` outlives it ('a).
        unsafe {
            let d = &mut *raw;
            d.maxThreads = max_threads(limits.threads);
            // Our own limits, checked again after parsing; libavif's stop absurd boxes early.
            d.imageDimensionLimit = limits.max_side.min(32_768);
            d.imageSizeLimit =
                u32::try_from(limits.max_pixels.min(16_384 * 16_384)).unwrap_or(16_384 * 16_384);
            d.imageCountLimit = limits.max_frames.max(1);
            d.ignoreXMP = 1;
            d.ignoreExif = 1;
            let r = sys::avifDecoderSetIOMemory(raw, bytes.as_ptr(), bytes.len());
            if r != sys::AVIF_RESULT_OK {
                return Err(Error::corrupt("AVIF", describe(r, &d.diag)));
            }
            let r = sys::avifDecoderParse(raw);
            if r != sys::AVIF_RESULT_OK {
                return Err(Error::corrupt("AVIF", describe(r, &d.diag)));
            }
        }
        Ok(decoder)
    }

    fn image(&self) -> &sys::avifImage {
        // SAFETY: after a successful parse `image` points at the decoder's own image.
        unsafe { &*(*self.raw).image }
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from avifDecoderCreate and is destroyed once.
        unsafe { sys::avifDecoderDestroy(self.raw) }
    }
}

/// Reads the size and orientation from the container without decoding the AV1 payload.
pub(crate) fn read_header(bytes: &[u8]) -> Result<AvifHeader, Error> {
    let decoder = Decoder::parse(bytes, &Limits::no_limits())?;
    let image = decoder.image();
    Ok(AvifHeader {
        width: image.width,
        height: image.height,
        orientation: exif_orientation(image),
    })
}

/// `irot` (anticlockwise quarter turns, applied first) and `imir` (then a mirror) as the EXIF
/// orientation 1–8 that asks for the same turn, so one code path makes every input upright.
fn exif_orientation(image: &sys::avifImage) -> u8 {
    let turns = if image.transformFlags & sys::AVIF_TRANSFORM_IROT != 0 {
        image.irot.angle % 4
    } else {
        0
    };
    // Clockwise quarter turns.
    let clockwise = (4 - turns) % 4;
    let mirror = (image.transformFlags & sys::AVIF_TRANSFORM_IMIR != 0).then_some(image.imir.axis);
    match (clockwise, mirror) {
        (0, None) => 1,
        (1, None) => 6,
        (2, None) => 3,
        (3, None) => 8,
        // Axis 0: mirror about the vertical axis (left ↔ right).
        (0, Some(0)) => 2,
        (1, Some(0)) => 5,
        (2, Some(0)) => 4,
        (3, Some(0)) => 7,
        // Axis 1: mirror about the horizontal axis (top ↔ bottom).
        (0, Some(_)) => 4,
        (1, Some(_)) => 7,
        (2, Some(_)) => 2,
        (_, Some(_)) => 5,
        _ => 1,
    }
}

/// Decodes the primary image (the first frame of a sequence) to 8-bit RGB or RGBA.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<DecodedAvif, Error> {
    let decoder = Decoder::parse(bytes, limits)?;
    // SAFETY: the decoder is parsed; NextImage decodes into its own image.
    let r = unsafe { sys::avifDecoderNextImage(decoder.raw) };
    if r != sys::AVIF_RESULT_OK {
        // SAFETY: diag lives in the decoder.
        return Err(Error::corrupt(
            "AVIF",
            describe(r, unsafe { &(*decoder.raw).diag }),
        ));
    }
    let image = decoder.image();
    let (width, height) = (image.width, image.height);
    limits.check_dimensions(width, height)?;
    let has_alpha = !image.alphaPlane.is_null();
    let channels = if has_alpha { 4 } else { 3 };
    let mut pixels = try_alloc(buffer_len(width, height, channels)?)?;
    let mut rgb = sys::avifRGBImage::default();
    // SAFETY: SetDefaults only fills `rgb` from the image; we then point it at our buffer,
    // which holds exactly height × rowBytes bytes and lives across the conversion.
    let r = unsafe {
        sys::avifRGBImageSetDefaults(&mut rgb, image);
        rgb.depth = 8;
        rgb.format = if has_alpha {
            sys::AVIF_RGB_FORMAT_RGBA
        } else {
            sys::AVIF_RGB_FORMAT_RGB
        };
        rgb.maxThreads = max_threads(limits.threads);
        rgb.pixels = pixels.as_mut_ptr();
        rgb.rowBytes = width * channels as u32;
        sys::avifImageYUVToRGB(image, &mut rgb)
    };
    if r != sys::AVIF_RESULT_OK {
        return Err(Error::corrupt(
            "AVIF",
            describe(r, &sys::avifDiagnostics::default()),
        ));
    }
    let icc = (!image.icc.data.is_null() && image.icc.size > 0).then(|| {
        // SAFETY: libavif owns `size` bytes at `data` until the decoder is destroyed.
        unsafe { std::slice::from_raw_parts(image.icc.data, image.icc.size) }.to_vec()
    });
    Ok(DecodedAvif {
        raster: Raster::from_vec(width, height, has_alpha, pixels)?,
        icc,
        color_primaries: image.colorPrimaries,
        transfer: image.transferCharacteristics,
    })
}

/// Our quality 1–100 → libavif's quality, unchanged. libavif maps it to the AV1 quantizer
/// (cq-level) as `((100 − q) × 63 + 50) / 100`, the formula libheif's aom encoder uses, so a
/// quality means the same as in sharp/libvips. (Until session 6 an anchored mapping made our 85
/// match sharp's *default* 50 in bytes, which made every explicit quality far coarser than
/// sharp's: 0.01–0.04 lower SSIM at the same number.)
pub(crate) fn libavif_quality(quality: u8) -> i32 {
    i32::from(quality.clamp(1, 100))
}

/// Chroma layout of what we encode: full-resolution chroma, as sharp writes AVIF by default
/// (`chromaSubsampling: '4:4:4'`). At the same quantizer 4:2:0 is smaller but blurs colour edges
/// (text, graphics, red detail), and it measured up to 0.04 below sharp's SSIM on the corpus.
const PIXEL_FORMAT: sys::avifPixelFormat = sys::AVIF_PIXEL_FORMAT_YUV444;

/// Owns an `avifImage`.
struct Image(*mut sys::avifImage);

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: created by avifImageCreate, destroyed once.
        unsafe { sys::avifImageDestroy(self.0) }
    }
}

/// Owns an `avifEncoder`.
struct Encoder(*mut sys::avifEncoder);

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by avifEncoderCreate, destroyed once.
        unsafe { sys::avifEncoderDestroy(self.0) }
    }
}

/// Owns the output buffer libavif allocates.
struct Output(sys::avifRWData);

impl Drop for Output {
    fn drop(&mut self) {
        // SAFETY: frees what avifEncoderWrite allocated (a no-op when empty).
        unsafe { sys::avifRWDataFree(&mut self.0) }
    }
}

/// A thread allowance as libavif's `maxThreads`.
fn max_threads(threads: NonZeroUsize) -> i32 {
    i32::try_from(threads.get()).unwrap_or(i32::MAX)
}

/// Encodes an 8-bit RGB/RGBA image on `threads` aom threads (the engine passes one: see the
/// module comment). Alpha is kept (encoded as a second AV1 plane).
pub(crate) fn encode(img: &Raster, quality: u8, threads: NonZeroUsize) -> Result<Vec<u8>, Error> {
    let fail =
        |what: &str| Error::new(ErrorCode::Internal, format!("AVIF encoding failed: {what}"));
    // AV1 needs at least 1x1 and at most 65536 per side; libavif checks and reports it.
    // SAFETY: every pointer below is owned by a guard; `img.data` outlives the conversion.
    unsafe {
        let image = sys::avifImageCreate(img.width, img.height, 8, PIXEL_FORMAT);
        if image.is_null() {
            return Err(fail("out of memory"));
        }
        let image = Image(image);
        let im = &mut *image.0;
        im.yuvRange = sys::AVIF_RANGE_FULL;
        // sRGB: BT.709 primaries, sRGB transfer, BT.601 matrix (what libavif and sharp write).
        im.colorPrimaries = 1;
        im.transferCharacteristics = 13;
        im.matrixCoefficients = 6;
        let mut rgb = sys::avifRGBImage::default();
        sys::avifRGBImageSetDefaults(&mut rgb, image.0);
        rgb.depth = 8;
        rgb.format = if img.has_alpha {
            sys::AVIF_RGB_FORMAT_RGBA
        } else {
            sys::AVIF_RGB_FORMAT_RGB
        };
        rgb.maxThreads = 1;
        rgb.pixels = img.data.as_ptr().cast_mut();
        rgb.rowBytes = u32::try_from(img.stride()).map_err(|_| fail("row too long"))?;
        let r = sys::avifImageRGBToYUV(image.0, &rgb);
        if r != sys::AVIF_RESULT_OK {
            return Err(fail(&describe(r, &sys::avifDiagnostics::default())));
        }
        let encoder = sys::avifEncoderCreate();
        if encoder.is_null() {
            return Err(fail("out of memory"));
        }
        let encoder = Encoder(encoder);
        let e = &mut *encoder.0;
        e.maxThreads = max_threads(threads);
        e.speed = ENCODER_SPEED;
        e.quality = libavif_quality(quality);
        // Alpha edges show artefacts sooner than colour: keep it finer.
        e.qualityAlpha = (e.quality + 20).min(100);
        let mut output = Output(sys::avifRWData::default());
        let r = sys::avifEncoderWrite(encoder.0, image.0, &mut output.0);
        if r != sys::AVIF_RESULT_OK {
            return Err(fail(&describe(r, &e.diag)));
        }
        if output.0.data.is_null() {
            return Err(fail("no output"));
        }
        Ok(std::slice::from_raw_parts(output.0.data, output.0.size).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_change_the_bytes_once_and_not_the_quality() {
        let threads = |n: usize| NonZeroUsize::new(n).unwrap();
        let limits = |n: usize| Limits {
            threads: threads(n),
            ..Limits::default()
        };
        for alpha in [false, true] {
            let img = crate::codecs::webp::tests::texture(800, 450, alpha);
            // aom's row-based threading (taken from two threads up) syncs the entropy contexts
            // between superblock rows differently from its one-thread path: a few bytes differ
            // between one thread and more, none between two and more.
            let one = encode(&img, 60, threads(1)).unwrap();
            let two = encode(&img, 60, threads(2)).unwrap();
            assert!(
                two == encode(&img, 60, threads(4)).unwrap(),
                "alpha {alpha}"
            );
            let ratio = two.len() as f64 / one.len() as f64;
            assert!((0.98..=1.02).contains(&ratio), "alpha {alpha}: {ratio}");
            // The same picture: the decoded pixels differ by far less than the quantizer does.
            let a = decode(&one, &limits(1)).unwrap().raster;
            let b = decode(&two, &limits(1)).unwrap().raster;
            let mean_diff = |x: &[u8], y: &[u8]| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| f64::from(p.abs_diff(*q)))
                    .sum::<f64>()
                    / x.len() as f64
            };
            let between = mean_diff(&a.data, &b.data);
            let lossy = mean_diff(&img.data, &a.data);
            assert!(between < lossy / 4.0, "alpha {alpha}: {between} vs {lossy}");
            // Decoding on more threads gives the same pixels.
            let b3 = decode(&two, &limits(3)).unwrap().raster;
            assert!(b.data == b3.data, "alpha {alpha}");
        }
    }

    #[test]
    fn quality_is_libheifs() {
        // The same number sharp passes to libheif: 60 is cq-level 25 in both.
        for q in 1..=100u8 {
            assert_eq!(libavif_quality(q), i32::from(q));
        }
        assert_eq!(libavif_quality(0), 1);
    }

    #[test]
    fn orientation_boxes_map_to_exif() {
        let mut image = sys::avifImage::default();
        assert_eq!(exif_orientation(&image), 1);
        image.transformFlags = sys::AVIF_TRANSFORM_IROT;
        image.irot.angle = 1; // a quarter turn anticlockwise
        assert_eq!(exif_orientation(&image), 8);
        image.irot.angle = 3;
        assert_eq!(exif_orientation(&image), 6);
        image.transformFlags |= sys::AVIF_TRANSFORM_IMIR;
        image.imir.axis = 0;
        assert_eq!(exif_orientation(&image), 5);
        image.transformFlags = sys::AVIF_TRANSFORM_IMIR;
        image.imir.axis = 1;
        assert_eq!(exif_orientation(&image), 4);
    }
}
