//! Splitting a segment into one sorted batch per archive partition.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, MapArray, StringArray, StructArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Int32Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use logwarden_ingest::options::{require, InvalidOption};
use logwarden_ingest::schema::{col, log_schema};

use crate::compact::CompactionConfig;
use crate::hot::{extend_schema, promote, HotField};
use crate::layout::{default_partition_keys, partition_dir, time_bucket_us, PartitionKey};
use crate::parquet::ParquetConfig;
use crate::store::S3Config;

/// How the archive is laid out (the `[archive]` table).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveLayout {
    /// Hive partition keys, outermost first: any of `dt`, `hour`, `service`.
    pub partition_by: Vec<PartitionKey>,
    /// Parquet encoding.
    pub parquet: ParquetConfig,
    /// Attributes promoted to typed top-level columns.
    pub hot_fields: Vec<HotField>,
    /// S3-compatible object storage (for `s3://` outputs).
    pub s3: S3Config,
    /// Compaction of closed partitions.
    pub compaction: CompactionConfig,
}

impl Default for ArchiveLayout {
    fn default() -> Self {
        Self {
            partition_by: default_partition_keys(),
            parquet: ParquetConfig::default(),
            hot_fields: Vec::new(),
            s3: S3Config::default(),
            compaction: CompactionConfig::default(),
        }
    }
}

impl ArchiveLayout {
    pub fn validate(&self) -> Result<(), InvalidOption> {
        let mut seen = Vec::new();
        for k in &self.partition_by {
            if seen.contains(k) {
                return Err(InvalidOption::new(
                    "archive.partition_by",
                    format!("lists `{}` twice", k.name()),
                ));
            }
            seen.push(*k);
        }
        require(
            !self.partition_by.contains(&PartitionKey::Hour)
                || self.partition_by.contains(&PartitionKey::Dt),
            "archive.partition_by",
            "`hour` needs `dt`",
        )?;
        crate::hot::validate(&self.hot_fields, &log_schema())?;
        self.s3.validate()?;
        self.compaction.validate()?;
        self.parquet.validate()
    }
}

impl ArchiveLayout {
    /// The schema of the archive's files: the log schema and the hot fields.
    pub fn file_schema(&self) -> arrow::datatypes::SchemaRef {
        extend_schema(&log_schema(), &self.hot_fields)
    }

    /// Parquet writer properties of the archive's files.
    pub fn writer_properties(&self) -> parquet::file::properties::WriterProperties {
        let blooms: Vec<String> = self
            .hot_fields
            .iter()
            .filter(|f| f.bloom)
            .map(HotField::column_name)
            .collect();
        self.parquet
            .writer_properties_with_blooms(&self.file_schema(), &blooms)
    }
}

/// Sorts a segment's records, `pieces` of the log schema in offset order,
/// by (partition, service, event time) and cuts them into one batch per
/// partition directory. Several pieces are first joined into one batch
/// (the writer joins a segment's pieces before it writes, so a sink
/// usually gets one).
pub fn split_segment(
    layout: &ArchiveLayout,
    pieces: &[RecordBatch],
) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    let joined;
    let batch = match pieces {
        [] => return Ok(Vec::new()),
        [one] => one,
        [first, ..] => {
            joined = concat_batches(&first.schema(), pieces)?;
            &joined
        }
    };
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let promoted = promote(batch, &layout.hot_fields)?;
    let batch = &promoted;
    let schema = batch.schema();
    let column = |name: &str| -> Result<&Arc<dyn Array>, ArrowError> {
        let i = schema.index_of(name)?;
        Ok(batch.column(i))
    };
    let event_time = column(col::EVENT_TIME)?.clone();
    let service = column(col::SERVICE)?.clone();
    let times = event_time
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| {
            ArrowError::SchemaError("event_time is not a microsecond timestamp".into())
        })?;
    let bucket_us = time_bucket_us(&layout.partition_by);
    let buckets: Int64Array = times
        .values()
        .iter()
        .map(|t| bucket_us.map_or(0, |b| t.div_euclid(b)))
        .collect();
    // Order on plain integers: (time bucket, rank of the service name, event
    // time, row). Ranking the dictionary's values once is much cheaper than
    // comparing strings row against row.
    let (rank_count, ranks) = service_ranks(&service)?;
    let indices = UInt32Array::from(sort_order(
        buckets.values(),
        &ranks,
        times.values(),
        rank_count,
    ));
    let sorted = take_rows(batch, &indices)?;
    let sorted_buckets = arrow::compute::take(&buckets, &indices, None)?;
    let sorted_buckets = sorted_buckets.as_primitive::<arrow::datatypes::Int64Type>();
    let sorted_times = sorted
        .column(schema.index_of(col::EVENT_TIME)?)
        .as_primitive::<TimestampMicrosecondType>()
        .clone();
    let sorted_service = sorted.column(schema.index_of(col::SERVICE)?).clone();
    let services = sorted_service.as_dictionary::<Int32Type>();
    let service_values = services
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ArrowError::SchemaError("service is not a string dictionary".into()))?;
    // An empty service is written to the null partition, as no service is:
    // the two are one group (they sort next to each other), or they would
    // be two files of the same name in one directory.
    let service_at = |i: usize| -> Option<&str> {
        if services.is_null(i) {
            None
        } else {
            Some(service_values.value(services.keys().value(i) as usize)).filter(|s| !s.is_empty())
        }
    };
    let by_service = layout.partition_by.contains(&PartitionKey::Service);
    let mut out = Vec::new();
    let mut start = 0;
    let n = sorted.num_rows();
    for i in 1..=n {
        let boundary = i == n
            || sorted_buckets.value(i) != sorted_buckets.value(start)
            || (by_service && service_at(i) != service_at(start));
        if boundary {
            let dir = partition_dir(
                &layout.partition_by,
                sorted_times.value(start),
                service_at(start),
            );
            out.push((dir, sorted.slice(start, i - start)));
            start = i;
        }
    }
    Ok(out)
}

/// Most (time bucket, service) groups counted in a table; a segment that
/// spans more (times scattered over many partitions) has its keys sorted.
const MAX_COUNTED_GROUPS: usize = 1 << 16;

/// The rows in (time bucket, service rank, event time, row) order. Ranks are
/// below `rank_count`. Rows are counted into their (bucket, service) groups,
/// which keeps arrival order within a group: a group whose rows arrived in
/// time order (the common case, in a backfill and from a partition) is then
/// done, and only a group that did not is sorted by (time, row).
fn sort_order(buckets: &[i64], ranks: &[u32], times: &[i64], rank_count: usize) -> Vec<u32> {
    let n = times.len();
    let (Some(&lo), Some(&hi)) = (buckets.iter().min(), buckets.iter().max()) else {
        return Vec::new();
    };
    let groups = usize::try_from(i128::from(hi) - i128::from(lo) + 1)
        .ok()
        .and_then(|span| span.checked_mul(rank_count.max(1)))
        .filter(|&g| g <= MAX_COUNTED_GROUPS.max(n));
    let Some(groups) = groups else {
        let mut keys: Vec<(i64, u32, i64, u32)> = (0..n)
            .map(|r| (buckets[r], ranks[r], times[r], r as u32))
            .collect();
        keys.sort_unstable();
        return keys.into_iter().map(|k| k.3).collect();
    };
    // In range: `groups` bounds (hi - lo + 1) * rank_count, which fits a usize.
    let group = |r: usize| (buckets[r] - lo) as usize * rank_count + ranks[r] as usize;
    let mut starts = vec![0usize; groups + 1];
    for r in 0..n {
        starts[group(r) + 1] += 1;
    }
    for g in 0..groups {
        starts[g + 1] += starts[g];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; n];
    for r in 0..n {
        let g = group(r);
        order[next[g]] = r as u32;
        next[g] += 1;
    }
    for g in 0..groups {
        let rows = &mut order[starts[g]..starts[g + 1]];
        let time = |r: u32| times[r as usize];
        if !rows.windows(2).all(|w| time(w[0]) <= time(w[1])) {
            rows.sort_unstable_by_key(|&r| (time(r), r));
        }
    }
    order
}

/// `batch`'s rows at `indices`, in that order. Like Arrow's
/// `take_record_batch`, except that a map column is taken by gathering its
/// entries' indices and taking the key and value arrays once each, where
/// Arrow's generic path extends the entries row by row.
fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Map(_, _) => take_map(c.as_map(), indices),
            _ => take(c, indices, None),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(batch.schema(), columns)
}

fn take_map(map: &MapArray, indices: &UInt32Array) -> Result<ArrayRef, ArrowError> {
    let offsets = map.value_offsets();
    let mut new_offsets = Vec::with_capacity(indices.len() + 1);
    let mut entries = Vec::with_capacity(map.entries().len());
    new_offsets.push(0i32);
    for &row in indices.values() {
        let row = row as usize;
        entries.extend(offsets[row] as u32..offsets[row + 1] as u32);
        let end = i32::try_from(entries.len())
            .map_err(|_| ArrowError::ComputeError("map entries overflow i32".into()))?;
        new_offsets.push(end);
    }
    let entry_indices = UInt32Array::from(entries);
    let old = map.entries();
    let columns = old
        .columns()
        .iter()
        .map(|c| take(c, &entry_indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    let new_entries = StructArray::try_new(old.fields().clone(), columns, None)?;
    // A null row keeps its validity bit; no entries to copy for it.
    let nulls = map.nulls().map(|n| {
        NullBuffer::new(BooleanBuffer::collect_bool(indices.len(), |i| {
            n.is_valid(indices.value(i) as usize)
        }))
    });
    let DataType::Map(field, ordered) = map.data_type() else {
        unreachable!("a map array has a map type");
    };
    Ok(Arc::new(MapArray::try_new(
        field.clone(),
        OffsetBuffer::new(new_offsets.into()),
        new_entries,
        nulls,
        *ordered,
    )?))
}

/// A bound on the ranks, and for each row the rank of its service name in
/// byte order (nulls first, equal names equal ranks).
fn service_ranks(service: &ArrayRef) -> Result<(usize, Vec<u32>), ArrowError> {
    let dict = service
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| ArrowError::SchemaError("service is not a dictionary".into()))?;
    let values = dict
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ArrowError::SchemaError("service is not a string dictionary".into()))?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    let name = |i: usize| values.is_valid(i).then(|| values.value(i));
    order.sort_by(|&a, &b| name(a).cmp(&name(b)));
    let mut rank_of = vec![0u32; values.len()];
    let mut rank = 0u32;
    for (pos, &i) in order.iter().enumerate() {
        if pos == 0 || name(order[pos - 1]) != name(i) {
            rank += 1;
        }
        rank_of[i] = rank;
    }
    let keys = dict.keys();
    let ranks = (0..keys.len())
        .map(|row| {
            if keys.is_null(row) {
                0
            } else {
                rank_of.get(keys.value(row) as usize).copied().unwrap_or(0)
            }
        })
        .collect();
    // Ranks run from 0 (null) to at most the number of values.
    Ok((values.len() + 1, ranks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NULL_PARTITION;
    use logwarden_ingest::record::{LogRecord, Provenance};
    use logwarden_ingest::schema::LogBatchBuilder;
    use proptest::prelude::*;

    /// Rows of three services (and some without one) over two hours, in
    /// arrival order: each output batch is one partition, sorted by
    /// (service, event time), nulls first, and no row is lost or repeated.
    #[test]
    fn sorts_by_service_then_time_within_each_partition() {
        let hour0 = 1_772_359_200_000_000i64;
        let services = [
            Some("zeta"),
            Some("alpha"),
            None,
            Some("mid"),
            Some("alpha"),
        ];
        let mut b = LogBatchBuilder::new();
        let mut expected = Vec::new();
        for i in 0..500i64 {
            // Times jump around and cross the hour boundary both ways.
            let t = hour0 + ((i * 7_919) % 1000) * 7_200_000;
            let service = services[(i % 5) as usize];
            let rec = LogRecord {
                event_time_us: t,
                service: service.map(str::to_string),
                message: format!("m{i}"),
                ..Default::default()
            };
            b.append(&rec, &prov(i), 0);
            expected.push((
                t.div_euclid(3_600_000_000),
                service.map(str::to_string),
                t,
                i,
            ));
        }
        expected.sort();
        let batch = b.finish().expect("batch");
        let parts = split_segment(&ArchiveLayout::default(), &[batch]).expect("split");
        let mut got = Vec::new();
        for (dir, part) in &parts {
            let times = part.column(0).as_primitive::<TimestampMicrosecondType>();
            let svc = part.column(4).as_dictionary::<Int32Type>();
            let names = svc.values().as_string::<i32>();
            let offsets = part
                .column(part.schema().index_of(col::OFFSET).expect("offset"))
                .as_primitive::<arrow::datatypes::Int64Type>();
            for r in 0..part.num_rows() {
                let t = times.value(r);
                assert_eq!(dir, &partition_dir(&layout_keys(), t, None));
                let s = svc
                    .is_valid(r)
                    .then(|| names.value(svc.keys().value(r) as usize).to_string());
                got.push((t.div_euclid(3_600_000_000), s, t, offsets.value(r)));
            }
        }
        let hours: std::collections::BTreeSet<i64> = expected.iter().map(|e| e.0).collect();
        assert_eq!(parts.len(), hours.len(), "one batch per hour");
        assert!(hours.len() >= 2);
        assert_eq!(got, expected);
    }

    /// Partitioned by service, records without a service and with an
    /// empty one share one directory and so one batch; a service spelled
    /// like the null partition gets a directory of its own.
    #[test]
    fn no_service_and_an_empty_one_are_one_partition() {
        let t = 1_772_359_200_000_000i64;
        let mut b = LogBatchBuilder::new();
        let services = [None, Some(""), Some(NULL_PARTITION), Some("api"), Some("")];
        for (i, service) in services.iter().enumerate() {
            let rec = LogRecord {
                event_time_us: t + i as i64,
                service: service.map(str::to_string),
                ..Default::default()
            };
            b.append(&rec, &prov(i as i64), 0);
        }
        let batch = b.finish().expect("batch");
        let layout = ArchiveLayout {
            partition_by: vec![PartitionKey::Dt, PartitionKey::Service],
            ..ArchiveLayout::default()
        };
        let parts = split_segment(&layout, &[batch]).expect("split");
        let dirs: Vec<(&str, usize)> = parts
            .iter()
            .map(|(d, p)| (d.as_str(), p.num_rows()))
            .collect();
        assert_eq!(
            dirs,
            [
                ("dt=2026-03-01/service=__HIVE_DEFAULT_PARTITION__", 3),
                ("dt=2026-03-01/service=%5F_HIVE_DEFAULT_PARTITION__", 1),
                ("dt=2026-03-01/service=api", 1),
            ]
        );
    }

    /// A segment in several pieces, each with its own dictionaries (as
    /// parsing hands them over), is split exactly as the same rows in one
    /// batch: the same directories, rows, order and values.
    #[test]
    fn pieces_split_as_their_concatenation_does() {
        let hour0 = 1_772_359_200_000_000i64;
        let services = [Some("zeta"), Some("alpha"), None, Some(""), Some("mid")];
        let sizes = [0usize, 1, 37, 0, 120, 5, 64];
        let mut pieces = Vec::new();
        let mut i = 0i64;
        for (p, &size) in sizes.iter().enumerate() {
            let mut b = LogBatchBuilder::new();
            for _ in 0..size {
                let t = hour0 + ((i * 7_919) % 1000) * 7_200_000;
                // Each piece draws from a different subset of services.
                let service = services[((i as usize) % (2 + p % 4) + p) % services.len()];
                let rec = LogRecord {
                    event_time_us: t,
                    service: service.map(str::to_string),
                    host: Some(format!("h{}", i % 3)),
                    message: format!("m{i}"),
                    attributes: (0..i % 3)
                        .map(|k| (format!("k{k}"), format!("v{i}.{k}")))
                        .collect(),
                    ..Default::default()
                };
                b.append(&rec, &prov(i), 0);
                i += 1;
            }
            pieces.push(b.finish().expect("batch"));
        }
        let whole = arrow::compute::concat_batches(&pieces[0].schema(), &pieces).expect("concat");
        for partition_by in [layout_keys(), vec![PartitionKey::Dt, PartitionKey::Service]] {
            let layout = ArchiveLayout {
                partition_by,
                ..ArchiveLayout::default()
            };
            let from_pieces = split_segment(&layout, &pieces).expect("split pieces");
            let from_whole =
                split_segment(&layout, std::slice::from_ref(&whole)).expect("split whole");
            assert!(from_whole.len() >= 2);
            assert_eq!(from_pieces.len(), from_whole.len());
            for ((dir_p, p), (dir_w, w)) in from_pieces.iter().zip(&from_whole) {
                assert_eq!(dir_p, dir_w);
                assert_eq!(plain(p), plain(w), "{dir_p}");
            }
        }
        let empty = split_segment(&ArchiveLayout::default(), &pieces[..1]).expect("split");
        assert!(empty.is_empty());
    }

    /// `batch` with its dictionary columns cast to their values, so that
    /// batches of equal rows compare equal whatever their dictionaries.
    fn plain(batch: &RecordBatch) -> Vec<ArrayRef> {
        batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Dictionary(_, v) => arrow::compute::cast(c, v).expect("cast"),
                _ => c.clone(),
            })
            .collect()
    }

    /// The map column is taken entry by entry like Arrow's own `take`:
    /// rows with no attributes and with several, in any order, rows
    /// repeated.
    #[test]
    fn taking_rows_matches_arrow_take() {
        let mut b = LogBatchBuilder::new();
        for i in 0..200usize {
            let rec = LogRecord {
                message: format!("m{i}"),
                attributes: (0..i % 4)
                    .map(|k| (format!("k{k}"), format!("v{i}.{k}")))
                    .collect(),
                ..Default::default()
            };
            b.append(&rec, &prov(i as i64), 0);
        }
        let batch = b.finish().expect("batch");
        let indices = UInt32Array::from_iter_values((0..300u32).map(|i| (i * 37) % 200));
        let ours = take_rows(&batch, &indices).expect("take");
        let arrows = arrow::compute::take_record_batch(&batch, &indices).expect("take");
        assert_eq!(ours, arrows);
        let empty = take_rows(&batch, &UInt32Array::from(Vec::<u32>::new())).expect("take");
        assert_eq!(empty.num_rows(), 0);
    }

    /// A map with null rows (files from other writers may have them) keeps
    /// each taken row's validity, as Arrow's own `take` does.
    #[test]
    fn taking_a_map_with_null_rows_matches_arrow_take() {
        use arrow::array::{MapBuilder, StringBuilder};
        let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for i in 0..50usize {
            if i % 3 == 1 {
                b.append(false).expect("null row");
                continue;
            }
            for k in 0..i % 4 {
                b.keys().append_value(format!("k{k}"));
                b.values().append_value(format!("v{i}.{k}"));
            }
            b.append(true).expect("row");
        }
        let map = b.finish();
        assert!(map.null_count() > 0);
        let indices = UInt32Array::from_iter_values((0..80u32).map(|i| (i * 7) % 50));
        let ours = take_map(&map, &indices).expect("take");
        let arrows = take(&map, &indices, None).expect("take");
        assert_eq!(ours.null_count(), arrows.null_count());
        assert_eq!(ours.to_data(), arrows.to_data());
    }

    /// The reference order: every key sorted.
    fn sorted_keys(buckets: &[i64], ranks: &[u32], times: &[i64]) -> Vec<u32> {
        let mut keys: Vec<(i64, u32, i64, u32)> = (0..times.len())
            .map(|r| (buckets[r], ranks[r], times[r], r as u32))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| k.3).collect()
    }

    /// Rows as (bucket, rank, time): a few buckets or (rarely) buckets far
    /// apart, times in arrival order or not, ties included.
    fn rows() -> impl Strategy<Value = (Vec<(i64, u32, i64)>, usize)> {
        (1usize..6, prop::bool::ANY, prop::bool::weighted(0.1)).prop_flat_map(
            |(rank_count, in_order, far)| {
                let bucket = if far {
                    prop_oneof![Just(i64::MIN), Just(0i64), Just(i64::MAX), -3i64..3].boxed()
                } else {
                    (100i64..103).boxed()
                };
                let row = (bucket, 0..rank_count as u32, 0i64..50);
                prop::collection::vec(row, 0..300).prop_map(move |mut rows| {
                    if in_order {
                        let mut times: Vec<i64> = rows.iter().map(|r| r.2).collect();
                        times.sort_unstable();
                        for (r, t) in rows.iter_mut().zip(times) {
                            r.2 = t;
                        }
                    }
                    (rows, rank_count)
                })
            },
        )
    }

    proptest! {
        /// Counting rows into their groups orders them exactly as sorting
        /// every key does, whether or not they arrived in time order.
        #[test]
        fn the_counted_order_is_the_sorted_order((rows, rank_count) in rows()) {
            let buckets: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let ranks: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let times: Vec<i64> = rows.iter().map(|r| r.2).collect();
            prop_assert_eq!(
                sort_order(&buckets, &ranks, &times, rank_count),
                sorted_keys(&buckets, &ranks, &times)
            );
        }
    }

    fn layout_keys() -> Vec<PartitionKey> {
        ArchiveLayout::default().partition_by
    }

    fn prov(offset: i64) -> Provenance {
        Provenance {
            topic: "t".into(),
            partition: 0,
            offset,
        }
    }
}
