//! Streamed results: the engine writes a PNG or raw output into a [`ChannelSink`] on its blocking
//! thread; the answer starts with the first coalesced chunk and its body ([`StreamedBody`]) hands
//! the rest to hyper as it comes.
//!
//! - The sink never waits for the client: chunks go into an unbounded channel, so a slow reader
//!   never holds a job slot. What the channel can hold is bounded by the output's size — exactly
//!   what the one-block answer holds in memory.
//! - A job that fails after the answer has started ends the body with an error: hyper then closes
//!   the connection without the chunked terminator (or short of `Content-Length`), so the client
//!   sees an aborted body, never a clean end, and the request is counted as an aborted delivery.
//! - A body dropped unsent (client gone) aborts the job's task; the sink's next write fails and
//!   the encoder stops, freeing its slot early.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use imgbind_engine::{OutputHead, OutputSink, Timings};
use imgbind_wire::{Error, ErrorCode};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::budget::Reservation;

/// Chunks are coalesced to at least this many bytes before they are handed over.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Where the job's time went: reported with its end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobReport {
    /// Time spent waiting for a job slot.
    pub(crate) waited: Duration,
    /// The engine's phases.
    pub(crate) timings: Timings,
}

/// The end of a job: its report when it ran, whether it succeeded, and the memory its answer
/// holds until it is written (the request's meter keeps it).
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) report: Option<JobReport>,
    pub(crate) result: Result<(), Error>,
    pub(crate) answer_memory: Option<Reservation>,
}

/// What the job's task sends, in this order: `Head`, any `Chunk`s, one `Tail` (the engine
/// finished; the last bytes), then `Done` — or `Done` at any point for a failure.
#[derive(Debug)]
pub(crate) enum Event {
    Head(OutputHead),
    Chunk(Bytes),
    Tail(Bytes),
    Done(Done),
}

/// The engine's sink: coalesces writes into chunks of at least [`CHUNK`] bytes and sends them.
pub(crate) struct ChannelSink {
    tx: UnboundedSender<Event>,
    buffer: Vec<u8>,
    /// Bytes of output written so far.
    written: u64,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the response was abandoned")
}

impl ChannelSink {
    pub(crate) fn new(tx: UnboundedSender<Event>) -> Self {
        ChannelSink {
            tx,
            buffer: Vec::new(),
            written: 0,
        }
    }

    /// Bytes of output written so far: what the answer holds once the job ends.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn send(&self, event: Event) -> std::io::Result<()> {
        self.tx.send(event).map_err(|_| gone())
    }

    /// The engine finished: the buffered rest goes out as the tail.
    pub(crate) fn finish(mut self) {
        let rest = Bytes::from(std::mem::take(&mut self.buffer));
        let _ = self.send(Event::Tail(rest));
    }
}

impl OutputSink for ChannelSink {
    fn begin(&mut self, head: &OutputHead) -> std::io::Result<()> {
        self.send(Event::Head(*head))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.tx.is_closed() {
            return Err(gone());
        }
        self.written += bytes.len() as u64;
        if self.buffer.capacity() == 0 {
            self.buffer.try_reserve(CHUNK.max(bytes.len()))?;
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            let chunk = std::mem::take(&mut self.buffer);
            self.send(Event::Chunk(Bytes::from(chunk)))?;
        }
        Ok(())
    }

    fn write_owned(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        if self.buffer.is_empty() && bytes.len() >= CHUNK {
            // Already big enough: handed over as it is, without a copy.
            self.written += bytes.len() as u64;
            self.send(Event::Chunk(Bytes::from(bytes)))
        } else {
            self.write(&bytes)
        }
    }
}

/// Aborts the job's task when dropped (the request or its body went away).
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Ended,
    Failed,
}

/// The body of a streamed answer: the first chunk, then the channel's chunks until the job's
/// `Done`. Ends cleanly only when the job succeeded and the byte count matches the announced
/// length (when there is one); otherwise its last frame is an error.
pub(crate) struct StreamedBody {
    rx: UnboundedReceiver<Event>,
    first: Option<Bytes>,
    length: Option<u64>,
    sent: u64,
    state: State,
    /// The job's end, once seen (the request's meter takes it).
    done: Option<Done>,
    _task: AbortOnDrop,
}

impl StreamedBody {
    pub(crate) fn new(
        rx: UnboundedReceiver<Event>,
        first: Bytes,
        length: Option<u64>,
        task: AbortOnDrop,
    ) -> Self {
        StreamedBody {
            rx,
            first: Some(first),
            length,
            sent: 0,
            state: State::Open,
            done: None,
            _task: task,
        }
    }

    /// The job's end, once the body has seen it.
    pub(crate) fn take_done(&mut self) -> Option<Done> {
        self.done.take()
    }

    /// Bytes handed to hyper so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    fn data(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.sent += bytes.len() as u64;
        if let Some(length) = self.length.filter(|&l| self.sent > l) {
            return self.fail(Error::new(
                ErrorCode::Internal,
                format!("the output ran past its length ({length} bytes)"),
            ));
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.state = State::Failed;
        Poll::Ready(Some(Err(error)))
    }
}

impl hyper::body::Body for StreamedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.state != State::Open {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return this.data(first);
        }
        loop {
            let event = match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(event) => event,
            };
            match event {
                Some(Event::Chunk(bytes) | Event::Tail(bytes)) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    return this.data(bytes);
                }
                Some(Event::Done(done)) => {
                    let outcome = match (&done.result, this.length) {
                        (Err(error), _) => Err(error.clone()),
                        (Ok(()), Some(length)) if length != this.sent => Err(Error::new(
                            ErrorCode::Internal,
                            format!("the output ended after {} of its {length} bytes", this.sent),
                        )),
                        (Ok(()), _) => Ok(()),
                    };
                    this.done = Some(Done {
                        report: done.report,
                        result: outcome.clone(),
                        answer_memory: done.answer_memory,
                    });
                    return match outcome {
                        Ok(()) => {
                            this.state = State::Ended;
                            Poll::Ready(None)
                        }
                        Err(error) => {
                            tracing::warn!(
                                code = error.code().as_u16(),
                                error = error.message(),
                                sent = this.sent,
                                "streamed answer failed after its head; aborting the body"
                            );
                            this.fail(error)
                        }
                    };
                }
                Some(Event::Head(_)) => {
                    return this.fail(Error::new(ErrorCode::Internal, "a second output head"));
                }
                None => {
                    return this.fail(Error::new(
                        ErrorCode::Internal,
                        "the image job ended without a result",
                    ));
                }
            }
        }
    }

    /// True only after a clean end (a failed body never is).
    fn is_end_stream(&self) -> bool {
        self.state == State::Ended
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length.saturating_sub(self.sent)),
            None => SizeHint::default(),
        }
    }
}
