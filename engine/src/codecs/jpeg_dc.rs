//! 1/8-scale decoding of progressive JPEGs from their DC data, without Huffman-decoding the AC
//! scans that the scaled IDCT would ignore.
//!
//! Why: at scale 1/8 libjpeg-turbo computes each block with a 1×1 IDCT, which reads the DC
//! coefficient only, for every component that is not subsampled 2× both ways relative to the
//! largest one (`jpeg_calc_output_dimensions`, jdmaster.c, gives 4:2:0 chroma a 2×2 IDCT to save
//! upsampling, and that IDCT reads AC coefficients). A progressive file sends DC and AC in
//! separate scans, and the AC scans are most of its bytes and of a 1/8 decode's time.
//! TurboJPEG exposes no buffered-image mode to stop after the DC scans, so [`rebuild`] walks the
//! file's segments and writes a smaller progressive JPEG that decodes to the same 1/8 pixels:
//! every segment that is not a scan, in its place (tables, restart intervals, APPn, COM); every
//! DC scan (first and refinement); every scan of a component whose IDCT needs AC; and, instead
//! of the AC scans of each other component, one synthetic scan saying that all its AC
//! coefficients are zero (a few end-of-band runs, some bytes).
//!
//! The synthetic scan is needed, not decoration: libjpeg-turbo's block smoothing (jdcoefct.c)
//! is on whenever some coefficient is not fully known, and for a component with no AC data at
//! all it rewrites the DC (`change_dc`), so simply dropping the AC scans would change the
//! picture. With every coefficient known, smoothing stays off, as it is for the complete
//! original.
//!
//! Anything the walk does not fully understand returns `None` and the caller decodes the
//! original bytes, so errors are those of the normal decode: a file that ends before its EOI
//! (truncated anywhere, in a DC or an AC scan), a baseline or arithmetic-coded file, a frame or
//! scan header libjpeg-turbo would reject or warn about (its progression checks are mirrored),
//! an AC scan whose Huffman table is missing or invalid, restart markers out of sequence or
//! not where the restart interval puts them, stray bytes between segments, or a progression
//! that leaves some coefficient incomplete (the original would then be smoothed). What the walk
//! cannot see is the content of the entropy-coded data of the scans it drops: corrupt Huffman
//! codes inside a dropped AC scan, which fail the full decode, do not fail the thumbnail (its
//! pixels come only from data that is decoded, and checked, in full).

use memchr::memchr;

/// libjpeg's limit on the blocks in one MCU of an interleaved scan (`D_MAX_BLOCKS_IN_MCU`).
const MAX_BLOCKS_IN_MCU: u32 = 10;
/// The longest end-of-band run one symbol can code (EOB14 with 14 extra bits).
const MAX_EOB_RUN: u64 = 32_767;

/// One frame component, as the SOF2 segment declares it.
struct Component {
    id: u8,
    h: u32,
    v: u32,
    /// Whether its 1/8-scale IDCT reads AC coefficients (its AC scans are kept).
    needs_ac: bool,
    /// Per coefficient, the lowest bit position received so far (-1: none), as libjpeg's
    /// `coef_bits`.
    bits: [i8; 64],
}

/// The frame header of a progressive JPEG.
struct Frame {
    width: u64,
    height: u64,
    max_h: u32,
    max_v: u32,
    components: Vec<Component>,
}

impl Frame {
    /// Blocks of component `c` in a non-interleaved scan (libjpeg's `width_in_blocks` ×
    /// `height_in_blocks`).
    fn blocks(&self, c: &Component) -> u64 {
        let across = (self.width * u64::from(c.h)).div_ceil(u64::from(self.max_h) * 8);
        let down = (self.height * u64::from(c.v)).div_ceil(u64::from(self.max_v) * 8);
        across * down
    }

    /// MCUs of an interleaved scan.
    fn mcus(&self) -> u64 {
        self.width.div_ceil(u64::from(self.max_h) * 8)
            * self.height.div_ceil(u64::from(self.max_v) * 8)
    }
}

/// Returns a progressive JPEG whose 1/8-scale decode is byte for byte that of `bytes`, without
/// the AC scans a 1/8 decode does not need; `None` when `bytes` is not a complete, well-formed
/// progressive JPEG this walk fully understands, or when nothing would be dropped.
pub(crate) fn rebuild(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut frame: Option<Frame> = None;
    // Which AC Huffman tables are defined and valid.
    let mut ac_tables = [false; 4];
    let mut restart_interval = 0u64;
    let mut dropped = false;
    let mut pos = 2;
    loop {
        // A marker: 0xFF, any 0xFF fill bytes, the code. Anything else here is stray data.
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        while *bytes.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        let code = bytes[pos + 1];
        if code == 0xD9 {
            break;
        }
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(pos + 2)?,
            *bytes.get(pos + 3)?,
        ]));
        if length < 2 {
            return None;
        }
        let end = pos + 2 + length;
        let segment = bytes.get(pos..end)?;
        let body = &segment[4..];
        match code {
            0xC2 if frame.is_none() => {
                frame = Some(parse_frame(body)?);
                out.extend_from_slice(segment);
            }
            0xC4 => {
                read_huffman_tables(body, &mut ac_tables)?;
                out.extend_from_slice(segment);
            }
            0xDD => {
                let [hi, lo] = body else { return None };
                restart_interval = u64::from(u16::from_be_bytes([*hi, *lo]));
                out.extend_from_slice(segment);
            }
            // DQT, APPn, COM.
            0xDB | 0xE0..=0xEF | 0xFE => out.extend_from_slice(segment),
            0xDA => {
                let frame = frame.as_mut()?;
                let scan = Scan::parse(body, frame)?;
                scan.check_progression(frame, &ac_tables)?;
                let data_end = scan_data_end(bytes, end, scan.restarts(frame, restart_interval))?;
                if scan.ss > 0 && !frame.components[scan.components[0]].needs_ac {
                    dropped = true;
                } else {
                    out.extend_from_slice(&bytes[pos..data_end]);
                }
                pos = data_end;
                continue;
            }
            // Other SOFs (baseline, arithmetic, lossless, a second frame), DNL, DAC, RSTn
            // outside a scan and anything unknown: the normal decode decides.
            _ => return None,
        }
        pos = end;
    }
    let frame = frame?;
    if !dropped
        || frame
            .components
            .iter()
            .any(|c| c.bits.iter().any(|b| *b != 0))
    {
        return None;
    }
    append_zero_ac_scans(&mut out, &frame, restart_interval);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(out)
}

/// A SOF2 body (after the length); `None` for anything but 8-bit samples, 1–4 components
/// with sampling factors 1–4 and distinct ids, and a height in the header (no DNL).
fn parse_frame(body: &[u8]) -> Option<Frame> {
    let [precision, h1, h0, w1, w0, count, rest @ ..] = body else {
        return None;
    };
    let count = usize::from(*count);
    if *precision != 8 || !(1..=4).contains(&count) || rest.len() != 3 * count {
        return None;
    }
    let height = u64::from(u16::from_be_bytes([*h1, *h0]));
    let width = u64::from(u16::from_be_bytes([*w1, *w0]));
    if width == 0 || height == 0 {
        return None;
    }
    let mut components: Vec<Component> = Vec::with_capacity(count);
    for spec in rest.chunks_exact(3) {
        let (h, v) = (u32::from(spec[1] >> 4), u32::from(spec[1] & 15));
        if !(1..=4).contains(&h)
            || !(1..=4).contains(&v)
            || spec[2] > 3
            || components.iter().any(|c| c.id == spec[0])
        {
            return None;
        }
        components.push(Component {
            id: spec[0],
            h,
            v,
            needs_ac: false,
            bits: [-1; 64],
        });
    }
    let max_h = components.iter().map(|c| c.h).max()?;
    let max_v = components.iter().map(|c| c.v).max()?;
    for c in &mut components {
        // jdmaster.c's choice of each component's IDCT size at scale 1/8 (`_min_DCT_scaled_size`
        // = 1): doubled while the component's subsampling still covers it both ways.
        let mut size = 1;
        while size < 8 && max_h % (c.h * size * 2) == 0 && max_v % (c.v * size * 2) == 0 {
            size *= 2;
        }
        c.needs_ac = size > 1;
    }
    Some(Frame {
        width,
        height,
        max_h,
        max_v,
        components,
    })
}

/// A DHT body: checks it as libjpeg-turbo's `get_dht` does and records which AC tables are
/// defined and valid (`jpeg_make_d_derived_tbl`'s check, made when a scan uses the table).
fn read_huffman_tables(mut body: &[u8], ac_tables: &mut [bool; 4]) -> Option<()> {
    while body.len() > 16 {
        let index = body[0];
        let counts = &body[1..17];
        let total: usize = counts.iter().map(|c| usize::from(*c)).sum();
        if total > 256 || total > body.len() - 17 {
            return None;
        }
        let (class, slot) = (index & 0xF0, usize::from(index & 0x0F));
        if !(class == 0x00 || class == 0x10) || slot > 3 {
            return None;
        }
        if class == 0x10 {
            // Canonical codes must fit their lengths (no code is all ones).
            let mut code = 0u32;
            let mut valid = true;
            for (bits, count) in (1..=16u32).zip(counts) {
                code += u32::from(*count);
                valid &= code < 1 << bits;
                code <<= 1;
            }
            ac_tables[slot] = valid;
        }
        body = &body[17 + total..];
    }
    body.is_empty().then_some(())
}

/// A scan header.
struct Scan {
    /// Indices into the frame's components.
    components: Vec<usize>,
    /// AC table of each component.
    ac_slots: Vec<usize>,
    ss: u8,
    se: u8,
    ah: u8,
    al: u8,
}

impl Scan {
    /// An SOS body, checked as `get_sos` and `per_scan_setup` do.
    fn parse(body: &[u8], frame: &Frame) -> Option<Scan> {
        let (&count, rest) = body.split_first()?;
        let count = usize::from(count);
        if !(1..=4).contains(&count) || rest.len() != 2 * count + 3 {
            return None;
        }
        let mut components = Vec::with_capacity(count);
        let mut ac_slots = Vec::with_capacity(count);
        for spec in rest[..2 * count].chunks_exact(2) {
            let index = frame.components.iter().position(|c| c.id == spec[0])?;
            if components.contains(&index) {
                return None;
            }
            components.push(index);
            ac_slots.push(usize::from(spec[1] & 15));
        }
        if count > 1 {
            let blocks: u32 = components
                .iter()
                .map(|i| frame.components[*i].h * frame.components[*i].v)
                .sum();
            if blocks > MAX_BLOCKS_IN_MCU {
                return None;
            }
        }
        let [ss, se, a] = rest[2 * count..] else {
            return None;
        };
        Some(Scan {
            components,
            ac_slots,
            ss,
            se,
            ah: a >> 4,
            al: a & 15,
        })
    }

    /// libjpeg-turbo's `start_pass_phuff_decoder`: `None` where it would fail (bad parameters,
    /// missing or invalid AC table) or warn (inconsistent progression); updates `bits`.
    fn check_progression(&self, frame: &mut Frame, ac_tables: &[bool; 4]) -> Option<()> {
        let dc = self.ss == 0;
        let bad = if dc {
            self.se != 0
        } else {
            self.ss > self.se || self.se >= 64 || self.components.len() != 1
        };
        if bad || (self.ah != 0 && self.al + 1 != self.ah) || self.al > 13 {
            return None;
        }
        if !dc
            && !self
                .ac_slots
                .iter()
                .all(|s| ac_tables.get(*s) == Some(&true))
        {
            return None;
        }
        let al = self.al as i8;
        for index in &self.components {
            let bits = &mut frame.components[*index].bits;
            if !dc && bits[0] < 0 {
                return None;
            }
            for bit in &mut bits[usize::from(self.ss)..=usize::from(self.se)] {
                if self.ah as i8 != (*bit).max(0) {
                    return None;
                }
                *bit = al;
            }
        }
        Some(())
    }

    /// How many restart markers the scan's data holds.
    fn restarts(&self, frame: &Frame, interval: u64) -> u64 {
        if interval == 0 {
            return 0;
        }
        let units = if self.components.len() == 1 {
            frame.blocks(&frame.components[self.components[0]])
        } else {
            frame.mcus()
        };
        units.div_ceil(interval) - 1
    }
}

/// Where a scan's entropy-coded data that starts at `start` ends (the 0xFF of the next marker
/// that is not RSTn), checking that it holds `restarts` restart markers in sequence; `None` when
/// the file ends first.
fn scan_data_end(bytes: &[u8], start: usize, restarts: u64) -> Option<usize> {
    let mut seen = 0u64;
    let mut pos = start;
    loop {
        let ff = pos + memchr(0xFF, bytes.get(pos..)?)?;
        let mut next = ff + 1;
        while *bytes.get(next)? == 0xFF {
            next += 1;
        }
        match bytes[next] {
            // A stuffed 0xFF data byte.
            0x00 => {}
            code @ 0xD0..=0xD7 => {
                if seen == restarts || u64::from(code - 0xD0) != seen % 8 {
                    return None;
                }
                seen += 1;
            }
            _ => return (seen == restarts).then_some(ff),
        }
        pos = next + 1;
    }
}

/// Appends, for each component whose AC scans were dropped, a scan coding its AC coefficients
/// 1–63 as zero at full precision: a Huffman table of the 15 end-of-band-run symbols, then runs
/// covering all its blocks. The restart interval is set to 0 first, as it may be set by then.
fn append_zero_ac_scans(out: &mut Vec<u8>, frame: &Frame, restart_interval: u64) {
    if restart_interval != 0 {
        out.extend_from_slice(&[0xFF, 0xDD, 0, 4, 0, 0]);
    }
    // AC table 0 (no kept scan follows to need the original): EOB0..EOB14 (r << 4), all 4-bit
    // codes, so symbol r has code r.
    out.extend_from_slice(&[0xFF, 0xC4, 0, 2 + 17 + 15, 0x10]);
    out.extend_from_slice(&[0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend((0..15u8).map(|r| r << 4));
    for c in frame.components.iter().filter(|c| !c.needs_ac) {
        out.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, c.id, 0x00, 1, 63, 0x00]);
        let mut bits = BitWriter::new(out);
        let mut left = frame.blocks(c);
        while left > 0 {
            let run = left.min(MAX_EOB_RUN);
            let r = 63 - run.leading_zeros();
            bits.put(r, 4);
            bits.put((run - (1 << r)) as u32, r);
            left -= run;
        }
        bits.finish();
    }
}

/// Writes entropy-coded bits, most significant first, with 0xFF stuffing.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u32,
    len: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            len: 0,
        }
    }

    /// Appends the low `len` (≤ 24) bits of `value`.
    fn put(&mut self, value: u32, len: u32) {
        self.acc = (self.acc << len) | (value & ((1 << len) - 1));
        self.len += len;
        while self.len >= 8 {
            self.len -= 8;
            let byte = (self.acc >> self.len) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
        }
        self.acc &= (1 << self.len) - 1;
    }

    /// Pads the last byte with one bits.
    fn finish(mut self) {
        if self.len > 0 {
            let pad = 8 - self.len;
            self.put((1 << pad) - 1, pad);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::codecs::jpeg;
    use crate::raster::Raster;

    /// One scan of a JPEG stream: component ids, Ss, Se, Ah, Al and its entropy-coded bytes.
    #[derive(Debug)]
    struct ScanInfo {
        ids: Vec<u8>,
        ss: u8,
        se: u8,
        ah: u8,
        al: u8,
        data: usize,
    }

    /// The scans of a well-formed JPEG (a plain walk, independent of [`rebuild`]'s).
    fn scans(jpeg: &[u8]) -> Vec<ScanInfo> {
        let mut found = Vec::new();
        let mut pos = 2;
        while jpeg[pos + 1] != 0xD9 {
            assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
            let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            let end = pos + 2 + length;
            if jpeg[pos + 1] != 0xDA {
                pos = end;
                continue;
            }
            let n = usize::from(jpeg[pos + 4]);
            let header = &jpeg[pos + 5..end];
            let mut data = end;
            while !(jpeg[data] == 0xFF
                && jpeg[data + 1] != 0
                && !(0xD0..=0xD7).contains(&jpeg[data + 1]))
            {
                data += 1;
            }
            found.push(ScanInfo {
                ids: header[..2 * n].iter().step_by(2).copied().collect(),
                ss: header[2 * n],
                se: header[2 * n + 1],
                ah: header[2 * n + 2] >> 4,
                al: header[2 * n + 2] & 15,
                data: data - end,
            });
            pos = data;
        }
        found
    }

    fn corpus_dir() -> PathBuf {
        std::env::var_os("IMGBIND_CORPUS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
            })
    }

    /// Every JPEG of the corpus, by name.
    fn corpus_jpegs() -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
            .expect("corpus directory")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "jpeg"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    fn progressive_corpus_file() -> Vec<u8> {
        std::fs::read(corpus_dir().join("photo-16mp-seeding-progressive.jpg")).unwrap()
    }

    /// A photo-like test picture: gradients, edges and noise, so every AC band carries data.
    fn picture(width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut pixels = Vec::with_capacity(width * height * channels);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let edge = if (x / 23 + y / 17 + c) % 3 == 0 {
                        90
                    } else {
                        0
                    };
                    let value = (x * 255 / width + y * 3 + c * 50 + edge) % 256;
                    pixels.push((value as u64 + state % 40) as u8);
                }
            }
        }
        pixels
    }

    /// A progressive JPEG from libjpeg-turbo's compressor (its default scan script, with
    /// successive approximation and interleaved DC scans).
    fn turbo(width: usize, height: usize, subsamp: turbojpeg::Subsamp) -> Vec<u8> {
        let gray = subsamp == turbojpeg::Subsamp::Gray;
        let channels = if gray { 1 } else { 3 };
        let pixels = picture(width, height, channels);
        let mut compressor = turbojpeg::Compressor::new().unwrap();
        compressor.set_quality(85).unwrap();
        compressor.set_subsamp(subsamp).unwrap();
        compressor.set_progressive(true).unwrap();
        let image = turbojpeg::Image {
            pixels: pixels.as_slice(),
            width,
            pitch: width * channels,
            height,
            format: if gray {
                turbojpeg::PixelFormat::GRAY
            } else {
                turbojpeg::PixelFormat::RGB
            },
        };
        compressor.compress_to_vec(image).unwrap()
    }

    /// A progressive JPEG from the jpeg-encoder crate: one DC scan per component, spectral
    /// selection only, and restart markers every `restart` MCUs.
    fn other_encoder(
        width: u16,
        height: u16,
        color: jpeg_encoder::ColorType,
        sampling: jpeg_encoder::SamplingFactor,
        restart: u16,
    ) -> Vec<u8> {
        let channels = match color {
            jpeg_encoder::ColorType::Luma => 1,
            jpeg_encoder::ColorType::Cmyk => 4,
            _ => 3,
        };
        let pixels = picture(usize::from(width), usize::from(height), channels);
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 80);
        encoder.set_progressive(true);
        encoder.set_sampling_factor(sampling);
        encoder.set_restart_interval(restart);
        encoder.encode(&pixels, width, height, color).unwrap();
        out
    }

    /// Decodes at 1/8 both ways and asserts that the shortcut was taken and changed nothing.
    fn assert_dc_path_exact(name: &str, bytes: &[u8]) {
        assert!(
            rebuild(bytes).is_some(),
            "{name}: the DC-only path is not taken"
        );
        let full: Raster =
            jpeg::decode_with(bytes, 0.125, None, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dc: Raster =
            jpeg::decode_with(bytes, 0.125, None, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((dc.width, dc.height), (full.width, full.height), "{name}");
        assert_eq!(dc.logical, full.logical, "{name}");
        assert!(
            dc.data == full.data,
            "{name}: DC-only 1/8 decode differs from the full one"
        );
    }

    #[test]
    fn every_progressive_corpus_jpeg_decodes_identically_at_one_eighth() {
        let mut progressive = 0;
        for (name, bytes) in corpus_jpegs() {
            let info = scans(&bytes);
            if info.len() > 1 {
                progressive += 1;
                assert_dc_path_exact(&name, &bytes);
            } else {
                assert!(
                    rebuild(&bytes).is_none(),
                    "{name}: baseline taken for progressive"
                );
            }
        }
        assert!(progressive > 0, "no progressive JPEG in the corpus");
    }

    #[test]
    fn a_window_decoded_at_one_eighth_is_identical_too() {
        // Crop-on-load (jpeg_window.rs) decodes the rebuilt stream as well.
        let window = crate::geometry::Rect {
            x: 1000,
            y: 500,
            width: 1200,
            height: 700,
        };
        for (name, bytes) in [
            ("corpus", progressive_corpus_file()),
            ("4:4:4", turbo(3000, 2000, turbojpeg::Subsamp::None)),
        ] {
            assert!(rebuild(&bytes).is_some());
            let full = jpeg::decode_with(&bytes, 0.125, Some(window), false).unwrap();
            let dc = jpeg::decode_with(&bytes, 0.125, Some(window), true).unwrap();
            let whole = jpeg::decode_with(&bytes, 0.125, None, false).unwrap();
            assert!(
                full.width < whole.width / 2 && full.height < whole.height / 2,
                "{name}: no window was cut"
            );
            assert_eq!(
                (dc.width, dc.height, dc.logical),
                (full.width, full.height, full.logical)
            );
            assert!(
                dc.data == full.data,
                "{name}: windowed DC-only decode differs"
            );
        }
    }

    #[test]
    fn rebuilt_stream_keeps_dc_and_chroma_ac_and_codes_luma_ac_as_zero() {
        let original = progressive_corpus_file(); // 4:2:0, libjpeg's scan script
        let rebuilt = rebuild(&original).unwrap();
        let before = scans(&original);
        let after = scans(&rebuilt);
        // Every DC scan and every chroma (2×2 IDCT at 1/8) scan, unchanged and in order.
        let kept: Vec<_> = before
            .iter()
            .filter(|s| s.ss == 0 || s.ids != [1])
            .collect();
        assert_eq!(after.len(), kept.len() + 1, "{after:?}");
        for (a, b) in after.iter().zip(&kept) {
            assert_eq!(
                (&a.ids, a.ss, a.se, a.ah, a.al, a.data),
                (&b.ids, b.ss, b.se, b.ah, b.al, b.data)
            );
        }
        // The luma's AC: one scan, all coefficients at full precision, a few bytes of EOB runs.
        let zero = after.last().unwrap();
        assert_eq!(
            (&zero.ids[..], zero.ss, zero.se, zero.ah, zero.al),
            (&[1u8][..], 1, 63, 0, 0)
        );
        assert!(zero.data < 32, "{zero:?}");
        assert!(
            rebuilt.len() * 3 < original.len(),
            "{} of {}",
            rebuilt.len(),
            original.len()
        );
    }

    #[test]
    fn without_subsampled_chroma_no_ac_data_is_kept() {
        for subsamp in [
            turbojpeg::Subsamp::None,
            turbojpeg::Subsamp::Sub2x1,
            turbojpeg::Subsamp::Gray,
        ] {
            let rebuilt = rebuild(&turbo(640, 480, subsamp)).unwrap();
            for scan in scans(&rebuilt).iter().filter(|s| s.ss > 0) {
                assert_eq!(
                    (scan.ss, scan.se, scan.ah, scan.al),
                    (1, 63, 0, 0),
                    "{subsamp:?}"
                );
                assert!(scan.data < 16, "{subsamp:?}: {scan:?}");
            }
        }
    }

    #[test]
    fn libjpeg_turbo_progressive_files_decode_identically_at_one_eighth() {
        use turbojpeg::Subsamp::*;
        for subsamp in [None, Sub2x1, Sub2x2, Gray, Sub1x2, Sub4x1] {
            // Sizes that are not multiples of the MCU, one of them wider than the longest EOB
            // run (32 767 blocks).
            for (w, h) in [(333, 251), (1001, 67), (1800, 1200)] {
                assert_dc_path_exact(&format!("{subsamp:?} {w}x{h}"), &turbo(w, h, subsamp));
            }
        }
    }

    #[test]
    fn the_engines_own_progressive_output_decodes_identically_at_one_eighth() {
        let (w, h) = (1200u32, 803u32);
        let raster = Raster::from_vec(w, h, false, picture(w as usize, h as usize, 3)).unwrap();
        assert!(jpeg::is_progressive(w, h));
        assert_dc_path_exact("engine encoder", &jpeg::encode(&raster, 80).unwrap());
    }

    #[test]
    fn restart_markers_and_one_dc_scan_per_component_decode_identically() {
        use jpeg_encoder::{ColorType, SamplingFactor::*};
        for (color, sampling) in [
            (ColorType::Rgb, F_1_1),
            (ColorType::Rgb, F_2_1),
            (ColorType::Rgb, F_2_2),
            (ColorType::Rgb, F_1_2),
            (ColorType::Rgb, F_4_1),
            (ColorType::Rgb, F_2_4),
            (ColorType::Luma, F_1_1),
            (ColorType::Cmyk, F_1_1),
            (ColorType::Cmyk, F_2_2),
        ] {
            for restart in [0, 1, 7] {
                let name = format!("{color:?} {sampling:?} restart {restart}");
                let bytes = other_encoder(517, 301, color, sampling, restart);
                let info = scans(&bytes);
                assert!(
                    info.iter().filter(|s| s.ss == 0).count() > 1 || color == ColorType::Luma,
                    "{name}"
                );
                assert_dc_path_exact(&name, &bytes);
            }
        }
    }

    #[test]
    fn baseline_jpegs_are_left_to_the_normal_decode() {
        let pixels = picture(300, 200, 3);
        let baseline = turbojpeg::compress(
            turbojpeg::Image {
                pixels: pixels.as_slice(),
                width: 300,
                pitch: 900,
                height: 200,
                format: turbojpeg::PixelFormat::RGB,
            },
            85,
            turbojpeg::Subsamp::Sub2x2,
        )
        .unwrap();
        assert!(rebuild(&baseline).is_none());
        for (name, bytes) in corpus_jpegs()
            .into_iter()
            .filter(|(_, b)| scans(b).len() == 1)
        {
            assert!(rebuild(&bytes).is_none(), "{name}");
        }
    }

    /// The error of the 1/8 decode and of the full-path 1/8 decode of `bytes`.
    fn errors(bytes: &[u8]) -> (String, String) {
        let with = jpeg::decode_with(bytes, 0.125, None, true)
            .expect_err("DC path accepted a broken file");
        let without = jpeg::decode_with(bytes, 0.125, None, false)
            .expect_err("full path accepted a broken file");
        assert_eq!(with.code(), without.code());
        (with.to_string(), without.to_string())
    }

    #[test]
    fn a_file_cut_anywhere_fails_as_the_normal_decode_does() {
        let original = progressive_corpus_file();
        let info = scans(&original);
        // Offsets of each scan's data in the file.
        let mut starts = Vec::new();
        let mut from = 0;
        for _ in &info {
            let sos = from
                + original[from..]
                    .windows(2)
                    .position(|w| w == [0xFF, 0xDA])
                    .unwrap();
            let length = usize::from(u16::from_be_bytes([original[sos + 2], original[sos + 3]]));
            starts.push(sos + 2 + length);
            from = sos + 2;
        }
        let first_dc = starts[0] + info[0].data / 2;
        let last_ac = starts[info.len() - 1] + info[info.len() - 1].data / 2;
        assert!(info[info.len() - 1].ss > 0);
        for cut in [first_dc, last_ac, original.len() - 2, original.len() - 1] {
            let truncated = &original[..cut];
            assert!(rebuild(truncated).is_none(), "cut at {cut}");
            let (with, without) = errors(truncated);
            assert_eq!(with, without, "cut at {cut}");
        }
    }

    #[test]
    fn malformed_scan_headers_fall_back_to_the_normal_decode() {
        let original = turbo(640, 480, turbojpeg::Subsamp::None);
        let sos: Vec<usize> = original
            .windows(2)
            .enumerate()
            .filter(|(_, w)| *w == [0xFF, 0xDA])
            .map(|(i, _)| i)
            .collect();
        // An AC scan (the second) with Ah/Al inconsistent with what came before.
        let ac = sos[1];
        let n = usize::from(original[ac + 4]);
        let mut bad = original.clone();
        bad[ac + 5 + 2 * n + 2] = 0x54; // Ah 5, Al 4
        assert!(rebuild(&bad).is_none());
        // A scan naming a component the frame does not have.
        let mut unknown = original.clone();
        unknown[ac + 5] = 0x77;
        assert!(rebuild(&unknown).is_none());
        errors(&unknown);
        // Restart markers where no restart interval is set.
        let mut restarts = original;
        let data = ac + 2 + usize::from(u16::from_be_bytes([restarts[ac + 2], restarts[ac + 3]]));
        restarts.splice(data + 4..data + 4, [0xFF, 0xD0]);
        assert!(rebuild(&restarts).is_none());
    }

    #[test]
    fn a_one_eighth_decode_never_decodes_the_dropped_ac_scans() {
        // The luma's last AC scan cut to half its data (EOI still follows): the full decode
        // fails on it, the 1/8 decode does not read it and gives the intact file's pixels. This
        // is the documented limit of the shortcut, and the proof that it is taken.
        let original = progressive_corpus_file();
        let info = scans(&original);
        let last = info.last().unwrap();
        assert_eq!((&last.ids[..], last.ss), (&[1u8][..], 1));
        let end = original.len() - 2;
        let mut broken = original[..end - last.data / 2].to_vec();
        broken.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg::decode_with(&broken, 0.125, None, false).is_err());
        let dc = jpeg::decode_with(&broken, 0.125, None, true).unwrap();
        let intact = jpeg::decode_with(&original, 0.125, None, false).unwrap();
        assert!(dc.data == intact.data);
        // At 2/8 every scan is decoded, and the file fails as before.
        assert!(jpeg::decode(&broken, 0.25, None).is_err());
    }

    #[test]
    fn mutated_files_never_panic_and_never_lose_what_the_full_decode_gives() {
        // Bytes flipped anywhere and cuts anywhere in small progressive files: the walk must not
        // panic, and wherever the full 1/8 decode succeeds the shortcut gives the same pixels.
        let seeds = [
            turbo(96, 80, turbojpeg::Subsamp::Sub2x2),
            other_encoder(
                90,
                70,
                jpeg_encoder::ColorType::Rgb,
                jpeg_encoder::SamplingFactor::F_2_1,
                2,
            ),
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in &seeds {
            for _ in 0..400 {
                let mut bytes = seed.clone();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    bytes.truncate((next() % bytes.len() as u64) as usize);
                }
                let _ = rebuild(&bytes);
                if let Ok(full) = jpeg::decode_with(&bytes, 0.125, None, false) {
                    let dc = jpeg::decode_with(&bytes, 0.125, None, true)
                        .expect("shortcut failed a good file");
                    assert!(
                        dc.data == full.data && (dc.width, dc.height) == (full.width, full.height)
                    );
                }
            }
        }
    }

    /// Times the 1/8 decode both ways (median of 11):
    /// `cargo test --release -p imgbind-engine --lib one_eighth_decode_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn one_eighth_decode_timing() {
        let median = |bytes: &[u8], shortcut: bool| {
            let mut times: Vec<f64> = (0..11)
                .map(|_| {
                    let started = std::time::Instant::now();
                    jpeg::decode_with(bytes, 0.125, None, shortcut).unwrap();
                    started.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[5]
        };
        let mut files: Vec<(String, Vec<u8>)> = corpus_jpegs()
            .into_iter()
            .filter(|(_, b)| scans(b).len() > 1)
            .collect();
        files.push((
            "libjpeg-turbo 4:4:4 4000x3000 q85".into(),
            turbo(4000, 3000, turbojpeg::Subsamp::None),
        ));
        files.push((
            "libjpeg-turbo 4:2:0 4000x3000 q85".into(),
            turbo(4000, 3000, turbojpeg::Subsamp::Sub2x2),
        ));
        for (name, bytes) in files {
            let kept = rebuild(&bytes).map_or(0, |r| r.len());
            let mut walk: Vec<f64> = (0..11)
                .map(|_| {
                    let started = std::time::Instant::now();
                    rebuild(&bytes).unwrap();
                    started.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            walk.sort_by(f64::total_cmp);
            let (full, dc) = (median(&bytes, false), median(&bytes, true));
            eprintln!(
                "{name}: {} bytes, rebuilt {kept}; full 1/8 decode {full:.1} ms, DC-only {dc:.1} ms \
                 ({:.2}x), of which the walk {:.2} ms",
                bytes.len(),
                full / dc,
                walk[5]
            );
        }
    }
}
