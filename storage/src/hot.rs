//! Hot fields: attributes promoted to typed top-level columns
//! (`[[archive.hot_fields]]`), so engines filter and aggregate on them with
//! statistics, dictionaries and bloom filters instead of map lookups.
//!
//! A promoted value leaves the `attributes` map. A value that does not parse
//! as the column's type stays in the map and the column is null for that
//! row: nothing is lost. The columns come after the base schema's, nullable,
//! so files with and without them read together with schema merging
//! (`union_by_name`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, MapArray, MapBuilder,
    MapFieldNames, StringBuilder, StringDictionaryBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use logwarden_ingest::options::{require, InvalidOption};
use logwarden_ingest::schema::col;

/// Longest column name accepted for a hot field.
pub const MAX_COLUMN_NAME: usize = 64;

/// The type of a hot-field column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HotType {
    /// Dictionary-encoded string (low cardinality: region, status class).
    Dict,
    /// Plain string (high cardinality: trace ids, user ids).
    String,
    Int64,
    Float64,
    Bool,
}

/// One promoted attribute (an entry of `[[archive.hot_fields]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HotField {
    /// The attribute key (`http.status`, `trace_id`).
    pub key: String,
    /// Column name; default: the key with every character outside
    /// `[A-Za-z0-9_]` replaced by `_`.
    #[serde(default)]
    pub column: Option<String>,
    /// Column type.
    #[serde(rename = "type")]
    pub ty: HotType,
    /// Write a bloom filter for the column (point lookups on ids).
    #[serde(default)]
    pub bloom: bool,
}

impl HotField {
    pub fn column_name(&self) -> String {
        self.column.clone().unwrap_or_else(|| {
            self.key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect()
        })
    }

    fn data_type(&self) -> DataType {
        match self.ty {
            HotType::Dict => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            HotType::String => DataType::Utf8,
            HotType::Int64 => DataType::Int64,
            HotType::Float64 => DataType::Float64,
            HotType::Bool => DataType::Boolean,
        }
    }
}

/// Checks names: valid, unique, not clashing with the base schema or the
/// partition keys.
pub fn validate(fields: &[HotField], base: &Schema) -> Result<(), InvalidOption> {
    const OPTION: &str = "archive.hot_fields";
    let mut seen: Vec<String> = Vec::new();
    for f in fields {
        let name = f.column_name();
        require(!f.key.is_empty(), OPTION, "empty key")?;
        if name.is_empty()
            || name.len() > MAX_COLUMN_NAME
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(InvalidOption::new(OPTION, format!(
                "column name `{name}` must be 1-{MAX_COLUMN_NAME} characters of [A-Za-z0-9_], not starting with a digit"
            )));
        }
        if base.index_of(&name).is_ok() || ["dt", "hour"].contains(&name.as_str()) {
            return Err(InvalidOption::new(
                OPTION,
                format!("column `{name}` already exists"),
            ));
        }
        if seen.contains(&name) || fields.iter().filter(|g| g.key == f.key).count() > 1 {
            return Err(InvalidOption::new(
                OPTION,
                format!("`{name}` / `{}` listed twice", f.key),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// The schema with the hot columns appended.
pub fn extend_schema(base: &SchemaRef, fields: &[HotField]) -> SchemaRef {
    if fields.is_empty() {
        return base.clone();
    }
    let mut all: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    all.extend(
        fields
            .iter()
            .map(|f| Field::new(f.column_name(), f.data_type(), true)),
    );
    Arc::new(Schema::new_with_metadata(all, base.metadata().clone()))
}

enum Builder {
    Dict(StringDictionaryBuilder<Int32Type>),
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
}

impl Builder {
    fn new(ty: HotType) -> Self {
        match ty {
            HotType::Dict => Builder::Dict(StringDictionaryBuilder::new()),
            HotType::String => Builder::Str(StringBuilder::new()),
            HotType::Int64 => Builder::I64(Int64Builder::new()),
            HotType::Float64 => Builder::F64(Float64Builder::new()),
            HotType::Bool => Builder::Bool(BooleanBuilder::new()),
        }
    }

    /// Appends `v` if it parses; returns whether it did.
    fn append(&mut self, v: &str) -> bool {
        match self {
            Builder::Dict(b) => b.append_value(v),
            Builder::Str(b) => b.append_value(v),
            Builder::I64(b) => match v.trim().parse::<i64>() {
                Ok(x) => b.append_value(x),
                Err(_) => return false,
            },
            Builder::F64(b) => match v.trim().parse::<f64>() {
                Ok(x) => b.append_value(x),
                Err(_) => return false,
            },
            Builder::Bool(b) => match v.trim() {
                "true" | "True" | "TRUE" | "1" => b.append_value(true),
                "false" | "False" | "FALSE" | "0" => b.append_value(false),
                _ => return false,
            },
        }
        true
    }

    fn append_null(&mut self) {
        match self {
            Builder::Dict(b) => b.append_null(),
            Builder::Str(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Dict(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// Moves the hot fields out of `attributes` into their columns.
pub fn promote(batch: &RecordBatch, fields: &[HotField]) -> Result<RecordBatch, ArrowError> {
    if fields.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let attr_idx = schema.index_of(col::ATTRIBUTES)?;
    let map: &MapArray = batch
        .column(attr_idx)
        .as_map_opt()
        .ok_or_else(|| ArrowError::SchemaError("attributes is not a map".into()))?;
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    let mut builders: Vec<Builder> = fields.iter().map(|f| Builder::new(f.ty)).collect();
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut rest = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
        .with_keys_field(Arc::new(Field::new("key", DataType::Utf8, false)))
        .with_values_field(Arc::new(Field::new("value", DataType::Utf8, true)));
    let offsets = map.value_offsets();
    let mut taken = vec![false; fields.len()];
    for row in 0..batch.num_rows() {
        taken.iter_mut().for_each(|t| *t = false);
        for e in offsets[row] as usize..offsets[row + 1] as usize {
            let k = keys.value(e);
            let v = (!values.is_null(e)).then(|| values.value(e));
            let hot = fields.iter().position(|f| f.key == k);
            match (hot, v) {
                (Some(i), Some(v)) if !taken[i] && builders[i].append(v) => taken[i] = true,
                _ => {
                    rest.keys().append_value(k);
                    rest.values().append_option(v);
                }
            }
        }
        for (i, t) in taken.iter().enumerate() {
            if !t {
                builders[i].append_null();
            }
        }
        rest.append(true)?;
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[attr_idx] = Arc::new(rest.finish());
    columns.extend(builders.iter_mut().map(Builder::finish));
    RecordBatch::try_new(extend_schema(&schema, fields), columns)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow::datatypes::Int64Type;
    use logwarden_ingest::record::{LogRecord, Provenance};
    use logwarden_ingest::schema::{log_schema, LogBatchBuilder};

    #[test]
    fn promotes_typed_values_and_keeps_unparsable_ones_in_the_map() {
        let mut b = LogBatchBuilder::new();
        let prov = Provenance {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        };
        for attrs in [
            vec![("http.status", "503"), ("trace_id", "abc"), ("x", "1")],
            vec![("http.status", "n/a")],
            vec![],
        ] {
            let rec = LogRecord {
                attributes: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            };
            b.append(&rec, &prov, 0);
        }
        let batch = b.finish().unwrap();
        let fields = vec![
            HotField {
                key: "http.status".into(),
                column: None,
                ty: HotType::Int64,
                bloom: false,
            },
            HotField {
                key: "trace_id".into(),
                column: None,
                ty: HotType::String,
                bloom: true,
            },
        ];
        validate(&fields, &log_schema()).unwrap();
        let out = promote(&batch, &fields).unwrap();
        let status = out.column_by_name("http_status").unwrap();
        let status = status.as_primitive::<Int64Type>();
        assert_eq!(status.value(0), 503);
        assert!(status.is_null(1) && status.is_null(2));
        let trace = out.column_by_name("trace_id").unwrap();
        assert_eq!(trace.as_string::<i32>().value(0), "abc");
        let map = out.column_by_name(col::ATTRIBUTES).unwrap().as_map();
        let row = |i: usize| {
            let m = map.value(i);
            let k = m.column(0).as_string::<i32>();
            let v = m.column(1).as_string::<i32>();
            (0..m.len())
                .map(|j| format!("{}={}", k.value(j), v.value(j)))
                .collect::<Vec<_>>()
        };
        assert_eq!(row(0), vec!["x=1"]);
        assert_eq!(row(1), vec!["http.status=n/a"]);
        assert!(row(2).is_empty());
        assert!(validate(
            &[HotField {
                key: "a".into(),
                column: Some("service".into()),
                ty: HotType::Dict,
                bloom: false
            }],
            &log_schema()
        )
        .is_err());
    }
}
