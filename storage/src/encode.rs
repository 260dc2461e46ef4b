//! Parquet encoding with the columns of each row group spread over threads.
//!
//! Encoding (dictionaries, levels, zstd) is most of a write's cost, and a
//! segment's file is written by one writer thread. Ingest parses on another
//! thread, so a lone encoding thread leaves a core idle whenever the parser
//! waits (at start-up, at the end of a backfill, in a compaction). Here each
//! row group's column chunks are encoded by `threads` workers, each owning
//! a fixed share of the columns, and appended to the file in schema order:
//! the bytes are those [`ArrowWriter`] writes, only sooner.

use std::io::Write;
use std::sync::mpsc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;

/// Writes `batches` as one Parquet file to `out` and returns `out`.
/// With one thread (or one column) this is [`ArrowWriter`] itself.
pub fn write_parallel<W, I>(
    out: W,
    schema: SchemaRef,
    batches: I,
    props: &WriterProperties,
    threads: usize,
) -> Result<W>
where
    W: Write + Send,
    I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
{
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props.clone()))?;
    let threads = threads.min(schema.fields().len());
    if threads <= 1 {
        for batch in batches {
            writer.write(&batch?)?;
        }
        return writer.into_inner();
    }
    let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
    let (mut file, factory) = writer.into_serialized_writer()?;
    // Leaves (Parquet columns) of each top-level field, in schema order.
    let descr = file.schema_descr();
    let mut leaves = vec![0usize; schema.fields().len()];
    for leaf in 0..descr.num_columns() {
        leaves[descr.get_column_root_idx(leaf)] += 1;
    }

    std::thread::scope(|scope| -> Result<()> {
        let mut workers: Vec<Worker> = Vec::new();
        let mut share: Vec<Vec<usize>> = Vec::new();
        let mut group: Option<Group> = None;
        let mut row_groups = 0;
        let mut batches = batches.into_iter();
        let mut pending: Option<RecordBatch> = None;
        loop {
            let batch = match pending.take() {
                Some(b) => b,
                None => match batches.next() {
                    Some(b) => b?,
                    None => break,
                },
            };
            if batch.num_rows() == 0 {
                continue;
            }
            if workers.is_empty() {
                share = assign(&batch, threads);
                for fields in &share {
                    workers.push(Worker::spawn(scope, schema.clone(), fields.clone())?);
                }
            }
            let g = match &mut group {
                Some(g) => g,
                None => {
                    let mut writers = factory.create_column_writers(row_groups)?.into_iter();
                    let mut per_field: Vec<Vec<ArrowColumnWriter>> = leaves
                        .iter()
                        .map(|&n| writers.by_ref().take(n).collect())
                        .collect();
                    for (w, fields) in workers.iter().zip(&share) {
                        let mine = fields.iter().map(|&f| std::mem::take(&mut per_field[f]));
                        w.send(Work::Start(mine.collect()))?;
                    }
                    group.insert(Group { rows: 0 })
                }
            };
            let room = max_rows - g.rows;
            let batch = if batch.num_rows() > room {
                pending = Some(batch.slice(room, batch.num_rows() - room));
                batch.slice(0, room)
            } else {
                batch
            };
            g.rows += batch.num_rows();
            for w in &workers {
                w.send(Work::Batch(batch.clone()))?;
            }
            if g.rows == max_rows {
                group = None;
                finish_group(&mut file, &workers, &share, &leaves)?;
                row_groups += 1;
            }
        }
        if group.is_some() {
            finish_group(&mut file, &workers, &share, &leaves)?;
        }
        Ok(())
    })?;
    file.into_inner()
}

/// The row group being filled.
struct Group {
    rows: usize,
}

enum Work {
    /// The column writers of a new row group, per field of the worker's share.
    Start(Vec<Vec<ArrowColumnWriter>>),
    Batch(RecordBatch),
    /// Close the row group's writers and send back their chunks.
    Finish,
}

/// A thread encoding a fixed share of the fields.
struct Worker {
    work: mpsc::SyncSender<Work>,
    done: mpsc::Receiver<Result<Vec<ArrowColumnChunk>>>,
}

impl Worker {
    fn spawn<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        schema: SchemaRef,
        fields: Vec<usize>,
    ) -> Result<Self> {
        // Two batches in flight: the producer (a merge, say) waits for the
        // encoders instead of buffering ahead of them.
        let (work, inbox) = mpsc::sync_channel(2);
        let (reply, done) = mpsc::channel();
        let thread = std::thread::Builder::new().name("logwarden-encode".into());
        let spawned = thread.spawn_scoped(scope, move || {
            let mut writers: Vec<Vec<ArrowColumnWriter>> = Vec::new();
            let mut failed: Option<ParquetError> = None;
            for job in inbox {
                match job {
                    Work::Start(w) => writers = w,
                    Work::Batch(batch) if failed.is_none() => {
                        if let Err(e) = encode(&schema, &fields, &batch, &mut writers) {
                            failed = Some(e);
                        }
                    }
                    Work::Batch(_) => {}
                    Work::Finish => {
                        let chunks = match failed.take() {
                            Some(e) => Err(e),
                            None => std::mem::take(&mut writers)
                                .into_iter()
                                .flatten()
                                .map(ArrowColumnWriter::close)
                                .collect(),
                        };
                        if reply.send(chunks).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        spawned.map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Self { work, done })
    }

    fn send(&self, work: Work) -> Result<()> {
        self.work.send(work).map_err(|_| gone())
    }
}

/// Encodes the worker's fields of `batch`.
fn encode(
    schema: &SchemaRef,
    fields: &[usize],
    batch: &RecordBatch,
    writers: &mut [Vec<ArrowColumnWriter>],
) -> Result<()> {
    for (&f, writers) in fields.iter().zip(writers) {
        let leaves = compute_leaves(schema.field(f), batch.column(f))?;
        for (leaf, w) in leaves.iter().zip(writers.iter_mut()) {
            w.write(leaf)?;
        }
    }
    Ok(())
}

/// Closes the row group on every worker and appends its column chunks to
/// the file in schema order.
fn finish_group<W: Write + Send>(
    file: &mut parquet::file::writer::SerializedFileWriter<W>,
    workers: &[Worker],
    share: &[Vec<usize>],
    leaves: &[usize],
) -> Result<()> {
    for w in workers {
        w.send(Work::Finish)?;
    }
    let mut per_field: Vec<Vec<ArrowColumnChunk>> = leaves.iter().map(|_| Vec::new()).collect();
    for (w, fields) in workers.iter().zip(share) {
        let mut chunks = w.done.recv().map_err(|_| gone())??.into_iter();
        for &f in fields {
            per_field[f] = chunks.by_ref().take(leaves[f]).collect();
        }
    }
    let mut rg = file.next_row_group()?;
    for chunk in per_field.into_iter().flatten() {
        chunk.append_to_row_group(&mut rg)?;
    }
    rg.close()?;
    Ok(())
}

/// Splits the fields into `threads` shares of about equal size in memory
/// (largest first, each to the lightest share), which is roughly equal
/// encoding work. Each share lists its fields in schema order.
fn assign(batch: &RecordBatch, threads: usize) -> Vec<Vec<usize>> {
    let mut sizes: Vec<(usize, usize)> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.get_array_memory_size(), i))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut shares: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); threads];
    for (size, field) in sizes {
        let lightest = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one share");
        lightest.0 += size;
        lightest.1.push(field);
    }
    shares
        .into_iter()
        .map(|(_, mut fields)| {
            fields.sort_unstable();
            fields
        })
        .filter(|fields| !fields.is_empty())
        .collect()
}

fn gone() -> ParquetError {
    ParquetError::General("an encoding thread stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::compute::concat_batches;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;

    use crate::parquet::ParquetConfig;
    use crate::test_support::varied_batch;

    /// `batch` cut into pieces of 1, 699, 1,300, ... rows, as a merge or a
    /// split hands them over.
    fn pieces(batch: &RecordBatch) -> Vec<std::result::Result<RecordBatch, ArrowError>> {
        let mut out = Vec::new();
        let (mut at, mut len) = (0, 1);
        while at < batch.num_rows() {
            let n = len.min(batch.num_rows() - at);
            out.push(Ok(batch.slice(at, n)));
            at += n;
            len = len * 7 % 1_301 + 600;
        }
        out
    }

    fn write(batch: &RecordBatch, threads: usize, row_group_rows: usize) -> Vec<u8> {
        let cfg = ParquetConfig {
            row_group_rows,
            ..ParquetConfig::default()
        };
        let props = cfg.writer_properties(&batch.schema());
        write_parallel(Vec::new(), batch.schema(), pieces(batch), &props, threads).expect("write")
    }

    /// Spread over threads, the file is byte for byte the one a single
    /// `ArrowWriter` writes: same row groups, pages, dictionaries, bloom
    /// filter, indexes and metadata, whatever the row groups' boundaries
    /// against the incoming batches.
    #[test]
    fn threads_write_the_same_bytes_as_one_writer() {
        let batch = varied_batch(5_000);
        for row_group_rows in [1_000, 1_777, 1 << 20] {
            let single = write(&batch, 1, row_group_rows);
            let reader = SerializedFileReader::new(Bytes::from(single.clone())).expect("reader");
            let groups = reader.metadata().num_row_groups();
            assert_eq!(groups, 5_000usize.div_ceil(row_group_rows));
            for threads in [2, 3, 64] {
                let parallel = write(&batch, threads, row_group_rows);
                assert!(
                    parallel == single,
                    "{threads} threads, row groups of {row_group_rows}: the bytes differ"
                );
            }
            let back: Vec<RecordBatch> =
                ParquetRecordBatchReader::try_new(Bytes::from(single), 1_024)
                    .expect("reader")
                    .collect::<std::result::Result<_, _>>()
                    .expect("read");
            let back = concat_batches(&back[0].schema(), &back).expect("concat");
            assert_eq!(back.num_rows(), batch.num_rows());
            for (i, field) in batch.schema().fields().iter().enumerate() {
                let got = back.column_by_name(field.name()).expect("column");
                assert_eq!(
                    arrow::compute::cast(got, field.data_type())
                        .expect("cast")
                        .as_ref(),
                    batch.column(i).as_ref(),
                    "column {}",
                    field.name()
                );
            }
        }
    }

    /// No rows: a valid file without row groups. A failing input batch
    /// fails the write instead of publishing a short file.
    #[test]
    fn empty_input_and_failing_input() {
        let batch = varied_batch(10);
        let props = ParquetConfig::default().writer_properties(&batch.schema());
        let empty = write_parallel(Vec::new(), batch.schema(), [], &props, 2).expect("write");
        let reader = SerializedFileReader::new(Bytes::from(empty)).expect("reader");
        assert_eq!(reader.metadata().num_row_groups(), 0);

        let failing = [
            Ok(batch.clone()),
            Err(ArrowError::ComputeError("merge failed".into())),
            Ok(batch.clone()),
        ];
        let err = write_parallel(Vec::new(), batch.schema(), failing, &props, 2)
            .expect_err("a failed input must fail the write");
        assert!(err.to_string().contains("merge failed"), "{err}");
    }
}
