//! The Parquet archive as a backtest source: the files of each partition
//! directory (`dt=/hour=`, which sort chronologically) are read together and
//! their records replayed in event-time order, so memory holds one
//! partition's four detect columns at a time.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use logwarden_ingest::record::LogRecord;

use crate::backtest_cmd::level_from_str;

/// Archive bookkeeping directory, not data.
const BOOKKEEPING_DIR: &str = "_logwarden";
/// Columns the detector reads.
const COLUMNS: [&str; 4] = ["event_time", "level", "service", "template_id"];

/// One archived record, as much as the detector needs.
struct Row {
    event_time_us: i64,
    level: logwarden_ingest::record::Level,
    service: Option<String>,
    template_id: Option<u64>,
}

pub struct ArchiveSource {
    /// Partition directories still to read, in reverse order (pop = next).
    dirs: Vec<Vec<PathBuf>>,
    rows: std::vec::IntoIter<Row>,
}

impl ArchiveSource {
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        collect(root, &mut files)?;
        if files.is_empty() {
            bail!("no .parquet files under {}", root.display());
        }
        files.sort();
        let mut dirs: Vec<Vec<PathBuf>> = Vec::new();
        for f in files {
            match dirs.last_mut() {
                Some(d) if d[0].parent() == f.parent() => d.push(f),
                _ => dirs.push(vec![f]),
            }
        }
        dirs.reverse();
        Ok(Self {
            dirs,
            rows: Vec::new().into_iter(),
        })
    }

    pub fn next(&mut self, rec: &mut LogRecord) -> anyhow::Result<bool> {
        loop {
            if let Some(r) = self.rows.next() {
                rec.clear();
                rec.event_time_us = r.event_time_us;
                rec.level = r.level;
                rec.service = r.service;
                rec.template_id = r.template_id;
                return Ok(true);
            }
            let Some(files) = self.dirs.pop() else {
                return Ok(false);
            };
            let mut rows = Vec::new();
            for f in &files {
                read_file(f, &mut rows).with_context(|| format!("reading {}", f.display()))?;
            }
            rows.sort_by_key(|r| r.event_time_us);
            self.rows = rows.into_iter();
        }
    }
}

impl crate::backtest_cmd::RecordSource for ArchiveSource {
    fn next(&mut self, rec: &mut LogRecord) -> anyhow::Result<bool> {
        ArchiveSource::next(self, rec)
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            if name != BOOKKEEPING_DIR {
                collect(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_file(path: &Path, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.parquet_schema();
    let indices: Vec<usize> = COLUMNS
        .iter()
        .filter_map(|c| schema.columns().iter().position(|d| d.name() == *c))
        .collect();
    let mask = ProjectionMask::leaves(schema, indices);
    let reader = builder.with_projection(mask).build()?;
    for batch in reader {
        let batch = batch?;
        let Some(times) = batch.column_by_name("event_time") else {
            bail!("no event_time column");
        };
        let times = arrow::compute::cast(
            times,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?;
        let times = times.as_primitive::<TimestampMicrosecondType>();
        let text = |name: &str| -> anyhow::Result<Option<arrow::array::StringArray>> {
            match batch.column_by_name(name) {
                Some(c) => Ok(Some(
                    arrow::compute::cast(c, &DataType::Utf8)?
                        .as_string::<i32>()
                        .clone(),
                )),
                None => Ok(None),
            }
        };
        let (levels, services, templates) =
            (text("level")?, text("service")?, text("template_id")?);
        let get = |a: &Option<arrow::array::StringArray>, i: usize| -> Option<String> {
            a.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i).to_string())
        };
        for i in 0..batch.num_rows() {
            if times.is_null(i) {
                continue;
            }
            rows.push(Row {
                event_time_us: times.value(i),
                level: get(&levels, i).map_or(logwarden_ingest::record::Level::Unknown, |l| {
                    level_from_str(&l)
                }),
                service: get(&services, i),
                template_id: get(&templates, i).and_then(|t| u64::from_str_radix(&t, 16).ok()),
            });
        }
    }
    Ok(())
}
