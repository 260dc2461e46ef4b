//! Compaction: merges the small files of closed partitions into files of
//! about [`CompactionConfig::target_file_bytes`], sorted by (service, event
//! time), without a reader ever seeing a row twice or missing one.
//!
//! Which files: those of partitions whose time range ended more than
//! `close_after_secs` ago, smaller than `min_file_bytes`, last written more
//! than `settle_secs` ago, and listed in no in-flight record (see
//! [`crate::inflight`]): a file that a replay may still delete or rewrite is
//! never merged, so a replay after compaction cannot resurrect rows that
//! already live in a merged file.
//!
//! How, on a local file system: the new content of a partition directory is
//! built in a staging directory outside the archive root (on the same file
//! system): the merged files plus hard links to the files kept as they are.
//! Then, holding the archive lock exclusively (ingest holds it shared while
//! it publishes), the staged directory and the live one are swapped with one
//! `renameat2(RENAME_EXCHANGE)`. A reader that opens the partition directory
//! lists either the old files or the new ones, never both and never neither.
//! The old directory, now in the staging area, is deleted afterwards. A crash
//! at any point leaves the live directory either old or new, both complete;
//! the next run deletes whatever is left in the staging area.
//!
//! On S3, where nothing can change several keys at once and listings are not
//! snapshots, the merged objects are put first (each visible only when
//! complete), then the inputs deleted, with a journal object
//! (`_logwarden/compaction/<id>.json`) saying which step was reached so that
//! the next run finishes or undoes an interrupted one. Rows are never
//! missing, but a reader listing the partition between the put and the
//! deletes can see a merged object and its inputs together: readers that
//! must not count twice during compaction deduplicate on the provenance key
//! (`docs/querying.md`).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;
use serde::{Deserialize, Serialize};

use logwarden_ingest::options::{require, InvalidOption};
use logwarden_ingest::schema::col;
use logwarden_ingest::sink::{RetryHint, SinkError};

use crate::inflight::InFlight;
use crate::layout::{
    fnv1a64, is_any_source_merged, is_source_file, is_source_merged, source_merged_name,
};
use crate::local::{
    ensure_dir, io_error, open_lock, sync_dir, walk_archive, write_parquet_file, META_DIR,
};
use crate::object::{delete_all, key_rel, put_parquet, runtime, store_error};
use crate::parquet::sorting_columns;
use crate::split::ArchiveLayout;
use crate::store::{object_path, s3_store, Location};

/// Default for [`CompactionConfig::min_file_bytes`]: 32 MiB.
pub const DEFAULT_MIN_FILE_BYTES: u64 = 32 << 20;
/// Default for [`CompactionConfig::target_file_bytes`]: 128 MiB.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 << 20;
/// Default for [`CompactionConfig::close_after_secs`]: one hour.
pub const DEFAULT_CLOSE_AFTER_SECS: u64 = 3600;
/// Default for [`CompactionConfig::settle_secs`]: ten minutes.
pub const DEFAULT_SETTLE_SECS: u64 = 600;
/// Default for [`CompactionConfig::in_ingest`]: on.
pub const DEFAULT_IN_INGEST: bool = true;
/// Default for [`CompactionConfig::interval_secs`]: five minutes.
pub const DEFAULT_INTERVAL_SECS: u64 = 300;
/// Name prefix of merged files.
pub const MERGED_PREFIX: &str = "compacted-";
/// Object stores: the lease object that makes one compactor at a time work
/// on an archive (under the bookkeeping directory, outside the journals).
pub const LEASE_REL: &str = "_logwarden/compactor-lease.json";
/// Default for [`CompactionConfig::lease_secs`]: five minutes.
pub const DEFAULT_LEASE_SECS: u64 = 300;
/// Default for [`CompactionConfig::max_merge_inputs`].
pub const DEFAULT_MAX_MERGE_INPUTS: usize = 32;

/// Compaction settings (the `[archive.compaction]` table).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Files smaller than this many bytes are merged.
    pub min_file_bytes: u64,
    /// Merged files are cut at about this many bytes (of input files).
    pub target_file_bytes: u64,
    /// A partition is closed, and may be compacted, this many seconds after
    /// the end of its time range (`dt`, `hour`); partitions without a time
    /// key are never compacted.
    pub close_after_secs: u64,
    /// A file is merged only when it was last written at least this many
    /// seconds ago.
    pub settle_secs: u64,
    /// Local archives: where the new partition directories are staged. It
    /// must be on the archive's file system and outside the archive root
    /// (readers globbing `**/*.parquet` must not see it). Default: the
    /// hidden sibling `.<root name>.compacting` of the root.
    pub staging_dir: Option<PathBuf>,
    /// `logwarden ingest` compacts by itself: from Kafka, every
    /// `interval_secs` on a background thread; from `--input`, the
    /// partitions the backfill wrote once it is archived, before exiting.
    pub in_ingest: bool,
    /// Seconds between two compaction runs of a Kafka ingest (the first one
    /// an interval after start).
    pub interval_secs: u64,
    /// Object stores: one compactor works on an archive at a time, holding
    /// a lease object renewed before each merge; a lease not renewed for
    /// this many seconds (its holder died) is taken over.
    pub lease_secs: u64,
    /// At most this many files are merged into one at a time: a merge holds
    /// a few pages and one batch per input, so this bounds its memory. A
    /// partition with more small files is merged in passes, each pass
    /// merging the previous one's outputs, until one file of them is left
    /// (or files of about `target_file_bytes`).
    pub max_merge_inputs: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            min_file_bytes: DEFAULT_MIN_FILE_BYTES,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            close_after_secs: DEFAULT_CLOSE_AFTER_SECS,
            settle_secs: DEFAULT_SETTLE_SECS,
            staging_dir: None,
            in_ingest: DEFAULT_IN_INGEST,
            interval_secs: DEFAULT_INTERVAL_SECS,
            lease_secs: DEFAULT_LEASE_SECS,
            max_merge_inputs: DEFAULT_MAX_MERGE_INPUTS,
        }
    }
}

impl CompactionConfig {
    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            self.min_file_bytes > 0 && self.target_file_bytes >= self.min_file_bytes,
            "archive.compaction.min_file_bytes",
            "must be positive and at most archive.compaction.target_file_bytes",
        )?;
        require(
            self.max_merge_inputs >= 2,
            "archive.compaction.max_merge_inputs",
            "must be at least 2",
        )?;
        require(
            self.lease_secs > 0,
            "archive.compaction.lease_secs",
            "must be at least 1",
        )?;
        require(
            !self.in_ingest || self.interval_secs > 0,
            "archive.compaction.interval_secs",
            "must be at least 1 when archive.compaction.in_ingest is on",
        )
    }
}

/// A compaction failure.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Storage(#[from] SinkError),
    #[error(transparent)]
    Option(#[from] InvalidOption),
    #[error("{0}")]
    Config(String),
    #[error("another compaction is running on this archive")]
    Busy,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Interrupted earlier runs finished or undone.
    pub recovered: usize,
    pub partitions: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub rows: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Partitions skipped because they changed while being compacted.
    pub skipped: usize,
    /// The run stopped before the end (asked to, or its lease was lost);
    /// the next run takes up the rest.
    pub stopped: bool,
}

/// What one run may take beyond the usual rules, and when it stops early.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunScope<'a> {
    /// Only the files of this source partition (topic, partition), which
    /// are complete and final: a backfill that ran to its end, its
    /// in-flight record settled. They are merged whatever their partition's
    /// time range and their age, into files named after the source
    /// ([`crate::layout::source_merged_name`]) that a re-run of the
    /// backfill deletes first. Other files are left to ordinary runs,
    /// which in turn leave these merged files alone.
    pub final_source: Option<(&'a str, i32)>,
    /// Checked before each merge: once one is set, the run stops (ingest's
    /// shutdown). A merge already started is finished.
    pub stop: &'a [&'a AtomicBool],
}

/// One published Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path relative to the archive root.
    pub rel: String,
    pub size: u64,
    pub modified: SystemTime,
}

impl FileInfo {
    fn dir(&self) -> &str {
        self.rel.rsplit_once('/').map_or("", |(d, _)| d)
    }
    fn name(&self) -> &str {
        self.rel.rsplit_once('/').map_or(&self.rel, |(_, n)| n)
    }
}

/// Storage operations compaction needs.
trait Backend {
    /// Whether the run may start one more merge (an object store's lease,
    /// renewed when due, is still held).
    fn keep_going(&mut self) -> bool {
        true
    }
    /// Takes what makes this run the only one on the archive (an object
    /// store's lease; a local archive's compactor lock is taken on open).
    fn acquire(&mut self) -> Result<(), CompactError> {
        Ok(())
    }
    /// Gives up what the run held (an object store's lease).
    fn release(&mut self) {}
    /// Finishes or undoes interrupted runs; returns how many.
    fn recover(&mut self) -> Result<usize, CompactError>;
    /// Every published Parquet file, outside the bookkeeping directory.
    fn list(&mut self) -> Result<Vec<FileInfo>, CompactError>;
    /// Every in-flight record.
    fn inflight(&mut self) -> Result<Vec<InFlight>, CompactError>;
    /// Opens a published file for reading.
    fn open(&mut self, rel: &str) -> Result<InputData, CompactError>;
    /// Replaces `inputs` (all in `dir`) by one file `name` holding the
    /// batches of `merge`, written as they come, for readers at once (or as
    /// nearly as the storage allows). Returns the new file, or `None` when
    /// the partition changed meanwhile and was left untouched. When the
    /// merge fails, nothing is published and the error is returned.
    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        name: &str,
        merge: &mut SortedMerge,
    ) -> Result<Option<FileInfo>, CompactError>;
}

/// A file's bytes, as the backend gives them: local files are read page by
/// page, objects are fetched whole (they are small files).
enum InputData {
    File(File),
    Bytes(bytes::Bytes),
}

/// Opens an input for the merge, in batches of [`merge::READ_BATCH_ROWS`].
/// A file that does not declare the archive's sort order in every row
/// group (not written by logwarden) is sorted in memory first; it is a
/// small file.
fn open_sorted(rel: &str, data: InputData) -> Result<(SchemaRef, BatchIter), CompactError> {
    fn open<R: ChunkReader + 'static>(
        rel: &str,
        r: R,
    ) -> Result<(SchemaRef, BatchIter), CompactError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(r)
            .map_err(|e| parquet_read_error(rel, e))?
            .with_batch_size(merge::READ_BATCH_ROWS);
        let schema = builder.schema().clone();
        let order = sorting_columns(&schema);
        let declared = builder
            .metadata()
            .row_groups()
            .iter()
            .all(|rg| rg.sorting_columns().is_some_and(|s| s.starts_with(&order)))
            && order.len() == 2;
        let reader = builder.build().map_err(|e| parquet_read_error(rel, e))?;
        if declared {
            return Ok((schema, Box::new(reader)));
        }
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet_read_error(rel, e.into()))?;
        if batches.is_empty() {
            return Ok((schema, Box::new(std::iter::empty())));
        }
        let sorted = merge_sorted(batches).map_err(|e| parquet_read_error(rel, e.into()))?;
        Ok((schema, Box::new(std::iter::once(Ok(sorted)))))
    }
    match data {
        InputData::File(f) => open(rel, f),
        InputData::Bytes(b) => open(rel, b),
    }
}

/// Every row of a published file, in the file's order.
#[cfg(test)]
fn read_all(backend: &mut dyn Backend, rel: &str) -> Result<Vec<RecordBatch>, CompactError> {
    let (_, batches) = open_sorted(rel, backend.open(rel)?)?;
    batches
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet_read_error(rel, e.into()))
}

/// Compacts the archive at `location`.
pub fn compact(
    location: &Location,
    layout: &ArchiveLayout,
    now: SystemTime,
) -> Result<CompactReport, CompactError> {
    compact_scoped(location, layout, now, RunScope::default())
}

/// Compacts the archive at `location`, with the extra files and the stop
/// flag of `scope` (ingest's own compaction).
pub fn compact_scoped(
    location: &Location,
    layout: &ArchiveLayout,
    now: SystemTime,
    scope: RunScope<'_>,
) -> Result<CompactReport, CompactError> {
    layout.validate()?;
    let mut backend: Box<dyn Backend> = match location {
        Location::Local(root) => Box::new(LocalBackend::open(root, layout)?),
        Location::S3 { bucket, prefix } => {
            let store = s3_store(bucket, &layout.s3)
                .map_err(|e| CompactError::Storage(store_error("configuring S3", e)))?;
            Box::new(StoreBackend::new(store, prefix, layout)?)
        }
    };
    run(backend.as_mut(), &layout.compaction, now, scope)
}

/// Compacts an archive in any object store (tests use the in-memory one).
pub fn compact_store(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    layout: &ArchiveLayout,
    now: SystemTime,
    scope: RunScope<'_>,
) -> Result<CompactReport, CompactError> {
    let mut backend = StoreBackend::new(store, prefix, layout)?;
    run(&mut backend, &layout.compaction, now, scope)
}

fn run(
    backend: &mut dyn Backend,
    cfg: &CompactionConfig,
    now: SystemTime,
    scope: RunScope<'_>,
) -> Result<CompactReport, CompactError> {
    backend.acquire()?;
    let result = run_held(backend, cfg, now, scope);
    backend.release();
    result
}

fn run_held(
    backend: &mut dyn Backend,
    cfg: &CompactionConfig,
    now: SystemTime,
    scope: RunScope<'_>,
) -> Result<CompactReport, CompactError> {
    let mut report = CompactReport {
        recovered: backend.recover()?,
        ..Default::default()
    };
    // List first, then read the in-flight records: a segment's record is
    // written before its files, so every listed file that may be uncommitted
    // is in a record read afterwards.
    let files = backend.list()?;
    let records = backend.inflight()?;
    let protected: HashSet<String> = records
        .iter()
        .flat_map(|r| r.protected_files().map(str::to_string).collect::<Vec<_>>())
        .collect();
    // The backfills whose files are merged apart, each into files named
    // after it, so that a re-run of it still replaces its rows instead of
    // adding them again: the finished one this run is scoped to, or, in an
    // ordinary run, every backfill, finished or running (with in-ingest
    // compaction off, a finished one did not merge its own).
    let backfills: Vec<(&str, i32)> = match scope.final_source {
        Some(source) => vec![source],
        None => records
            .iter()
            .filter(|r| r.is_backfill())
            .map(|r| (r.topic.as_str(), r.partition))
            .collect(),
    };
    let backfill_of = |f: &FileInfo| {
        backfills.iter().copied().find(|&(topic, partition)| {
            is_source_file(f.name(), topic, partition)
                || is_source_merged(f.name(), topic, partition)
        })
    };
    let mut by_dir: BTreeMap<String, Vec<FileInfo>> = BTreeMap::new();
    for f in files {
        by_dir.entry(f.dir().to_string()).or_default().push(f);
    }
    let stop_asked = || scope.stop.iter().any(|s| s.load(Ordering::Relaxed));
    // Whether a file, of the backfill given (if any), may be merged.
    type Eligible<'a> = Box<dyn Fn(&FileInfo, Option<(&str, i32)>) -> bool + 'a>;
    'dirs: for (dir, mut files) in by_dir {
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        let eligible: Eligible<'_> = if scope.final_source.is_some() {
            // A finished backfill: its own files only, so that the merged
            // files hold its rows alone and a re-run can replace them.
            Box::new(|_, backfill| backfill.is_some())
        } else {
            if !partition_closed(&dir, cfg.close_after_secs, now) {
                continue;
            }
            let settle = Duration::from_secs(cfg.settle_secs);
            // Merged files of a backfill whose record is gone are left
            // alone (a re-run deletes them); those of a known one are
            // merged with its own files.
            Box::new(move |f, backfill| {
                now.duration_since(f.modified)
                    .is_ok_and(|age| age >= settle)
                    && (backfill.is_some() || !is_any_source_merged(f.name()))
            })
        };
        // One set of inputs per source: each backfill's apart (named after
        // it), the rest together.
        let mut sets: BTreeMap<Option<(&str, i32)>, Vec<FileInfo>> = BTreeMap::new();
        for f in files {
            let backfill = backfill_of(&f);
            if f.size < cfg.min_file_bytes && !protected.contains(&f.rel) && eligible(&f, backfill)
            {
                sets.entry(backfill).or_default().push(f);
            }
        }
        let mut merged_any = false;
        for (source, mut pending) in sets {
            // Passes: each merges groups of at most `max_merge_inputs`
            // files; its outputs still under `min_file_bytes` go on to the
            // next pass with the files no group took.
            loop {
                let (groups, mut next) =
                    group_inputs(pending, cfg.target_file_bytes, cfg.max_merge_inputs);
                if groups.is_empty() {
                    break;
                }
                for group in groups {
                    if stop_asked() || !backend.keep_going() {
                        report.stopped = true;
                        break 'dirs;
                    }
                    let name = merged_name(&group, source);
                    let Some(out) = merge_group(backend, &dir, &group, &name, &mut report)? else {
                        continue;
                    };
                    merged_any = true;
                    if out.size < cfg.min_file_bytes {
                        next.push(out);
                    }
                }
                next.sort_by(|a, b| a.rel.cmp(&b.rel));
                pending = next;
            }
        }
        if merged_any {
            report.partitions += 1;
        }
    }
    Ok(report)
}

/// Merges one group of files of `dir` into the file `name`, streaming;
/// counts it in `report`. Returns the new file, or `None` when the group
/// was left as it is (different schemas, an input out of order, or the
/// partition changed meanwhile).
fn merge_group(
    backend: &mut dyn Backend,
    dir: &str,
    group: &[FileInfo],
    name: &str,
    report: &mut CompactReport,
) -> Result<Option<FileInfo>, CompactError> {
    let mut schema: Option<SchemaRef> = None;
    let mut inputs = Vec::with_capacity(group.len());
    for f in group {
        let (s, batches) = open_sorted(&f.rel, backend.open(&f.rel)?)?;
        match &schema {
            Some(first) if first.fields() != s.fields() => {
                tracing::warn!(dir, file = %f.rel, "files of different schemas left as they are");
                report.skipped += 1;
                return Ok(None);
            }
            Some(_) => {}
            None => schema = Some(s),
        }
        inputs.push(batches);
    }
    let Some(schema) = schema else {
        return Ok(None);
    };
    let mut merge = SortedMerge::new(schema, inputs).map_err(|e| {
        CompactError::Config(format!(
            "the archive's files in {dir} have no (service, event_time) to sort on: {e}"
        ))
    })?;
    let result = backend.replace(dir, group, name, &mut merge);
    match (merge.failure(), result) {
        (Some(MergeFailure::Unsorted(i)), _) => {
            tracing::warn!(
                dir,
                file = %group[*i].rel,
                "a file out of (service, event_time) order; its group left as it is"
            );
            report.skipped += 1;
            Ok(None)
        }
        (Some(MergeFailure::Read(i, e)), _) => {
            let file = group.get(*i).map_or(dir, |f| f.rel.as_str());
            Err(CompactError::Storage(SinkError {
                context: format!("reading {file}"),
                hint: RetryHint::Retry,
                kind: "io",
                source: e.clone().into(),
            }))
        }
        (None, Err(e)) => Err(e),
        (None, Ok(None)) => {
            report.skipped += 1;
            Ok(None)
        }
        (None, Ok(Some(out))) => {
            let rows = merge.rows();
            report.files_in += group.len();
            report.files_out += 1;
            report.rows += rows;
            report.bytes_in += group.iter().map(|f| f.size).sum::<u64>();
            report.bytes_out += out.size;
            tracing::info!(
                dir,
                files = group.len(),
                rows,
                bytes = out.size,
                "files merged"
            );
            Ok(Some(out))
        }
    }
}

/// Greedy groups of consecutive small files of at most `target` bytes and
/// `max_files` files; a group of one file is not worth rewriting. Returns
/// the groups and the files left out of them.
fn group_inputs(
    small: Vec<FileInfo>,
    target: u64,
    max_files: usize,
) -> (Vec<Vec<FileInfo>>, Vec<FileInfo>) {
    let mut groups: Vec<Vec<FileInfo>> = Vec::new();
    let mut cur: Vec<FileInfo> = Vec::new();
    let mut cur_bytes = 0;
    for f in small {
        if !cur.is_empty() && (cur_bytes + f.size > target || cur.len() >= max_files) {
            groups.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += f.size;
        cur.push(f);
    }
    groups.push(cur);
    let (groups, single): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.len() >= 2);
    (groups, single.into_iter().flatten().collect())
}

/// The merged file's name: deterministic from its inputs, and prefixed
/// with the source's name when they all come from one finished backfill.
fn merged_name(inputs: &[FileInfo], source: Option<(&str, i32)>) -> String {
    let joined: Vec<&str> = inputs.iter().map(FileInfo::name).collect();
    let hash = fnv1a64(joined.join("\n").as_bytes());
    match source {
        Some((topic, partition)) => source_merged_name(topic, partition, hash),
        None => format!("{MERGED_PREFIX}{hash:016x}.parquet"),
    }
}

/// Concatenates and sorts by (service, event time). The inputs are
/// dropped once concatenated, so at most two copies of the rows are held.
fn merge_sorted(batches: Vec<RecordBatch>) -> Result<RecordBatch, arrow::error::ArrowError> {
    let Some(first) = batches.first() else {
        return Err(arrow::error::ArrowError::InvalidArgumentError(
            "nothing to merge".into(),
        ));
    };
    let all = concat_batches(&first.schema(), &batches)?;
    drop(batches);
    let schema = all.schema();
    let asc = Some(SortOptions {
        descending: false,
        nulls_first: true,
    });
    let keys = [col::SERVICE, col::EVENT_TIME]
        .iter()
        .map(|c| {
            Ok(SortColumn {
                values: all.column(schema.index_of(c)?).clone(),
                options: asc,
            })
        })
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()?;
    let idx = lexsort_to_indices(&keys, None)?;
    take_record_batch(&all, &idx)
}

/// Whether the partition `dir` (`dt=…[/hour=…][/…]`) ended more than
/// `after_secs` before `now`.
pub fn partition_closed(dir: &str, after_secs: u64, now: SystemTime) -> bool {
    let mut day = None;
    let mut hour = None;
    for c in dir.split('/') {
        if let Some(v) = c.strip_prefix("dt=") {
            day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
        } else if let Some(v) = c.strip_prefix("hour=") {
            hour = v.parse::<u32>().ok().filter(|h| *h < 24);
        }
    }
    let Some(day) = day else { return false };
    let start = day
        .and_hms_opt(hour.unwrap_or(0), 0, 0)
        .map(|t| t.and_utc());
    let Some(start) = start else { return false };
    let len = if hour.is_some() { 3600 } else { 86_400 };
    let end_secs = start.timestamp() + len + after_secs as i64;
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    end_secs <= now_secs
}

fn parquet_read_error(rel: &str, e: parquet::errors::ParquetError) -> CompactError {
    CompactError::Storage(SinkError {
        context: format!("reading {rel}"),
        hint: RetryHint::Retry,
        kind: "io",
        source: Box::new(e),
    })
}

// ---------------------------------------------------------------------------
// Local file system

struct LocalBackend {
    root: PathBuf,
    staging: PathBuf,
    props: parquet::file::properties::WriterProperties,
    threads: usize,
    lock: File,
    /// Held (exclusively) for the whole run: one compactor at a time.
    _compactor: File,
}

impl LocalBackend {
    fn open(root: &Path, layout: &ArchiveLayout) -> Result<Self, CompactError> {
        let root = fs::canonicalize(root)
            .map_err(|e| io_error(format!("opening the archive {}", root.display()), e))?;
        let staging = match &layout.compaction.staging_dir {
            Some(d) => d.clone(),
            None => {
                let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
                    return Err(CompactError::Config(
                        "set archive.compaction.staging_dir: the archive root has no parent".into(),
                    ));
                };
                parent.join(format!(".{}.compacting", name.to_string_lossy()))
            }
        };
        ensure_dir(&staging).map_err(|e| io_error(format!("creating {}", staging.display()), e))?;
        let staging = fs::canonicalize(&staging)
            .map_err(|e| io_error(format!("opening {}", staging.display()), e))?;
        if staging.starts_with(&root) {
            return Err(CompactError::Config(format!(
                "archive.compaction.staging_dir {} is inside the archive: readers would see staged files",
                staging.display()
            )));
        }
        let same_fs = {
            use std::os::unix::fs::MetadataExt;
            let dev = |p: &Path| fs::metadata(p).map(|m| m.dev());
            dev(&root).map_err(|e| io_error(format!("{}", root.display()), e))?
                == dev(&staging).map_err(|e| io_error(format!("{}", staging.display()), e))?
        };
        if !same_fs {
            return Err(CompactError::Config(format!(
                "archive.compaction.staging_dir {} is not on the archive's file system",
                staging.display()
            )));
        }
        let compactor = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(staging.join(".compactor.lock"))
            .map_err(|e| io_error(format!("opening the lock in {}", staging.display()), e))?;
        match compactor.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(CompactError::Busy),
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_error("locking the staging area".into(), e).into())
            }
        }
        let lock = open_lock(&root)
            .map_err(|e| io_error(format!("opening the lock in {}", root.display()), e))?;
        Ok(Self {
            root,
            staging,
            props: layout.writer_properties(),
            threads: layout.parquet.threads(),
            lock,
            _compactor: compactor,
        })
    }

    fn stage_dir(&self, dir: &str) -> PathBuf {
        self.staging
            .join(format!("{:016x}", fnv1a64(dir.as_bytes())))
    }
}

fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Backend for LocalBackend {
    fn recover(&mut self) -> Result<usize, CompactError> {
        // Whatever is staged is either an unpublished new directory or an
        // old one already swapped out: neither is visible, both can go.
        let mut n = 0;
        for e in fs::read_dir(&self.staging)
            .map_err(|e| io_error(format!("listing {}", self.staging.display()), e))?
            .flatten()
        {
            if e.path().is_dir() {
                remove_tree(&e.path())
                    .map_err(|err| io_error(format!("removing {}", e.path().display()), err))?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn list(&mut self) -> Result<Vec<FileInfo>, CompactError> {
        let mut out = Vec::new();
        walk_archive(&self.root, |rel, name, e| {
            let Ok(meta) = e.metadata() else { return };
            if name.ends_with(".parquet") && !name.starts_with('.') {
                out.push(FileInfo {
                    rel,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        })?;
        Ok(out)
    }

    fn inflight(&mut self) -> Result<Vec<InFlight>, CompactError> {
        let dir = self.root.join(META_DIR).join("inflight");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("listing {}", dir.display()), e).into()),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                if let Some(r) = crate::local::read_inflight(&e.path())? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    fn open(&mut self, rel: &str) -> Result<InputData, CompactError> {
        let f =
            File::open(self.root.join(rel)).map_err(|e| io_error(format!("opening {rel}"), e))?;
        Ok(InputData::File(f))
    }

    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        name: &str,
        merge: &mut SortedMerge,
    ) -> Result<Option<FileInfo>, CompactError> {
        let live = self.root.join(dir);
        let stage = self.stage_dir(dir);
        remove_tree(&stage).map_err(|e| io_error(format!("removing {}", stage.display()), e))?;
        ensure_dir(&stage).map_err(|e| io_error(format!("creating {}", stage.display()), e))?;
        let schema = merge.schema();
        let swapped = write_parquet_file(&stage, name, schema, merge, &self.props, self.threads)
            .map_err(CompactError::from)
            .and_then(|_| {
                self.lock
                    .lock()
                    .map_err(|e| io_error("locking the archive".into(), e))?;
                let swapped = self.swap_locked(&live, &stage, inputs);
                let _ = self.lock.unlock();
                swapped
            });
        // After the swap the stage holds the old directory; before (or
        // without) it, the unpublished new one. Either way it goes.
        remove_tree(&stage).map_err(|e| io_error(format!("removing {}", stage.display()), e))?;
        if !swapped? {
            return Ok(None);
        }
        let rel = format!("{dir}/{name}");
        let meta = fs::metadata(self.root.join(&rel))
            .map_err(|e| io_error(format!("reading the size of {rel}"), e))?;
        Ok(Some(FileInfo {
            rel,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }))
    }
}

impl LocalBackend {
    /// With the archive locked: checks that the inputs are unchanged, links
    /// every other file of the live directory into the stage, and swaps.
    fn swap_locked(
        &self,
        live: &Path,
        stage: &Path,
        inputs: &[FileInfo],
    ) -> Result<bool, CompactError> {
        let mut seen = 0;
        let rd =
            fs::read_dir(live).map_err(|e| io_error(format!("listing {}", live.display()), e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || name.starts_with('.') {
                continue;
            }
            if let Some(input) = inputs.iter().find(|f| f.name() == name) {
                let unchanged =
                    meta.len() == input.size && meta.modified().ok() == Some(input.modified);
                if !unchanged {
                    tracing::warn!(file = %input.rel, "input rewritten during compaction; partition left as it is");
                    return Ok(false);
                }
                seen += 1;
                continue;
            }
            let target = stage.join(&name);
            if target.exists() {
                // A kept file with a merged file's name: cannot happen with
                // ingest's names; do not guess.
                tracing::warn!(
                    file = name,
                    "name clash in the staged partition; left as it is"
                );
                return Ok(false);
            }
            fs::hard_link(e.path(), &target)
                .map_err(|err| io_error(format!("linking {}", e.path().display()), err))?;
        }
        if seen != inputs.len() {
            tracing::warn!(dir = %live.display(), "an input vanished during compaction; partition left as it is");
            return Ok(false);
        }
        sync_dir(stage).map_err(|e| io_error(format!("syncing {}", stage.display()), e))?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            live,
            rustix::fs::CWD,
            stage,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| io_error(format!("swapping {}", live.display()), e.into()))?;
        for d in [live.parent(), stage.parent()].into_iter().flatten() {
            sync_dir(d).map_err(|e| io_error(format!("syncing {}", d.display()), e))?;
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Object stores

/// The journal of one partition's compaction in an object store.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// `writing`: outputs may be partly put, inputs all present.
    /// `published`: outputs all put, inputs being deleted.
    state: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// The lease object's content.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    /// Who holds it (process id and start time).
    owner: String,
    /// Seconds since the epoch after which anyone may take it over.
    expires_unix_secs: u64,
}

/// A lease this run holds.
struct HeldLease {
    owner: String,
    /// The version put last: a renewal is conditional on it.
    version: object_store::UpdateVersion,
    renewed: Instant,
}

struct StoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    props: parquet::file::properties::WriterProperties,
    threads: usize,
    rt: tokio::runtime::Runtime,
    lease_secs: u64,
    lease: Option<HeldLease>,
}

impl StoreBackend {
    fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        layout: &ArchiveLayout,
    ) -> Result<Self, CompactError> {
        Ok(Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            props: layout.writer_properties(),
            threads: layout.parquet.threads(),
            rt: runtime()?,
            lease_secs: layout.compaction.lease_secs,
            lease: None,
        })
    }

    fn path(&self, rel: &str) -> Result<ObjectPath, CompactError> {
        object_path(&self.prefix, rel).map_err(|e| {
            CompactError::Storage(SinkError {
                context: format!("object key for {rel}"),
                hint: RetryHint::Fatal,
                kind: "encode",
                source: Box::new(e),
            })
        })
    }

    fn rel<'a>(&self, key: &'a str) -> &'a str {
        key_rel(&self.prefix, key)
    }

    fn list_prefix(&self, rel: &str) -> Result<Vec<object_store::ObjectMeta>, CompactError> {
        let p = if rel.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.path(rel)?)
        };
        let store = self.store.clone();
        self.rt
            .block_on(async move { store.list(p.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(|e| store_error("listing the archive", e).into())
    }

    fn get(&self, rel: &str) -> Result<Option<bytes::Bytes>, CompactError> {
        let p = self.path(rel)?;
        let store = self.store.clone();
        self.rt
            .block_on(async move {
                match store.get(&p).await {
                    Ok(r) => r.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| store_error(&format!("reading {rel}"), e).into())
    }

    fn put_json(&self, rel: &str, v: &impl Serialize) -> Result<(), CompactError> {
        let body = serde_json::to_vec(v).map_err(|e| {
            CompactError::Storage(SinkError {
                context: "encoding the compaction journal".into(),
                hint: RetryHint::Fatal,
                kind: "encode",
                source: Box::new(e),
            })
        })?;
        let p = self.path(rel)?;
        self.rt
            .block_on(self.store.put(&p, PutPayload::from(body)))
            .map_err(|e| store_error(&format!("writing {rel}"), e))?;
        Ok(())
    }

    fn delete(&self, rels: &[String]) -> Result<(), CompactError> {
        let paths = rels
            .iter()
            .map(|r| self.path(r))
            .collect::<Result<Vec<_>, _>>()?;
        self.rt
            .block_on(delete_all(self.store.as_ref(), &paths))
            .map_err(|e| store_error("deleting objects", e).into())
    }

    fn journal_rel(dir: &str) -> String {
        format!(
            "{META_DIR}/compaction/{:016x}.json",
            fnv1a64(dir.as_bytes())
        )
    }

    /// Deletes inputs, then the journal: the end of a published compaction.
    fn finish(&self, journal_rel: &str, j: &Journal) -> Result<(), CompactError> {
        self.delete(&j.inputs)?;
        self.delete(&[journal_rel.to_string()])
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StoreBackend {
    fn lease_body(&self, owner: &str) -> Result<PutPayload, CompactError> {
        let lease = Lease {
            owner: owner.to_string(),
            expires_unix_secs: unix_secs(SystemTime::now()) + self.lease_secs,
        };
        serde_json::to_vec(&lease)
            .map(PutPayload::from)
            .map_err(|e| {
                CompactError::Storage(SinkError {
                    context: "encoding the compactor lease".into(),
                    hint: RetryHint::Fatal,
                    kind: "encode",
                    source: Box::new(e),
                })
            })
    }

    /// Creates the lease object if absent (a conditional put), or takes
    /// over an expired one (a put conditional on its ETag). `Busy` when
    /// another compactor holds it.
    fn take_lease(&mut self) -> Result<(), CompactError> {
        use object_store::{PutMode, UpdateVersion};
        let owner = format!(
            "pid {} at {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339()
        );
        let body = self.lease_body(&owner)?;
        let path = self.path(LEASE_REL)?;
        let store = self.store.clone();
        let taken = self.rt.block_on(async move {
            match store
                .put_opts(&path, body.clone(), PutMode::Create.into())
                .await
            {
                Ok(r) => return Ok(Some(r)),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            let current = match store.get(&path).await {
                Ok(r) => r,
                // Released meanwhile: the next run takes it.
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let version = UpdateVersion {
                e_tag: current.meta.e_tag.clone(),
                version: current.meta.version.clone(),
            };
            let held = current.bytes().await?;
            // An unreadable lease protects nothing.
            let expired = serde_json::from_slice::<Lease>(&held)
                .ok()
                .is_none_or(|l| l.expires_unix_secs <= unix_secs(SystemTime::now()));
            if !expired {
                return Ok(None);
            }
            match store
                .put_opts(&path, body, PutMode::Update(version).into())
                .await
            {
                Ok(r) => {
                    tracing::info!("expired compactor lease taken over");
                    Ok(Some(r))
                }
                Err(object_store::Error::Precondition { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        match taken {
            Ok(Some(r)) => {
                self.lease = Some(HeldLease {
                    owner,
                    version: UpdateVersion {
                        e_tag: r.e_tag,
                        version: r.version,
                    },
                    renewed: Instant::now(),
                });
                Ok(())
            }
            Ok(None) => Err(CompactError::Busy),
            Err(e) => Err(store_error("taking the compactor lease", e).into()),
        }
    }

    /// Renews the lease once a third of it has passed. False when it is
    /// lost (taken over, or the store refused): the run must stop.
    fn renew_lease(&mut self) -> bool {
        use object_store::{PutMode, UpdateVersion};
        let Some(held) = &self.lease else {
            return false;
        };
        if held.renewed.elapsed() < Duration::from_secs(self.lease_secs) / 3 {
            return true;
        }
        let (Ok(body), Ok(path)) = (self.lease_body(&held.owner), self.path(LEASE_REL)) else {
            return false;
        };
        let mode = PutMode::Update(held.version.clone());
        let store = self.store.clone();
        match self
            .rt
            .block_on(async move { store.put_opts(&path, body, mode.into()).await })
        {
            Ok(r) => {
                if let Some(held) = &mut self.lease {
                    held.version = UpdateVersion {
                        e_tag: r.e_tag,
                        version: r.version,
                    };
                    held.renewed = Instant::now();
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "compactor lease lost; this run stops");
                self.lease = None;
                false
            }
        }
    }
}

impl Backend for StoreBackend {
    fn acquire(&mut self) -> Result<(), CompactError> {
        self.take_lease()
    }

    fn keep_going(&mut self) -> bool {
        self.renew_lease()
    }

    fn release(&mut self) {
        let Some(held) = self.lease.take() else {
            return;
        };
        // Deleted only while it is still ours (renewed within a third of
        // its time, so nobody can have taken it over since).
        let ours = self
            .get(LEASE_REL)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Lease>(&b).ok())
            .is_some_and(|l| l.owner == held.owner);
        if ours {
            if let Err(e) = self.delete(&[LEASE_REL.to_string()]) {
                tracing::warn!(error = %e, "releasing the compactor lease failed; it expires by itself");
            }
        }
    }

    fn recover(&mut self) -> Result<usize, CompactError> {
        let metas = self.list_prefix(&format!("{META_DIR}/compaction"))?;
        let mut n = 0;
        for m in metas {
            let rel = self.rel(m.location.as_ref()).to_string();
            let Some(body) = self.get(&rel)? else {
                continue;
            };
            let Ok(j) = serde_json::from_slice::<Journal>(&body) else {
                tracing::warn!(journal = rel, "unreadable compaction journal left alone");
                continue;
            };
            if j.state == "published" {
                self.finish(&rel, &j)?;
            } else {
                self.delete(&j.outputs)?;
                self.delete(std::slice::from_ref(&rel))?;
            }
            tracing::info!(
                journal = rel,
                state = j.state,
                "interrupted compaction recovered"
            );
            n += 1;
        }
        Ok(n)
    }

    fn list(&mut self) -> Result<Vec<FileInfo>, CompactError> {
        let metas = self.list_prefix("")?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let rel = self.rel(m.location.as_ref()).to_string();
                let name = rel.rsplit('/').next().unwrap_or("");
                (rel.ends_with(".parquet")
                    && !name.starts_with('.')
                    && !rel.starts_with(&format!("{META_DIR}/")))
                .then(|| FileInfo {
                    rel,
                    size: m.size,
                    modified: m.last_modified.into(),
                })
            })
            .collect())
    }

    fn inflight(&mut self) -> Result<Vec<InFlight>, CompactError> {
        let metas = self.list_prefix(&format!("{META_DIR}/inflight"))?;
        let mut out = Vec::new();
        for m in metas {
            let rel = self.rel(m.location.as_ref()).to_string();
            if let Some(b) = self.get(&rel)? {
                match InFlight::parse(&b) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(record = rel, error = %e, "unreadable in-flight record")
                    }
                }
            }
        }
        Ok(out)
    }

    fn open(&mut self, rel: &str) -> Result<InputData, CompactError> {
        // Inputs are small files (under min_file_bytes): fetched whole.
        let Some(bytes) = self.get(rel)? else {
            return Err(CompactError::Storage(SinkError {
                context: format!("reading {rel}"),
                hint: RetryHint::Retry,
                kind: "io",
                source: "object vanished".into(),
            }));
        };
        Ok(InputData::Bytes(bytes))
    }

    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        name: &str,
        merge: &mut SortedMerge,
    ) -> Result<Option<FileInfo>, CompactError> {
        let journal_rel = Self::journal_rel(dir);
        let rel = format!("{dir}/{name}");
        let mut j = Journal {
            state: "writing".into(),
            inputs: inputs.iter().map(|f| f.rel.clone()).collect(),
            outputs: vec![rel.clone()],
        };
        self.put_json(&journal_rel, &j)?;
        let p = self.path(&rel)?;
        let schema = merge.schema();
        let written = put_parquet(
            &self.rt,
            self.store.clone(),
            p.clone(),
            schema,
            merge,
            &self.props,
            self.threads,
        );
        if let Err(e) = written {
            // The upload was aborted: the output is not there; the journal
            // goes too (the next run would undo it otherwise).
            let _ = self.delete(std::slice::from_ref(&journal_rel));
            return Err(e.into());
        }
        j.state = "published".into();
        self.put_json(&journal_rel, &j)?;
        self.finish(&journal_rel, &j)?;
        let meta = self
            .rt
            .block_on(self.store.head(&p))
            .map_err(|e| store_error(&format!("reading the size of {rel}"), e))?;
        Ok(Some(FileInfo {
            rel,
            size: meta.size,
            modified: meta.last_modified.into(),
        }))
    }
}

mod merge;
use merge::{BatchIter, MergeFailure, SortedMerge};

#[cfg(test)]
mod tests;
