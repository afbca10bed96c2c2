//! The process-wide memory budget (`--memory-budget`): the bytes held for requests, across all
//! connections — request bodies as they are received, each running job's estimated working memory
//! (`imgbind_engine::memory_needed`), and each answer until its last byte is written.
//!
//! The budget has two shares that never eat into each other, so a queue of large jobs cannot
//! starve small uploads and a crowd of uploads cannot starve the jobs they wait for:
//! - Request bodies take their bytes as they arrive, never waiting, and together at most
//!   `--upload-budget` of it. A chunk that does not fit fails its request with 9522 (503,
//!   `Retry-After`); the rest of that body is read and discarded, not held.
//! - Jobs take the rest. A job waits in the queue, at most the queue timeout, until its estimate
//!   fits (`jobs.rs`); an estimate larger than the jobs' whole share can never fit and is answered
//!   9413 at once.
//! - When a job ends, its reservation shrinks to its answer's bytes, which stay taken until the
//!   answer is written or abandoned (a client that stops reading is cut off by the send timeout).
//!
//! So a slow reader or a slow uploader holds at most what it was granted, and new work waits or is
//! refused instead of growing the process. Freed memory is handed back to the system
//! (`memory.rs`) once a large amount was released.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// The budget's bookkeeping. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    upload_limit: u64,
    state: Mutex<Taken>,
    /// Woken whenever bytes are returned.
    returned: Notify,
    /// Bytes returned since memory was last handed back to the system.
    freed_since_trim: AtomicU64,
    /// `imgbind_memory_budget_used_bytes`.
    gauge: Gauge,
}

#[derive(Debug, Default)]
struct Taken {
    /// Everything taken.
    all: u64,
    /// Of which request bodies.
    uploads: u64,
}

/// What a reservation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upload,
    Work,
}

/// Bytes taken from the budget, returned when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    budget: Budget,
    kind: Kind,
    bytes: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes, of which request bodies may take `upload_limit`.
    pub(crate) fn new(limit: u64, upload_limit: u64, gauge: Gauge) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                upload_limit: upload_limit.min(limit),
                state: Mutex::new(Taken::default()),
                returned: Notify::new(),
                freed_since_trim: AtomicU64::new(0),
                gauge,
            }),
        }
    }

    /// The jobs' share of the budget (all of it but the uploads' share), in bytes: the most a
    /// job's estimate may be.
    pub(crate) fn work_limit(&self) -> u64 {
        self.inner.limit - self.inner.upload_limit
    }

    /// An empty reservation for a request body, grown with [`Reservation::try_grow`].
    pub(crate) fn upload(&self) -> Reservation {
        self.reservation(Kind::Upload, 0)
    }

    /// Takes `bytes` for a job if they fit now.
    pub(crate) fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        self.try_take(Kind::Work, bytes)
            .then(|| self.reservation(Kind::Work, bytes))
    }

    /// Takes `bytes` for a job, waiting until they fit or `until` passes (`None` then).
    pub(crate) async fn take(&self, bytes: u64, until: Instant) -> Option<Reservation> {
        loop {
            let returned = self.inner.returned.notified();
            if let Some(reservation) = self.try_reserve(bytes) {
                return Some(reservation);
            }
            if tokio::time::timeout_at(until.into(), returned)
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    fn reservation(&self, kind: Kind, bytes: u64) -> Reservation {
        Reservation {
            held: Arc::new(Held {
                budget: self.clone(),
                kind,
                bytes: AtomicU64::new(bytes),
            }),
        }
    }

    fn try_take(&self, kind: Kind, bytes: u64) -> bool {
        let mut taken = lock(&self.inner.state);
        let fits = match kind {
            Kind::Upload => taken.uploads + bytes <= self.inner.upload_limit,
            Kind::Work => taken.all - taken.uploads + bytes <= self.work_limit(),
        };
        if !fits {
            return false;
        }
        taken.all += bytes;
        if kind == Kind::Upload {
            taken.uploads += bytes;
        }
        self.inner.gauge.set(gauge_value(taken.all));
        true
    }

    fn give_back(&self, kind: Kind, bytes: u64) {
        if bytes == 0 {
            return;
        }
        {
            let mut taken = lock(&self.inner.state);
            taken.all -= bytes;
            if kind == Kind::Upload {
                taken.uploads -= bytes;
            }
            self.inner.gauge.set(gauge_value(taken.all));
        }
        self.inner
            .freed_since_trim
            .fetch_add(bytes, Ordering::Relaxed);
        self.inner.returned.notify_waiters();
    }

    /// Bytes taken now.
    pub(crate) fn taken(&self) -> u64 {
        lock(&self.inner.state).all
    }

    /// Bytes returned since the last call (for handing memory back to the system).
    pub(crate) fn take_freed(&self) -> u64 {
        self.inner.freed_since_trim.swap(0, Ordering::Relaxed)
    }
}

impl Reservation {
    /// Takes `bytes` more for this request body, unless that passes the budget or the uploads'
    /// share of it.
    pub(crate) fn try_grow(&self, bytes: u64) -> bool {
        let held = &self.held;
        if !held.budget.try_take(held.kind, bytes) {
            return false;
        }
        held.bytes.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// Keeps only `bytes` of this reservation (the answer of a finished job), returning the rest.
    pub(crate) fn shrink_to(&self, bytes: u64) {
        let held = &self.held;
        let mut current = held.bytes.load(Ordering::Acquire);
        loop {
            if current <= bytes {
                return;
            }
            match held
                .bytes
                .compare_exchange(current, bytes, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        held.budget.give_back(held.kind, current - bytes);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.kind, *self.bytes.get_mut());
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn uploads_and_work_each_have_their_share_and_give_it_back() {
        let budget = Budget::new(100, 40, Gauge::default());
        assert_eq!(budget.work_limit(), 60);
        let soon = || Instant::now() + Duration::from_millis(50);
        // Jobs fill their share; uploads still get theirs.
        let work = budget.take(60, soon()).await.expect("the jobs' share");
        assert!(
            budget.take(1, soon()).await.is_none(),
            "the jobs' share is full"
        );
        let upload = budget.upload();
        assert!(upload.try_grow(30), "uploads are not starved by jobs");
        assert!(!upload.try_grow(11), "past the uploads' share");
        assert!(upload.try_grow(10));
        assert_eq!(budget.taken(), 100);
        // A job's reservation shrinks to its answer; a waiting job is woken when it fits.
        let waiting = budget.take(50, Instant::now() + Duration::from_secs(5));
        let shrink = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            work.shrink_to(10);
        };
        let (got, ()) = tokio::join!(waiting, shrink);
        let got = got.expect("woken when the job's reservation shrank");
        assert_eq!(budget.taken(), 100);
        drop((work, got, upload));
        assert_eq!(budget.taken(), 0);
        assert_eq!(budget.take_freed(), 50 + 10 + 50 + 40);
    }
}
