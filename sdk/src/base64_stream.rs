//! Streaming base64 (standard alphabet) for `input(…, {encoding: 'base64'})` and
//! `image({encoding: 'base64'})`: chunks of any size in, whole 4-character groups (3 bytes) decoded
//! or encoded as they complete, the remainder carried to the next chunk.
//!
//! The decoder is a little more forgiving than workerd's: ASCII white space is skipped (wrapped
//! base64 decodes), and missing final padding is accepted. Anything after padding is an error.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Standard alphabet; final padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Invalid base64 input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Error(String);

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base64 error: {}", self.0)
    }
}

impl std::error::Error for Base64Error {}

/// Decodes base64 text arriving in chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Characters of an incomplete group (fewer than 4), white space removed.
    pending: Vec<u8>,
    /// Padding was seen: only white space may follow.
    done: bool,
    scratch: Vec<u8>,
}

impl Decoder {
    /// A decoder at the start of the text.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decodes what completes with `input`, appending the bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        self.scratch.clear();
        self.scratch.append(&mut self.pending);
        for &c in input {
            if c.is_ascii_whitespace() {
                continue;
            }
            if self.done {
                return Err(Base64Error("data after padding".into()));
            }
            self.scratch.push(c);
            if c == b'=' && self.scratch.len().is_multiple_of(4) {
                self.done = true;
            }
        }
        let whole = if self.done {
            self.scratch.len()
        } else {
            self.scratch.len() / 4 * 4
        };
        self.pending.extend_from_slice(&self.scratch[whole..]);
        decode_into(&self.scratch[..whole], out)
    }

    /// The text ended: decodes an unpadded final group, or fails on a stray character.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Base64Error> {
        let rest = std::mem::take(&mut self.pending);
        if rest.len() == 1 || (rest.contains(&b'=') && !rest.len().is_multiple_of(4)) {
            return Err(Base64Error("incomplete final group".into()));
        }
        decode_into(&rest, out)
    }
}

fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    if text.is_empty() {
        return Ok(());
    }
    LENIENT
        .decode_vec(text, out)
        .map_err(|e| Base64Error(e.to_string()))
}

/// Encodes bytes arriving in chunks as padded standard base64.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Bytes of an incomplete group (fewer than 3).
    pending: Vec<u8>,
}

impl Encoder {
    /// An encoder at the start of the data.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Encodes the whole 3-byte groups completed by `input`, appending the text to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut input = input;
        if !self.pending.is_empty() {
            let take = (3 - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < 3 {
                return;
            }
            encode_into(&std::mem::take(&mut self.pending), out);
        }
        let whole = input.len() / 3 * 3;
        encode_into(&input[..whole], out);
        self.pending.extend_from_slice(&input[whole..]);
    }

    /// The data ended: encodes the last partial group with padding.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        encode_into(&std::mem::take(&mut self.pending), out);
    }
}

fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let written = STANDARD
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(text: &str, piece: usize) -> Result<Vec<u8>, Base64Error> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece.max(1)) {
            d.push(chunk, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    fn encode_in_pieces(bytes: &[u8], piece: usize) -> String {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            e.push(chunk, &mut out);
        }
        e.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trips_at_every_split() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = STANDARD.encode(&data);
        for piece in [1, 2, 3, 4, 5, 7, 64, 999, 5000] {
            assert_eq!(encode_in_pieces(&data, piece), text, "piece {piece}");
            assert_eq!(
                decode_in_pieces(&text, piece).unwrap(),
                data,
                "piece {piece}"
            );
        }
        for len in 0..8 {
            let text = STANDARD.encode(&data[..len]);
            assert_eq!(encode_in_pieces(&data[..len], 2), text);
            assert_eq!(decode_in_pieces(&text, 3).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn decoder_is_forgiving_about_layout() {
        assert_eq!(decode_in_pieces("aGVs\r\nbG8=\n", 3).unwrap(), b"hello");
        assert_eq!(decode_in_pieces("aGVsbG8", 2).unwrap(), b"hello");
    }

    #[test]
    fn decoder_rejects_bad_input() {
        assert!(decode_in_pieces("aGVs*G8=", 4).is_err());
        assert!(decode_in_pieces("aGVsbG8=aGVs", 4).is_err());
        assert!(decode_in_pieces("aGVsb", 4).is_err());
        let e = decode_in_pieces("a=Vs", 4).unwrap_err();
        assert!(e.to_string().starts_with("base64 error: "));
    }
}
