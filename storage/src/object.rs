//! The archive in object storage (S3 and S3-compatible servers), through the
//! object_store crate.
//!
//! Publishing one file: parquet's `AsyncArrowWriter` streams it through a
//! buffered multipart upload (a single PUT when it is small). S3 makes an
//! object visible only when the upload completes, so readers never see a
//! partial file; an upload that fails is aborted and never appears. Keys are
//! the same deterministic names as the local layout, so a replay overwrites
//! rather than duplicates, and the same bounded in-flight history
//! (`_logwarden/inflight/…json` objects, see [`crate::inflight`]) tells a
//! recovering owner which uncommitted objects to delete.
//!
//! The [`Sink`] trait is synchronous and runs on the writer thread; this sink
//! owns a small current-thread tokio runtime and blocks on each operation.
//! Transient request failures are retried inside object_store (exponential
//! backoff, `[archive.s3] retry_max`); what still fails is reported as a
//! retryable [`SinkError`] and the writer retries the whole segment, so
//! offsets are never committed for data that is not stored.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;

use logwarden_ingest::sink::{RetryHint, Segment, Sink, SinkError, WriteStats};

use crate::inflight::{inflight_rel_path, InFlight, SegmentFiles};
use crate::layout::{file_name, is_source_merged};
use crate::split::{split_segment, ArchiveLayout};
use crate::store::{object_path, s3_store, S3Config};

/// A [`Sink`] writing the Parquet archive to an object store.
pub struct ObjectStoreArchive {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    layout: ArchiveLayout,
    props: WriterProperties,
    rt: tokio::runtime::Runtime,
    inflight: HashMap<(String, i32), InFlight>,
}

impl ObjectStoreArchive {
    /// An archive under `prefix` of `store`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        layout: ArchiveLayout,
    ) -> Result<Self, SinkError> {
        let rt = runtime()?;
        let props = layout.writer_properties();
        Ok(Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            layout,
            props,
            rt,
            inflight: HashMap::new(),
        })
    }

    /// An archive at `s3://bucket/prefix`.
    pub fn s3(
        bucket: &str,
        prefix: &str,
        layout: ArchiveLayout,
        cfg: &S3Config,
    ) -> Result<Self, SinkError> {
        let store = s3_store(bucket, cfg).map_err(|e| store_error("configuring S3", e))?;
        Self::new(store, prefix, layout)
    }

    fn path(&self, rel: &str) -> Result<ObjectPath, SinkError> {
        object_path(&self.prefix, rel).map_err(|e| SinkError {
            context: format!("object key for {rel}"),
            hint: RetryHint::Fatal,
            kind: "encode",
            source: Box::new(e),
        })
    }

    fn read_inflight(&self, topic: &str, partition: i32) -> Result<Option<InFlight>, SinkError> {
        let path = self.path(&inflight_rel_path(topic, partition))?;
        let store = self.store.clone();
        let bytes = self.rt.block_on(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let bytes = bytes.map_err(|e| store_error("reading the in-flight record", e))?;
        Ok(bytes.and_then(|b| match InFlight::parse(&b) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "unreadable in-flight record ignored");
                None
            }
        }))
    }

    fn put_inflight(&self, record: &InFlight) -> Result<(), SinkError> {
        let path = self.path(&inflight_rel_path(&record.topic, record.partition))?;
        let body = serde_json::to_vec(record).map_err(|e| SinkError {
            context: "encoding the in-flight record".into(),
            hint: RetryHint::Fatal,
            kind: "encode",
            source: Box::new(e),
        })?;
        self.rt
            .block_on(self.store.put(&path, PutPayload::from(body)))
            .map_err(|e| store_error("writing the in-flight record", e))?;
        Ok(())
    }

    /// Marks the segments written for (topic, partition) as complete and
    /// final (a backfill that ran to its end), so compaction may merge them.
    pub fn mark_settled(&mut self, topic: &str, partition: i32) -> Result<(), SinkError> {
        if let Some(mut r) = self.read_inflight(topic, partition)? {
            r.settled = true;
            self.put_inflight(&r)?;
            self.inflight.insert((topic.to_string(), partition), r);
        }
        Ok(())
    }

    /// Every object merged from the objects of (topic, partition) alone
    /// (see [`crate::layout::source_merged_name`]), relative to the prefix:
    /// a listing of the whole archive, done only when a finished backfill
    /// is run again.
    fn source_merged_objects(&self, topic: &str, partition: i32) -> Result<Vec<String>, SinkError> {
        use futures::TryStreamExt;
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let store = self.store.clone();
        let metas = self
            .rt
            .block_on(async move { store.list(prefix.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(|e| store_error("listing the archive", e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let rel = key_rel(&self.prefix, m.location.as_ref());
                let name = rel.rsplit('/').next().unwrap_or(rel);
                is_source_merged(name, topic, partition).then(|| rel.to_string())
            })
            .collect())
    }

    fn record(&mut self, topic: &str, partition: i32) -> Result<InFlight, SinkError> {
        let key = (topic.to_string(), partition);
        if let Some(r) = self.inflight.get(&key) {
            return Ok(r.clone());
        }
        Ok(self
            .read_inflight(topic, partition)?
            .unwrap_or_else(|| InFlight::new(topic, partition)))
    }
}

/// A small runtime for the sink's blocking calls: one thread is enough, the
/// writer thread waits on it anyway.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, SinkError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SinkError {
            context: "starting the object store runtime".into(),
            hint: RetryHint::Fatal,
            kind: "io",
            source: Box::new(e),
        })
}

/// Writes `batches` (of `schema`) as one Parquet object at `path`, as they
/// come (multipart upload, visible only once complete). Returns its size.
/// A batch that is an error aborts the upload.
pub(crate) async fn put_parquet<I>(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    schema: SchemaRef,
    batches: I,
    props: &WriterProperties,
) -> Result<u64, SinkError>
where
    I: IntoIterator<Item = Result<RecordBatch, ArrowError>>,
{
    let perr = |e: parquet::errors::ParquetError| {
        let hint = match e {
            parquet::errors::ParquetError::ArrowError(_) => RetryHint::Fatal,
            _ => RetryHint::Retry,
        };
        SinkError {
            context: format!("writing {path}"),
            hint,
            kind: if hint == RetryHint::Fatal {
                "encode"
            } else {
                "io"
            },
            source: Box::new(e),
        }
    };
    let out = BufWriter::new(store, path.clone());
    let mut writer = AsyncArrowWriter::try_new(out, schema, Some(props.clone())).map_err(perr)?;
    let result = async {
        for b in batches {
            writer.write(&b?).await?;
        }
        writer.finish().await
    }
    .await;
    match result {
        Ok(_) => Ok(writer.bytes_written() as u64),
        Err(e) => {
            // Abort the multipart upload: its parts are never visible, but
            // they are stored (and billed) until aborted. After a crash, a
            // bucket lifecycle rule (AbortIncompleteMultipartUpload) does it.
            let _ = writer.into_inner().abort().await;
            Err(perr(e))
        }
    }
}

/// An object's key relative to the archive's `prefix`.
pub(crate) fn key_rel<'a>(prefix: &str, key: &'a str) -> &'a str {
    if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)
            .map_or(key, |k| k.trim_start_matches('/'))
    }
}

/// Deletes objects, a missing one being no error.
pub(crate) async fn delete_all(
    store: &dyn ObjectStore,
    paths: &[ObjectPath],
) -> Result<(), object_store::Error> {
    for p in paths {
        match store.delete(p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Sink for ObjectStoreArchive {
    fn write(&mut self, segment: &Segment) -> Result<WriteStats, SinkError> {
        let parts = split_segment(&self.layout, &segment.batch).map_err(|e| SinkError {
            context: "partitioning a segment".into(),
            hint: RetryHint::Fatal,
            kind: "encode",
            source: Box::new(e),
        })?;
        let name = file_name(&segment.topic, segment.partition, segment.first_offset);
        let rels: Vec<String> = parts
            .iter()
            .map(|(dir, _)| format!("{dir}/{name}"))
            .collect();
        let mut record = self.record(&segment.topic, segment.partition)?;
        record.push(SegmentFiles {
            first_offset: segment.first_offset,
            next_offset: segment.next_offset,
            files: rels.clone(),
        });
        self.put_inflight(&record)?;
        self.inflight
            .insert((segment.topic.to_string(), segment.partition), record);
        let mut stats = WriteStats::default();
        for ((_, batch), rel) in parts.iter().zip(&rels) {
            let path = self.path(rel)?;
            stats.bytes += self.rt.block_on(put_parquet(
                self.store.clone(),
                path,
                batch.schema(),
                [Ok(batch.clone())],
                &self.props,
            ))?;
            stats.files += 1;
            stats.rows += batch.num_rows();
        }
        Ok(stats)
    }

    fn recover(&mut self, topic: &str, partition: i32, replay_from: i64) -> Result<(), SinkError> {
        let Some(mut record) = self.read_inflight(topic, partition)? else {
            self.inflight.insert(
                (topic.to_string(), partition),
                InFlight::new(topic, partition),
            );
            return Ok(());
        };
        let rerun = record.settled && replay_from == 0;
        let (mut delete, straddling) = record.take_uncommitted(replay_from);
        record.warn_straddling(replay_from, &straddling);
        if rerun {
            // A finished backfill run again: the objects its end-of-run
            // compaction merged hold its rows too.
            delete.extend(self.source_merged_objects(topic, partition)?);
        }
        let paths = delete
            .iter()
            .map(|rel| self.path(rel))
            .collect::<Result<Vec<_>, _>>()?;
        self.rt
            .block_on(delete_all(self.store.as_ref(), &paths))
            .map_err(|e| store_error("deleting uncommitted objects", e))?;
        if !paths.is_empty() {
            tracing::info!(
                topic,
                partition,
                objects = paths.len(),
                "removed uncommitted objects before replay"
            );
        }
        self.put_inflight(&record)?;
        self.inflight.insert((topic.to_string(), partition), record);
        Ok(())
    }
}

/// Maps an object store error: configuration problems are fatal, the rest
/// (network, throttling, server errors left after object_store's own
/// retries) retryable.
pub(crate) fn store_error(context: &str, e: object_store::Error) -> SinkError {
    let (hint, kind) = match &e {
        object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::UnknownConfigurationKey { .. }
        | object_store::Error::InvalidPath { .. } => (RetryHint::Fatal, "config"),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => (RetryHint::Retry, "auth"),
        _ => (RetryHint::Retry, "io"),
    };
    SinkError {
        context: context.to_string(),
        hint,
        kind,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::segment;
    use object_store::memory::InMemory;

    fn keys(rt: &tokio::runtime::Runtime, store: &InMemory) -> Vec<String> {
        use futures::TryStreamExt;
        let mut v: Vec<String> = rt
            .block_on(store.list(None).try_collect::<Vec<_>>())
            .expect("list")
            .into_iter()
            .map(|m| m.location.to_string())
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn publishes_replaces_and_recovers_like_the_local_archive() {
        let mem = Arc::new(InMemory::new());
        let rt = runtime().expect("rt");
        let mut a = ObjectStoreArchive::new(mem.clone(), "/logs/a/", ArchiveLayout::default())
            .expect("sink");
        let stats = a.write(&segment(0, 10)).expect("write");
        assert_eq!((stats.files, stats.rows), (2, 10));
        a.write(&segment(0, 10)).expect("rewrite replaces");
        a.write(&segment(10, 10)).expect("second segment");
        assert_eq!(
            keys(&rt, &mem),
            vec![
                "logs/a/dt=2026-03-01/hour=10/t-00000-00000000000000000000.parquet",
                "logs/a/dt=2026-03-01/hour=10/t-00000-00000000000000000010.parquet",
                "logs/a/dt=2026-03-01/hour=11/t-00000-00000000000000000000.parquet",
                "logs/a/dt=2026-03-01/hour=11/t-00000-00000000000000000010.parquet",
            ]
        );
        // A new owner resuming at 10: the second segment was not committed.
        let mut b =
            ObjectStoreArchive::new(mem.clone(), "logs/a", ArchiveLayout::default()).expect("sink");
        b.recover("t", 0, 10).expect("recover");
        assert_eq!(keys(&rt, &mem).len(), 2);
        assert!(keys(&rt, &mem).iter().all(|k| k.ends_with("00000.parquet")));
    }
}
