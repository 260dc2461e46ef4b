//! The archive in object storage (S3 and S3-compatible servers), through the
//! object_store crate.
//!
//! Publishing one file: its columns are encoded on several threads as for
//! the local archive, and the bytes stream into one upload, a single PUT
//! when small, a multipart upload from 10 MiB. S3 makes an object visible
//! only when the upload completes, so readers never see a partial file; an
//! upload that fails is aborted and never appears. Keys are
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
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutPayloadMut, WriteMultipart};
use parquet::file::properties::WriterProperties;

use logwarden_ingest::sink::{RetryHint, Segment, Sink, SinkError, WriteStats};

use crate::encode::write_parallel;
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
    /// Writing a backfill: its in-flight records say so.
    backfill: bool,
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
            backfill: false,
        })
    }

    /// The archive for a backfill (`ingest --input`): the in-flight records
    /// it writes mark their sources as backfills.
    pub fn for_backfill(mut self) -> Self {
        self.backfill = true;
        self
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

/// Object size from which an upload is multipart, and the size of its parts
/// (S3 wants parts of 5 MiB or more, but the last).
const PART_BYTES: usize = 10 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 8;

/// One object's upload, visible only once complete: a single PUT when it
/// stays under [`PART_BYTES`], otherwise a multipart upload. Unlike
/// object_store's `BufWriter`, it can be aborted after any failure (a
/// failed completion included), which never leaves parts behind that only
/// a bucket lifecycle rule would clean up.
struct Upload {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    state: UploadState,
}

enum UploadState {
    Buffer(PutPayloadMut),
    Multipart(WriteMultipart),
    /// Completed, aborted, or failed (a failed multipart upload is aborted
    /// before it gets here).
    Done,
}

impl Upload {
    fn new(store: Arc<dyn ObjectStore>, path: ObjectPath) -> Self {
        Self {
            store,
            path,
            state: UploadState::Buffer(PutPayloadMut::new()),
        }
    }

    async fn put(&mut self, bytes: Bytes) -> object_store::Result<()> {
        match &mut self.state {
            UploadState::Buffer(b) if b.content_length() + bytes.len() < PART_BYTES => {
                b.push(bytes);
                Ok(())
            }
            UploadState::Buffer(b) => {
                let buffered = std::mem::take(b);
                let upload = self.store.put_multipart(&self.path).await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                for chunk in buffered.freeze() {
                    parts.put(chunk);
                }
                parts.put(bytes);
                self.state = UploadState::Multipart(parts);
                self.wait_for_parts().await
            }
            UploadState::Multipart(parts) => {
                parts.put(bytes);
                self.wait_for_parts().await
            }
            UploadState::Done => Err(object_store::Error::Generic {
                store: "upload",
                source: "writing to a finished upload".into(),
            }),
        }
    }

    /// Waits until at most [`PARTS_IN_FLIGHT`] parts are in flight; a part
    /// that failed aborts the upload.
    async fn wait_for_parts(&mut self) -> object_store::Result<()> {
        let UploadState::Multipart(parts) = &mut self.state else {
            return Ok(());
        };
        if let Err(e) = parts.wait_for_capacity(PARTS_IN_FLIGHT).await {
            self.abort().await;
            return Err(e);
        }
        Ok(())
    }

    /// Makes the object visible (a multipart upload that fails to complete
    /// is aborted).
    async fn complete(&mut self) -> object_store::Result<()> {
        match std::mem::replace(&mut self.state, UploadState::Done) {
            UploadState::Buffer(b) => self.store.put(&self.path, b.freeze()).await.map(|_| ()),
            UploadState::Multipart(parts) => parts.finish().await.map(|_| ()),
            UploadState::Done => Ok(()),
        }
    }

    /// Drops what was uploaded so far; best effort.
    async fn abort(&mut self) {
        if let UploadState::Multipart(parts) = std::mem::replace(&mut self.state, UploadState::Done)
        {
            if let Err(e) = parts.abort().await {
                tracing::warn!(object = %self.path, error = %e, "aborting a multipart upload failed");
            }
        }
    }
}

/// Encoded bytes handed from the encoding thread to the uploading one at
/// a time.
const STREAM_CHUNK_BYTES: usize = 1 << 20;

/// Writes `batches` (of `schema`) as one Parquet object at `path`: the
/// columns of each row group are encoded on `threads` threads as for the
/// local archive, and the bytes stream into an [`Upload`] on another
/// thread as they come, so a large output (a compaction's) is never held
/// whole. The object is visible only once complete; a batch that is an
/// error, a failed encoding or a failed upload aborts it. Returns its size.
pub(crate) fn put_parquet<I>(
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    schema: SchemaRef,
    batches: I,
    props: &WriterProperties,
    threads: usize,
) -> Result<u64, SinkError>
where
    I: IntoIterator<Item = Result<RecordBatch, ArrowError>>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let upload_error = |e| store_error(&format!("uploading {path}"), e);
    let (encoded, uploaded) = std::thread::scope(|scope| {
        let uploader = scope.spawn(|| {
            rt.block_on(async {
                let mut up = Upload::new(store, path.clone());
                while let Some(bytes) = rx.recv().await {
                    up.put(bytes).await?;
                }
                Ok::<_, object_store::Error>(up)
            })
        });
        let encoded = write_parallel(ChannelWriter::new(tx), schema, batches, props, threads)
            .and_then(|w| Ok(w.finish()?));
        // The sender is gone either way: the uploader ends.
        (encoded, uploader.join())
    });
    let mut up = match uploaded {
        Ok(Ok(up)) => up,
        // The upload failed (and was aborted): the encoder saw a closed
        // channel, a symptom; the cause is the store's.
        Ok(Err(e)) => return Err(upload_error(e)),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    match encoded {
        Ok(len) => {
            rt.block_on(up.complete()).map_err(upload_error)?;
            Ok(len)
        }
        Err(e) => {
            rt.block_on(up.abort());
            // Not the store's: a batch that failed or an encoding error,
            // which a retry would meet again.
            Err(SinkError {
                context: format!("encoding {path}"),
                hint: RetryHint::Fatal,
                kind: "encode",
                source: Box::new(e),
            })
        }
    }
}

/// The encoder's output: bytes gathered into chunks of
/// [`STREAM_CHUNK_BYTES`] and sent to the uploading thread (blocking while
/// it is [`STREAM_CHUNK_BYTES`] times the channel's capacity behind).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    fn new(tx: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(STREAM_CHUNK_BYTES),
            sent: 0,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_CHUNK_BYTES));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is left; the total size.
    fn finish(mut self) -> std::io::Result<u64> {
        self.send()?;
        Ok(self.sent)
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        let parts = split_segment(&self.layout, &segment.batches).map_err(|e| SinkError {
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
        record.backfill |= self.backfill;
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
            stats.bytes += put_parquet(
                &self.rt,
                self.store.clone(),
                path,
                batch.schema(),
                [Ok(batch.clone())],
                &self.props,
                self.layout.parquet.threads(),
            )?;
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
        let rerun = record.reruns_backfill(replay_from, self.backfill);
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

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An in-memory store that refuses Parquet uploads while `down` is set,
    /// like a bucket that refuses writes (bookkeeping objects still go
    /// through, so the failure is the file's own), and fails the parts of
    /// multipart uploads while `parts_fail` is set. It counts multipart
    /// uploads started and aborted.
    #[derive(Debug, Default)]
    struct FaultyStore {
        inner: Arc<InMemory>,
        down: AtomicBool,
        parts_fail: Arc<AtomicBool>,
        multipart: AtomicUsize,
        aborted: Arc<AtomicUsize>,
    }

    impl std::fmt::Display for FaultyStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "FaultyStore")
        }
    }

    fn slow_down() -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultyStore",
            source: "503 Slow Down".into(),
        }
    }

    impl FaultyStore {
        fn refuses(&self, location: &ObjectPath) -> object_store::Result<()> {
            if self.down.load(Ordering::SeqCst) && location.as_ref().ends_with(".parquet") {
                return Err(slow_down());
            }
            Ok(())
        }
    }

    #[derive(Debug)]
    struct FaultyUpload {
        inner: Box<dyn object_store::MultipartUpload>,
        parts_fail: Arc<AtomicBool>,
        aborted: Arc<AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl object_store::MultipartUpload for FaultyUpload {
        fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
            if self.parts_fail.load(Ordering::SeqCst) {
                return Box::pin(async { Err(slow_down()) });
            }
            self.inner.put_part(data)
        }

        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            self.inner.complete().await
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            self.aborted.fetch_add(1, Ordering::SeqCst);
            self.inner.abort().await
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FaultyStore {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.refuses(location)?;
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.refuses(location)?;
            self.multipart.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(FaultyUpload {
                inner: self.inner.put_multipart_opts(location, opts).await?,
                parts_fail: self.parts_fail.clone(),
                aborted: self.aborted.clone(),
            }))
        }

        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// A bucket refusing the upload of a segment's files: the write fails
    /// with a retryable error (the writer retries it, offsets stay
    /// uncommitted), nothing partial is visible, and the same segment
    /// writes once the bucket takes uploads again.
    #[test]
    fn a_refused_upload_is_a_retryable_error_and_the_retry_publishes() {
        let store = Arc::new(FaultyStore::default());
        store.down.store(true, Ordering::SeqCst);
        let rt = runtime().expect("rt");
        let mut a =
            ObjectStoreArchive::new(store.clone(), "logs", ArchiveLayout::default()).expect("sink");
        let e = a.write(&segment(0, 10)).expect_err("the bucket refuses");
        assert_eq!(e.hint, RetryHint::Retry, "{e}");
        assert!(keys(&rt, &store.inner).is_empty());
        store.down.store(false, Ordering::SeqCst);
        let stats = a.write(&segment(0, 10)).expect("write");
        assert_eq!((stats.files, stats.rows), (2, 10));
        assert_eq!(keys(&rt, &store.inner).len(), 2);
    }

    /// An object of several parts goes up as one multipart upload and reads
    /// back byte for byte; when a part fails, the upload is aborted and no
    /// object appears.
    #[test]
    fn large_objects_upload_in_parts_and_a_failed_part_aborts_the_upload() {
        let store = Arc::new(FaultyStore::default());
        let rt = runtime().expect("rt");
        let body: Vec<u8> = (0..PART_BYTES * 5 / 2).map(|i| (i % 251) as u8).collect();
        let path = ObjectPath::from("a/big.parquet");
        let mut up = Upload::new(store.clone(), path.clone());
        rt.block_on(async {
            for chunk in body.chunks(3 * 1024 * 1024) {
                up.put(Bytes::copy_from_slice(chunk)).await?;
            }
            up.complete().await
        })
        .expect("upload");
        assert_eq!(store.multipart.load(Ordering::SeqCst), 1);
        let got = rt
            .block_on(async { store.inner.get(&path).await?.bytes().await })
            .expect("read back");
        assert_eq!(&got[..], &body[..]);

        store.parts_fail.store(true, Ordering::SeqCst);
        let failed = ObjectPath::from("a/failed.parquet");
        let mut up = Upload::new(store.clone(), failed.clone());
        let result = rt.block_on(async {
            up.put(Bytes::from(body.clone())).await?;
            up.complete().await
        });
        assert!(result.is_err());
        assert_eq!(store.aborted.load(Ordering::SeqCst), 1);
        assert!(rt.block_on(store.inner.head(&failed)).is_err());
    }

    /// Several row groups encoded on two threads stream into one object
    /// that reads back row for row; a batch that fails midway (a merge
    /// input gone bad) aborts the upload and leaves no object.
    #[test]
    fn put_parquet_streams_row_groups_and_a_failing_batch_leaves_nothing() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let store = Arc::new(FaultyStore::default());
        let rt = runtime().expect("rt");
        let batch = crate::test_support::varied_batch(30_000);
        let cfg = crate::parquet::ParquetConfig {
            row_group_rows: 8_000,
            ..Default::default()
        };
        let props = cfg.writer_properties(&batch.schema());
        let path = ObjectPath::from("a/ok.parquet");
        let parts = [batch.slice(0, 10_000), batch.slice(10_000, 20_000)];
        let len = put_parquet(
            &rt,
            store.clone(),
            path.clone(),
            batch.schema(),
            parts.iter().cloned().map(Ok),
            &props,
            2,
        )
        .expect("put");
        let bytes = rt
            .block_on(async { store.inner.get(&path).await?.bytes().await })
            .expect("read back");
        assert_eq!(bytes.len() as u64, len);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet");
        assert_eq!(reader.metadata().num_row_groups(), 4);
        let back: Vec<RecordBatch> = reader
            .build()
            .expect("reader")
            .collect::<Result<_, _>>()
            .expect("rows");
        let back = arrow::compute::concat_batches(&batch.schema(), &back).expect("concat");
        assert_eq!(back, batch);

        let failed = ObjectPath::from("a/failed.parquet");
        let e = put_parquet(
            &rt,
            store.clone(),
            failed.clone(),
            batch.schema(),
            [
                Ok(parts[0].clone()),
                Err(ArrowError::ComputeError("input unreadable".into())),
                Ok(parts[1].clone()),
            ],
            &props,
            2,
        )
        .expect_err("a failing batch");
        assert_eq!(e.hint, RetryHint::Fatal, "{e}");
        assert!(rt.block_on(store.inner.head(&failed)).is_err());
    }

    /// A backfill's in-flight record says so, and running it again deletes
    /// the files merged from its own (by whichever compaction) before it
    /// writes, even when it never finished.
    #[test]
    fn a_backfill_rerun_deletes_its_merged_objects() {
        let mem = Arc::new(InMemory::new());
        let rt = runtime().expect("rt");
        let mut a = ObjectStoreArchive::new(mem.clone(), "logs", ArchiveLayout::default())
            .expect("sink")
            .for_backfill();
        a.write(&segment(0, 10)).expect("write");
        let record = a.read_inflight("t", 0).expect("read").expect("record");
        assert!(record.backfill && !record.settled);
        let merged = ObjectPath::from(format!(
            "logs/dt=2026-03-01/hour=10/{}",
            crate::layout::source_merged_name("t", 0, 7)
        ));
        rt.block_on(mem.put(&merged, PutPayload::from_static(b"merged")))
            .expect("put");
        let mut b = ObjectStoreArchive::new(mem.clone(), "logs", ArchiveLayout::default())
            .expect("sink")
            .for_backfill();
        b.recover("t", 0, 0).expect("recover");
        assert!(
            rt.block_on(mem.head(&merged)).is_err(),
            "merged object kept"
        );
        assert!(keys(&rt, &mem).is_empty());
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
