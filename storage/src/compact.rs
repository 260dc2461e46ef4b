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
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use logwarden_ingest::schema::col;
use logwarden_ingest::sink::{RetryHint, SinkError};

use crate::inflight::InFlight;
use crate::layout::fnv1a64;
use crate::local::{ensure_dir, io_error, open_lock, sync_dir, write_parquet_file, META_DIR};
use crate::object::{delete_all, put_parquet, runtime, store_error};
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
/// Name prefix of merged files.
pub const MERGED_PREFIX: &str = "compacted-";

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
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            min_file_bytes: DEFAULT_MIN_FILE_BYTES,
            target_file_bytes: DEFAULT_TARGET_FILE_BYTES,
            close_after_secs: DEFAULT_CLOSE_AFTER_SECS,
            settle_secs: DEFAULT_SETTLE_SECS,
            staging_dir: None,
        }
    }
}

impl CompactionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_file_bytes == 0 || self.target_file_bytes < self.min_file_bytes {
            return Err(
                "archive.compaction: min_file_bytes must be positive and at most target_file_bytes"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A compaction failure.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Storage(#[from] SinkError),
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
    /// Finishes or undoes interrupted runs; returns how many.
    fn recover(&mut self) -> Result<usize, CompactError>;
    /// Every published Parquet file, outside the bookkeeping directory.
    fn list(&mut self) -> Result<Vec<FileInfo>, CompactError>;
    /// Every in-flight record.
    fn inflight(&mut self) -> Result<Vec<InFlight>, CompactError>;
    fn read(&mut self, rel: &str) -> Result<Vec<RecordBatch>, CompactError>;
    /// Replaces `inputs` (all in `dir`) by `outputs` (name, rows) for
    /// readers at once (or as nearly as the storage allows). Returns the
    /// bytes written, or `None` when the partition changed meanwhile and was
    /// left untouched.
    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        outputs: &[(String, RecordBatch)],
    ) -> Result<Option<u64>, CompactError>;
}

/// Compacts the archive at `location`.
pub fn compact(
    location: &Location,
    layout: &ArchiveLayout,
    now: SystemTime,
) -> Result<CompactReport, CompactError> {
    layout.validate().map_err(CompactError::Config)?;
    let mut backend: Box<dyn Backend> = match location {
        Location::Local(root) => Box::new(LocalBackend::open(root, layout)?),
        Location::S3 { bucket, prefix } => {
            let store = s3_store(bucket, &layout.s3)
                .map_err(|e| CompactError::Storage(store_error("configuring S3", e)))?;
            Box::new(StoreBackend::new(store, prefix, layout)?)
        }
    };
    run(backend.as_mut(), &layout.compaction, now)
}

/// Compacts an archive in any object store (tests use the in-memory one).
pub fn compact_store(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    layout: &ArchiveLayout,
    now: SystemTime,
) -> Result<CompactReport, CompactError> {
    let mut backend = StoreBackend::new(store, prefix, layout)?;
    run(&mut backend, &layout.compaction, now)
}

fn run(
    backend: &mut dyn Backend,
    cfg: &CompactionConfig,
    now: SystemTime,
) -> Result<CompactReport, CompactError> {
    let mut report = CompactReport {
        recovered: backend.recover()?,
        ..Default::default()
    };
    // List first, then read the in-flight records: a segment's record is
    // written before its files, so every listed file that may be uncommitted
    // is in a record read afterwards.
    let files = backend.list()?;
    let protected: HashSet<String> = backend
        .inflight()?
        .iter()
        .flat_map(|r| r.protected_files().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut by_dir: BTreeMap<String, Vec<FileInfo>> = BTreeMap::new();
    for f in files {
        by_dir.entry(f.dir().to_string()).or_default().push(f);
    }
    for (dir, mut files) in by_dir {
        if !partition_closed(&dir, cfg.close_after_secs, now) {
            continue;
        }
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        let settled = |f: &FileInfo| {
            now.duration_since(f.modified)
                .is_ok_and(|age| age >= Duration::from_secs(cfg.settle_secs))
        };
        let small: Vec<FileInfo> = files
            .into_iter()
            .filter(|f| f.size < cfg.min_file_bytes && settled(f) && !protected.contains(&f.rel))
            .collect();
        let groups = group_inputs(small, cfg.target_file_bytes);
        if groups.is_empty() {
            continue;
        }
        for group in groups {
            let mut batches = Vec::new();
            for f in &group {
                batches.extend(backend.read(&f.rel)?);
            }
            let merged = match merge_sorted(&batches) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(dir, error = %e, "files of different schemas left as they are");
                    report.skipped += 1;
                    continue;
                }
            };
            let rows = merged.num_rows();
            let name = merged_name(&group);
            match backend.replace(&dir, &group, &[(name, merged)])? {
                Some(bytes) => {
                    report.files_in += group.len();
                    report.files_out += 1;
                    report.rows += rows;
                    report.bytes_in += group.iter().map(|f| f.size).sum::<u64>();
                    report.bytes_out += bytes;
                    tracing::info!(dir, files = group.len(), rows, bytes, "partition compacted");
                }
                None => report.skipped += 1,
            }
        }
        report.partitions += 1;
    }
    Ok(report)
}

/// Greedy groups of consecutive small files of at most `target` bytes; a
/// group of one file is not worth rewriting.
fn group_inputs(small: Vec<FileInfo>, target: u64) -> Vec<Vec<FileInfo>> {
    let mut groups: Vec<Vec<FileInfo>> = Vec::new();
    let mut cur: Vec<FileInfo> = Vec::new();
    let mut cur_bytes = 0;
    for f in small {
        if !cur.is_empty() && cur_bytes + f.size > target {
            groups.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
        cur_bytes += f.size;
        cur.push(f);
    }
    groups.push(cur);
    groups.retain(|g| g.len() >= 2);
    groups
}

/// The merged file's name: deterministic from its inputs.
fn merged_name(inputs: &[FileInfo]) -> String {
    let joined: Vec<&str> = inputs.iter().map(FileInfo::name).collect();
    format!(
        "{MERGED_PREFIX}{:016x}.parquet",
        fnv1a64(joined.join("\n").as_bytes())
    )
}

/// Concatenates and sorts by (service, event time).
fn merge_sorted(batches: &[RecordBatch]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let Some(first) = batches.first() else {
        return Err(arrow::error::ArrowError::InvalidArgumentError(
            "nothing to merge".into(),
        ));
    };
    let all = concat_batches(&first.schema(), batches)?;
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
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd = fs::read_dir(&dir)
                .map_err(|e| io_error(format!("listing {}", dir.display()), e))?;
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    if !(rel.is_empty() && name == META_DIR) {
                        stack.push((e.path(), child_rel));
                    }
                } else if name.ends_with(".parquet") && !name.starts_with('.') {
                    out.push(FileInfo {
                        rel: child_rel,
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
        }
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

    fn read(&mut self, rel: &str) -> Result<Vec<RecordBatch>, CompactError> {
        let path = self.root.join(rel);
        let f = File::open(&path).map_err(|e| io_error(format!("opening {rel}"), e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .map_err(|e| parquet_read_error(rel, e))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet_read_error(rel, e.into()))
    }

    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        outputs: &[(String, RecordBatch)],
    ) -> Result<Option<u64>, CompactError> {
        let live = self.root.join(dir);
        let stage = self.stage_dir(dir);
        remove_tree(&stage).map_err(|e| io_error(format!("removing {}", stage.display()), e))?;
        ensure_dir(&stage).map_err(|e| io_error(format!("creating {}", stage.display()), e))?;
        let mut bytes = 0;
        for (name, batch) in outputs {
            bytes += write_parquet_file(&stage, name, std::slice::from_ref(batch), &self.props)?;
        }
        self.lock
            .lock()
            .map_err(|e| io_error("locking the archive".into(), e))?;
        let swapped = self.swap_locked(&live, &stage, inputs);
        let _ = self.lock.unlock();
        let swapped = swapped?;
        // After the swap the stage holds the old directory; before (or
        // without) it, the unpublished new one. Either way it goes.
        remove_tree(&stage).map_err(|e| io_error(format!("removing {}", stage.display()), e))?;
        Ok(swapped.then_some(bytes))
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

struct StoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    props: parquet::file::properties::WriterProperties,
    rt: tokio::runtime::Runtime,
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
            rt: runtime()?,
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
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&self.prefix)
                .map_or(key, |k| k.trim_start_matches('/'))
        }
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

impl Backend for StoreBackend {
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

    fn read(&mut self, rel: &str) -> Result<Vec<RecordBatch>, CompactError> {
        // Inputs are small files (under min_file_bytes): fetch whole.
        let Some(bytes) = self.get(rel)? else {
            return Err(CompactError::Storage(SinkError {
                context: format!("reading {rel}"),
                hint: RetryHint::Retry,
                kind: "io",
                source: "object vanished".into(),
            }));
        };
        ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| parquet_read_error(rel, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet_read_error(rel, e.into()))
    }

    fn replace(
        &mut self,
        dir: &str,
        inputs: &[FileInfo],
        outputs: &[(String, RecordBatch)],
    ) -> Result<Option<u64>, CompactError> {
        let journal_rel = Self::journal_rel(dir);
        let mut j = Journal {
            state: "writing".into(),
            inputs: inputs.iter().map(|f| f.rel.clone()).collect(),
            outputs: outputs.iter().map(|(n, _)| format!("{dir}/{n}")).collect(),
        };
        self.put_json(&journal_rel, &j)?;
        let mut bytes = 0;
        for ((_, batch), rel) in outputs.iter().zip(&j.outputs) {
            let p = self.path(rel)?;
            bytes += self.rt.block_on(put_parquet(
                self.store.clone(),
                p,
                std::slice::from_ref(batch),
                &self.props,
            ))?;
        }
        j.state = "published".into();
        self.put_json(&journal_rel, &j)?;
        self.finish(&journal_rel, &j)?;
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests;
