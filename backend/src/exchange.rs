//! The job exchange: how a `/transform` request hands its job to the blocking pool and gets its
//! answer back (as hyper's `proto/h1/dispatch.rs` owns a connection's exchange). [`Jobs::transform`]
//! spawns the job behind the gate (`jobs.rs`); the engine writes its output into a [`ChannelSink`]
//! on its blocking thread; the request side turns the events into an answer: a coded error while
//! no byte exists yet, a streamed body (`streaming.rs`) once the first chunk does, or one block.
//!
//! - The sink never waits for the client: chunks go into an unbounded channel, so a slow reader
//!   never holds a job slot. What the channel can hold is bounded by the output's size — exactly
//!   what the one-block answer holds in memory.
//! - A body dropped unsent (client gone) aborts the job's task; the sink's next write fails and
//!   the encoder stops, freeing its slot early.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Response;
use imgbind_engine::{Job, Limits, OutputHead, OutputSink, Timings};
use imgbind_wire::{Error, ErrorCode, InfoResponse};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::budget::Reservation;
use crate::jobs::{Engine, JobGate};
use crate::respond::{self, Body};
use crate::streaming::StreamedBody;
use crate::telemetry::{Phase, RequestMeter};

/// The engine, its limits and the gate its jobs pass: what runs a request's job.
pub(crate) struct Jobs {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) gate: JobGate,
}

impl Jobs {
    /// Bytes `job` will hold in memory, from its sources' headers (before decoding).
    pub(crate) fn memory_needed(&self, job: &Job) -> Result<u64, Error> {
        self.engine.memory_needed(job, &self.limits)
    }

    /// Decode, apply, encode: CPU work on the blocking pool, once `memory` and a slot are free;
    /// the request's bytes (`upload`) go with the job. The output comes back through a channel
    /// as it is encoded; its bytes stay taken from the budget until the answer is written.
    /// `may_chunk`: the answer may use chunked encoding (HTTP/1.1).
    pub(crate) async fn transform(
        &self,
        job: Job,
        memory: u64,
        upload: Reservation,
        may_chunk: bool,
        meter: &mut RequestMeter,
    ) -> Result<Response<Body>, Error> {
        let (engine, limits) = (Arc::clone(&self.engine), Arc::clone(&self.limits));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let gate = self.gate.clone();
        let queued = Instant::now();
        let task = AbortOnDrop(tokio::spawn(async move {
            let sink_tx = tx.clone();
            let outcome = gate
                .run(memory, move |reservation, threads| {
                    let waited = queued.elapsed();
                    let mut timings = Timings::default();
                    let mut sink = ChannelSink::new(sink_tx);
                    // The cores idle when the job started (`jobs.rs`).
                    let limits = Limits {
                        threads,
                        ..Limits::clone(&limits)
                    };
                    let result = engine.run_into(job, &limits, &mut timings, &mut sink);
                    // The request's bytes go with the job; the answer keeps what it wrote.
                    drop(upload);
                    reservation.shrink_to(sink.written());
                    if result.is_ok() {
                        sink.finish();
                    }
                    Ok((result, waited, timings, reservation.clone()))
                })
                .await;
            let done = match outcome {
                Ok((result, waited, timings, answer_memory)) => Done {
                    report: Some(JobReport { waited, timings }),
                    result: result.map(|_| ()),
                    answer_memory: Some(answer_memory),
                },
                Err(error) => Done {
                    report: None,
                    result: Err(error),
                    answer_memory: None,
                },
            };
            let _ = tx.send(Event::Done(done));
        }));
        respond_to_job(rx, task, may_chunk, queued, meter).await
    }

    /// Reads an image's header on the blocking pool, behind the gate like any job (it asks for no
    /// memory beyond the request's own bytes, `upload`, released once read).
    pub(crate) async fn info(
        &self,
        image: Bytes,
        upload: Reservation,
        meter: &mut RequestMeter,
    ) -> Result<InfoResponse, Error> {
        let (engine, limits) = (Arc::clone(&self.engine), Arc::clone(&self.limits));
        let queued = Instant::now();
        let (info, waited, reading) = self
            .gate
            .run(0, move |_, _| {
                let waited = queued.elapsed();
                let reading = Instant::now();
                let info = engine.info(&image, &limits);
                drop(upload);
                Ok((info, waited, reading.elapsed()))
            })
            .await
            .inspect_err(|_| meter.add(Phase::Queue, queued.elapsed()))?;
        meter.add(Phase::Queue, waited);
        // `/info` reads the header only: its time counts as decode.
        meter.add(Phase::Decode, reading);
        info
    }
}

/// The job's answer: a coded error while no byte of the output exists yet; once the first chunk
/// exists, a streamed answer (chunked, or with `Content-Length` when the length is known);
/// a one-block output, or one that fits in a single chunk, as one block with its length.
async fn respond_to_job(
    mut rx: UnboundedReceiver<Event>,
    task: AbortOnDrop,
    may_chunk: bool,
    queued: Instant,
    meter: &mut RequestMeter,
) -> Result<Response<Body>, Error> {
    let ended = |done: Done, meter: &mut RequestMeter| {
        if done.report.is_none() {
            // The gate refused or lost the job (busy, panic, deadline): all of it was queue time.
            meter.add(Phase::Queue, queued.elapsed());
        }
        meter.job_ended(&done);
        done.result
    };
    let lost = || Error::new(ErrorCode::Internal, "the image job ended without a result");
    let head = match rx.recv().await {
        Some(Event::Head(head)) => head,
        Some(Event::Done(done)) => {
            ended(done, meter)?;
            return Err(lost());
        }
        _ => return Err(lost()),
    };
    let mut pieces: Vec<bytes::Bytes> = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Chunk(first))
                if head.incremental && (may_chunk || head.length.is_some()) =>
            {
                tracing::debug!(
                    format = head.format.as_str(),
                    width = head.width,
                    height = head.height,
                    length = head.length,
                    "streaming the result"
                );
                meter.set_outcome(Ok(()));
                let body = StreamedBody::new(rx, first, head.length, task);
                return Ok(respond::streamed_image(&head, body));
            }
            // HTTP/1.0 and a length only known at the end: collected, sent as one block.
            Some(Event::Chunk(bytes) | Event::Tail(bytes)) => {
                if !bytes.is_empty() {
                    pieces.push(bytes);
                }
            }
            Some(Event::Done(done)) => {
                ended(done, meter)?;
                // A one-block output arrives as one piece: no copy.
                let block = match pieces.len() {
                    1 => Vec::from(pieces.pop().unwrap_or_default()),
                    _ => pieces.concat(),
                };
                tracing::debug!(
                    format = head.format.as_str(),
                    width = head.width,
                    height = head.height,
                    bytes = block.len(),
                    "encoded"
                );
                return Ok(respond::image(&head, block));
            }
            Some(Event::Head(_)) | None => return Err(lost()),
        }
    }
}

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
