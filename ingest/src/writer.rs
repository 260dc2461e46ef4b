//! The writer stage: a thread that owns the [`Sink`], takes closed segments
//! from a bounded queue, retries transient failures with backoff, and reports
//! each durable segment back so its offsets can be committed.
//!
//! The queue holds at most [`WriterConfig::queue_segments`] segments. When it
//! is full the source pauses consumption instead of buffering more; the
//! Kafka source keeps polling while paused, so a slow or failing sink never
//! trips `max.poll.interval.ms`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::IngestMetrics;
use crate::options::{require, InvalidOption};
use crate::sink::{Backoff, RetryHint, Segment, Sink, SinkError, WriteStats};

/// Default for [`WriterConfig::queue_segments`].
pub const DEFAULT_QUEUE_SEGMENTS: usize = 2;
/// Default for [`WriterConfig::retry_initial_ms`].
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 200;
/// Default for [`WriterConfig::retry_max_ms`].
pub const DEFAULT_RETRY_MAX_MS: u64 = 30_000;

/// Writer-stage settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Closed segments waiting for the sink before consumption pauses.
    pub queue_segments: usize,
    /// First delay before retrying a transient sink error, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds.
    pub retry_max_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_segments: DEFAULT_QUEUE_SEGMENTS,
            retry_initial_ms: DEFAULT_RETRY_INITIAL_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
        }
    }
}

impl WriterConfig {
    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            self.queue_segments > 0,
            "ingest.writer.queue_segments",
            "must be at least 1",
        )?;
        require(
            self.retry_initial_ms > 0 && self.retry_max_ms >= self.retry_initial_ms,
            "ingest.writer.retry_initial_ms",
            "must be positive and at most ingest.writer.retry_max_ms",
        )
    }
}

/// Work for the writer thread, processed in order.
pub enum Job {
    /// Clean up after an earlier owner before the first write of a partition.
    Recover {
        topic: Arc<str>,
        partition: i32,
        replay_from: i64,
        epoch: u64,
    },
    /// Make a segment durable.
    Write { segment: Segment, epoch: u64 },
}

/// The writer's answer for one job.
#[derive(Debug)]
pub struct Ack {
    pub topic: Arc<str>,
    pub partition: i32,
    pub first_offset: i64,
    /// Offset to commit once durable; `None` for a recovery job.
    pub next_offset: Option<i64>,
    pub rows: usize,
    /// Assignment epoch the job belongs to: acks from an older assignment of
    /// the partition are not committed.
    pub epoch: u64,
    pub result: Result<WriteStats, SinkError>,
}

/// Handle to the writer thread.
pub struct Writer {
    jobs: Option<SyncSender<Job>>,
    acks: Receiver<Ack>,
    handle: Option<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
    in_flight: usize,
}

impl Writer {
    /// Starts the writer thread. `cancel` makes it stop retrying (for a
    /// forced shutdown): the job in progress then fails instead of waiting.
    pub fn spawn(
        sink: Box<dyn Sink>,
        cfg: &WriterConfig,
        metrics: Arc<IngestMetrics>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(cfg.queue_segments);
        let (acks_tx, acks_rx) = mpsc::channel::<Ack>();
        let backoff = Backoff::new(
            Duration::from_millis(cfg.retry_initial_ms),
            Duration::from_millis(cfg.retry_max_ms),
        );
        let thread_cancel = cancel.clone();
        let handle = std::thread::Builder::new()
            .name("logwarden-writer".into())
            .spawn(move || writer_loop(sink, jobs_rx, acks_tx, backoff, metrics, thread_cancel))
            .expect("spawning the writer thread");
        Self {
            jobs: Some(jobs_tx),
            acks: acks_rx,
            handle: Some(handle),
            cancel,
            in_flight: 0,
        }
    }

    /// Jobs sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// True once the writer thread has ended (it panicked, or was shut down).
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Queues a job without blocking. Gives it back when the queue is full.
    pub fn try_send(&mut self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.jobs else {
            return Err(job);
        };
        match tx.try_send(job) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => Err(job),
        }
    }

    /// Acknowledgements that have arrived, without waiting.
    pub fn try_acks(&mut self) -> Vec<Ack> {
        let mut out = Vec::new();
        loop {
            match self.acks.try_recv() {
                Ok(a) => {
                    self.in_flight -= 1;
                    out.push(a);
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return out,
            }
        }
    }

    /// Waits up to `timeout` for the next acknowledgement.
    pub fn wait_ack(&mut self, timeout: Duration) -> Option<Ack> {
        let a = self.acks.recv_timeout(timeout).ok()?;
        self.in_flight -= 1;
        Some(a)
    }

    /// Stops the writer after the queued jobs (or at once if cancelled).
    pub fn shutdown(&mut self) {
        self.jobs = None;
        if let Some(h) = self.handle.take() {
            if self.cancel.load(Ordering::Relaxed) {
                // A forced stop does not wait for a sink stuck in I/O.
                return;
            }
            let _ = h.join();
        }
    }
}

fn writer_loop(
    mut sink: Box<dyn Sink>,
    jobs: Receiver<Job>,
    acks: mpsc::Sender<Ack>,
    mut backoff: Backoff,
    metrics: Arc<IngestMetrics>,
    cancel: Arc<AtomicBool>,
) {
    while let Ok(job) = jobs.recv() {
        let ack = match job {
            Job::Recover {
                topic,
                partition,
                replay_from,
                epoch,
            } => {
                let result = with_retry(&mut backoff, &metrics, &cancel, || {
                    sink.recover(&topic, partition, replay_from)
                        .map(|()| WriteStats::default())
                });
                Ack {
                    topic,
                    partition,
                    first_offset: replay_from,
                    next_offset: None,
                    rows: 0,
                    epoch,
                    result,
                }
            }
            Job::Write { mut segment, epoch } => {
                let started = Instant::now();
                let result = match segment.join() {
                    Ok(()) => with_retry(&mut backoff, &metrics, &cancel, || sink.write(&segment)),
                    // Pieces of one segment share the log schema and hold
                    // far less than 2 GiB of text: this is a bug.
                    Err(e) => Err(SinkError {
                        context: "joining a segment's batches".into(),
                        hint: RetryHint::Fatal,
                        kind: "encode",
                        source: Box::new(e),
                    }),
                };
                if let Ok(stats) = &result {
                    metrics.segment_write_seconds.observe(started.elapsed());
                    metrics
                        .topic(&segment.topic)
                        .records_archived
                        .fetch_add(stats.rows as u64, Ordering::Relaxed);
                    metrics
                        .files_written
                        .fetch_add(stats.files as u64, Ordering::Relaxed);
                    metrics
                        .bytes_written
                        .fetch_add(stats.bytes, Ordering::Relaxed);
                }
                Ack {
                    topic: segment.topic.clone(),
                    partition: segment.partition,
                    first_offset: segment.first_offset,
                    next_offset: Some(segment.next_offset),
                    rows: segment.num_rows(),
                    epoch,
                    result,
                }
            }
        };
        if acks.send(ack).is_err() {
            break;
        }
    }
    if let Err(e) = sink.close() {
        tracing::error!(error = %e, "closing the sink failed");
    }
}

fn with_retry(
    backoff: &mut Backoff,
    metrics: &IngestMetrics,
    cancel: &AtomicBool,
    mut op: impl FnMut() -> Result<WriteStats, SinkError>,
) -> Result<WriteStats, SinkError> {
    loop {
        match op() {
            Ok(s) => {
                backoff.reset();
                metrics.sink_failing.store(false, Ordering::Relaxed);
                return Ok(s);
            }
            Err(e) if e.retryable() && !cancel.load(Ordering::Relaxed) => {
                let delay = backoff.next_delay();
                metrics.sink_retries.fetch_add(1, Ordering::Relaxed);
                metrics.sink_failing.store(true, Ordering::Relaxed);
                tracing::warn!(error = %e, kind = e.kind, retry_in_ms = delay.as_millis() as u64, "sink write failed, retrying");
                sleep_unless_cancelled(delay, cancel);
            }
            Err(e) => {
                metrics.sink_failures.fetch_add(1, Ordering::Relaxed);
                metrics.sink_failing.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

fn sleep_unless_cancelled(delay: Duration, cancel: &AtomicBool) {
    const STEP: Duration = Duration::from_millis(50);
    let end = Instant::now() + delay;
    while !cancel.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep(STEP.min(end - now));
    }
}
