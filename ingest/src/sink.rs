//! The boundary between ingest and storage: a [`Sink`] makes [`Segment`]s
//! durable; ingest commits a segment's offsets only after [`Sink::write`]
//! returned `Ok`.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef};
use arrow::compute::concat;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// A contiguous range of offsets `[first_offset, next_offset)` of one source
/// partition, parsed into Arrow batches. Every offset in the range is in the
/// batches: a segment is the unit of durability and of offset commits.
#[derive(Debug, Clone)]
pub struct Segment {
    pub topic: Arc<str>,
    pub partition: i32,
    pub first_offset: i64,
    /// One past the last offset in the segment: the offset to commit.
    pub next_offset: i64,
    /// The records, in offset order, in batches of the log schema: the
    /// pieces they were parsed in until the writer joins them
    /// ([`Segment::join`]), off the thread that reads the source.
    pub batches: Vec<RecordBatch>,
}

impl Segment {
    /// The number of records.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Joins the batches into one, column by column, each column's pieces
    /// released once it is copied: the copy costs about one column's worth
    /// of memory at a time, not the whole segment's.
    pub fn join(&mut self) -> Result<(), ArrowError> {
        if self.batches.len() <= 1 {
            return Ok(());
        }
        let schema = self.batches[0].schema();
        let mut columns: Vec<Vec<Option<ArrayRef>>> = std::mem::take(&mut self.batches)
            .into_iter()
            .map(|b| b.columns().iter().cloned().map(Some).collect())
            .collect();
        let mut out = Vec::with_capacity(schema.fields().len());
        for i in 0..schema.fields().len() {
            let parts: Vec<ArrayRef> = columns.iter_mut().filter_map(|c| c[i].take()).collect();
            let refs: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
            out.push(concat(&refs)?);
        }
        self.batches = vec![RecordBatch::try_new(schema, out)?];
        Ok(())
    }

    /// The records as one batch (a copy; `None` when there are no
    /// batches). For checks and tools.
    pub fn to_batch(&self) -> Option<RecordBatch> {
        let first = self.batches.first()?;
        Some(
            arrow::compute::concat_batches(&first.schema(), &self.batches)
                .expect("a segment's batches share the log schema"),
        )
    }
}

/// What a sink wrote for one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub files: usize,
    pub rows: usize,
    pub bytes: u64,
}

/// Whether retrying a failed operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Transient: storage unavailable, disk full, timeouts.
    Retry,
    /// Retrying the same input fails the same way.
    Fatal,
}

/// A sink failure.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct SinkError {
    pub context: String,
    pub hint: RetryHint,
    /// Short, low-cardinality label for metrics (`disk_full`, `io`, `encode`).
    pub kind: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl SinkError {
    pub fn retryable(&self) -> bool {
        self.hint == RetryHint::Retry
    }
}

/// Where segments become durable.
pub trait Sink: Send {
    /// Makes `segment` durable. On `Ok` its rows survive a crash of this
    /// process and of the machine; on `Err` nothing of it may be visible to
    /// readers under a final name.
    ///
    /// Writing the same segment again (same topic, partition and first
    /// offset) replaces what an earlier attempt wrote, never adds to it.
    fn write(&mut self, segment: &Segment) -> Result<WriteStats, SinkError>;

    /// Called when a partition is (re)assigned, before its first segment is
    /// written, with the offset consumption resumes from. The sink removes
    /// whatever an earlier owner wrote at or after that offset without
    /// committing it, so the replay does not duplicate rows.
    fn recover(&mut self, topic: &str, partition: i32, replay_from: i64) -> Result<(), SinkError> {
        let _ = (topic, partition, replay_from);
        Ok(())
    }

    /// Called once at shutdown after the last write.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Backoff between retries of a retryable sink error: doubling from
/// `initial` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        assert_eq!(b.next_delay(), Duration::from_millis(350));
        assert_eq!(b.next_delay(), Duration::from_millis(350));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
