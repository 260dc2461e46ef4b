//! Parquet encoding: writer properties chosen so DuckDB, Spark, Trino,
//! Athena, pandas and polars read the files fast and correctly.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use logwarden_ingest::options::{require, InvalidOption};
use logwarden_ingest::schema::{col, SCHEMA_VERSION};

/// Default for [`ParquetConfig::zstd_level`]. On pages of about 1 MiB of
/// log columns, level 1 measured within 3% of level 3's size either way
/// (smaller on generated JSON and mixed lines, larger on Loghub's text
/// logs) for about 15% less CPU in the whole ingest.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
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
    /// Threads encoding a file's columns (local archive and its
    /// compaction); 0 means one per core, at most four.
    pub encode_threads: usize,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            encode_threads: 0,
        }
    }
}

impl ParquetConfig {
    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            (1..=22).contains(&self.zstd_level) && ZstdLevel::try_new(self.zstd_level).is_ok(),
            "archive.parquet.zstd_level",
            "must be between 1 and 22",
        )?;
        require(
            self.row_group_rows > 0,
            "archive.parquet.row_group_rows",
            "must be at least 1",
        )
    }

    /// Threads to encode a file with.
    pub fn threads(&self) -> usize {
        logwarden_ingest::stage_threads(self.encode_threads)
    }

    /// Writer properties for files of `schema`, sorted by (service, event time).
    pub fn writer_properties(&self, schema: &SchemaRef) -> WriterProperties {
        self.writer_properties_with_blooms(schema, &[])
    }

    /// Writer properties with bloom filters on `template_id` and on the
    /// columns `blooms` names.
    pub fn writer_properties_with_blooms(
        &self,
        schema: &SchemaRef,
        blooms: &[String],
    ) -> WriterProperties {
        let level = ZstdLevel::try_new(self.zstd_level).unwrap_or_default();
        let sorting = sorting_columns(schema);
        let mut b = WriterProperties::builder();
        // Columns of (nearly) unique values: a dictionary only costs here.
        // The writer would build one until its page limit and then fall back
        // to plain pages, so a file's first ~1 MiB of values would be stored
        // twice over (dictionary plus indices). Plain pages with zstd measured
        // 19% smaller and cheaper to write on the ingest bench.
        for c in HIGH_CARDINALITY {
            b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
        }
        b = b.set_column_dictionary_enabled(attribute_values_path(), false);
        // Times and offsets climb within a file (sorted by service, then
        // time): delta-packed they take a byte or two per row before zstd,
        // where plain pages hand zstd eight. On the ingest bench this wrote
        // a 3.7% smaller archive for 3.4% less CPU. Every engine the archive
        // is for decodes it (Spark since 3.3 in its vectorized reader).
        for c in DELTA_PACKED {
            b = b.set_column_encoding(ColumnPath::from(*c), Encoding::DELTA_BINARY_PACKED);
        }
        // Min/max of free text and of the attribute map's keys and values
        // (all keys of a file mixed in one column) prune nothing, and
        // computing them compares every string of every page.
        for c in UNPRUNABLE {
            b = b.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::None);
        }
        b = b
            .set_column_statistics_enabled(attribute_keys_path(), EnabledStatistics::None)
            .set_column_statistics_enabled(attribute_values_path(), EnabledStatistics::None);
        for c in blooms {
            b = b.set_column_bloom_filter_enabled(ColumnPath::from(c.as_str()), true);
        }
        b
            // Data page v1: the one every engine (older Spark, Athena) reads.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_column_bloom_filter_enabled(ColumnPath::from(col::TEMPLATE_ID), true)
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

/// The order of every file's rows, recorded in each row group's
/// `sorting_columns`: (service, event time), ascending, nulls first.
/// Compaction merges files that declare it without sorting them again.
pub fn sorting_columns(schema: &SchemaRef) -> Vec<SortingColumn> {
    [col::SERVICE, col::EVENT_TIME]
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect()
}

/// Top-level columns written without a dictionary: event and ingest
/// times and Kafka offsets are nearly unique per row, and free-text
/// messages mostly so (zstd still folds repeated ones within a page).
const HIGH_CARDINALITY: &[&str] = &[
    col::EVENT_TIME,
    col::INGEST_TIME,
    col::OFFSET,
    col::MESSAGE,
    col::RAW,
];

/// Integer columns written delta-packed: they grow within a file.
const DELTA_PACKED: &[&str] = &[col::EVENT_TIME, col::INGEST_TIME, col::OFFSET];

/// Top-level columns written without statistics: free text, and template
/// ids (hashes, whose ranges prune nothing; their bloom filter does).
const UNPRUNABLE: &[&str] = &[col::MESSAGE, col::RAW, col::TEMPLATE, col::TEMPLATE_ID];

/// The Parquet path of the attribute map's keys.
fn attribute_keys_path() -> ColumnPath {
    attribute_path("key")
}

/// The Parquet path of the attribute map's values.
fn attribute_values_path() -> ColumnPath {
    attribute_path("value")
}

fn attribute_path(leaf: &str) -> ColumnPath {
    ColumnPath::new(vec![
        col::ATTRIBUTES.to_string(),
        "key_value".to_string(),
        leaf.to_string(),
    ])
}

/// Shared writer properties for one archive.
pub fn shared_properties(cfg: &ParquetConfig, schema: &SchemaRef) -> Arc<WriterProperties> {
    Arc::new(cfg.writer_properties(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};

    use logwarden_ingest::schema::log_schema;

    /// A file written with the archive's properties: low-cardinality columns
    /// dictionary-encoded, nearly unique ones plain, a bloom filter on
    /// `template_id`, the page index, the sort order and the version
    /// metadata all present, as the engines reading the archive expect.
    #[test]
    fn files_carry_the_encodings_indexes_and_metadata_engines_use() {
        let schema = log_schema();
        let batch = crate::test_support::varied_batch(5_000);
        let props = ParquetConfig::default().writer_properties(&schema);
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");

        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader =
            SerializedFileReader::new_with_options(Bytes::from(buf), options).expect("reader");
        let meta = reader.metadata();
        let rg = meta.row_group(0);
        let column = |path: &str| {
            (0..rg.num_columns())
                .map(|i| rg.column(i))
                .find(|c| c.column_path().string() == path)
                .unwrap_or_else(|| panic!("no column {path}"))
        };
        let dictionary = |path: &str| {
            column(path)
                .encodings()
                .any(|e| e == Encoding::RLE_DICTIONARY)
        };
        for path in [
            col::LEVEL,
            col::SERVICE,
            col::HOST,
            col::TEMPLATE_ID,
            col::TOPIC,
        ] {
            assert!(dictionary(path), "{path} should be dictionary-encoded");
        }
        for path in [
            col::EVENT_TIME,
            col::INGEST_TIME,
            col::OFFSET,
            col::MESSAGE,
            "attributes.key_value.value",
        ] {
            assert!(!dictionary(path), "{path} should be plain");
        }
        for path in DELTA_PACKED {
            let encodings: Vec<Encoding> = column(path).encodings().collect();
            assert!(
                encodings.contains(&Encoding::DELTA_BINARY_PACKED)
                    && !encodings.contains(&Encoding::PLAIN),
                "{path} should be delta-packed: {encodings:?}"
            );
        }
        assert!(column(col::TEMPLATE_ID).bloom_filter_offset().is_some());
        assert!(column(col::MESSAGE).bloom_filter_offset().is_none());
        for path in [col::EVENT_TIME, col::SERVICE, col::LEVEL] {
            assert!(
                column(path).column_index_offset().is_some(),
                "{path}: column index"
            );
            assert!(
                column(path).offset_index_offset().is_some(),
                "{path}: offset index"
            );
            assert!(column(path).statistics().is_some(), "{path}: statistics");
        }
        // Free text, template ids and the attribute map have no min/max to
        // prune with.
        for path in [
            col::MESSAGE,
            col::TEMPLATE,
            col::TEMPLATE_ID,
            "attributes.key_value.key",
            "attributes.key_value.value",
        ] {
            assert!(column(path).statistics().is_none(), "{path}: statistics");
            assert!(
                column(path).offset_index_offset().is_some(),
                "{path}: offset index"
            );
        }
        assert!(meta.page_index().is_some(), "the page index reads back");
        let sorting = rg.sorting_columns().expect("sort order recorded");
        let sorted: Vec<usize> = sorting.iter().map(|s| s.column_idx as usize).collect();
        assert_eq!(
            sorted,
            vec![
                schema.index_of(col::SERVICE).expect("service"),
                schema.index_of(col::EVENT_TIME).expect("event_time"),
            ]
        );
        let kv = meta.file_metadata().key_value_metadata().expect("metadata");
        assert!(kv
            .iter()
            .any(|k| k.key == "logwarden.schema_version"
                && k.value.as_deref() == Some(SCHEMA_VERSION)));
    }
}
