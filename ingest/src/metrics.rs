//! Ingest counters, in one place. Each is a plain atomic so the hot path pays
//! one relaxed increment; the binary exposes them (summary, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{LogRecord, ParseIssue};

/// Counters of one ingest process.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Messages read from the source (Kafka messages or input lines).
    pub records_consumed: AtomicU64,
    /// Payload bytes read from the source.
    pub bytes_consumed: AtomicU64,
    /// Records that parsed with no issue.
    pub records_parsed: AtomicU64,
    /// Records archived with a parse-error marker, by issue
    /// (index = position in [`ParseIssue::ALL`]).
    pub parse_issues: [AtomicU64; ParseIssue::ALL.len()],
    /// Unparseable messages sent to the dead-letter topic (strict mode).
    pub dead_lettered: AtomicU64,
    /// Records made durable (their segment was written).
    pub records_archived: AtomicU64,
    /// Parquet files published.
    pub files_written: AtomicU64,
    /// Parquet bytes published.
    pub bytes_written: AtomicU64,
    /// Segments whose offsets were committed.
    pub segments_committed: AtomicU64,
    /// Sink errors that were retried.
    pub sink_retries: AtomicU64,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// Times consumption was paused because the writer queue was full.
    pub backpressure_pauses: AtomicU64,
}

impl IngestMetrics {
    pub fn count_parsed(&self, rec: &LogRecord, payload_len: usize) {
        self.records_consumed.fetch_add(1, Ordering::Relaxed);
        self.bytes_consumed
            .fetch_add(payload_len as u64, Ordering::Relaxed);
        match rec.parse_issue {
            None => self.records_parsed.fetch_add(1, Ordering::Relaxed),
            Some(issue) => self.parse_issues[issue_index(issue)].fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn issue_index(issue: ParseIssue) -> usize {
    ParseIssue::ALL
        .iter()
        .position(|i| *i == issue)
        .unwrap_or_default()
}
