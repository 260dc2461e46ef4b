//! Template mining of a whole Arrow batch: fills the `template_id` and
//! `template` columns from `message`, row by row in order, with the same
//! rule as [`Parser`](crate::parse::Parser) applies to one record (an empty
//! message gets no template).
//!
//! Ingest mines here, on the writer thread, instead of on the parse thread:
//! parsing is the longer stage of the two, so moving mining next to the
//! Parquet encoding balances the pipeline across two cores.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringDictionaryBuilder};
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
    let mut ids = StringDictionaryBuilder::<Int32Type>::new();
    let mut texts = StringDictionaryBuilder::<Int32Type>::new();
    let mut hex = [0u8; 16];
    for i in 0..messages.len() {
        let message = if messages.is_null(i) {
            ""
        } else {
            messages.value(i)
        };
        if message.is_empty() {
            ids.append_null();
            texts.append_null();
        } else {
            let (id, template) = miner.observe(message);
            ids.append_value(template_id_hex_into(id, &mut hex));
            texts.append_value(&*template);
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[schema.index_of(col::TEMPLATE_ID)?] = Arc::new(ids.finish());
    columns[schema.index_of(col::TEMPLATE)?] = Arc::new(texts.finish());
    RecordBatch::try_new(schema, columns)
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
        let mut builder = LogBatchBuilder::new();
        let mut rec = LogRecord::default();
        for (i, line) in lines.iter().enumerate() {
            inline.parse(Some(line.as_bytes()), &ctx, &mut rec);
            expected.push(rec.template_id.map(crate::record::template_id_hex));
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
        let ids = mined
            .column(mined.schema().index_of(col::TEMPLATE_ID).expect("column"))
            .as_dictionary::<Int32Type>();
        let values = ids.values().as_string::<i32>();
        let got: Vec<Option<String>> = (0..mined.num_rows())
            .map(|r| {
                ids.is_valid(r)
                    .then(|| values.value(ids.keys().value(r) as usize).to_string())
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got[0], got[1], "one template for both logins");
        assert_eq!(got[2], None, "an empty message has no template");
        assert_eq!(miner.len(), inline.miner().expect("miner").len());
    }
}
