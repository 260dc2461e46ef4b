//! The compaction ingest runs by itself (`archive.compaction.in_ingest`),
//! so that the archive holds no small files without an outside job.
//!
//! From Kafka, a [`BackgroundCompactor`] thread runs [`compact_scoped`]
//! every `interval_secs`, apart from the poll loop and the writer: offsets
//! keep being committed while it works, and it takes the archive lock only
//! for each partition's swap (local) or works beside the writer (S3), as
//! `logwarden compact` does. It merges only what any compaction run may
//! merge (closed partitions, settled files, nothing an in-flight record
//! lists), so a replay never meets a merged file. A failed run is logged and
//! counted, never fatal: the next one retries.
//!
//! After a backfill ran to its end, [`compact_backfill`] merges the files it
//! wrote before ingest exits: they are final (its in-flight record is
//! settled), so their partitions are closed as far as it is concerned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use logwarden_ingest::metrics::{CompactionCounters, IngestMetrics};

use crate::compact::{compact_scoped, CompactError, CompactReport, RunScope};
use crate::split::ArchiveLayout;
use crate::store::Location;

/// Runs one compaction and records its outcome in `counters` and the log.
/// `None` when it failed or another compactor was busy.
pub fn run_counted(
    location: &Location,
    layout: &ArchiveLayout,
    scope: RunScope<'_>,
    counters: &CompactionCounters,
) -> Option<CompactReport> {
    counters.running.store(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = compact_scoped(location, layout, SystemTime::now(), scope);
    counters.running.store(0, Ordering::Relaxed);
    match result {
        Ok(r) => {
            counters.runs.fetch_add(1, Ordering::Relaxed);
            let add = |c: &std::sync::atomic::AtomicU64, v: u64| c.fetch_add(v, Ordering::Relaxed);
            add(&counters.files_merged, r.files_in as u64);
            add(&counters.bytes_merged, r.bytes_in);
            add(&counters.files_written, r.files_out as u64);
            add(&counters.bytes_written, r.bytes_out);
            if r.files_in > 0 || r.recovered > 0 || r.stopped {
                tracing::info!(
                    files_in = r.files_in,
                    files_out = r.files_out,
                    bytes_in = r.bytes_in,
                    bytes_out = r.bytes_out,
                    partitions = r.partitions,
                    skipped = r.skipped,
                    recovered = r.recovered,
                    stopped = r.stopped,
                    secs = started.elapsed().as_secs_f64(),
                    "compaction run done"
                );
            }
            Some(r)
        }
        Err(CompactError::Busy) => {
            counters.busy.fetch_add(1, Ordering::Relaxed);
            tracing::info!("another compactor is working on the archive; this run is skipped");
            None
        }
        Err(e) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "compaction run failed; ingest goes on and the next run retries");
            None
        }
    }
}

/// Compacts what a backfill of source `name` (partition 0) wrote, now that
/// the whole input is durable and its in-flight record settled: its own
/// files only, which a re-run of the backfill can then replace (other small
/// files are left to ordinary runs). `stop` (the shutdown flag) ends it
/// early.
pub fn compact_backfill(
    location: &Location,
    layout: &ArchiveLayout,
    name: &str,
    metrics: &IngestMetrics,
    stop: &AtomicBool,
) -> Option<CompactReport> {
    let scope = RunScope {
        final_source: Some((name, 0)),
        stop: &[stop],
    };
    run_counted(location, layout, scope, &metrics.compaction)
}

/// The compaction thread of a Kafka ingest.
pub struct BackgroundCompactor {
    stop: Arc<AtomicBool>,
    /// Dropped to wake the thread up for its exit.
    wake: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl BackgroundCompactor {
    /// Starts the thread: a run every `layout.compaction.interval_secs`, the
    /// first one an interval after start. A run in progress stops before its
    /// next merge once `shutdown` is set or [`Self::stop`] is called.
    pub fn spawn(
        location: Location,
        layout: ArchiveLayout,
        metrics: Arc<IngestMetrics>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, wait) = mpsc::channel::<()>();
        let interval = Duration::from_secs(layout.compaction.interval_secs.max(1));
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("logwarden-compactor".into())
            .spawn(move || {
                tracing::info!(
                    interval_secs = interval.as_secs(),
                    "compaction of closed partitions runs in ingest"
                );
                // Woken only by the sender's drop (or a message): then stop.
                while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(interval) {
                    if thread_stop.load(Ordering::Relaxed) || shutdown.load(Ordering::Relaxed) {
                        break;
                    }
                    let scope = RunScope {
                        final_source: None,
                        stop: &[&thread_stop, &shutdown],
                    };
                    run_counted(&location, &layout, scope, &metrics.compaction);
                }
            })?;
        Ok(Self {
            stop,
            wake: Some(wake),
            handle: Some(handle),
        })
    }

    /// Stops the thread: a run in progress finishes the merge it is in
    /// (one group of small files), then the thread exits.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake = None;
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("the compaction thread panicked");
            }
        }
    }
}

impl Drop for BackgroundCompactor {
    fn drop(&mut self) {
        self.stop_now();
    }
}
