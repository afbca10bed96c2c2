//! Running CPU-bound engine work off the async threads: a bounded number at once on tokio's
//! blocking pool, each only once its estimated memory fits the memory budget (`budget.rs`), and a
//! queue that admits a job while its expected wait fits the queue timeout (from the jobs ahead of
//! it and the recent job time), so a burst that can be served in time is served. Everything else
//! gets a coded answer: an overload (9522, 503 with `Retry-After`), more memory than the whole
//! budget (9413: a limit, never worth retrying), a panic (9523), the deadline (9529).
//!
//! With `--job-threads` above 1 (or 0, every core), a job that starts while cores are idle may
//! use them ([`IdleCores`]): its thread allowance (`imgbind_engine::Limits::threads`) is the cores
//! no running job holds, at least one and at most that cap. At full load every job gets one,
//! exactly as if there were no allowance. The default is every core (`--job-threads 0`, since
//! session 11): a job with a second core decodes two large sources at once, decodes an
//! animation's frames a frame ahead of its steps and maps GIF frames to the palette in parallel,
//! which the bench's same-run A/B measured at 0.94–0.96× p50 over its jobs (0.61–0.80× on a large
//! layer and an animated GIF) with throughput at full load unchanged. `--job-threads 1` gives
//! every job one thread.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgbind_engine::{Job, Limits, OutputHead, OutputSink, Timings};
use imgbind_wire::{Error, ErrorCode, InfoResponse};
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::budget::{Budget, Reservation};

/// Engine jobs running in this process; the last one to end gives freed memory back.
static ACTIVE_JOBS: AtomicUsize = AtomicUsize::new(0);

/// The pixel work the server calls. [`PixelEngine`] is the real one; tests substitute their own to
/// exercise panics, slowness and overload.
pub trait Engine: Send + Sync + 'static {
    /// Runs a transform job, writing its output into `sink` and adding where the time went to
    /// `timings` (see `imgbind_engine::run_into`).
    fn run_into(
        &self,
        job: Job,
        limits: &Limits,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error>;
    /// Describes an image (see `imgbind_engine::info`).
    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error>;
    /// Bytes `job` will hold at its peak, from its sources' headers (see
    /// `imgbind_engine::memory_needed`); the job runs only once they fit the memory budget.
    /// Engines that cannot tell ask for nothing.
    fn memory_needed(&self, job: &Job, limits: &Limits) -> Result<u64, Error> {
        let _ = (job, limits);
        Ok(0)
    }
}

/// `imgbind-engine`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelEngine;

impl Engine for PixelEngine {
    fn run_into(
        &self,
        job: Job,
        limits: &Limits,
        timings: &mut Timings,
        sink: &mut dyn OutputSink,
    ) -> Result<OutputHead, Error> {
        imgbind_engine::run_into(job, limits, timings, sink)
    }

    fn info(&self, bytes: &[u8], limits: &Limits) -> Result<InfoResponse, Error> {
        imgbind_engine::info(bytes, limits)
    }

    fn memory_needed(&self, job: &Job, limits: &Limits) -> Result<u64, Error> {
        imgbind_engine::memory_needed(job, limits)
    }
}

/// Admission control for engine work (clones share the same slots).
#[derive(Debug, Clone)]
pub(crate) struct JobGate {
    /// One permit per job waiting for a running slot: `queue`.
    admitted: Arc<Semaphore>,
    /// One permit per job running: `jobs`.
    running: Arc<Semaphore>,
    /// Longest a job may take before its request is answered 9529.
    deadline: Duration,
    /// Longest a job may wait for a running slot; a job expected to wait longer is refused at once.
    queue_timeout: Duration,
    /// Jobs run at once (the running permits).
    jobs: usize,
    /// Jobs admitted and not yet running.
    waiting: Arc<AtomicUsize>,
    /// Recent time one job takes (a moving average that forgets itself when stale).
    recent: Arc<RecentJobTime>,
    /// Jobs admitted and waiting for a running slot (the queue depth).
    queued: Gauge,
    /// Jobs running.
    running_jobs: Gauge,
    /// Memory for requests; a job runs only once its estimate is taken from it.
    budget: Budget,
    /// The machine's cores and how many the running jobs hold.
    cores: Arc<IdleCores>,
}

/// Holds a gauge one higher while it lives (so a cancelled wait still counts down).
struct Held(Gauge);

impl Held {
    fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Extra time past the engine's own deadline before the server stops waiting for a job; the
/// engine is expected to answer 9529 itself first.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

impl JobGate {
    /// A gate running `jobs` at once with at most `queue` more waiting, each for at most
    /// `queue_timeout`, within `budget`, each job taking at most `job_threads` idle cores.
    /// `queued` and `running` are the gauges it keeps current.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        jobs: usize,
        job_threads: usize,
        queue: usize,
        deadline: Duration,
        queue_timeout: Duration,
        budget: Budget,
        queued: Gauge,
        running: Gauge,
    ) -> Self {
        let jobs = jobs.max(1);
        JobGate {
            admitted: Arc::new(Semaphore::new(queue)),
            running: Arc::new(Semaphore::new(jobs)),
            deadline,
            queue_timeout,
            jobs,
            waiting: Arc::new(AtomicUsize::new(0)),
            recent: Arc::new(RecentJobTime::new(queue_timeout)),
            queued,
            running_jobs: running,
            budget,
            cores: Arc::new(IdleCores::new(
                std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
                NonZeroUsize::new(job_threads).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// How long a job admitted now would wait for a running slot, from the jobs ahead of it and
    /// the recent job time.
    fn expected_wait(&self) -> Duration {
        let ahead = self.waiting.load(Ordering::Relaxed) as u64;
        let per_job = self.recent.get().as_micros() as u64;
        Duration::from_micros((ahead + 1) * per_job / self.jobs as u64)
    }

    /// The overload answer: 9522 with `Retry-After` (503), after about the current backlog.
    fn overloaded(&self, why: &str) -> Error {
        let seconds = self.expected_wait().as_secs_f64().ceil().max(1.0) as u32;
        Error::new(
            ErrorCode::ProcessingLimit,
            format!("the server is busy ({why}); try again later"),
        )
        .retry_after(seconds)
    }

    /// A place in the queue, for a job that must wait for memory or a slot: refused (9522) when
    /// the expected wait is past the queue timeout or the queue is full.
    fn enter_queue(&self) -> Result<Queued, Error> {
        if self.expected_wait() > self.queue_timeout {
            return Err(self.overloaded("the expected wait is past the queue timeout"));
        }
        let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Err(self.overloaded("the queue is full"));
        };
        Ok(Queued {
            _admitted: admitted,
            _gauge: Held::new(&self.queued),
            _counted: Counted::new(&self.waiting),
        })
    }

    /// Runs `work` on the blocking pool once `memory` bytes of the budget (the job's estimate)
    /// and a slot are free; `work` gets the reservation, to keep the part its answer needs
    /// ([`Reservation::shrink_to`]), and its thread allowance (the cores idle when it starts,
    /// at least one; held until it ends). Answers 9413 when `memory` is more than the jobs' share of the budget;
    /// 9522 (503, `Retry-After`) when the queue is full, when the expected wait or the real one
    /// passes the queue timeout; 9523 when `work` panics, 9529 when it outlives the deadline.
    pub(crate) async fn run<T, F>(&self, memory: u64, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Reservation, NonZeroUsize) -> Result<T, Error> + Send + 'static,
    {
        if memory > self.budget.work_limit() {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "the request needs about {} MiB of memory; the server's memory budget for jobs is {} MiB",
                    memory >> 20,
                    self.budget.work_limit() >> 20
                ),
            ));
        }
        let until = Instant::now() + self.queue_timeout;
        let mut queued = None;
        let reservation = match self.budget.try_reserve(memory) {
            Some(reservation) => reservation,
            None => {
                queued = Some(self.enter_queue()?);
                self.budget
                    .take(memory, until)
                    .await
                    .ok_or_else(|| self.overloaded("no memory for it within the queue timeout"))?
            }
        };
        let running = match Arc::clone(&self.running).try_acquire_owned() {
            // A free slot: no queueing, nothing to estimate.
            Ok(running) => running,
            Err(_) => {
                if queued.is_none() {
                    queued = Some(self.enter_queue()?);
                }
                let acquired = tokio::time::timeout_at(
                    until.into(),
                    Arc::clone(&self.running).acquire_owned(),
                )
                .await;
                match acquired {
                    Ok(Ok(running)) => running,
                    Ok(Err(_)) => {
                        return Err(Error::new(ErrorCode::Internal, "the job gate is closed"))
                    }
                    Err(_) => return Err(self.overloaded("no job slot within the queue timeout")),
                }
            }
        };
        drop(queued);
        let busy = Held::new(&self.running_jobs);
        let recent = Arc::clone(&self.recent);
        let cores = Arc::clone(&self.cores);
        // The permits and the memory move into the blocking task: a job that outlives its request
        // (deadline) still holds its slot and memory until it really ends, so neither the CPU nor
        // the budget is ever oversubscribed.
        let task = tokio::task::spawn_blocking(move || {
            ACTIVE_JOBS.fetch_add(1, Ordering::SeqCst);
            let started = std::time::Instant::now();
            let lease = cores.lease();
            let result = work(&reservation, lease.threads);
            drop(lease);
            drop(reservation);
            recent.record(started.elapsed());
            if ACTIVE_JOBS.fetch_sub(1, Ordering::SeqCst) == 1 {
                crate::memory::release_free_memory();
            }
            drop((running, busy));
            result
        });
        match tokio::time::timeout(self.deadline + DEADLINE_GRACE, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) if join_error.is_panic() => {
                tracing::error!(panic = %panic_message(join_error), "engine job panicked");
                Err(Error::new(
                    ErrorCode::Internal,
                    "internal error while processing the image",
                ))
            }
            Ok(Err(join_error)) => Err(Error::new(
                ErrorCode::Internal,
                format!("the image job was cancelled: {join_error}"),
            )),
            Err(_) => Err(Error::new(
                ErrorCode::Timeout,
                format!(
                    "the image timed out while processing (over {} ms)",
                    self.deadline.as_millis()
                ),
            )),
        }
    }
}

/// A job's place in the queue: the queue permit, the depth gauge and the count the expected wait
/// is computed from, all given back when it leaves (runs, is refused, or its request goes away).
struct Queued {
    _admitted: OwnedSemaphorePermit,
    _gauge: Held,
    _counted: Counted,
}

/// Counts one more in an atomic while it lives (so a cancelled wait still counts down).
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(count))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The cores of the machine and how many of them the running jobs hold: what a starting job may
/// use besides its own thread. A job's allowance is fixed when it starts: a job that got two cores
/// keeps them when a second job arrives (which gets one), so the cores are oversubscribed at most
/// until the first job ends, and never once every job started at full load.
#[derive(Debug)]
pub(crate) struct IdleCores {
    cores: NonZeroUsize,
    /// The most one job may take (`--job-threads`).
    most: NonZeroUsize,
    held: AtomicUsize,
}

/// A running job's share of the cores, given back when it drops.
pub(crate) struct CoreLease {
    /// The job's thread allowance.
    pub(crate) threads: NonZeroUsize,
    cores: Arc<IdleCores>,
}

impl IdleCores {
    pub(crate) fn new(cores: NonZeroUsize, most: NonZeroUsize) -> Self {
        IdleCores {
            cores,
            most,
            held: AtomicUsize::new(0),
        }
    }

    /// The cores no running job holds (at least one, at most `most`), held until the lease
    /// drops.
    pub(crate) fn lease(self: &Arc<Self>) -> CoreLease {
        let mut threads = 1;
        let _ = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                threads = self
                    .cores
                    .get()
                    .saturating_sub(held)
                    .clamp(1, self.most.get());
                Some(held + threads)
            });
        CoreLease {
            threads: NonZeroUsize::new(threads).unwrap_or(NonZeroUsize::MIN),
            cores: Arc::clone(self),
        }
    }
}

impl Drop for CoreLease {
    fn drop(&mut self) {
        self.cores
            .held
            .fetch_sub(self.threads.get(), Ordering::SeqCst);
    }
}

/// The recent time one job takes: a moving average (weight 1/4 for the newest job) that counts
/// only while it is recent. An average last fed longer ago than `stale_after` (the queue timeout)
/// is unknown, and the next job's time replaces it instead of blending in. Otherwise a process that
/// was paused mid-job (SIGSTOP, a frozen VM, a throttled cgroup) or that last ran one huge job keeps
/// refusing a new burst on a figure from a minute ago, until enough jobs are let through to dilute it.
#[derive(Debug)]
struct RecentJobTime {
    /// The average in microseconds; 0 before the first job.
    micros: AtomicU64,
    /// When it was last fed, in microseconds since `epoch`.
    fed_at: AtomicU64,
    epoch: Instant,
    stale_after: Duration,
}

impl RecentJobTime {
    fn new(stale_after: Duration) -> Self {
        RecentJobTime {
            micros: AtomicU64::new(0),
            fed_at: AtomicU64::new(0),
            epoch: Instant::now(),
            stale_after,
        }
    }

    fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros().min(u128::from(u64::MAX)) as u64
    }

    fn is_stale(&self, now: u64) -> bool {
        now.saturating_sub(self.fed_at.load(Ordering::Relaxed))
            > self.stale_after.as_micros() as u64
    }

    /// The average, or zero when there is none or it is stale.
    fn get(&self) -> Duration {
        if self.is_stale(self.now_micros()) {
            return Duration::ZERO;
        }
        Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }

    /// Folds one job's time in.
    fn record(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let now = self.now_micros();
        let stale = self.is_stale(now);
        let _ = self
            .micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 || stale {
                    sample
                } else {
                    (old * 3 + sample) / 4
                })
            });
        self.fed_at.store(now, Ordering::Relaxed);
    }
}

/// The text of a panic, when it was a string.
pub(crate) fn panic_message(join_error: tokio::task::JoinError) -> String {
    let payload = join_error.into_panic();
    payload_text(payload.as_ref())
}

/// The text of a panic payload, when it was a string.
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_gets_the_idle_cores_and_one_at_full_load() {
        let four = NonZeroUsize::new(4).unwrap();
        let cores = Arc::new(IdleCores::new(four, four));
        let n = |lease: &CoreLease| lease.threads.get();
        // Alone: every core.
        let first = cores.lease();
        assert_eq!(n(&first), 4);
        // Every core held: one each, never zero.
        let second = cores.lease();
        let third = cores.lease();
        assert_eq!((n(&second), n(&third)), (1, 1));
        drop(first);
        // Two held by the others: the two idle ones.
        let fourth = cores.lease();
        assert_eq!(n(&fourth), 2);
        drop((second, third, fourth));
        assert_eq!(n(&cores.lease()), 4);
        // Load rising from idle: the first job takes every core, each one after it one.
        let busy: Vec<_> = (0..4).map(|_| cores.lease()).collect();
        assert_eq!(busy.iter().map(n).collect::<Vec<_>>(), [4, 1, 1, 1]);
    }

    #[test]
    fn job_threads_caps_what_one_job_takes() {
        let capped = Arc::new(IdleCores::new(
            NonZeroUsize::new(4).unwrap(),
            NonZeroUsize::new(2).unwrap(),
        ));
        let n = |lease: &CoreLease| lease.threads.get();
        let leases: Vec<_> = (0..4).map(|_| capped.lease()).collect();
        assert_eq!(leases.iter().map(n).collect::<Vec<_>>(), [2, 2, 1, 1]);
        drop(leases);
        // One thread per job: lending off.
        let serial = Arc::new(IdleCores::new(
            NonZeroUsize::new(4).unwrap(),
            NonZeroUsize::MIN,
        ));
        assert_eq!(n(&serial.lease()), 1);
    }

    #[test]
    fn the_recent_job_time_averages_and_forgets_itself_when_stale() {
        let recent = RecentJobTime::new(Duration::from_millis(500));
        assert_eq!(recent.get(), Duration::ZERO);
        recent.record(Duration::from_millis(400));
        assert_eq!(recent.get(), Duration::from_millis(400));
        recent.record(Duration::from_millis(800));
        assert_eq!(recent.get(), Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(600));
        // A pause longer than the queue timeout: the old figure no longer decides anything...
        assert_eq!(recent.get(), Duration::ZERO);
        // ...and the next job's time replaces it rather than being diluted by it.
        recent.record(Duration::from_millis(100));
        assert_eq!(recent.get(), Duration::from_millis(100));
    }
}
