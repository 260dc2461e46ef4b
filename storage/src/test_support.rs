//! Fixtures shared by the unit tests of the archive sinks.

use logwarden_ingest::record::{LogRecord, Provenance};
use logwarden_ingest::schema::LogBatchBuilder;
use logwarden_ingest::sink::Segment;

/// A segment of `n` records from `first` on, one hour apart from the
/// second half on, so it spans two partitions.
pub(crate) fn segment(first: i64, n: i64) -> Segment {
    let mut b = LogBatchBuilder::new();
    for off in first..first + n {
        let hour = if off - first < n / 2 { 0 } else { 1 };
        let rec = LogRecord {
            event_time_us: 1_772_359_200_000_000 + hour * 3_600_000_000 + off,
            service: Some("svc".into()),
            message: format!("m{off}"),
            ..Default::default()
        };
        let prov = Provenance {
            topic: "t".into(),
            partition: 0,
            offset: off,
        };
        b.append(&rec, &prov, 0);
    }
    Segment {
        topic: "t".into(),
        partition: 0,
        first_offset: first,
        next_offset: first + n,
        batch: b.finish().expect("batch"),
    }
}
