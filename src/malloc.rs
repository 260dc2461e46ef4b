//! glibc malloc settings, applied at start before any thread is spawned.
//!
//! Ingest allocates each batch on a parse thread and frees it on the writer
//! or an encoding thread, in buffers of a few MiB. With glibc's defaults
//! every allocating thread gets its own arena that keeps what other threads
//! freed into it, and buffers above the (adaptive) mmap threshold are
//! mapped and unmapped each time, so their pages fault in again on every
//! segment. Measured on a 1M-line backfill: half the system time, about 5%
//! less wall time, and from Kafka 30 to 50 MiB less peak RSS (README,
//! performance).
//!
//! Anyone who tunes malloc through the environment (`MALLOC_ARENA_MAX`,
//! `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`, ...) keeps glibc's handling
//! of it: then nothing is changed here.

/// At most this many arenas: one per thread that allocates much costs
/// memory, a single one about 5% of the speed (README, performance).
const ARENA_MAX: i32 = 2;
/// Allocations up to this size come from the heap and are reused, rather
/// than mapped afresh (a segment's column buffers are a few MiB each).
const MMAP_THRESHOLD: i32 = 64 << 20;
/// Free memory at the top of a heap is returned to the system above this.
const TRIM_THRESHOLD: i32 = 128 << 20;

/// Whether the environment already tunes glibc malloc.
fn tuned_by_environment<K: AsRef<std::ffi::OsStr>>(mut keys: impl Iterator<Item = K>) -> bool {
    keys.any(|k| {
        k.as_ref()
            .to_str()
            .is_some_and(|k| k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES")
    })
}

/// Applies the settings above, unless the environment tunes malloc. Call
/// first thing in `main`, before any other thread exists.
pub fn tune() {
    if tuned_by_environment(std::env::vars_os().map(|(k, _)| k)) {
        return;
    }
    apply();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn apply() {
    for (param, value) in [
        (libc::M_ARENA_MAX, ARENA_MAX),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ] {
        // SAFETY: mallopt only sets a parameter of glibc's allocator; it is
        // called from the main thread before any other thread is started,
        // with parameters and values the glibc manual documents.
        let ok = unsafe { libc::mallopt(param, value) };
        if ok != 1 {
            tracing::debug!(param, value, "mallopt refused a setting");
        }
    }
}

/// Other allocators and C libraries keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() {}

#[cfg(test)]
mod tests {
    use super::tuned_by_environment;

    #[test]
    fn any_malloc_variable_or_glibc_tunables_leaves_malloc_alone() {
        assert!(!tuned_by_environment(
            ["PATH", "HOME", "LOGWARDEN_SET"].iter()
        ));
        assert!(tuned_by_environment(["PATH", "MALLOC_ARENA_MAX"].iter()));
        assert!(tuned_by_environment(["MALLOC_TRIM_THRESHOLD_"].iter()));
        assert!(tuned_by_environment(["GLIBC_TUNABLES"].iter()));
        assert!(!tuned_by_environment(
            ["GLIBC_TUNABLES_X", "XMALLOC_"].iter()
        ));
    }
}
