//! A streaming k-way merge of Parquet files each sorted by (service, event
//! time), so that compaction holds a few pages per input and one output
//! chunk at a time instead of every row of a merge group.
//!
//! Each input is read in batches of [`READ_BATCH_ROWS`] rows; the sort keys
//! of a batch are converted once to the comparable row format
//! (`arrow::row`), and the merge emits runs: the smallest input's rows are
//! taken for as long as they do not pass the second smallest input's next
//! row, so inputs covering different time ranges cost one comparison per
//! row. Output chunks of [`OUT_BATCH_ROWS`] rows are gathered with
//! `interleave_record_batch`. An input found out of order fails the merge
//! (its group is left as it is) rather than writing a file that claims a
//! sort order it does not have.

use std::cmp::Ordering;

use arrow::array::RecordBatch;
use arrow::compute::{interleave_record_batch, SortOptions};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use logwarden_ingest::schema::col;

/// Rows per batch read from each input.
pub(crate) const READ_BATCH_ROWS: usize = 1024;
/// Rows per merged batch handed to the writer.
pub(crate) const OUT_BATCH_ROWS: usize = 8192;

/// Batches of one input, in order.
pub(crate) type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Why a merge stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeFailure {
    /// Input `n` (by position) is not sorted by (service, event time).
    Unsorted(usize),
    /// Input `n` could not be read.
    Read(usize, String),
}

/// The sort keys, ascending with nulls first (the order ingest writes and
/// records in each file's `sorting_columns`).
pub(crate) fn sort_converter(schema: &SchemaRef) -> Result<RowConverter, ArrowError> {
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let fields = [col::SERVICE, col::EVENT_TIME]
        .iter()
        .map(|c| {
            let f = schema.field_with_name(c)?;
            Ok(SortField::new_with_options(f.data_type().clone(), opts))
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    RowConverter::new(fields)
}

fn sort_keys(conv: &RowConverter, batch: &RecordBatch) -> Result<Rows, ArrowError> {
    let schema = batch.schema();
    let cols = [col::SERVICE, col::EVENT_TIME]
        .iter()
        .map(|c| Ok(batch.column(schema.index_of(c)?).clone()))
        .collect::<Result<Vec<_>, ArrowError>>()?;
    conv.convert_columns(&cols)
}

struct Cursor {
    input: usize,
    iter: BatchIter,
    batch: RecordBatch,
    keys: Rows,
    pos: usize,
    /// Where `batch` sits in the merge's pool of batches.
    slot: usize,
}

/// Merges inputs each sorted by (service, event time) into batches sorted
/// the same way; equal keys keep the inputs' order.
pub(crate) struct SortedMerge {
    schema: SchemaRef,
    conv: RowConverter,
    /// Live inputs, in input order (ties go to the earlier one).
    cursors: Vec<Cursor>,
    /// Batches the pending output rows point into.
    pool: Vec<RecordBatch>,
    failure: Option<MergeFailure>,
    rows: usize,
}

impl SortedMerge {
    pub(crate) fn new(schema: SchemaRef, inputs: Vec<BatchIter>) -> Result<Self, ArrowError> {
        let conv = sort_converter(&schema)?;
        let mut merge = Self {
            schema,
            conv,
            cursors: Vec::with_capacity(inputs.len()),
            pool: Vec::new(),
            failure: None,
            rows: 0,
        };
        for (input, mut iter) in inputs.into_iter().enumerate() {
            match merge.next_nonempty(input, &mut iter) {
                Ok(Some((batch, keys))) => {
                    let slot = merge.pool.len();
                    merge.pool.push(batch.clone());
                    merge.cursors.push(Cursor {
                        input,
                        iter,
                        batch,
                        keys,
                        pos: 0,
                        slot,
                    });
                }
                Ok(None) => {}
                Err(f) => {
                    merge.failure = Some(f);
                    break;
                }
            }
        }
        Ok(merge)
    }

    /// What stopped the merge, when it yielded an error.
    pub(crate) fn failure(&self) -> Option<&MergeFailure> {
        self.failure.as_ref()
    }

    /// Rows merged so far.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_nonempty(
        &self,
        input: usize,
        iter: &mut BatchIter,
    ) -> Result<Option<(RecordBatch, Rows)>, MergeFailure> {
        loop {
            match iter.next() {
                None => return Ok(None),
                Some(Err(e)) => return Err(MergeFailure::Read(input, e.to_string())),
                Some(Ok(b)) if b.num_rows() == 0 => continue,
                Some(Ok(b)) => {
                    let keys = sort_keys(&self.conv, &b)
                        .map_err(|e| MergeFailure::Read(input, e.to_string()))?;
                    return Ok(Some((b, keys)));
                }
            }
        }
    }

    /// The live cursor with the smallest next row, and the runner-up.
    fn two_smallest(&self) -> Option<(usize, Option<usize>)> {
        let key = |i: usize| {
            let c = &self.cursors[i];
            c.keys.row(c.pos)
        };
        let mut best: Option<usize> = None;
        let mut second: Option<usize> = None;
        for i in 0..self.cursors.len() {
            match best {
                None => best = Some(i),
                Some(b) if key(i) < key(b) => {
                    second = best;
                    best = Some(i);
                }
                Some(_) => {
                    if second.is_none_or(|s| key(i) < key(s)) {
                        second = Some(i);
                    }
                }
            }
        }
        best.map(|b| (b, second))
    }

    /// Takes rows of cursor `m` into `out` while they come before the next
    /// row of cursor `s` (or up to `limit`); moves to the cursor's next
    /// batch when this one is used up. Returns whether `m` is exhausted.
    fn take_run(
        &mut self,
        m: usize,
        s: Option<usize>,
        out: &mut Vec<(usize, usize)>,
        limit: usize,
    ) -> Result<bool, MergeFailure> {
        loop {
            let c = &self.cursors[m];
            out.push((c.slot, c.pos));
            let pos = c.pos + 1;
            if pos == c.batch.num_rows() {
                return self.advance_batch(m);
            }
            if c.keys.row(pos) < c.keys.row(c.pos) {
                return Err(MergeFailure::Unsorted(c.input));
            }
            self.cursors[m].pos = pos;
            if out.len() >= limit {
                return Ok(false);
            }
            if let Some(s) = s {
                let (cm, cs) = (&self.cursors[m], &self.cursors[s]);
                let ord = cm.keys.row(cm.pos).cmp(&cs.keys.row(cs.pos));
                // Ties go to the earlier input.
                if ord == Ordering::Greater || (ord == Ordering::Equal && cs.input < cm.input) {
                    return Ok(false);
                }
            }
        }
    }

    /// Loads cursor `m`'s next batch, checking that it continues the order;
    /// removes the cursor at the end of its input.
    fn advance_batch(&mut self, m: usize) -> Result<bool, MergeFailure> {
        let input = self.cursors[m].input;
        let last: OwnedRow = {
            let c = &self.cursors[m];
            c.keys.row(c.batch.num_rows() - 1).owned()
        };
        let mut iter = std::mem::replace(&mut self.cursors[m].iter, Box::new(std::iter::empty()));
        let next = self.next_nonempty(input, &mut iter)?;
        match next {
            None => {
                self.cursors.remove(m);
                Ok(true)
            }
            Some((batch, keys)) => {
                if keys.row(0) < last.row() {
                    return Err(MergeFailure::Unsorted(input));
                }
                let slot = self.pool.len();
                self.pool.push(batch.clone());
                let c = &mut self.cursors[m];
                c.iter = iter;
                c.batch = batch;
                c.keys = keys;
                c.pos = 0;
                c.slot = slot;
                Ok(false)
            }
        }
    }

    fn next_chunk(&mut self) -> Result<Option<RecordBatch>, MergeFailure> {
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(OUT_BATCH_ROWS);
        while out.len() < OUT_BATCH_ROWS {
            let Some((m, s)) = self.two_smallest() else {
                break;
            };
            self.take_run(m, s, &mut out, OUT_BATCH_ROWS)?;
        }
        if out.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&RecordBatch> = self.pool.iter().collect();
        let batch = interleave_record_batch(&refs, &out)
            .map_err(|e| MergeFailure::Read(usize::MAX, e.to_string()))?;
        // Only the cursors' current batches are still needed.
        self.pool.clear();
        for c in &mut self.cursors {
            c.slot = self.pool.len();
            self.pool.push(c.batch.clone());
        }
        self.rows += batch.num_rows();
        Ok(Some(batch))
    }
}

impl Iterator for SortedMerge {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = &self.failure {
            return Some(Err(ArrowError::ExternalError(
                format!("merge stopped: {f:?}").into(),
            )));
        }
        match self.next_chunk() {
            Ok(b) => b.map(Ok),
            Err(f) => {
                let e = ArrowError::ExternalError(format!("merge stopped: {f:?}").into());
                self.failure = Some(f);
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, StringArray, TimestampMicrosecondArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(col::SERVICE, DataType::Utf8, true),
            Field::new(
                col::EVENT_TIME,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("id", DataType::UInt64, false),
        ]))
    }

    fn batch(rows: &[(Option<&str>, i64, u64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                Arc::new(UInt64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn input(batches: Vec<RecordBatch>) -> BatchIter {
        Box::new(batches.into_iter().map(Ok))
    }

    fn ids(merge: SortedMerge) -> Vec<u64> {
        merge
            .flat_map(|b| {
                let b = b.unwrap();
                let a = b
                    .column(2)
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .unwrap()
                    .clone();
                (0..a.len()).map(move |i| a.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn interleaves_sorted_inputs_keeping_ties_in_input_order() {
        let a = input(vec![
            batch(&[(None, 5, 0), (Some("a"), 1, 1)]),
            batch(&[(Some("a"), 3, 2), (Some("b"), 1, 3)]),
        ]);
        let b = input(vec![
            batch(&[]),
            batch(&[(None, 5, 10), (Some("a"), 2, 11), (Some("a"), 3, 12)]),
        ]);
        let c = input(vec![batch(&[(Some("c"), 0, 20)])]);
        let m = SortedMerge::new(schema(), vec![a, b, c]).unwrap();
        assert_eq!(ids(m), vec![0, 10, 1, 11, 2, 12, 3, 20]);
    }

    #[test]
    fn output_is_chunked_and_every_row_kept() {
        // Three inputs of interleaving times, spread over many read batches.
        let inputs = (0..3u64)
            .map(|k| {
                let rows: Vec<(Option<&str>, i64, u64)> = (0..20_000u64)
                    .map(|i| (Some("svc"), (i * 3 + k) as i64, i * 3 + k))
                    .collect();
                input(rows.chunks(READ_BATCH_ROWS).map(batch).collect())
            })
            .collect();
        let mut m = SortedMerge::new(schema(), inputs).unwrap();
        let mut all = Vec::new();
        for b in m.by_ref() {
            let b = b.unwrap();
            assert!(b.num_rows() <= OUT_BATCH_ROWS);
            let a = b.column(2).as_any().downcast_ref::<UInt64Array>().unwrap();
            all.extend((0..a.len()).map(|i| a.value(i)));
        }
        assert_eq!(m.rows(), 60_000);
        assert_eq!(all, (0..60_000).collect::<Vec<u64>>());
    }

    #[test]
    fn an_input_out_of_order_stops_the_merge() {
        let within = input(vec![batch(&[(Some("a"), 2, 0), (Some("a"), 1, 1)])]);
        let mut m = SortedMerge::new(schema(), vec![within]).unwrap();
        assert!(m.by_ref().any(|b| b.is_err()));
        assert_eq!(m.failure(), Some(&MergeFailure::Unsorted(0)));

        let ok = input(vec![batch(&[(Some("a"), 0, 9)])]);
        let across = input(vec![
            batch(&[(Some("b"), 1, 0)]),
            batch(&[(Some("a"), 1, 1)]),
        ]);
        let mut m = SortedMerge::new(schema(), vec![ok, across]).unwrap();
        assert!(m.by_ref().any(|b| b.is_err()));
        assert_eq!(m.failure(), Some(&MergeFailure::Unsorted(1)));
    }
}
