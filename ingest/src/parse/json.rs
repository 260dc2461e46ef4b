//! JSON lines, flattened into attributes without building a `Value` tree.
//!
//! A flat object of scalar values, the common line, is scanned in one
//! pass. Any other object is walked with a serde visitor; each value is
//! first taken as a borrowed [`RawValue`] so that numbers, booleans and
//! arrays keep their exact JSON text, and strings without escapes are
//! copied straight from the input.
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

use super::roles::{judge, role_of, Kind, Role, Use, TIMESTAMP_RAW};
use super::timestamp::TimeCtx;
use super::Scratch;

/// What [`flatten`] made of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flattened {
    /// Not exactly one JSON object. Members read before the error may be
    /// left in `rec.attributes`, for the caller to discard.
    NotJson,
    /// Its members are in `rec.attributes` (kinds in `scratch.kinds`), the
    /// known fields among them still to be resolved.
    Attributes,
    /// Its known fields are resolved into the record already, as
    /// [`Scratch::resolve`] would have, and the other members are in
    /// `rec.attributes`.
    Resolved,
}

/// Flattens the JSON object `s` into `rec.attributes`. The common line, a
/// flat object of scalars with at most one key per known field, has its
/// known fields resolved on the way (`tc` for its timestamp) unless
/// `docker` asks for a Docker json-file record to stay recognizable.
pub fn flatten(
    s: &str,
    scratch: &mut Scratch,
    rec: &mut LogRecord,
    tc: &TimeCtx,
    docker: bool,
) -> Flattened {
    if !s.starts_with('{') {
        return Flattened::NotJson;
    }
    let (attrs, kinds, dropped) = (rec.attributes.len(), scratch.kinds.len(), scratch.dropped);
    // Known fields are taken straight into a record that has none yet; the
    // undo below then restores it exactly.
    let inline = rec.message.is_empty() && rec.service.is_none() && rec.host.is_none();
    let saved = (
        rec.event_time_us,
        rec.time_source,
        rec.level,
        rec.parse_issue,
        scratch.have_time,
    );
    let known = inline.then_some(Known { tc, docker });
    if flat(s, scratch, rec, known) {
        return if inline {
            Flattened::Resolved
        } else {
            Flattened::Attributes
        };
    }
    // Not a flat object of plain values: undo and take the general path,
    // which also decides whether the text is JSON at all.
    for (k, v) in rec.attributes.drain(attrs..) {
        scratch.give_back(k);
        scratch.give_back(v);
    }
    scratch.kinds.truncate(kinds);
    scratch.dropped = dropped;
    if inline {
        for s in [rec.service.take(), rec.host.take()].into_iter().flatten() {
            scratch.give_back(s);
        }
        rec.message.clear();
        (
            rec.event_time_us,
            rec.time_source,
            rec.level,
            rec.parse_issue,
            scratch.have_time,
        ) = saved;
    }
    if general(s, scratch, rec) {
        Flattened::Attributes
    } else {
        Flattened::NotJson
    }
}

/// How [`flat`] resolves known fields as it meets them.
#[derive(Clone, Copy)]
struct Known<'a> {
    tc: &'a TimeCtx,
    /// Gives up on a `stream` key, so that a Docker json-file record
    /// (`log`, `stream`, `time`) is flattened whole and recognized.
    docker: bool,
}

/// [`flatten`] by the serde visitor, for any object.
fn general(s: &str, scratch: &mut Scratch, rec: &mut LogRecord) -> bool {
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

/// The fast path for the common line, a flat object of scalar values
/// whose keys have no escapes: one pass over the bytes, values pushed as
/// the general path would push them, or with `known`, the known fields
/// resolved as [`Scratch::resolve`] would resolve them. False, with some
/// members possibly taken already, on anything else (nesting, arrays,
/// escaped keys, control characters, any syntax error; with `known`, two
/// keys of one known field, which resolving ranks, or a record reaching
/// the attribute limit, where what is dropped depends on the known fields
/// still among the attributes): the caller then undoes them and takes the
/// general path.
fn flat(s: &str, scratch: &mut Scratch, rec: &mut LogRecord, known: Option<Known<'_>>) -> bool {
    let b = s.as_bytes();
    let mut seen = [false; Role::COUNT];
    // Known fields taken out so far, which the general path would still
    // count among the attributes.
    let mut taken = 0;
    let mut i = skip_ws(b, 1);
    if b.get(i) == Some(&b'}') {
        return skip_ws(b, i + 1) == b.len();
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return false;
        }
        let Some(key_end) = plain_string_end(b, i + 1) else {
            return false;
        };
        let key = &s[i + 1..key_end];
        i = skip_ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return false;
        }
        i = skip_ws(b, i + 1);
        let (value, kind, end): (Cow<'_, str>, Kind, usize) = match b.get(i) {
            Some(b'"') => {
                let Some((end, escaped)) = string_end(b, i + 1) else {
                    return false;
                };
                let value = if escaped {
                    // Decoded (and checked) by serde_json, as the visitor does.
                    match serde_json::from_str::<String>(&s[i..=end]) {
                        Ok(decoded) => Cow::Owned(decoded),
                        Err(_) => return false,
                    }
                } else {
                    Cow::Borrowed(&s[i + 1..end])
                };
                (value, Kind::Str, end + 1)
            }
            Some(b't') if b[i..].starts_with(b"true") => (s[i..i + 4].into(), Kind::Bool, i + 4),
            Some(b'f') if b[i..].starts_with(b"false") => (s[i..i + 5].into(), Kind::Bool, i + 5),
            Some(b'n') if b[i..].starts_with(b"null") => (s[i..i + 4].into(), Kind::Null, i + 4),
            Some(b'-' | b'0'..=b'9') => {
                let Some(end) = number_end(b, i) else {
                    return false;
                };
                (s[i..end].into(), Kind::Num, end)
            }
            _ => return false,
        };
        match known {
            Some(known) => {
                if rec.attributes.len() + taken >= scratch.max_attributes
                    || (known.docker && key == "stream")
                {
                    return false;
                }
                match role_of(key) {
                    Some((role, _)) => {
                        if std::mem::replace(&mut seen[role as usize], true) {
                            return false;
                        }
                        if take_known(scratch, rec, key, role, &value, kind, known.tc) {
                            taken += 1;
                        }
                    }
                    None => scratch.push_attr(rec, key, &value, kind),
                }
            }
            None => scratch.push_attr(rec, key, &value, kind),
        }
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return skip_ws(b, i + 1) == b.len(),
            _ => return false,
        }
    }
}

/// Resolves the known field `key` (naming `role`) into the record, or
/// keeps it as an attribute, as [`Scratch::resolve`] does; true when it
/// was taken out of the attributes.
fn take_known(
    scratch: &mut Scratch,
    rec: &mut LogRecord,
    key: &str,
    role: Role,
    value: &str,
    kind: Kind,
    tc: &TimeCtx,
) -> bool {
    let (used, wrong) = judge(role, kind, value, tc);
    if wrong {
        Scratch::issue(rec, ParseIssue::FieldType);
    }
    match used {
        Use::Time(us) => scratch.use_time(rec, us),
        Use::Level(level) => rec.level = level,
        Use::Value => match role {
            Role::Service => rec.service = Some(scratch.string(value)),
            Role::Host => rec.host = Some(scratch.string(value)),
            Role::Message | Role::Time | Role::Level => Scratch::set_message(rec, value),
        },
        Use::Drop => {}
        Use::Keep => {
            scratch.push_attr(rec, key, value, kind);
            return false;
        }
        Use::KeepAsRawTime => {
            scratch.push_attr(rec, TIMESTAMP_RAW, value, kind);
            return false;
        }
    }
    true
}

/// The index of the first byte from `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index of the quote closing a string whose text starts at `i`, if
/// the string has no escape and no control character (which JSON forbids).
fn plain_string_end(b: &[u8], i: usize) -> Option<usize> {
    match string_end(b, i)? {
        (end, false) => Some(end),
        (_, true) => None,
    }
}

/// The index of the quote closing a string whose text starts at `i`, and
/// whether the string has escapes (not checked here), if it has no control
/// character (which JSON forbids).
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut at = i;
    let mut escaped = false;
    loop {
        at = special_from(b, at)?;
        match b[at] {
            b'"' => return Some((at, escaped)),
            b'\\' => {
                // The escaped byte may not be a control character either.
                if *b.get(at + 1)? < 0x20 {
                    return None;
                }
                escaped = true;
                at += 2;
            }
            _ => return None,
        }
    }
}

/// The index of the first `"`, `\` or control byte of `b` at or after
/// `at`. The first [`SHORT_CHUNKS`] eight-byte chunks are tested a word at
/// a time: one pass finds a short string's end and checks it, and most
/// strings of a log line are shorter than a vector search costs to start.
/// A longer string is searched with vector instructions for its quote or
/// backslash, and the bytes passed over checked after.
fn special_from(b: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    // High bit of each byte of `x` below `n` (n <= 0x80); the lowest one
    // marked is exact, which is the one used.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    for _ in 0..SHORT_CHUNKS {
        let Some(chunk) = b.get(at..at + 8) else {
            break;
        };
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let marks = below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1)
            | below(v, 0x20);
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = b.get(at..)?;
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let passed = &rest[..end];
    if passed.iter().fold(false, |c, &x| c | (x < 0x20)) {
        return passed.iter().position(|&x| x < 0x20).map(|p| at + p);
    }
    (end < rest.len()).then_some(at + end)
}

/// Chunks of eight bytes [`special_from`] tests a word at a time.
const SHORT_CHUNKS: usize = 8;

/// The end of the JSON number starting at `i`, if it is one:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ParserConfig;
    use proptest::prelude::*;

    /// What parsing a text as JSON made of a record: accepted or not; if
    /// accepted, the record with its known fields resolved, the kinds of
    /// its attributes, whether it has a parsed time and how many attributes
    /// the limit dropped.
    type Outcome = (bool, Option<(LogRecord, Vec<Kind>, bool, usize)>);

    const TC: TimeCtx = TimeCtx {
        default_offset_secs: 0,
        now_us: 1_780_000_000_000_000,
    };

    fn outcome(s: &str, fast: bool) -> Outcome {
        outcome_within(s, fast, 4).0
    }

    /// [`outcome`] with at most `max_attributes` attributes, and what
    /// [`flatten`] returned (for the fast path).
    fn outcome_within(s: &str, fast: bool, max_attributes: usize) -> (Outcome, Flattened) {
        let mut scratch = Scratch::new(&ParserConfig {
            max_attributes,
            ..ParserConfig::default()
        });
        let mut rec = LogRecord::default();
        // A member already there (a container's metadata) must survive.
        scratch.push_attr(&mut rec, "container", "c1", Kind::Str);
        let flattened = if fast {
            flatten(s, &mut scratch, &mut rec, &TC, false)
        } else if general(s, &mut scratch, &mut rec) {
            Flattened::Attributes
        } else {
            Flattened::NotJson
        };
        let outcome = match flattened {
            Flattened::NotJson => (false, None),
            Flattened::Attributes => {
                scratch.resolve(&mut rec, &TC);
                (
                    true,
                    Some((rec, scratch.kinds, scratch.have_time, scratch.dropped)),
                )
            }
            Flattened::Resolved => (
                true,
                Some((rec, scratch.kinds, scratch.have_time, scratch.dropped)),
            ),
        };
        (outcome, flattened)
    }

    /// A key: often one naming a known field (in any case, some twice in
    /// one object), else any text.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => prop::sample::select(vec![
                "ts", "time", "Timestamp", "level", "LVL", "severity", "msg", "message",
                "service", "app", "host", "hostname", "service.name", "stream", "log",
            ])
            .prop_map(str::to_string),
            3 => "[a-z_.@]{1,8}|\\PC{0,4}",
        ]
    }

    /// A JSON-ish value: mostly valid scalars (so that whole lines often
    /// take the fast path), with escapes, nesting, arrays and broken pieces
    /// mixed in.
    fn value() -> impl Strategy<Value = String> {
        scalar().prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(("[a-z.]{1,6}", inner), 0..3).prop_map(|members| {
                let body: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            })
        })
    }

    /// A JSON-ish scalar, mostly valid.
    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z0-9 .:/_-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            2 => any::<i64>().prop_map(|n| n.to_string()),
            2 => any::<f64>().prop_map(|x| x.to_string()),
            2 => prop::sample::select(vec!["true", "false", "null", "-0", "1e5", "2.5E-3"])
                .prop_map(str::to_string),
            2 => prop::sample::select(vec![
                "\"2026-03-01T10:00:00.123Z\"", "\"2026-03-01 10:00:00\"", "1772359200",
                "1772359200123", "\"not a time\"", "\"WARN\"", "\"e\"", "30", "\"\"",
                "\"api\"",
            ])
            .prop_map(str::to_string),
            2 => "[a-z\"\\\\/\n\t\u{1}é😀]{0,8}|\\PC{0,6}"
                .prop_map(|s| serde_json::to_string(&s).expect("a string")),
            1 => prop::sample::select(vec![
                "01", "1.", "-", ".5", "tru", "nul", "1e", "+1", "\"a\\q\"", "\"tab\there\"",
                "\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"x\\\"",
                "\"\\u00e9\"", "\"open", "[1, \"x\"]", "[]", "{}",
            ])
            .prop_map(str::to_string),
        ]
    }

    /// [`string_end`] written the obvious way, byte by byte.
    fn string_end_by_bytes(b: &[u8], i: usize) -> Option<(usize, bool)> {
        let mut bytes = b.get(i..)?.iter().enumerate();
        let mut escaped = false;
        while let Some((k, &x)) = bytes.next() {
            if x < 0x20 {
                return None;
            }
            if x == b'"' {
                return Some((i + k, escaped));
            }
            if x == b'\\' {
                // The escaped byte: anything but a control character.
                escaped = true;
                if *bytes.next()?.1 < 0x20 {
                    return None;
                }
            }
        }
        None
    }

    proptest! {
        /// Eight bytes at a time, then the vector search, find what a byte
        /// at a time finds, at any offset, with the special bytes (`"`, `\`, control characters)
        /// and their neighbours (space, DEL, bytes of UTF-8) anywhere.
        #[test]
        fn string_end_agrees_with_a_byte_by_byte_scan(
            // A run of ordinary bytes, long enough to reach the vector
            // search, then anything.
            plain in prop::collection::vec(
                prop_oneof![Just(b'a'), Just(0x20u8), Just(0x7fu8), 0x80u8..=0xff],
                0..100,
            ),
            tail in prop::collection::vec(
                prop_oneof![
                    4 => Just(b'a'),
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => prop::sample::select(vec![0x00u8, 0x0a, 0x1f]),
                    1 => Just(0x20u8),
                    1 => Just(0x7fu8),
                    1 => 0x80u8..=0xff,
                    1 => any::<u8>(),
                ],
                0..40,
            ),
            start in 0usize..12,
        ) {
            let bytes = [plain, tail].concat();
            let start = start.min(bytes.len());
            prop_assert_eq!(string_end(&bytes, start), string_end_by_bytes(&bytes, start));
        }

        /// The fast path, resolving known fields as it meets them, and the
        /// serde visitor followed by [`Scratch::resolve`] agree on every
        /// object: same verdict, same record, same attribute kinds.
        #[test]
        fn fast_path_agrees_with_the_visitor(
            members in prop::collection::vec((key(), prop_oneof![3 => scalar(), 1 => value()]), 0..6),
            ws in prop::sample::select(vec!["", " ", "\t", "\r\n "]),
            tail in prop::sample::select(vec!["", "", "", " ", "\n", "x", ",", "}"]),
        ) {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{ws}{}{ws}:{ws}{v}{ws}", serde_json::to_string(k).expect("key")))
                .collect();
            let text = format!("{{{}}}{tail}", body.join(","));
            for limit in [4, 64] {
                prop_assert_eq!(
                    outcome_within(&text, true, limit).0,
                    outcome_within(&text, false, limit).0,
                    "{} (at most {} attributes)", text, limit
                );
            }
        }
    }

    #[test]
    fn fast_path_cases() {
        for text in [
            "{}",
            "{ }",
            r#"{"a":1,"b":"x","c":true,"d":null,"e":-2.5e+3}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":01}"#,
            r#"{"a":"x\"y"}"#,
            "{\"a\":\"x\u{1}y\"}",
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1,2]}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} "#,
            r#"{"a""#,
            r#"{"a":"#,
            r#"{"a":1"#,
            r#"{"a":"é ü"}"#,
            r#"{"ts":"2026-03-01T10:00:00Z","level":"warn","msg":"x","service":"api"}"#,
            r#"{"msg":"x","ts":"later","level":"nope","host":"","app":null}"#,
            r#"{"time":1,"ts":"2026-03-01T10:00:00Z","msg":null,"message":"m"}"#,
            r#"{"level":true,"a":1,"b":2,"c":3,"d":4,"msg":"over the limit"}"#,
            r#"{"msg":"x","level":"info","service":{"name":"nested"}}"#,
        ] {
            assert_eq!(outcome(text, true), outcome(text, false), "{text}");
        }
        // Resolved by the fast path itself, each kind of use of a known
        // field: the comparisons above hold for it too.
        for text in [
            r#"{"ts":"2026-03-01T10:00:00Z","level":"warn","msg":"x","service":"api"}"#,
            r#"{"msg":"x","ts":"later","level":"nope"}"#,
            r#"{"ts":null,"level":null,"msg":null,"host":""}"#,
            r#"{"time":true,"lvl":false,"app":7,"hostname":"h1","text":3}"#,
        ] {
            let (fast, how) = outcome_within(text, true, 64);
            assert_eq!(how, Flattened::Resolved, "{text}");
            assert_eq!(fast, outcome_within(text, false, 64).0, "{text}");
        }
        let (ok, resolved) = outcome(r#"{"ts":"2026-03-01T10:00:00Z","msg":"x","a":1}"#, true);
        let (rec, kinds, have_time, _) = resolved.expect("accepted");
        assert!(ok && have_time);
        assert_eq!(
            (rec.message.as_str(), kinds),
            ("x", vec![Kind::Str, Kind::Num])
        );
        assert!(!outcome(r#"{"a":1,}"#, true).0);
    }
}
