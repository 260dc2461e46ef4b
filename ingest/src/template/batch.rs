//! Template mining of a whole Arrow batch: fills the `template_id` and
//! `template` columns from `message`, row by row in order, with the same
//! rule as [`Parser`](crate::parse::Parser) applies to one record (an empty
//! message gets no template).
//!
//! Ingest mines here, on the writer thread, instead of on the parse thread:
//! parsing is the longer stage of the two, so moving mining next to the
//! Parquet encoding balances the pipeline across two cores.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, StringArray, StringBuilder,
};
use arrow::datatypes::Int32Type;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::record::template_id_hex_into;
use crate::schema::col;

use super::TemplateMiner;

/// `batch` (archive schema) with its template columns mined from its
/// messages, in row order.
pub fn mine_batch(
    miner: &mut TemplateMiner,
    batch: &RecordBatch,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let messages = batch
        .column(schema.index_of(col::MESSAGE)?)
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("message is not a string column".into()))?;
    let mut columns = TemplateColumns::with_capacity(messages.len());
    for i in 0..messages.len() {
        let message = if messages.is_null(i) {
            ""
        } else {
            messages.value(i)
        };
        if message.is_empty() {
            columns.append_null();
        } else {
            let (id, template) = miner.observe(message);
            columns.append(id, template);
        }
    }
    let (ids, texts) = columns.finish()?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[schema.index_of(col::TEMPLATE_ID)?] = Arc::new(ids);
    columns[schema.index_of(col::TEMPLATE)?] = Arc::new(texts);
    RecordBatch::try_new(schema, columns)
}

/// Builds the `template_id` and `template` dictionary columns from what the
/// miner returned, looking values up by id and by the template's `Arc`
/// instead of hashing their text row after row.
struct TemplateColumns {
    id_keys: Vec<Option<i32>>,
    text_keys: Vec<Option<i32>>,
    /// Dictionary key of each id seen, and its hex text.
    ids: HashMap<u64, i32, BuildHasherDefault<IdHasher>>,
    id_values: StringBuilder,
    /// Dictionary key of each template text seen, by the address of its
    /// `Arc`. A template generalized within the batch comes back as a new
    /// `Arc`, so it gets a value of its own; the `Arc`s are held until the
    /// batch is built, so no address is reused meanwhile.
    texts: HashMap<usize, i32, BuildHasherDefault<IdHasher>>,
    text_values: Vec<Arc<str>>,
}

impl TemplateColumns {
    fn with_capacity(rows: usize) -> Self {
        Self {
            id_keys: Vec::with_capacity(rows),
            text_keys: Vec::with_capacity(rows),
            ids: HashMap::default(),
            id_values: StringBuilder::new(),
            texts: HashMap::default(),
            text_values: Vec::new(),
        }
    }

    fn append_null(&mut self) {
        self.id_keys.push(None);
        self.text_keys.push(None);
    }

    fn append(&mut self, id: u64, template: Arc<str>) {
        let next = self.ids.len() as i32;
        let id_key = *self.ids.entry(id).or_insert_with(|| {
            self.id_values
                .append_value(template_id_hex_into(id, &mut [0u8; 16]));
            next
        });
        let next = self.text_values.len() as i32;
        let text_key = *self
            .texts
            .entry(Arc::as_ptr(&template) as *const u8 as usize)
            .or_insert_with(|| {
                self.text_values.push(template);
                next
            });
        self.id_keys.push(Some(id_key));
        self.text_keys.push(Some(text_key));
    }

    fn finish(
        mut self,
    ) -> Result<(DictionaryArray<Int32Type>, DictionaryArray<Int32Type>), ArrowError> {
        let ids = DictionaryArray::try_new(
            Int32Array::from(self.id_keys),
            Arc::new(self.id_values.finish()),
        )?;
        let texts = DictionaryArray::try_new(
            Int32Array::from(self.text_keys),
            Arc::new(StringArray::from_iter_values(
                self.text_values.iter().map(|t| &**t),
            )),
        )?;
        Ok((ids, texts))
    }
}

/// Hasher for the keys of [`TemplateColumns`]: template ids are already
/// hashes, and addresses only need their low bits mixed in.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_usize(&mut self, n: usize) {
        // Multiplicative mixing: addresses share their high bits and are
        // aligned in their low ones.
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{ParseContext, Parser, ParserConfig};
    use crate::record::{LogRecord, Provenance};
    use crate::schema::LogBatchBuilder;

    /// Mining a batch gives every row the id and template the parser would
    /// have given it record by record, in the same order.
    #[test]
    fn a_mined_batch_matches_mining_record_by_record() {
        let lines = [
            "{\"msg\":\"user 17 logged in from 10.0.0.1\"}",
            "{\"msg\":\"user 18 logged in from 10.0.0.2\"}",
            "{\"msg\":\"\"}",
            "disk /dev/sda1 at 91% capacity",
            "{\"msg\":\"user alice logged in from 10.0.0.9\"}",
            "disk /dev/sdb2 at 97% capacity",
        ];
        let ctx = ParseContext {
            transport_time_us: None,
            ingest_time_us: 1,
        };
        let mut inline = Parser::new(ParserConfig::default()).expect("parser");
        let mut cfg = ParserConfig::default();
        cfg.templates.enabled = false;
        let mut plain = Parser::new(cfg).expect("parser");
        let mut expected = Vec::new();
        let mut expected_text = Vec::new();
        let mut builder = LogBatchBuilder::new();
        let mut rec = LogRecord::default();
        for (i, line) in lines.iter().enumerate() {
            inline.parse(Some(line.as_bytes()), &ctx, &mut rec);
            expected.push(rec.template_id.map(crate::record::template_id_hex));
            expected_text.push(rec.template.as_deref().map(str::to_string));
            plain.parse(Some(line.as_bytes()), &ctx, &mut rec);
            assert!(rec.template_id.is_none());
            let prov = Provenance {
                topic: "t".into(),
                partition: 0,
                offset: i as i64,
            };
            builder.append(&rec, &prov, 1);
        }
        let batch = builder.finish().expect("batch");
        let mut miner = TemplateMiner::new(&ParserConfig::default().templates).expect("miner");
        let mined = mine_batch(&mut miner, &batch).expect("mined");
        let got = strings(&mined, col::TEMPLATE_ID);
        assert_eq!(got, expected);
        let got_text = strings(&mined, col::TEMPLATE);
        assert_eq!(got_text, expected_text);
        assert_eq!(got[0], got[1], "one template for both logins");
        assert_eq!(got[2], None, "an empty message has no template");
        assert_eq!(miner.len(), inline.miner().expect("miner").len());
    }

    /// The values of a string dictionary column, row by row.
    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let column = batch
            .column(batch.schema().index_of(name).expect("column"))
            .as_dictionary::<Int32Type>();
        let values = column.values().as_string::<i32>();
        (0..batch.num_rows())
            .map(|r| {
                column
                    .is_valid(r)
                    .then(|| values.value(column.keys().value(r) as usize).to_string())
            })
            .collect()
    }
}
