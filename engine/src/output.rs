//! Where an encoded result goes: an [`OutputSink`] that receives the result's head (format, size,
//! length when known) and then its bytes as the encoder produces them.
//!
//! PNG and raw `rgb`/`rgba` are written incrementally (PNG: IDAT chunks as the stream writer fills
//! them, row by row; raw: blocks of rows), so a server can start answering while the encoder
//! still runs. JPEG (libjpeg-turbo one-shot), WebP and AVIF (their encoders emit at the end),
//! GIF (NeuQuant needs the whole frame; animations build one palette from every frame) and
//! animated WebP are handed over as one block once complete. See `docs/DELIVERY.md`.

use imgbind_wire::{Error, OutputFormat};

/// What the sink will receive, known before the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputHead {
    /// The output format.
    pub format: OutputFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The exact number of bytes that will follow, when known up front (raw formats, and every
    /// one-block output).
    pub length: Option<u64>,
    /// True when the bytes are written as the encoder produces them; false when the whole
    /// output, already complete, follows in one [`OutputSink::write_owned`].
    pub incremental: bool,
}

/// Receives one job's encoded output. Called on the engine's (blocking) thread; it must not wait
/// on a slow consumer. A write error stops the encoder: the job then fails with 9523.
pub trait OutputSink {
    /// Called exactly once, before any byte.
    fn begin(&mut self, head: &OutputHead) -> std::io::Result<()>;
    /// The next bytes of the output.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The next bytes of the output, as an owned buffer (avoids a copy for large blocks).
    fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.write(&bytes)
    }
}

/// The encoded result, collected whole: the sink [`crate::run`] gives the engine, so a one-block
/// answer and a streamed one come from the same encoder calls and are byte-identical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The encoded image (or raw pixels for `rgb`/`rgba`).
    pub bytes: Vec<u8>,
    /// The format `bytes` are in.
    pub format: OutputFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Encoded {
    /// Nothing yet, to collect an output of this format into (its head sets the size).
    pub fn empty(format: OutputFormat) -> Self {
        Encoded {
            bytes: Vec::new(),
            format,
            width: 0,
            height: 0,
        }
    }

    /// Hands this complete output to `sink` as one block with its length: the one way a finished
    /// buffer enters a sink.
    pub fn write_to(self, sink: &mut dyn OutputSink) -> Result<OutputHead, Error> {
        let head = OutputHead {
            format: self.format,
            width: self.width,
            height: self.height,
            length: Some(self.bytes.len() as u64),
            incremental: false,
        };
        let fail = |e: std::io::Error| Error::internal(format!("output failed: {e}"));
        sink.begin(&head).map_err(fail)?;
        sink.write_owned(self.bytes).map_err(fail)?;
        Ok(head)
    }
}

impl OutputSink for Encoded {
    fn begin(&mut self, head: &OutputHead) -> std::io::Result<()> {
        // A one-block output arrives as one owned buffer: nothing to reserve for.
        if let (true, Some(length)) = (
            head.incremental,
            head.length.and_then(|l| usize::try_from(l).ok()),
        ) {
            self.bytes.try_reserve_exact(length)?;
        }
        self.format = head.format;
        self.width = head.width;
        self.height = head.height;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes.try_reserve(bytes.len())?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        if self.bytes.is_empty() {
            self.bytes = bytes;
            Ok(())
        } else {
            self.write(&bytes)
        }
    }
}

/// `std::io::Write` over a sink (what the PNG stream writer writes into).
pub(crate) struct SinkWriter<'a>(pub(crate) &'a mut dyn OutputSink);

impl std::io::Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
