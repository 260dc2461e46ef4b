//! JSON lines, flattened into attributes without building a `Value` tree.
//!
//! The object is walked with a serde visitor; each value is first taken as a
//! borrowed [`RawValue`] so that numbers, booleans and arrays keep their exact
//! JSON text, and strings without escapes are copied straight from the input.
//! Nested objects are flattened with dotted keys down to
//! [`ParserConfig::max_json_depth`](super::ParserConfig::max_json_depth);
//! deeper ones stay JSON text and the record is marked `json_too_deep`.
//! Values are first skipped as raw text (iteratively, whatever their depth)
//! and only the first `max_json_depth` levels are visited, so no depth can
//! overflow the stack.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::record::{LogRecord, ParseIssue};

use super::roles::{role_of, Kind};
use super::Scratch;

/// Flattens the JSON object `s` into `rec.attributes` (kinds in
/// `scratch.kinds`). False when `s` is not exactly one JSON object.
pub fn flatten(s: &str, scratch: &mut Scratch, rec: &mut LogRecord) -> bool {
    if !s.starts_with('{') {
        return false;
    }
    scratch.key.clear();
    let before = rec.parse_issue;
    let mut de = serde_json::Deserializer::from_str(s);
    let seed = ObjSeed {
        scratch,
        rec: &mut *rec,
        depth: 1,
    };
    let ok = seed.deserialize(&mut de).is_ok() && de.end().is_ok();
    if !ok {
        // A depth marker set while visiting belongs to a record that is
        // no longer JSON.
        rec.parse_issue = before;
    }
    ok
}

/// Visits one object whose dotted key prefix is in `scratch.key`.
struct ObjSeed<'a> {
    scratch: &'a mut Scratch,
    rec: &'a mut LogRecord,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ObjSeed<'_> {
    /// Whether the object had at least one member.
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let ObjSeed {
            scratch,
            rec,
            depth,
        } = self;
        let prefix_len = scratch.key.len();
        let mut any = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let raw: &'de RawValue = map.next_value()?;
            any = true;
            scratch.key.truncate(prefix_len);
            if prefix_len > 0 {
                scratch.key.push('.');
            }
            scratch.key.push_str(&key);
            field(scratch, rec, raw.get(), depth);
        }
        scratch.key.truncate(prefix_len);
        Ok(any)
    }
}

/// Adds the value `text` (valid JSON) under the key in `scratch.key`.
fn field(scratch: &mut Scratch, rec: &mut LogRecord, text: &str, depth: usize) {
    let Some(&first) = text.as_bytes().first() else {
        return;
    };
    let kind = match first {
        b'{' => {
            if let Some((role, _)) = role_of(&scratch.key) {
                scratch.wrong_type[role as usize] = true;
            }
            if depth >= scratch.max_json_depth {
                Scratch::issue(rec, ParseIssue::JsonTooDeep);
            } else {
                let prefix_len = scratch.key.len();
                let mut de = serde_json::Deserializer::from_str(text);
                let nested = ObjSeed {
                    scratch: &mut *scratch,
                    rec: &mut *rec,
                    depth: depth + 1,
                }
                .deserialize(&mut de);
                scratch.key.truncate(prefix_len);
                if let Ok(true) = nested {
                    return;
                }
            }
            Kind::Obj
        }
        b'[' => Kind::Arr,
        b'"' => {
            let inner = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
            let value: Cow<'_, str> = if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
                Cow::Borrowed(inner)
            } else {
                match serde_json::from_str::<String>(text) {
                    Ok(s) => Cow::Owned(s),
                    Err(_) => Cow::Borrowed(inner),
                }
            };
            push(scratch, rec, &value, Kind::Str);
            return;
        }
        b't' | b'f' => Kind::Bool,
        b'n' => Kind::Null,
        _ => Kind::Num,
    };
    push(scratch, rec, text, kind);
}

fn push(scratch: &mut Scratch, rec: &mut LogRecord, value: &str, kind: Kind) {
    // The key buffer is lent out for the call, then put back.
    let key = std::mem::take(&mut scratch.key);
    scratch.push_attr(rec, &key, value, kind);
    scratch.key = key;
}

/// Deserializes a key, borrowing it when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}
