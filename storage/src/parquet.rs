//! Parquet encoding: writer properties chosen so DuckDB, Spark, Trino,
//! Athena, pandas and polars read the files fast and correctly.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use logwarden_ingest::schema::{col, SCHEMA_VERSION};

/// Default for [`ParquetConfig::zstd_level`].
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Default for [`ParquetConfig::row_group_rows`]: large row groups scan fast.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 512 * 1024;

/// Parquet encoding settings (the `[archive.parquet]` table).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetConfig {
    /// zstd compression level, 1 (fastest) to 22 (smallest).
    pub zstd_level: i32,
    /// Maximum rows per row group.
    pub row_group_rows: usize,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
        }
    }
}

impl ParquetConfig {
    pub fn validate(&self) -> Result<(), String> {
        ZstdLevel::try_new(self.zstd_level)
            .map_err(|_| "archive.parquet.zstd_level must be between 1 and 22".to_string())?;
        if self.row_group_rows == 0 {
            return Err("archive.parquet.row_group_rows must be at least 1".into());
        }
        Ok(())
    }

    /// Writer properties for files of `schema`, sorted by (service, event time).
    pub fn writer_properties(&self, schema: &SchemaRef) -> WriterProperties {
        let level = ZstdLevel::try_new(self.zstd_level).unwrap_or_default();
        let idx = |name: &str| schema.index_of(name).ok().map(|i| i as i32);
        let sorting: Vec<SortingColumn> = [col::SERVICE, col::EVENT_TIME]
            .iter()
            .filter_map(|c| idx(c))
            .map(|column_idx| SortingColumn {
                column_idx,
                descending: false,
                nulls_first: true,
            })
            .collect();
        WriterProperties::builder()
            // Data page v1: the one every engine (older Spark, Athena) reads.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(true)
            // Dictionary-encode messages only while it pays.
            .set_dictionary_page_size_limit(1 << 20)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_column_bloom_filter_enabled(ColumnPath::from(col::TEMPLATE_ID), true)
            .set_column_statistics_enabled(ColumnPath::from(col::RAW), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(col::RAW), false)
            .set_sorting_columns(Some(sorting))
            .set_created_by(format!("logwarden {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "logwarden.version".into(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
                KeyValue::new(
                    "logwarden.schema_version".into(),
                    SCHEMA_VERSION.to_string(),
                ),
            ]))
            .build()
    }
}

/// Shared writer properties for one archive.
pub fn shared_properties(cfg: &ParquetConfig, schema: &SchemaRef) -> Arc<WriterProperties> {
    Arc::new(cfg.writer_properties(schema))
}
