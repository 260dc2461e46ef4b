//! Segments: per source partition, records are appended to an Arrow builder
//! until the segment closes on rows, bytes or age; a closed segment covers a
//! contiguous offset range and is handed to the writer as one [`Segment`].
//!
//! One open segment per source partition (not per archive partition) is what
//! makes the commit protocol exact: when a segment is durable, every offset
//! below its `next_offset` is durable and no durable file holds an offset at
//! or above it, so committing `next_offset` can neither lose nor duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::record::{LogRecord, Provenance};
use crate::schema::LogBatchBuilder;
use crate::sink::Segment;

/// Default for [`SegmentConfig::max_rows`].
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;
/// Default for [`SegmentConfig::max_bytes`]: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// Default for [`SegmentConfig::max_age_secs`].
pub const DEFAULT_MAX_AGE_SECS: f64 = 60.0;
/// Default for [`SegmentConfig::max_buffered_bytes`]: 256 MiB.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 << 20;

/// When a segment (and so a set of archive files) closes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// A segment closes when it holds this many records.
    pub max_rows: usize,
    /// A segment closes when its records take about this many bytes in memory.
    pub max_bytes: usize,
    /// A segment closes this many seconds after its first record arrived.
    pub max_age_secs: f64,
    /// Across all open segments: above this many buffered bytes the largest
    /// segment closes early.
    pub max_buffered_bytes: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}

impl SegmentConfig {
    /// Checks the values, naming the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_rows == 0 {
            return Err("segment.max_rows must be at least 1".into());
        }
        if self.max_bytes == 0 {
            return Err("segment.max_bytes must be at least 1".into());
        }
        if !(self.max_age_secs.is_finite() && self.max_age_secs > 0.0) {
            return Err("segment.max_age_secs must be a positive number of seconds".into());
        }
        if self.max_buffered_bytes < self.max_bytes {
            return Err("segment.max_buffered_bytes must be at least segment.max_bytes".into());
        }
        Ok(())
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs_f64(self.max_age_secs)
    }
}

struct OpenSegment {
    builder: LogBatchBuilder,
    first_offset: i64,
    next_offset: i64,
    opened: Instant,
}

type PartitionKey = (Arc<str>, i32);

/// The open segments of all source partitions.
pub struct Segmenter {
    cfg: SegmentConfig,
    open: HashMap<PartitionKey, OpenSegment>,
    /// Builders of closed segments, kept to reuse their allocations.
    spare: Vec<LogBatchBuilder>,
    buffered_bytes: usize,
}

impl Segmenter {
    pub fn new(cfg: SegmentConfig) -> Self {
        Self {
            cfg,
            open: HashMap::new(),
            spare: Vec::new(),
            buffered_bytes: 0,
        }
    }

    /// Bytes buffered across all open segments.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Open segments (source partitions with buffered records).
    pub fn open_segments(&self) -> usize {
        self.open.len()
    }

    /// Records buffered across all open segments.
    pub fn buffered_rows(&self) -> usize {
        self.open.values().map(|s| s.builder.rows()).sum()
    }

    /// Appends a record. Returns the segments that closed because of it: its
    /// own on rows or bytes, or the largest one when the global byte cap is
    /// exceeded. `now` is read only when the record opens a segment.
    pub fn append(
        &mut self,
        prov: &Provenance,
        rec: &LogRecord,
        ingest_time_us: i64,
        now: impl FnOnce() -> Instant,
    ) -> Vec<Segment> {
        let key = (prov.topic.clone(), prov.partition);
        let seg = self.open.entry(key.clone()).or_insert_with(|| OpenSegment {
            builder: self.spare.pop().unwrap_or_default(),
            first_offset: prov.offset,
            next_offset: prov.offset,
            opened: now(),
        });
        let before = seg.builder.bytes();
        seg.builder.append(rec, prov, ingest_time_us);
        seg.next_offset = prov.offset + 1;
        self.buffered_bytes += seg.builder.bytes() - before;
        let full =
            seg.builder.rows() >= self.cfg.max_rows || seg.builder.bytes() >= self.cfg.max_bytes;
        let mut closed = Vec::new();
        if full {
            closed.extend(self.close(&key));
        }
        while self.buffered_bytes > self.cfg.max_buffered_bytes {
            let Some(largest) = self
                .open
                .iter()
                .max_by_key(|(_, s)| s.builder.bytes())
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            closed.extend(self.close(&largest));
        }
        closed
    }

    /// Closes the segments older than the configured age.
    pub fn close_due(&mut self, now: Instant) -> Vec<Segment> {
        let max_age = self.cfg.max_age();
        let due: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, s)| now.duration_since(s.opened) >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.close(k)).collect()
    }

    /// Closes the open segment of one partition, if any.
    pub fn close_partition(&mut self, topic: &str, partition: i32) -> Option<Segment> {
        let key = self
            .open
            .keys()
            .find(|(t, p)| &**t == topic && *p == partition)
            .cloned()?;
        self.close(&key)
    }

    /// Drops the open segment of one partition without writing it.
    pub fn discard_partition(&mut self, topic: &str, partition: i32) {
        self.open.retain(|(t, p), s| {
            let keep = !(&**t == topic && *p == partition);
            if !keep {
                self.buffered_bytes -= s.builder.bytes();
            }
            keep
        });
    }

    /// Closes every open segment.
    pub fn close_all(&mut self) -> Vec<Segment> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        keys.iter().filter_map(|k| self.close(k)).collect()
    }

    fn close(&mut self, key: &PartitionKey) -> Option<Segment> {
        let mut seg = self.open.remove(key)?;
        self.buffered_bytes -= seg.builder.bytes();
        // The builder's output always matches the schema; a failure here is a
        // bug in the builder, not bad input.
        let batch = seg
            .builder
            .finish()
            .expect("builder columns match the log schema");
        self.spare.push(seg.builder);
        Some(Segment {
            topic: key.0.clone(),
            partition: key.1,
            first_offset: seg.first_offset,
            next_offset: seg.next_offset,
            batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(p: i32, offset: i64) -> Provenance {
        Provenance {
            topic: "t".into(),
            partition: p,
            offset,
        }
    }

    fn rec(msg: &str) -> LogRecord {
        LogRecord {
            message: msg.into(),
            ..Default::default()
        }
    }

    #[test]
    fn closes_on_rows_with_contiguous_ranges() {
        let mut s = Segmenter::new(SegmentConfig {
            max_rows: 3,
            ..Default::default()
        });
        let now = Instant::now();
        let mut closed = Vec::new();
        for off in 10..17 {
            closed.extend(s.append(&prov(0, off), &rec("x"), 0, || now));
        }
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].first_offset, closed[0].next_offset), (10, 13));
        assert_eq!((closed[1].first_offset, closed[1].next_offset), (13, 16));
        let rest = s.close_all();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].first_offset, rest[0].next_offset), (16, 17));
        assert_eq!(rest[0].batch.num_rows(), 1);
        assert_eq!(s.buffered_bytes(), 0);
    }

    #[test]
    fn partitions_are_separate_and_age_closes() {
        let mut s = Segmenter::new(SegmentConfig {
            max_age_secs: 1.0,
            ..Default::default()
        });
        let t0 = Instant::now();
        assert!(s.append(&prov(0, 0), &rec("a"), 0, || t0).is_empty());
        assert!(s
            .append(&prov(1, 5), &rec("b"), 0, || t0
                + Duration::from_millis(900))
            .is_empty());
        let due = s.close_due(t0 + Duration::from_millis(1000));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].partition, 0);
        assert_eq!(s.buffered_rows(), 1);
        s.discard_partition("t", 1);
        assert_eq!(s.buffered_rows(), 0);
        assert_eq!(s.buffered_bytes(), 0);
    }

    #[test]
    fn global_cap_closes_largest() {
        let big = "y".repeat(1000);
        let mut s = Segmenter::new(SegmentConfig {
            max_bytes: 4000,
            max_buffered_bytes: 4000,
            ..Default::default()
        });
        let now = Instant::now();
        let mut closed = Vec::new();
        closed.extend(s.append(&prov(0, 0), &rec(&big), 0, || now));
        closed.extend(s.append(&prov(0, 1), &rec(&big), 0, || now));
        closed.extend(s.append(&prov(1, 0), &rec(&big), 0, || now));
        assert!(closed.is_empty(), "under the cap nothing closes");
        closed.extend(s.append(&prov(1, 1), &rec(&big), 0, || now));
        assert_eq!(closed.len(), 1, "over the cap the largest segment closes");
        assert!(s.buffered_bytes() <= 4000);
    }
}
