//! The Arrow schema of the archive and the builder that turns records into
//! [`RecordBatch`]es, the unit passed from ingest to storage.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, DictionaryArray, Int32Array, Int32Builder, Int64Builder, MapBuilder,
    MapFieldNames, StringArray, StringBuilder, StringDictionaryBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::record::{template_id_hex_into, LogRecord, Provenance};

/// Version of the archive schema, written into every file's metadata.
/// Bumped when a column is added, removed or changes type.
pub const SCHEMA_VERSION: &str = "1";

/// Column names, in schema order.
pub mod col {
    pub const EVENT_TIME: &str = "event_time";
    pub const INGEST_TIME: &str = "ingest_time";
    pub const TIME_SOURCE: &str = "time_source";
    pub const LEVEL: &str = "level";
    pub const SERVICE: &str = "service";
    pub const HOST: &str = "host";
    pub const MESSAGE: &str = "message";
    pub const TEMPLATE_ID: &str = "template_id";
    pub const TEMPLATE: &str = "template";
    pub const ATTRIBUTES: &str = "attributes";
    pub const FORMAT: &str = "format";
    pub const PARSE_ERROR: &str = "parse_error";
    pub const RAW: &str = "raw";
    pub const TOPIC: &str = "kafka_topic";
    pub const PARTITION: &str = "kafka_partition";
    pub const OFFSET: &str = "kafka_offset";
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn map_type() -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(col::EVENT_TIME, utc_micros(), false),
        Field::new(col::INGEST_TIME, utc_micros(), false),
        Field::new(col::TIME_SOURCE, dict_utf8(), false),
        Field::new(col::LEVEL, dict_utf8(), false),
        Field::new(col::SERVICE, dict_utf8(), true),
        Field::new(col::HOST, dict_utf8(), true),
        Field::new(col::MESSAGE, DataType::Utf8, false),
        Field::new(col::TEMPLATE_ID, dict_utf8(), true),
        Field::new(col::TEMPLATE, dict_utf8(), true),
        Field::new(col::ATTRIBUTES, map_type(), false),
        Field::new(col::FORMAT, dict_utf8(), false),
        Field::new(col::PARSE_ERROR, dict_utf8(), true),
        Field::new(col::RAW, DataType::Binary, true),
        Field::new(col::TOPIC, dict_utf8(), false),
        Field::new(col::PARTITION, DataType::Int32, false),
        Field::new(col::OFFSET, DataType::Int64, false),
    ]))
});

/// The Arrow schema of one archived log record.
pub fn log_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Accumulates records column by column.
pub struct LogBatchBuilder {
    event_time: TimestampMicrosecondBuilder,
    ingest_time: TimestampMicrosecondBuilder,
    time_source: SmallDictBuilder,
    level: SmallDictBuilder,
    service: SmallDictBuilder,
    host: SmallDictBuilder,
    message: StringBuilder,
    template_id: StringDictionaryBuilder<Int32Type>,
    template: StringDictionaryBuilder<Int32Type>,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
    format: SmallDictBuilder,
    parse_error: SmallDictBuilder,
    raw: BinaryBuilder,
    topic: SmallDictBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    rows: usize,
    bytes: usize,
}

impl Default for LogBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Sizes to reserve in a builder: those of the batch it built last, so that
/// a steady stream fills its buffers without growing (copying) them.
#[derive(Debug, Clone, Copy, Default)]
struct Capacity {
    rows: usize,
    message_bytes: usize,
    attributes: usize,
    attribute_key_bytes: usize,
    attribute_value_bytes: usize,
}

/// Distinct values a dictionary column is expected to hold.
const DICTIONARY_VALUES: usize = 64;
/// Bytes of those values.
const DICTIONARY_BYTES: usize = 4096;

impl LogBatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(Capacity::default())
    }

    fn with_capacity(c: Capacity) -> Self {
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let dict =
            || StringDictionaryBuilder::with_capacity(c.rows, DICTIONARY_VALUES, DICTIONARY_BYTES);
        Self {
            event_time: TimestampMicrosecondBuilder::with_capacity(c.rows).with_timezone("UTC"),
            ingest_time: TimestampMicrosecondBuilder::with_capacity(c.rows).with_timezone("UTC"),
            time_source: SmallDictBuilder::with_capacity(c.rows),
            level: SmallDictBuilder::with_capacity(c.rows),
            service: SmallDictBuilder::with_capacity(c.rows),
            host: SmallDictBuilder::with_capacity(c.rows),
            message: StringBuilder::with_capacity(c.rows, c.message_bytes),
            template_id: dict(),
            template: dict(),
            attributes: MapBuilder::with_capacity(
                Some(names),
                StringBuilder::with_capacity(c.attributes, c.attribute_key_bytes),
                StringBuilder::with_capacity(c.attributes, c.attribute_value_bytes),
                c.rows,
            )
            .with_keys_field(Arc::new(Field::new("key", DataType::Utf8, false)))
            .with_values_field(Arc::new(Field::new("value", DataType::Utf8, true))),
            format: SmallDictBuilder::with_capacity(c.rows),
            parse_error: SmallDictBuilder::with_capacity(c.rows),
            raw: BinaryBuilder::new(),
            topic: SmallDictBuilder::with_capacity(c.rows),
            partition: Int32Builder::with_capacity(c.rows),
            offset: Int64Builder::with_capacity(c.rows),
            rows: 0,
            bytes: 0,
        }
    }

    /// The sizes of what is buffered now.
    fn capacity_used(&mut self) -> Capacity {
        Capacity {
            rows: self.rows,
            message_bytes: self.message.values_slice().len(),
            attributes: self
                .attributes
                .keys()
                .offsets_slice()
                .len()
                .saturating_sub(1),
            attribute_key_bytes: self.attributes.keys().values_slice().len(),
            attribute_value_bytes: self.attributes.values().values_slice().len(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate bytes buffered since the last [`finish`](Self::finish).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn append(&mut self, rec: &LogRecord, prov: &Provenance, ingest_time_us: i64) {
        self.event_time.append_value(rec.event_time_us);
        self.ingest_time.append_value(ingest_time_us);
        self.time_source.append_static(rec.time_source.as_str());
        self.level.append_static(rec.level.as_str());
        self.service.append_option(rec.service.as_deref());
        self.host.append_option(rec.host.as_deref());
        self.message.append_value(&rec.message);
        match rec.template_id {
            Some(id) => self
                .template_id
                .append_value(template_id_hex_into(id, &mut [0u8; 16])),
            None => self.template_id.append_null(),
        }
        self.template.append_option(rec.template.as_deref());
        for (k, v) in &rec.attributes {
            self.attributes.keys().append_value(k);
            self.attributes.values().append_value(v);
        }
        // A map entry is never null: an empty map means no attributes.
        self.attributes
            .append(true)
            .expect("keys and values are appended in pairs");
        self.format.append_static(rec.format.as_str());
        match rec.parse_issue {
            Some(issue) => self.parse_error.append_static(issue.as_str()),
            None => self.parse_error.append_null(),
        }
        self.raw.append_option(rec.raw.as_deref());
        self.topic.append_value(&prov.topic);
        self.partition.append_value(prov.partition);
        self.offset.append_value(prov.offset);
        self.rows += 1;
        self.bytes += rec.approx_bytes();
    }

    /// Takes the rows appended so far as one batch and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let used = self.capacity_used();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_time.finish()),
            Arc::new(self.ingest_time.finish()),
            Arc::new(self.time_source.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.host.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.template_id.finish()),
            Arc::new(self.template.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.format.finish()),
            Arc::new(self.parse_error.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
        ];
        *self = Self::with_capacity(used);
        RecordBatch::try_new(log_schema(), columns)
    }
}

/// The dictionary index of a column whose values come from the logs: a
/// randomly seeded hasher, much faster than SipHash on short keys.
type ValueIndex = HashMap<Box<str>, i32, ahash::RandomState>;

/// A dictionary column of a few distinct values (time sources, levels,
/// formats, parse errors, topics; services and hosts, mostly). Each row is
/// looked up with one string comparison against the previous row's value,
/// else a scan of the few values; past [`SmallDictBuilder::SCAN`] values a
/// map takes over. A hashing dictionary builder hashes every row instead.
struct SmallDictBuilder {
    keys: Vec<Option<i32>>,
    values: Vec<Box<str>>,
    index: ValueIndex,
    last: i32,
    /// The address and length of the last `'static` value appended (its
    /// key is `last`): the same ones are the same text, found without
    /// comparing it.
    last_static: Option<(usize, usize)>,
}

impl SmallDictBuilder {
    /// Values looked up by a linear scan before the map is used.
    const SCAN: usize = 16;

    fn with_capacity(rows: usize) -> Self {
        Self {
            keys: Vec::with_capacity(rows),
            values: Vec::new(),
            index: ValueIndex::default(),
            last: 0,
            last_static: None,
        }
    }

    fn append_value(&mut self, v: &str) {
        let key = self.key_of(v);
        self.last = key;
        self.last_static = None;
        self.keys.push(Some(key));
    }

    /// [`append_value`](Self::append_value) for the names of enums (level,
    /// format, ...), which repeat from one row to the next.
    fn append_static(&mut self, v: &'static str) {
        let at = (v.as_ptr() as usize, v.len());
        if self.last_static == Some(at) {
            self.keys.push(Some(self.last));
            return;
        }
        self.append_value(v);
        self.last_static = Some(at);
    }

    fn append_null(&mut self) {
        self.keys.push(None);
    }

    fn append_option(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.append_value(v),
            None => self.append_null(),
        }
    }

    fn key_of(&mut self, v: &str) -> i32 {
        if self
            .values
            .get(self.last as usize)
            .is_some_and(|l| **l == *v)
        {
            return self.last;
        }
        if self.values.len() <= Self::SCAN {
            if let Some(i) = self.values.iter().position(|x| **x == *v) {
                return i as i32;
            }
        } else if let Some(&k) = self.index.get(v) {
            return k;
        }
        let key = self.values.len() as i32;
        self.values.push(v.into());
        if self.values.len() > Self::SCAN {
            if self.index.is_empty() {
                for (i, x) in self.values.iter().enumerate() {
                    self.index.insert(x.clone(), i as i32);
                }
            } else {
                self.index.insert(v.into(), key);
            }
        }
        key
    }

    /// The column of the rows appended so far; the builder is reset.
    fn finish(&mut self) -> DictionaryArray<Int32Type> {
        let keys = Int32Array::from(std::mem::take(&mut self.keys));
        let values = StringArray::from_iter_values(self.values.iter().map(|v| &**v));
        self.values.clear();
        self.index.clear();
        self.last = 0;
        self.last_static = None;
        // Every key indexes `values`.
        DictionaryArray::try_new(keys, Arc::new(values)).expect("keys index the values")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Level, ParseIssue};
    use arrow::array::{Array, AsArray};

    #[test]
    fn builder_output_matches_schema() {
        let mut b = LogBatchBuilder::new();
        let prov = Provenance {
            topic: "logs".into(),
            partition: 2,
            offset: 41,
        };
        let rec = LogRecord {
            event_time_us: 1_700_000_000_000_000,
            level: Level::Error,
            service: Some("checkout".into()),
            message: "payment failed".into(),
            attributes: vec![("order".into(), "42".into())],
            ..Default::default()
        };
        b.append(&rec, &prov, 1_700_000_000_000_100);
        let bad = LogRecord {
            parse_issue: Some(ParseIssue::InvalidUtf8),
            raw: Some(vec![0xff, 0xfe]),
            ..Default::default()
        };
        b.append(&bad, &prov, 1);
        assert_eq!(b.rows(), 2);
        let batch = b.finish().expect("valid batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), log_schema());
        assert_eq!(b.rows(), 0);
        assert_eq!(b.finish().expect("empty batch").num_rows(), 0);
    }

    /// Rows read back as appended, nulls included, whether the values are
    /// found by the scan or, past it, by the map; each value is stored once.
    #[test]
    fn small_dictionary_keeps_every_row() {
        for distinct in [
            1usize,
            3,
            SmallDictBuilder::SCAN,
            3 * SmallDictBuilder::SCAN,
        ] {
            let mut b = SmallDictBuilder::with_capacity(0);
            let mut expected = Vec::new();
            for round in 0..3 {
                for i in 0..500usize {
                    let v = (i * 7 + round) % (distinct + 1);
                    if v == distinct {
                        b.append_null();
                        expected.push(None);
                    } else {
                        let s = format!("value-{v}");
                        b.append_value(&s);
                        expected.push(Some(s));
                    }
                }
                let col = b.finish();
                let values = col.values().as_string::<i32>();
                let got: Vec<Option<String>> = col
                    .keys()
                    .iter()
                    .map(|k| k.map(|k| values.value(k as usize).to_string()))
                    .collect();
                assert_eq!(got, expected, "{distinct} values, round {round}");
                let unique: std::collections::HashSet<&str> = values.iter().flatten().collect();
                assert_eq!(unique.len(), values.len(), "a value stored twice");
                assert!(values.len() <= distinct);
                expected.clear();
            }
        }
    }

    /// Enum names appended by address read back as appended, mixed with the
    /// same texts appended by value and with nulls, across finishes.
    #[test]
    fn static_names_keep_every_row() {
        let mut b = SmallDictBuilder::with_capacity(0);
        for round in 0..2 {
            let mut expected = Vec::new();
            for i in 0..400usize {
                let level = Level::ALL[(i / 3 + round) % Level::ALL.len()].as_str();
                match i % 11 {
                    0 => {
                        b.append_null();
                        expected.push(None);
                    }
                    1 => {
                        // The same text at another address.
                        let copy = String::from(level);
                        b.append_value(&copy);
                        expected.push(Some(level));
                    }
                    _ => {
                        b.append_static(level);
                        expected.push(Some(level));
                    }
                }
            }
            let col = b.finish();
            let values = col.values().as_string::<i32>();
            let got: Vec<Option<&str>> = col
                .keys()
                .iter()
                .map(|k| k.map(|k| values.value(k as usize)))
                .collect();
            assert_eq!(got, expected, "round {round}");
        }
    }
}
