//! The in-flight record of one source partition: the files of the segments
//! written most recently, some of which may not be committed yet.
//!
//! The sink cannot see offset commits, and commits can lag writes (the
//! writer queue holds several segments; a commit can fail and
//! be retried by a later one). So the record keeps a bounded history of the
//! last [`HISTORY_SEGMENTS`] segments, not just the last one. On recovery
//! every file of a segment at or after the replay offset is deleted, whatever
//! segment boundaries the replay will use; and compaction never touches a
//! file listed here, because a replay may still delete or rewrite it.
//! A clean exit of ingest runs a recovery at the offsets it has just
//! committed: nothing is deleted and the record empties.

use serde::{Deserialize, Serialize};

use crate::layout::encode_value;

/// Segments remembered per source partition. A commit lagging further
/// behind than this many segments is beyond what the Kafka source allows
/// (it pauses when the writer queue is full, and commits after every ack).
pub const HISTORY_SEGMENTS: usize = 64;

/// The files one segment wrote, relative to the archive root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFiles {
    pub first_offset: i64,
    pub next_offset: i64,
    pub files: Vec<String>,
}

/// The in-flight record of one source partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub topic: String,
    pub partition: i32,
    /// Oldest first.
    pub segments: Vec<SegmentFiles>,
    /// Every listed segment is known to be complete and final (a backfill
    /// that ran to its end): compaction may merge them. The list is kept so
    /// that re-running the same backfill deletes them first. Cleared by the
    /// next write.
    #[serde(default)]
    pub settled: bool,
    /// The source is a backfill (a file or standard input): its offsets
    /// are line numbers and running it again starts over at 0. Compaction
    /// merges a backfill's files only among themselves, into files named
    /// after it, which such a re-run deletes. Kept across writes.
    #[serde(default)]
    pub backfill: bool,
}

/// The single-segment form written by earlier versions.
#[derive(Deserialize)]
struct LegacyInFlight {
    topic: String,
    partition: i32,
    first_offset: i64,
    next_offset: i64,
    files: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyInFlight {
    Current(InFlight),
    Legacy(LegacyInFlight),
}

impl InFlight {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
            segments: Vec::new(),
            settled: false,
            backfill: false,
        }
    }

    /// Whether the source is a backfill: marked as one, or settled (only a
    /// backfill settles; records written before the mark have only that).
    pub fn is_backfill(&self) -> bool {
        self.backfill || self.settled
    }

    /// Whether a recovery from `replay_from` starts a backfill over (this
    /// record's, or the one a backfill sink, `backfill_sink`, is about to
    /// write): then the files compaction merged out of its segments go too.
    pub fn reruns_backfill(&self, replay_from: i64, backfill_sink: bool) -> bool {
        (self.is_backfill() || backfill_sink) && replay_from == 0
    }

    /// Parses a record in the current or the legacy form.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match serde_json::from_slice::<AnyInFlight>(bytes)? {
            AnyInFlight::Current(r) => r,
            AnyInFlight::Legacy(l) => InFlight {
                topic: l.topic,
                partition: l.partition,
                segments: vec![SegmentFiles {
                    first_offset: l.first_offset,
                    next_offset: l.next_offset,
                    files: l.files,
                }],
                settled: false,
                backfill: false,
            },
        })
    }

    /// Records a segment about to be written (replacing an earlier entry of
    /// the same first offset), dropping the oldest beyond the history size.
    pub fn push(&mut self, seg: SegmentFiles) {
        self.settled = false;
        self.segments.retain(|s| s.first_offset != seg.first_offset);
        self.segments.push(seg);
        if self.segments.len() > HISTORY_SEGMENTS {
            let excess = self.segments.len() - HISTORY_SEGMENTS;
            self.segments.drain(..excess);
        }
    }

    /// Splits the history at `replay_from`: returns the files to delete (of
    /// segments starting at or after it) and forgets every segment, since
    /// everything below `replay_from` is committed. Segments that straddle
    /// `replay_from` (offsets reset by hand) are kept on disk and reported.
    pub fn take_uncommitted(&mut self, replay_from: i64) -> (Vec<String>, Vec<SegmentFiles>) {
        let mut delete = Vec::new();
        let mut straddling = Vec::new();
        for s in self.segments.drain(..) {
            if s.first_offset >= replay_from {
                delete.extend(s.files);
            } else if replay_from < s.next_offset {
                straddling.push(s);
            }
        }
        (delete, straddling)
    }

    /// Logs the segments a replay from `replay_from` starts inside of
    /// (offsets reset by hand): their files are kept.
    pub fn warn_straddling(&self, replay_from: i64, straddling: &[SegmentFiles]) {
        for s in straddling {
            tracing::warn!(
                topic = %self.topic, partition = self.partition, replay_from, first_offset = s.first_offset,
                "consumption resumes inside a written segment (offsets reset by hand?); its files are kept"
            );
        }
    }

    /// The files compaction must leave alone: every file listed, unless the
    /// record is settled.
    pub fn protected_files(&self) -> impl Iterator<Item = &str> {
        let take = if self.settled { 0 } else { self.segments.len() };
        self.segments[..take]
            .iter()
            .flat_map(|s| s.files.iter().map(String::as_str))
    }

    /// Every file listed, relative to the archive root.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.segments
            .iter()
            .flat_map(|s| s.files.iter().map(String::as_str))
    }
}

/// The record's path relative to the archive root.
pub fn inflight_rel_path(topic: &str, partition: i32) -> String {
    format!(
        "{}/inflight/{}-{partition:05}.json",
        crate::local::META_DIR,
        encode_value(topic.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: i64, next: i64) -> SegmentFiles {
        SegmentFiles {
            first_offset: first,
            next_offset: next,
            files: vec![format!("d/{first}.parquet")],
        }
    }

    #[test]
    fn history_is_bounded_and_recovery_splits_it() {
        let mut r = InFlight::new("t", 0);
        for i in 0..(HISTORY_SEGMENTS as i64 + 10) {
            r.push(seg(i * 10, i * 10 + 10));
        }
        assert_eq!(r.segments.len(), HISTORY_SEGMENTS);
        assert_eq!(r.segments[0].first_offset, 100);
        let (delete, straddling) = r.take_uncommitted(705);
        assert_eq!(delete.first().map(String::as_str), Some("d/710.parquet"));
        assert_eq!(delete.len(), HISTORY_SEGMENTS + 10 - 71);
        assert_eq!(straddling, vec![seg(700, 710)]);
        assert!(r.segments.is_empty());
    }

    #[test]
    fn legacy_records_parse() {
        let r = InFlight::parse(
            br#"{"topic":"t","partition":2,"first_offset":5,"next_offset":9,"files":["a/b.parquet"]}"#,
        )
        .expect("legacy form");
        assert_eq!(r.segments, vec![seg_with(5, 9, "a/b.parquet")]);
        let again = InFlight::parse(&serde_json::to_vec(&r).expect("json")).expect("current");
        assert_eq!(again, r);
    }

    fn seg_with(first: i64, next: i64, f: &str) -> SegmentFiles {
        SegmentFiles {
            first_offset: first,
            next_offset: next,
            files: vec![f.into()],
        }
    }
}
