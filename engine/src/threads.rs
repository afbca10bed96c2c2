//! A job's thread allowance ([`crate::Limits::threads`]) for the one step that splits through
//! rayon: the resize. `fast_image_resize` cuts its passes into stripes of output rows (or columns)
//! and hands them to rayon: inside a pool it uses that pool's threads, outside any pool rayon's
//! global one. Every output pixel is computed by the same code from the same coefficients, so the
//! result does not depend on the number of stripes (`resize.rs` tests it).
//!
//! The engine owns one pool per allowance, built on first use and kept for the process (a few idle
//! threads, never one per job), and runs a job's resize in the pool of its allowance; the job's own
//! thread waits meanwhile, so the job keeps exactly its allowance busy. A job allowed one thread
//! resizes on its own thread: rayon's global pool is set to one thread before the first resize,
//! so the resizer never reaches for cores the job was not given. (Nothing else in the engine uses
//! rayon. Were the global pool already built by an embedding program, a one-thread resize would
//! spread over it: the same pixels, only the share of cores differs.)

use std::num::NonZeroUsize;
use std::sync::{Once, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The largest pool the engine builds; a larger allowance uses it.
const MAX_THREADS: usize = 64;

/// Pool `n - 1` has `n` threads; `None` when it could not be built (the work then stays on the
/// caller's thread).
static POOLS: [OnceLock<Option<ThreadPool>>; MAX_THREADS] =
    [const { OnceLock::new() }; MAX_THREADS];

/// Sets rayon's global pool to one thread, once.
static ONE_GLOBAL_THREAD: Once = Once::new();

/// Runs `work` (which may use rayon) on `threads` threads: in the engine's pool of that size, or
/// on the caller's thread alone for one.
pub(crate) fn run<R: Send>(threads: NonZeroUsize, work: impl FnOnce() -> R + Send) -> R {
    ONE_GLOBAL_THREAD.call_once(|| {
        // Fails only when the global pool already exists (see the module comment).
        let _ = ThreadPoolBuilder::new().num_threads(1).build_global();
    });
    let n = threads.get().min(MAX_THREADS);
    if n > 1 {
        let pool = POOLS[n - 1].get_or_init(|| {
            ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("imgbind-x{n}-{i}"))
                .build()
                .ok()
        });
        if let Some(pool) = pool {
            return pool.install(work);
        }
    }
    work()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_sees_exactly_its_allowance() {
        let seen = |n: usize| run(NonZeroUsize::new(n).unwrap(), rayon::current_num_threads);
        assert_eq!(seen(1), 1);
        assert_eq!(seen(2), 2);
        assert_eq!(seen(3), 3);
        assert_eq!(seen(1), 1);
        assert_eq!(seen(1000), MAX_THREADS);
    }
}
