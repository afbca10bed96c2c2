//! The process's memory: what the machine or container allows (the default `--memory-budget`
//! comes from it), and handing freed memory back to the system.
//!
//! glibc keeps memory freed by its per-thread arenas for reuse; after a burst of large jobs the
//! process would otherwise sit at its peak RSS (the load test saw 559 MB held against a 43 MB
//! baseline). `malloc_trim(0)` returns the free pages; it runs when the last running job ends, and
//! when a large amount of the memory budget was returned (uploads and answers that went away).
#![allow(unsafe_code)]

use std::time::Duration;

use crate::budget::Budget;

/// Returns free heap pages to the OS (glibc only; elsewhere a no-op).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it only walks the
    // allocator's own free lists under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes returned to the budget after which free memory is handed back to the system.
const TRIM_AFTER_BYTES: u64 = 32 * 1024 * 1024;

/// How often the budget is looked at for memory to hand back.
const TRIM_EVERY: Duration = Duration::from_millis(500);

/// Ticks the budget must stay empty, after some activity, before the quiet trim.
const QUIET_TICKS: u32 = 4;

/// Hands freed memory back to the system whenever more than [`TRIM_AFTER_BYTES`] of the budget
/// were returned since the last time, and once more when the server goes quiet (nothing taken
/// from the budget for [`QUIET_TICKS`] ticks after something was): by then the connections of a
/// finished burst have closed too, and their buffers (outside the budget) go back as well.
/// Runs until the runtime stops.
pub(crate) fn spawn_trimmer(budget: Budget) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Ticks the budget has been empty since it last held something; None once trimmed.
        let mut quiet: Option<u32> = None;
        loop {
            every.tick().await;
            let freed = budget.take_freed();
            if budget.taken() > 0 || freed > 0 {
                quiet = Some(0);
            } else if let Some(ticks) = quiet.as_mut() {
                *ticks += 1;
            }
            let gone_quiet = quiet.is_some_and(|ticks| ticks >= QUIET_TICKS);
            if freed > TRIM_AFTER_BYTES || gone_quiet {
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
                if gone_quiet {
                    quiet = None;
                }
            }
        }
    })
}

/// The memory this process may use: the smallest of the cgroup's limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) and the machine's `MemTotal`; `None` when none can be read.
pub fn memory_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .into_iter()
    .filter_map(read)
    // "max" (v2) and the v1 "unlimited" value (about 2^63) are no limit.
    .filter_map(|text| text.trim().parse::<u64>().ok())
    .filter(|&bytes| bytes < 1 << 60);
    let machine = read("/proc/meminfo").and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    cgroup.chain(machine).min()
}
