//! The archive on a local (or mounted) file system.
//!
//! Publishing one file: write `.<name>.tmp` beside its final name, fsync it,
//! rename it to `<name>` (atomic on POSIX file systems), fsync the directory.
//! Readers only ever see complete files; a crash leaves at most a hidden
//! temporary file, removed by the next [`Sink::recover`] of its partition.
//!
//! Before a segment's files are written, the in-flight record of its source
//! partition (`_logwarden/inflight/<topic>-<partition>.json`, see
//! [`crate::inflight`]) lists them beside those of the segments written just
//! before. A new owner of the partition deletes the files of every listed
//! segment at or after the offset it resumes from: they were written but
//! never committed, and the replay rewrites their rows, whatever the new
//! segment boundaries are.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use logwarden_ingest::sink::{RetryHint, Segment, Sink, SinkError, WriteStats};

use crate::encode::write_parallel;
use crate::inflight::{inflight_rel_path, InFlight, SegmentFiles};
use crate::layout::{file_name, is_source_merged};
use crate::split::{split_segment, ArchiveLayout};

/// Name of the directory under the archive root that holds logwarden's own
/// bookkeeping; engines skip it (leading underscore, no `.parquet` files).
pub const META_DIR: &str = "_logwarden";
/// The lock file (under [`META_DIR`]) that serializes publishing files with
/// compaction's directory swap: ingest holds it shared while it publishes or
/// deletes files, compaction exclusively for the swap.
pub const LOCK_FILE: &str = "lock";
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A [`Sink`] writing the Parquet archive under a local directory.
pub struct LocalArchive {
    root: PathBuf,
    layout: ArchiveLayout,
    props: Arc<WriterProperties>,
    lock: File,
    /// In-flight records by (topic, partition), as last written.
    inflight: HashMap<(String, i32), InFlight>,
    /// Writing a backfill: its in-flight records say so.
    backfill: bool,
}

impl LocalArchive {
    /// Opens (creating if needed) an archive rooted at `root`.
    pub fn open(root: impl Into<PathBuf>, layout: ArchiveLayout) -> Result<Self, SinkError> {
        let root = root.into();
        ensure_dir(&root)
            .map_err(|e| io_error(format!("creating archive root {}", root.display()), e))?;
        let lock = open_lock(&root)
            .map_err(|e| io_error(format!("opening the lock file in {}", root.display()), e))?;
        let props = layout.writer_properties().into();
        Ok(Self {
            root,
            layout,
            props,
            lock,
            inflight: HashMap::new(),
            backfill: false,
        })
    }

    /// The archive for a backfill (`ingest --input`): the in-flight records
    /// it writes mark their sources as backfills.
    pub fn for_backfill(mut self) -> Self {
        self.backfill = true;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write_file(&self, rel_dir: &str, name: &str, batch: &RecordBatch) -> Result<u64, SinkError> {
        write_parquet_file(
            &self.root.join(rel_dir),
            name,
            batch.schema(),
            [Ok(batch.clone())],
            &self.props,
            self.layout.parquet.threads(),
        )
    }

    fn write_json_atomically(&self, path: &Path, value: &impl Serialize) -> Result<(), SinkError> {
        write_json_atomically(path, value)
    }

    fn record(&mut self, topic: &str, partition: i32) -> Result<&mut InFlight, SinkError> {
        let key = (topic.to_string(), partition);
        if !self.inflight.contains_key(&key) {
            let path = self.root.join(inflight_rel_path(topic, partition));
            let record = read_inflight(&path)?.unwrap_or_else(|| InFlight::new(topic, partition));
            self.inflight.insert(key.clone(), record);
        }
        self.inflight.get_mut(&key).ok_or_else(|| SinkError {
            context: "in-flight record".into(),
            hint: RetryHint::Fatal,
            kind: "io",
            source: "missing after insert".into(),
        })
    }
}

impl LocalArchive {
    /// Marks the segments written for (topic, partition) as complete and
    /// final (a backfill that ran to its end), so compaction may merge them.
    pub fn mark_settled(&mut self, topic: &str, partition: i32) -> Result<(), SinkError> {
        let path = self.root.join(inflight_rel_path(topic, partition));
        if let Some(mut r) = read_inflight(&path)? {
            r.settled = true;
            self.write_json_atomically(&path, &r)?;
            self.inflight.insert((topic.to_string(), partition), r);
        }
        Ok(())
    }
}

/// Opens (creating) the archive's lock file.
pub fn open_lock(root: &Path) -> io::Result<File> {
    let dir = root.join(META_DIR);
    ensure_dir(&dir)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
}

/// Reads an in-flight record; `None` when there is none. An unreadable one
/// is ignored with a warning: it cannot be trusted to name files to delete.
pub fn read_inflight(path: &Path) -> Result<Option<InFlight>, SinkError> {
    match fs::read(path) {
        Ok(bytes) => match InFlight::parse(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable in-flight record ignored");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(format!("reading {}", path.display()), e)),
    }
}

/// Writes `batches` as one Parquet file `dir/name`: a hidden temporary file,
/// fsynced, renamed into place, the directory fsynced, its columns encoded
/// on `threads` threads. Returns its size.
pub fn write_parquet_file<I>(
    dir: &Path,
    name: &str,
    schema: SchemaRef,
    batches: I,
    props: &WriterProperties,
    threads: usize,
) -> Result<u64, SinkError>
where
    I: IntoIterator<Item = Result<RecordBatch, ArrowError>>,
{
    ensure_dir(dir).map_err(|e| io_error(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let result = (|| -> Result<u64, SinkError> {
        let file =
            File::create(&tmp).map_err(|e| io_error(format!("creating {}", tmp.display()), e))?;
        let buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let buffered = write_parallel(buffered, schema, batches, props, threads)
            .map_err(|e| parquet_error(&tmp, e))?;
        let file = buffered
            .into_inner()
            .map_err(|e| io_error(format!("writing {}", tmp.display()), e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error(format!("syncing {}", tmp.display()), e))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or_default();
        fs::rename(&tmp, &dst).map_err(|e| io_error(format!("publishing {}", dst.display()), e))?;
        sync_dir(dir).map_err(|e| io_error(format!("syncing {}", dir.display()), e))?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a JSON file atomically and durably (temporary file, fsync, rename).
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<(), SinkError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir).map_err(|e| io_error(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(value).map_err(|e| SinkError {
        context: "encoding a bookkeeping record".into(),
        hint: RetryHint::Fatal,
        kind: "encode",
        source: Box::new(e),
    })?;
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    };
    write().map_err(|e| io_error(format!("writing {}", path.display()), e))
}

impl Sink for LocalArchive {
    fn write(&mut self, segment: &Segment) -> Result<WriteStats, SinkError> {
        let parts = split_segment(&self.layout, &segment.batches).map_err(|e| SinkError {
            context: "partitioning a segment".into(),
            hint: RetryHint::Fatal,
            kind: "encode",
            source: Box::new(e),
        })?;
        let name = file_name(&segment.topic, segment.partition, segment.first_offset);
        let files = parts
            .iter()
            .map(|(dir, _)| format!("{dir}/{name}"))
            .collect();
        let backfill = self.backfill;
        let record = self.record(&segment.topic, segment.partition)?;
        record.backfill |= backfill;
        record.push(SegmentFiles {
            first_offset: segment.first_offset,
            next_offset: segment.next_offset,
            files,
        });
        let record = record.clone();
        self.write_json_atomically(
            &self
                .root
                .join(inflight_rel_path(&segment.topic, segment.partition)),
            &record,
        )?;
        // Shared with other writers; exclusive only during a compaction swap.
        self.lock
            .lock_shared()
            .map_err(|e| io_error("locking the archive".into(), e))?;
        let mut stats = WriteStats::default();
        let result = (|| {
            for (dir, batch) in &parts {
                stats.bytes += self.write_file(dir, &name, batch)?;
                stats.files += 1;
                stats.rows += batch.num_rows();
            }
            Ok(())
        })();
        let _ = self.lock.unlock();
        result.map(|()| stats)
    }

    fn recover(&mut self, topic: &str, partition: i32, replay_from: i64) -> Result<(), SinkError> {
        let path = self.root.join(inflight_rel_path(topic, partition));
        let Some(mut record) = read_inflight(&path)? else {
            self.inflight.insert(
                (topic.to_string(), partition),
                InFlight::new(topic, partition),
            );
            return Ok(());
        };
        let rerun = record.reruns_backfill(replay_from, self.backfill);
        let (mut delete, straddling) = record.take_uncommitted(replay_from);
        record.warn_straddling(replay_from, &straddling);
        if rerun {
            // A backfill run again: the files its end-of-run compaction, or
            // another run's, merged hold its rows too.
            delete.extend(source_merged_files(&self.root, topic, partition)?);
        }
        self.lock
            .lock_shared()
            .map_err(|e| io_error("locking the archive".into(), e))?;
        let result = (|| {
            for rel in &delete {
                remove_published(&self.root.join(rel))?;
            }
            Ok(())
        })();
        let _ = self.lock.unlock();
        result?;
        // Everything below `replay_from` is committed; nothing above exists.
        self.write_json_atomically(&path, &record)?;
        self.inflight.insert((topic.to_string(), partition), record);
        Ok(())
    }
}

/// Every file merged from the files of (topic, partition) alone (see
/// [`crate::layout::source_merged_name`]), relative to the root: a walk of
/// the whole archive, done only when a finished backfill is run again.
fn source_merged_files(root: &Path, topic: &str, partition: i32) -> Result<Vec<String>, SinkError> {
    let mut out = Vec::new();
    walk_archive(root, |rel, name, _| {
        if is_source_merged(name, topic, partition) {
            out.push(rel);
        }
    })?;
    Ok(out)
}

/// Walks the archive below `root`, its bookkeeping directory left out:
/// `visit` gets each entry that is not a directory, with its path relative
/// to the root and its name.
pub(crate) fn walk_archive(
    root: &Path,
    mut visit: impl FnMut(String, &str, &fs::DirEntry),
) -> Result<(), SinkError> {
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd =
            fs::read_dir(&dir).map_err(|e| io_error(format!("listing {}", dir.display()), e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = e.file_type() else { continue };
            if !kind.is_dir() {
                visit(child, &name, &e);
            } else if !(rel.is_empty() && name == META_DIR) {
                stack.push((e.path(), child));
            }
        }
    }
    Ok(())
}

/// Removes a published file and its temporary sibling, fsyncing the directory.
fn remove_published(file: &Path) -> Result<(), SinkError> {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let tmp = dir.join(format!(
        ".{}.tmp",
        file.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    for p in [file, tmp.as_path()] {
        match fs::remove_file(p) {
            Ok(()) => {
                tracing::info!(path = %p.display(), "removed uncommitted file before replay")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(format!("removing {}", p.display()), e)),
        }
    }
    if dir.exists() {
        sync_dir(&dir).map_err(|e| io_error(format!("syncing {}", dir.display()), e))?;
    }
    Ok(())
}

/// Creates `dir` and missing parents, fsyncing each parent that gained an
/// entry so the new directories survive a crash.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            ensure_dir(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// ENOSPC: the file system is full.
const ENOSPC: i32 = 28;

pub(crate) fn io_error(context: String, e: io::Error) -> SinkError {
    let kind = if e.raw_os_error() == Some(ENOSPC) {
        "disk_full"
    } else {
        "io"
    };
    SinkError {
        context,
        hint: RetryHint::Retry,
        kind,
        source: Box::new(e),
    }
}

pub(crate) fn parquet_error(path: &Path, e: ParquetError) -> SinkError {
    let (hint, kind) = match &e {
        ParquetError::External(inner) => {
            let disk_full = inner
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error)
                == Some(ENOSPC);
            (RetryHint::Retry, if disk_full { "disk_full" } else { "io" })
        }
        ParquetError::ArrowError(_) => (RetryHint::Fatal, "encode"),
        _ => (RetryHint::Retry, "io"),
    };
    SinkError {
        context: format!("writing {}", path.display()),
        hint,
        kind,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::segment;
    use logwarden_ingest::record::{LogRecord, Provenance};
    use logwarden_ingest::schema::LogBatchBuilder;

    fn parquet_files(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).expect("readable").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn rows(files: &[PathBuf]) -> usize {
        files
            .iter()
            .map(|f| {
                let file = File::open(f).expect("open");
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("parquet")
                    .build()
                    .expect("reader")
                    .map(|b| b.expect("batch").num_rows())
                    .sum::<usize>()
            })
            .sum()
    }

    #[test]
    fn segment_files_are_published_per_partition_and_rewrites_replace_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = LocalArchive::open(dir.path(), ArchiveLayout::default()).expect("archive");
        let stats = a.write(&segment(100, 10)).expect("write");
        assert_eq!((stats.files, stats.rows), (2, 10));
        let files = parquet_files(dir.path());
        assert_eq!(files.len(), 2);
        assert!(
            files[0].ends_with("dt=2026-03-01/hour=10/t-00000-00000000000000000100.parquet"),
            "{files:?}"
        );
        assert!(
            files[1].ends_with("dt=2026-03-01/hour=11/t-00000-00000000000000000100.parquet"),
            "{files:?}"
        );
        // The same segment again replaces, never adds.
        a.write(&segment(100, 10)).expect("rewrite");
        assert_eq!(parquet_files(dir.path()), files);
        assert_eq!(rows(&files), 10);
        // No temporary file is left visible.
        let leftovers = fs::read_dir(files[0].parent().expect("dir"))
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn recover_removes_uncommitted_files_even_when_the_replay_cuts_differently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = LocalArchive::open(dir.path(), ArchiveLayout::default()).expect("archive");
        a.write(&segment(0, 10)).expect("committed segment");
        // Written but (say) never committed: the process died before the commit.
        a.write(&segment(10, 10)).expect("uncommitted segment");
        assert_eq!(rows(&parquet_files(dir.path())), 20);

        // A new owner resumes at the committed offset 10 and cuts its
        // segments differently (10..14, then 14..20).
        let mut b = LocalArchive::open(dir.path(), ArchiveLayout::default()).expect("archive");
        b.recover("t", 0, 10).expect("recover");
        assert_eq!(
            rows(&parquet_files(dir.path())),
            10,
            "the uncommitted files are gone"
        );
        b.write(&segment(10, 4)).expect("replay 1");
        b.write(&segment(14, 6)).expect("replay 2");
        assert_eq!(
            rows(&parquet_files(dir.path())),
            20,
            "every record exactly once"
        );

        // Resuming after a committed segment touches nothing.
        b.recover("t", 0, 20).expect("recover at the end");
        assert_eq!(rows(&parquet_files(dir.path())), 20);
    }

    #[test]
    fn hostile_service_names_stay_inside_the_archive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("archive");
        let layout = ArchiveLayout {
            partition_by: vec![
                crate::layout::PartitionKey::Dt,
                crate::layout::PartitionKey::Service,
            ],
            ..Default::default()
        };
        let mut a = LocalArchive::open(&root, layout).expect("archive");
        let hostile = [
            "../../etc".to_string(),
            "a/b".to_string(),
            String::new(),
            "..".to_string(),
            "x".repeat(10_000),
            String::from_utf8_lossy(b"\xff\xfe\\evil\0").into_owned(),
        ];
        let mut b = LogBatchBuilder::new();
        for (i, svc) in hostile.iter().enumerate() {
            let rec = LogRecord {
                event_time_us: 1_772_359_200_000_000,
                service: (!svc.is_empty()).then(|| svc.clone()),
                message: format!("m{i}"),
                ..Default::default()
            };
            let prov = Provenance {
                topic: "t".into(),
                partition: 0,
                offset: i as i64,
            };
            b.append(&rec, &prov, 0);
        }
        let seg = Segment {
            topic: "t".into(),
            partition: 0,
            first_offset: 0,
            next_offset: hostile.len() as i64,
            batches: vec![b.finish().expect("batch")],
        };
        let stats = a.write(&seg).expect("write");
        assert_eq!(stats.files, hostile.len());
        let files = parquet_files(&root);
        assert_eq!(files.len(), hostile.len(), "{files:?}");
        let root = fs::canonicalize(&root).expect("root");
        for f in &files {
            let f = fs::canonicalize(f).expect("file");
            assert!(f.starts_with(&root), "{f:?} escaped the archive");
            let rel = f.strip_prefix(&root).expect("inside");
            let comps: Vec<_> = rel.components().collect();
            assert_eq!(comps.len(), 3, "dt/service/file: {rel:?}");
            let svc = comps[1].as_os_str().to_string_lossy();
            assert!(
                svc.starts_with("service=") && svc.len() <= 8 + crate::layout::MAX_VALUE_BYTES,
                "{svc}"
            );
        }
        assert_eq!(rows(&files), hostile.len());
    }
}
