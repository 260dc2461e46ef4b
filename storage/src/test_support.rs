//! Fixtures shared by the unit tests of the archive sinks.

use arrow::record_batch::RecordBatch;

use logwarden_ingest::record::{LogRecord, Provenance};
use logwarden_ingest::schema::LogBatchBuilder;
use logwarden_ingest::sink::Segment;

/// A segment of `n` records from `first` on, one hour apart from the
/// second half on, so it spans two partitions.
pub(crate) fn segment(first: i64, n: i64) -> Segment {
    segment_from(0, first, n, |off| {
        let hour = if off - first < n / 2 { 0 } else { 1 };
        LogRecord {
            event_time_us: 1_772_359_200_000_000 + hour * 3_600_000_000 + off,
            service: Some("svc".into()),
            message: format!("m{off}"),
            ..Default::default()
        }
    })
}

/// A segment of topic `t`, partition `p`, offsets `first..first + n`, the
/// record at each offset from `record`; in batches of up to
/// [`PIECE_ROWS`] records, as parsing hands them over.
pub(crate) fn segment_from(
    p: i32,
    first: i64,
    n: i64,
    record: impl Fn(i64) -> LogRecord,
) -> Segment {
    let mut b = LogBatchBuilder::new();
    let mut batches = Vec::new();
    for off in first..first + n {
        let prov = Provenance {
            topic: "t".into(),
            partition: p,
            offset: off,
        };
        b.append(&record(off), &prov, 0);
        if (off - first + 1) % PIECE_ROWS == 0 {
            batches.push(b.finish().expect("batch"));
        }
    }
    if n % PIECE_ROWS != 0 {
        batches.push(b.finish().expect("batch"));
    }
    Segment {
        topic: "t".into(),
        partition: p,
        first_offset: first,
        next_offset: first + n,
        batches,
    }
}

/// Most records per batch of a test segment.
const PIECE_ROWS: i64 = 64;

/// `n` records of one topic partition with varied columns: four services,
/// nine hosts (some missing), distinct messages, zero to two attributes
/// and three templates.
pub(crate) fn varied_batch(n: i64) -> RecordBatch {
    let mut b = LogBatchBuilder::new();
    let t0 = 1_772_359_200_000_000i64;
    for i in 0..n {
        let rec = LogRecord {
            event_time_us: t0 + i * 1_237,
            service: Some(format!("svc-{}", i % 4)),
            host: (i % 11 != 0).then(|| format!("host-{}", i % 9)),
            message: format!("request {i} served in {}ms", (i * 7_919) % 1_000),
            attributes: [
                ("trace_id", format!("{:016x}", i * 0x9e37_79b9)),
                ("user", format!("u{}", i % 13)),
            ]
            .into_iter()
            .take((i % 3) as usize)
            .map(|(k, v)| (k.into(), v))
            .collect(),
            template_id: Some((i % 3) as u64),
            ..Default::default()
        };
        let prov = Provenance {
            topic: "logs".into(),
            partition: 0,
            offset: i,
        };
        b.append(&rec, &prov, t0 + i);
    }
    b.finish().expect("batch")
}
