//! Splitting a segment into one sorted batch per archive partition.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn, SortOptions};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use logwarden_ingest::schema::{col, log_schema};

use crate::layout::{default_partition_keys, partition_dir, time_bucket_us, PartitionKey};
use crate::compact::CompactionConfig;
use crate::hot::{extend_schema, promote, HotField};
use crate::parquet::ParquetConfig;
use crate::store::S3Config;

/// How the archive is laid out (the `[archive]` table).
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = Vec::new();
        for k in &self.partition_by {
            if seen.contains(k) {
                return Err(format!("archive.partition_by lists `{}` twice", k.name()));
            }
            seen.push(*k);
        }
        if self.partition_by.contains(&PartitionKey::Hour)
            && !self.partition_by.contains(&PartitionKey::Dt)
        {
            return Err("archive.partition_by: `hour` needs `dt`".into());
        }
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

/// Sorts `batch` by (partition, service, event time) and cuts it into one
/// batch per partition directory.
pub fn split_segment(
    layout: &ArchiveLayout,
    batch: &RecordBatch,
) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
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
    let asc = Some(SortOptions {
        descending: false,
        nulls_first: true,
    });
    let indices = lexsort_to_indices(
        &[
            SortColumn {
                values: Arc::new(buckets.clone()),
                options: asc,
            },
            SortColumn {
                values: service.clone(),
                options: asc,
            },
            SortColumn {
                values: event_time.clone(),
                options: asc,
            },
        ],
        None,
    )?;
    let sorted = take_record_batch(batch, &indices)?;
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
    let service_at = |i: usize| -> Option<&str> {
        if services.is_null(i) {
            None
        } else {
            Some(service_values.value(services.keys().value(i) as usize))
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
