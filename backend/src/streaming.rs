//! A streamed answer's body: the engine writes a PNG or raw output into the exchange's sink
//! (`exchange.rs`); the answer starts with the first coalesced chunk and its body
//! ([`StreamedBody`]) hands the rest to hyper as it comes.
//!
//! - A job that fails after the answer has started ends the body with an error: hyper then closes
//!   the connection without the chunked terminator (or short of `Content-Length`), so the client
//!   sees an aborted body, never a clean end, and the request is counted as an aborted delivery.
//! - A body dropped unsent (client gone) aborts the job's task (its [`AbortOnDrop`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use imgbind_wire::{Error, ErrorCode};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::exchange::{AbortOnDrop, Done, Event};

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
