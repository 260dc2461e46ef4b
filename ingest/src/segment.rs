//! Segments: per source partition, batches of parsed records are appended
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

use arrow::array::{Array, Int64Array, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::options::{require, InvalidOption};
use crate::schema::col;
use crate::sink::Segment;

/// Default for [`SegmentConfig::max_rows`].
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;
/// [`SegmentConfig::max_bytes`] from Kafka when it is 0 (the default): 32
/// MiB. A consumer holds a segment open per assigned partition, and with the
/// writer's queue, the segment being written and its sorted copy, and
/// librdkafka's prefetch, this keeps a three-partition ingest well under
/// 512 MiB of peak RSS (64 MiB measured 476-521 MiB; README, performance).
pub const KAFKA_MAX_BYTES: usize = 32 << 20;
/// [`SegmentConfig::max_bytes`] from a file or stdin when it is 0: 64 MiB.
/// A backfill has one segment open at a time, and larger segments leave
/// fewer small files for compaction to merge.
pub const FILE_MAX_BYTES: usize = 64 << 20;
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
    /// A segment closes when its records take about this many bytes in
    /// memory; 0 (the default) means the source's own default
    /// ([`KAFKA_MAX_BYTES`], [`FILE_MAX_BYTES`]).
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
            max_bytes: 0,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        }
    }
}

impl SegmentConfig {
    /// Checks the values, naming the offending option.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            self.max_rows > 0,
            "ingest.segment.max_rows",
            "must be at least 1",
        )?;
        require(
            self.max_age_secs.is_finite() && self.max_age_secs > 0.0,
            "ingest.segment.max_age_secs",
            "must be a positive number of seconds",
        )?;
        // The cap on buffered bytes is the Kafka segmenter's (a backfill has
        // one segment open), so it is checked against Kafka's segment size.
        require(
            self.max_buffered_bytes >= self.max_bytes_or(KAFKA_MAX_BYTES),
            "ingest.segment.max_buffered_bytes",
            "must be at least ingest.segment.max_bytes (32 MiB when 0)",
        )
    }

    /// `max_bytes`, or `default` (the source's) when it is 0.
    pub fn max_bytes_or(&self, default: usize) -> usize {
        if self.max_bytes == 0 {
            default
        } else {
            self.max_bytes
        }
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_secs_f64(self.max_age_secs)
    }
}

/// A segment being filled with batches of parsed records.
struct OpenSegment {
    pieces: Vec<RecordBatch>,
    /// Rows of the pieces, and their in-memory size as the parse side
    /// counted it.
    rows: usize,
    bytes: usize,
    first_offset: i64,
    next_offset: i64,
    opened: Instant,
}

impl OpenSegment {
    fn new(first_offset: i64, opened: Instant) -> Self {
        Self {
            pieces: Vec::new(),
            rows: 0,
            bytes: 0,
            first_offset,
            next_offset: first_offset,
            opened,
        }
    }
}

type PartitionKey = (Arc<str>, i32);

/// The open segments of all source partitions.
pub struct Segmenter {
    cfg: SegmentConfig,
    open: HashMap<PartitionKey, OpenSegment>,
    buffered_bytes: usize,
}

impl Segmenter {
    /// Segments of Kafka partitions: a `max_bytes` of 0 is
    /// [`KAFKA_MAX_BYTES`].
    pub fn new(mut cfg: SegmentConfig) -> Self {
        cfg.max_bytes = cfg.max_bytes_or(KAFKA_MAX_BYTES);
        Self {
            cfg,
            open: HashMap::new(),
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
        self.open.values().map(|s| s.rows).sum()
    }

    /// Appends records parsed elsewhere, in offset order after those
    /// already appended for the partition; `bytes` is their in-memory size.
    /// A batch that fills the segment is cut there (by rows; by bytes, in
    /// proportion), its rest opening the next one. Returns the segments
    /// that closed: the partition's own on rows or bytes, and the largest
    /// ones when the global byte cap is exceeded.
    pub fn append_batch(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        mut batch: RecordBatch,
        mut bytes: usize,
        now: Instant,
    ) -> Vec<Segment> {
        let key = (topic.clone(), partition);
        let mut closed = Vec::new();
        while batch.num_rows() > 0 {
            let offsets = batch
                .column_by_name(col::OFFSET)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .expect("a log batch has an Int64 offset column")
                .clone();
            let seg = self
                .open
                .entry(key.clone())
                .or_insert_with(|| OpenSegment::new(offsets.value(0), now));
            let n = batch.num_rows();
            // The segment has room for at least one row: it closes when full.
            let by_rows = self.cfg.max_rows - seg.rows;
            let by_bytes =
                (self.cfg.max_bytes.saturating_sub(seg.bytes)).saturating_mul(n) / bytes.max(1);
            let take = n.min(by_rows).min(by_bytes.max(1));
            let share = bytes * take / n;
            seg.pieces.push(batch.slice(0, take));
            seg.rows += take;
            seg.bytes += share;
            seg.next_offset = offsets.value(take - 1) + 1;
            self.buffered_bytes += share;
            batch = batch.slice(take, n - take);
            bytes -= share;
            if seg.rows >= self.cfg.max_rows || seg.bytes >= self.cfg.max_bytes || take < n {
                closed.extend(self.close(&key));
            }
        }
        self.enforce_cap(&mut closed);
        closed
    }

    /// Closes the largest segments while the buffered bytes exceed the cap.
    fn enforce_cap(&mut self, closed: &mut Vec<Segment>) {
        while self.buffered_bytes > self.cfg.max_buffered_bytes {
            let Some(largest) = self
                .open
                .iter()
                .max_by_key(|(_, s)| s.bytes)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            closed.extend(self.close(&largest));
        }
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
                self.buffered_bytes -= s.bytes;
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
        let seg = self.open.remove(key)?;
        self.buffered_bytes -= seg.bytes;
        Some(Segment {
            topic: key.0.clone(),
            partition: key.1,
            first_offset: seg.first_offset,
            next_offset: seg.next_offset,
            batches: seg.pieces,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{LogRecord, Provenance};
    use crate::schema::LogBatchBuilder;

    #[test]
    fn max_bytes_of_zero_is_the_sources_default_and_bounds_the_buffer() {
        let mut cfg = SegmentConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.max_bytes_or(FILE_MAX_BYTES), FILE_MAX_BYTES);
        assert_eq!(Segmenter::new(cfg.clone()).cfg.max_bytes, KAFKA_MAX_BYTES);
        // The buffer cap must hold one Kafka segment of the default size.
        cfg.max_buffered_bytes = KAFKA_MAX_BYTES - 1;
        assert_eq!(
            cfg.validate().map_err(|e| e.option),
            Err("ingest.segment.max_buffered_bytes")
        );
        cfg.max_bytes = 1 << 20;
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.max_bytes_or(FILE_MAX_BYTES), 1 << 20);
        cfg.max_buffered_bytes = (1 << 20) - 1;
        assert!(cfg.validate().is_err());
    }

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

    /// Appends one record, as a batch of one row.
    fn append(s: &mut Segmenter, prov: &Provenance, rec: &LogRecord, now: Instant) -> Vec<Segment> {
        let mut b = LogBatchBuilder::new();
        b.append(rec, prov, 0);
        let bytes = b.bytes();
        let batch = b.finish().expect("batch");
        s.append_batch(&prov.topic, prov.partition, batch, bytes, now)
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
            closed.extend(append(&mut s, &prov(0, off), &rec("x"), now));
        }
        assert_eq!(closed.len(), 2);
        assert_eq!((closed[0].first_offset, closed[0].next_offset), (10, 13));
        assert_eq!((closed[1].first_offset, closed[1].next_offset), (13, 16));
        let rest = s.close_all();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].first_offset, rest[0].next_offset), (16, 17));
        assert_eq!(rest[0].num_rows(), 1);
        assert_eq!(s.buffered_bytes(), 0);
    }

    /// A closed segment holds the batches it was appended in; joined (as
    /// the writer does before writing) it is one batch of the same rows in
    /// the same order, whatever each piece's dictionaries.
    #[test]
    fn a_closed_segments_pieces_join_into_one_batch_of_the_same_rows() {
        let mut s = Segmenter::new(SegmentConfig::default());
        let now = Instant::now();
        for off in 0..7 {
            let r = LogRecord {
                service: Some(format!("svc{}", 7 - off)),
                ..rec(&format!("m{off}"))
            };
            assert!(append(&mut s, &prov(0, off), &r, now).is_empty());
        }
        let mut closed = s.close_all();
        assert_eq!(closed.len(), 1);
        let seg = &mut closed[0];
        assert_eq!(seg.batches.len(), 7);
        let expected = seg.to_batch().expect("rows");
        seg.join().expect("join");
        assert_eq!(seg.batches.len(), 1);
        assert_eq!(seg.batches[0], expected);
        assert_eq!(seg.num_rows(), 7);
        // Joining again, or a segment without batches, changes nothing.
        seg.join().expect("join");
        assert_eq!(seg.batches, [expected]);
        let mut empty = Segment {
            batches: Vec::new(),
            ..seg.clone()
        };
        empty.join().expect("join");
        assert!(empty.batches.is_empty() && empty.to_batch().is_none());
    }

    #[test]
    fn partitions_are_separate_and_age_closes() {
        let mut s = Segmenter::new(SegmentConfig {
            max_age_secs: 1.0,
            ..Default::default()
        });
        let t0 = Instant::now();
        assert!(append(&mut s, &prov(0, 0), &rec("a"), t0).is_empty());
        let later = t0 + Duration::from_millis(900);
        assert!(append(&mut s, &prov(1, 5), &rec("b"), later).is_empty());
        let due = s.close_due(t0 + Duration::from_millis(1000));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].partition, 0);
        assert_eq!(s.buffered_rows(), 1);
        s.discard_partition("t", 1);
        assert_eq!(s.buffered_rows(), 0);
        assert_eq!(s.buffered_bytes(), 0);
    }

    /// Batches of parsed records, offsets with gaps: cut where a segment
    /// fills on rows, each segment's range from its first row's offset to
    /// one past its last; the same segments as one record at a time.
    #[test]
    fn batches_fill_segments_like_single_records() {
        let cfg = SegmentConfig {
            max_rows: 7,
            ..Default::default()
        };
        let now = Instant::now();
        let offsets: Vec<i64> = (0..40).map(|i| 100 + i * 2).collect();
        let mut one = Segmenter::new(cfg.clone());
        let mut expected = Vec::new();
        for &o in &offsets {
            expected.extend(append(&mut one, &prov(3, o), &rec("x"), now));
        }
        expected.extend(one.close_all());
        let mut batched = Segmenter::new(cfg);
        let mut got = Vec::new();
        let topic: Arc<str> = "t".into();
        for chunk in offsets.chunks(5).chain(std::iter::once(&[][..])) {
            let mut b = LogBatchBuilder::new();
            for &o in chunk {
                b.append(&rec("x"), &prov(3, o), 0);
            }
            let bytes = b.bytes();
            let batch = b.finish().expect("batch");
            got.extend(batched.append_batch(&topic, 3, batch, bytes, now));
        }
        got.extend(batched.close_all());
        let ranges = |s: &[Segment]| {
            s.iter()
                .map(|s| (s.partition, s.first_offset, s.next_offset, s.num_rows()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ranges(&got), ranges(&expected));
        assert_eq!(got.len(), 6);
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(
                g.to_batch().expect("rows").column_by_name(col::OFFSET),
                e.to_batch().expect("rows").column_by_name(col::OFFSET)
            );
        }
        assert_eq!(batched.buffered_bytes(), 0);
        assert_eq!(batched.buffered_rows(), 0);
    }

    /// A batch larger than the byte limit is cut in proportion: no segment
    /// holds much more than the limit.
    #[test]
    fn batches_are_cut_on_bytes() {
        let big = "y".repeat(1000);
        let mut s = Segmenter::new(SegmentConfig {
            max_bytes: 10_000,
            ..Default::default()
        });
        let mut b = LogBatchBuilder::new();
        for o in 0..95 {
            b.append(&rec(&big), &prov(0, o), 0);
        }
        let bytes = b.bytes();
        let topic: Arc<str> = "t".into();
        let mut closed =
            s.append_batch(&topic, 0, b.finish().expect("batch"), bytes, Instant::now());
        closed.extend(s.close_all());
        let per = bytes / 95;
        assert!(closed.len() >= 9, "{} segments", closed.len());
        let mut next = 0;
        for c in &closed {
            assert_eq!(c.first_offset, next);
            assert!(c.num_rows() * per <= 10_000 + per, "{} rows", c.num_rows());
            next = c.next_offset;
        }
        assert_eq!(next, 95);
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
        for (p, o) in [(0, 0), (0, 1), (1, 0)] {
            closed.extend(append(&mut s, &prov(p, o), &rec(&big), now));
        }
        assert!(closed.is_empty(), "under the cap nothing closes");
        closed.extend(append(&mut s, &prov(1, 1), &rec(&big), now));
        assert_eq!(closed.len(), 1, "over the cap the largest segment closes");
        assert!(s.buffered_bytes() <= 4000);
    }
}
