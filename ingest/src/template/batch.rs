//! Template mining of a whole Arrow batch: fills the `template_id` and
//! `template` columns from `message`, row by row in order, with the same
//! rule as [`Parser`](crate::parse::Parser) applies to one record (an empty
//! message gets no template).
//!
//! Ingest mines here rather than per record: the parse threads hand back
//! Arrow batches, and the thread that reads them back in input order (the
//! poll thread from Kafka, the reader from a file) mines each batch, so ids
//! are assigned in the order the lines arrived.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, StringArray, StringBuilder,
};
use arrow::datatypes::Int32Type;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::record::template_id_hex_into;
use crate::schema::col;

use super::miner::KeyMap;
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
/// miner returned, looking values up by id instead of hashing their text
/// row after row.
struct TemplateColumns {
    id_keys: Vec<Option<i32>>,
    text_keys: Vec<Option<i32>>,
    /// Dictionary key of each id seen; its hex text is in `id_values`.
    ids: KeyMap<i32>,
    id_values: StringBuilder,
    /// For each id's key: the template text last returned for it and that
    /// text's key. A template generalized within the batch comes back as a
    /// new `Arc`, so it gets a value of its own.
    current: Vec<Option<(Arc<str>, i32)>>,
    text_values: Vec<Arc<str>>,
}

impl TemplateColumns {
    fn with_capacity(rows: usize) -> Self {
        Self {
            id_keys: Vec::with_capacity(rows),
            text_keys: Vec::with_capacity(rows),
            ids: KeyMap::default(),
            id_values: StringBuilder::new(),
            current: Vec::new(),
            text_values: Vec::new(),
        }
    }

    fn append_null(&mut self) {
        self.id_keys.push(None);
        self.text_keys.push(None);
    }

    fn append(&mut self, id: u64, template: Arc<str>) {
        let id_key = match self.ids.entry(id) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.id_values
                    .append_value(template_id_hex_into(id, &mut [0u8; 16]));
                self.current.push(None);
                *e.insert(self.current.len() as i32 - 1)
            }
        };
        let slot = &mut self.current[id_key as usize];
        let text_key = match slot {
            Some((text, key)) if Arc::ptr_eq(text, &template) => *key,
            _ => {
                let key = self.text_values.len() as i32;
                self.text_values.push(template.clone());
                *slot = Some((template, key));
                key
            }
        };
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
            "backup of volume sda finished",
            "backup of volume sdb finished",
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
        // The second backup line generalizes its template: one id, and the
        // text each row was given as it arrived.
        assert_eq!(got[6], got[7]);
        assert_ne!(got_text[6], got_text[7]);
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
