//! Ingest counters, in one place. Each is a plain atomic so the hot path pays
//! one relaxed increment; the binary exposes them (summary, `/metrics`).
//! Gauges are set by the poll loop once per loop turn, not per record.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::statistics::Statistics;

use crate::record::{LogRecord, ParseIssue};

/// The record counters of one source topic (or backfill input).
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Messages read from the source (Kafka messages or input lines).
    pub records_consumed: AtomicU64,
    /// Payload bytes read from the source.
    pub bytes_consumed: AtomicU64,
    /// Records that parsed with no issue.
    pub records_parsed: AtomicU64,
    /// Records with a parse issue, by issue (index = position in
    /// [`ParseIssue::ALL`]): archived with the marker, or dead-lettered.
    pub parse_issues: [AtomicU64; ParseIssue::ALL.len()],
    /// Unparseable messages sent to the dead-letter topic (strict mode), by
    /// issue; a subset of `parse_issues`.
    pub dead_lettered: [AtomicU64; ParseIssue::ALL.len()],
    /// Records made durable (their segment was written).
    pub records_archived: AtomicU64,
}

impl TopicCounters {
    pub fn count_parsed(&self, rec: &LogRecord, payload_len: usize) {
        self.records_consumed.fetch_add(1, Ordering::Relaxed);
        self.bytes_consumed
            .fetch_add(payload_len as u64, Ordering::Relaxed);
        match rec.parse_issue {
            None => self.records_parsed.fetch_add(1, Ordering::Relaxed),
            Some(issue) => self.parse_issues[issue_index(issue)].fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn count_dead_letter(&self, issue: ParseIssue) {
        self.dead_lettered[issue_index(issue)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of the compaction ingest runs by itself
/// (`archive.compaction.in_ingest`).
#[derive(Debug, Default)]
pub struct CompactionCounters {
    /// Runs that ended, with or without anything to merge.
    pub runs: AtomicU64,
    /// Runs that failed (logged; ingest goes on, the next run retries).
    pub errors: AtomicU64,
    /// Runs skipped because another compactor was working on the archive.
    pub busy: AtomicU64,
    /// Small files merged away.
    pub files_merged: AtomicU64,
    /// Bytes of the small files merged away.
    pub bytes_merged: AtomicU64,
    /// Merged files written.
    pub files_written: AtomicU64,
    /// Bytes of the merged files written.
    pub bytes_written: AtomicU64,
    /// Gauge: 1 while a run is in progress.
    pub running: AtomicU64,
}

/// Counters of one ingest process.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Record counters per source topic, in the order first seen. Sources
    /// register their topics at start, so each has series from the first
    /// scrape; a source caches its entries, so the lock is not on the hot path.
    topics: Mutex<Vec<(Arc<str>, Arc<TopicCounters>)>>,
    /// Parquet files published.
    pub files_written: AtomicU64,
    /// Parquet bytes published.
    pub bytes_written: AtomicU64,
    /// Segments whose offsets were committed.
    pub segments_committed: AtomicU64,
    /// Sink errors that were retried.
    pub sink_retries: AtomicU64,
    /// Sink errors that were not retried (the run stops).
    pub sink_failures: AtomicU64,
    /// True while the sink's last attempt failed and a retry is pending.
    pub sink_failing: AtomicBool,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// Times consumption was paused because the writer queue was full.
    pub backpressure_pauses: AtomicU64,
    /// Errors returned by the consumer's poll.
    pub consumer_errors: AtomicU64,
    /// Time the sink took to make a segment durable (retries included).
    pub segment_write_seconds: Histogram,
    /// Time from asking for an offset commit to the broker's answer.
    pub commit_seconds: Histogram,
    /// Gauge: jobs in the writer queue or being written.
    pub writer_queue_depth: AtomicU64,
    /// Gauge: closed segments waiting for room in the writer queue.
    pub pending_segments: AtomicU64,
    /// Gauge: open segments (one per source partition with buffered records;
    /// each becomes a set of archive files when it closes).
    pub open_segments: AtomicU64,
    /// Gauge: bytes buffered in open segments.
    pub buffered_bytes: AtomicU64,
    /// Gauge: records buffered in open segments.
    pub buffered_records: AtomicU64,
    /// Gauge: log templates held by the template miner.
    pub templates: AtomicU64,
    /// The Kafka client's view: brokers, assignment, lag.
    pub kafka: Arc<KafkaClientMetrics>,
    /// Ingest's own compaction of closed partitions.
    pub compaction: CompactionCounters,
}

impl IngestMetrics {
    /// The counters of `topic`, registered on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = topics.iter().find(|(t, _)| &**t == topic) {
            return c.clone();
        }
        let c = Arc::new(TopicCounters::default());
        topics.push((topic.into(), c.clone()));
        c
    }

    /// Every topic's counters, in the order first seen.
    pub fn topics(&self) -> Vec<(Arc<str>, Arc<TopicCounters>)> {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sum over topics of one counter.
    pub fn total(&self, f: impl Fn(&TopicCounters) -> u64) -> u64 {
        self.topics().iter().map(|(_, c)| f(c)).sum()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn set(gauge: &AtomicU64, value: usize) {
        gauge.store(value as u64, Ordering::Relaxed);
    }
}

fn issue_index(issue: ParseIssue) -> usize {
    ParseIssue::ALL
        .iter()
        .position(|i| *i == issue)
        .unwrap_or_default()
}

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram of atomics with the fixed [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// (sum in seconds, count, per-bucket (upper bound, count)), the last
    /// bucket's bound being `+Inf`: what the exposition encoder takes (it
    /// accumulates the buckets itself).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
            .collect();
        // The count from the buckets read, so that the +Inf bucket and the
        // count agree even while observations land.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, buckets)
    }
}

/// What librdkafka's statistics (`statistics.interval.ms`) say about one
/// client, kept for `/metrics` and `/readyz`.
#[derive(Debug, Default)]
pub struct KafkaClientMetrics {
    state: Mutex<KafkaClientState>,
    /// Errors librdkafka reported to the client context, end-of-partition
    /// events excluded.
    pub client_errors: AtomicU64,
}

/// One statistics report, reduced to what operations need.
#[derive(Debug, Clone, Default)]
pub struct KafkaClientState {
    /// When the last report arrived.
    pub updated: Option<Instant>,
    /// Brokers (not bootstrap entries) with a connection up.
    pub brokers_up: usize,
    /// Partitions assigned to this consumer-group member.
    pub assigned_partitions: i64,
    /// The consumer group handler's state (`up` when joined).
    pub group_state: String,
    /// Lag of each assigned partition: high watermark minus the committed
    /// offset, as librdkafka computes it (absent while unknown).
    pub lag: BTreeMap<(String, i32), i64>,
}

impl KafkaClientMetrics {
    /// Takes one statistics report.
    pub fn observe(&self, stats: &Statistics) {
        let brokers_up = stats
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.state == "UP")
            .count();
        let (assigned, group_state) = match &stats.cgrp {
            Some(g) => (i64::from(g.assignment_size), g.state.clone()),
            None => (0, String::new()),
        };
        let mut lag = BTreeMap::new();
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                // -1 is librdkafka's internal unassigned partition; a lag of
                // -1 means "not known yet".
                if *p >= 0 && part.fetch_state != "none" && part.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *p), part.consumer_lag);
                }
            }
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = KafkaClientState {
            updated: Some(Instant::now()),
            brokers_up,
            assigned_partitions: assigned,
            group_state,
            lag,
        };
    }

    /// The last report.
    pub fn snapshot(&self) -> KafkaClientState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
