//! Where rows go in the archive: Hive-style partition directories
//! (`dt=YYYY-MM-DD/hour=HH/`, optionally `service=NAME/`) and deterministic
//! file names from (topic, partition, first offset).
//!
//! Partition values are sanitized so no input can escape the archive root or
//! make an unreadable path: bytes outside `[A-Za-z0-9_.-]` are
//! percent-encoded (the encoding Hive and Spark use for partition values),
//! `.` and `..` are encoded too, an empty or missing value becomes
//! [`NULL_PARTITION`], and values longer than [`MAX_VALUE_BYTES`] are cut and
//! suffixed with a hash of the whole value, so distinct values stay distinct.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// Partition value for a missing or empty value (Hive's own convention).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
/// Longest partition value kept verbatim, in bytes after encoding.
pub const MAX_VALUE_BYTES: usize = 96;

/// A partition key of the archive layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionKey {
    /// `dt=YYYY-MM-DD`, the UTC day of the event time.
    Dt,
    /// `hour=HH`, the UTC hour of the event time.
    Hour,
    /// `service=NAME`, the record's service.
    Service,
}

impl PartitionKey {
    pub fn name(self) -> &'static str {
        match self {
            PartitionKey::Dt => "dt",
            PartitionKey::Hour => "hour",
            PartitionKey::Service => "service",
        }
    }
}

/// Default partition keys: `dt`, `hour`.
pub fn default_partition_keys() -> Vec<PartitionKey> {
    vec![PartitionKey::Dt, PartitionKey::Hour]
}

/// Encodes one partition value for use as a path component.
pub fn encode_value(raw: &[u8]) -> String {
    if raw.is_empty() {
        return NULL_PARTITION.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    // A value spelled like the null partition must not share its directory
    // (and so its file names) with the records that have no value.
    if out == NULL_PARTITION {
        out.replace_range(..1, "%5F");
    }
    if out.len() > MAX_VALUE_BYTES {
        let hash = fnv1a64(raw);
        // Everything is ASCII by now; do not split a %XX escape.
        let mut cut = MAX_VALUE_BYTES - 17;
        if let Some(p) = out[cut - 2..cut].find('%') {
            cut = cut - 2 + p;
        }
        out.truncate(cut);
        let _ = write!(out, "~{hash:016x}");
    }
    out
}

/// 64-bit FNV-1a: stable across versions and platforms.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What every file name of a source partition starts with: the encoded
/// topic and the partition number.
fn source_prefix(topic: &str, partition: i32) -> String {
    format!("{}-{partition:05}-", encode_value(topic.as_bytes()))
}

/// The file name of a segment's file: deterministic from (topic, partition,
/// first offset), so a replay replaces rather than duplicates.
pub fn file_name(topic: &str, partition: i32, first_offset: i64) -> String {
    format!(
        "{}{first_offset:020}.parquet",
        source_prefix(topic, partition)
    )
}

/// Whether `name` is the name [`file_name`] gives a segment of (topic,
/// partition), whatever its first offset.
pub fn is_source_file(name: &str, topic: &str, partition: i32) -> bool {
    name.strip_prefix(&source_prefix(topic, partition))
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|offset| offset.len() == 20 && offset.bytes().all(|b| b.is_ascii_digit()))
}

/// The name of a file merged from the files of one source partition only
/// (a backfill compacted at its end): the source's prefix, then
/// `compacted-<16 hex digits>.parquet`.
pub fn source_merged_name(topic: &str, partition: i32, hash: u64) -> String {
    format!(
        "{}compacted-{hash:016x}.parquet",
        source_prefix(topic, partition)
    )
}

/// Whether `name` is a [`source_merged_name`] of (topic, partition).
pub fn is_source_merged(name: &str, topic: &str, partition: i32) -> bool {
    name.strip_prefix(&source_prefix(topic, partition))
        .is_some_and(|rest| merged_suffix(rest).is_some_and(str::is_empty))
}

/// Whether `name` is a [`source_merged_name`] of any source.
pub fn is_any_source_merged(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".parquet") else {
        return false;
    };
    // <topic>-<partition:05>-compacted-<hash:016x>
    let Some((head, hash)) = stem.rsplit_once("-compacted-") else {
        return false;
    };
    let Some((topic, partition)) = head.rsplit_once('-') else {
        return false;
    };
    !topic.is_empty()
        && partition.len() == 5
        && partition.bytes().all(|b| b.is_ascii_digit())
        && hash.len() == 16
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What follows `compacted-<hash>.parquet` at the start of `rest`.
fn merged_suffix(rest: &str) -> Option<&str> {
    let hash = rest.strip_prefix("compacted-")?;
    let (hex, tail) = hash.split_at_checked(16)?;
    hex.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(tail)
        .and_then(|t| t.strip_prefix(".parquet"))
}

/// The relative directory `dt=.../hour=.../service=...` for one group of rows.
pub fn partition_dir(keys: &[PartitionKey], event_time_us: i64, service: Option<&str>) -> String {
    let mut dir = String::new();
    let dt = chrono::DateTime::from_timestamp_micros(event_time_us)
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            dir.push('/');
        }
        match k {
            PartitionKey::Dt => {
                let _ = write!(dir, "dt={}", dt.format("%Y-%m-%d"));
            }
            PartitionKey::Hour => {
                let _ = write!(dir, "hour={}", dt.format("%H"));
            }
            PartitionKey::Service => {
                dir.push_str("service=");
                dir.push_str(&encode_value(service.unwrap_or("").as_bytes()));
            }
        }
    }
    dir
}

/// The time bucket (in microseconds) that decides the time partition keys:
/// an hour when `hour` is a key, a day when only `dt` is, else one bucket.
pub fn time_bucket_us(keys: &[PartitionKey]) -> Option<i64> {
    if keys.contains(&PartitionKey::Hour) {
        Some(3_600_000_000)
    } else if keys.contains(&PartitionKey::Dt) {
        Some(86_400_000_000)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_dirs() {
        // 2024-03-05T07:08:09Z
        let t = 1_709_622_489_000_000;
        assert_eq!(
            partition_dir(&default_partition_keys(), t, None),
            "dt=2024-03-05/hour=07"
        );
        assert_eq!(
            partition_dir(
                &[PartitionKey::Dt, PartitionKey::Service],
                t,
                Some("check out")
            ),
            "dt=2024-03-05/service=check%20out"
        );
    }

    #[test]
    fn hostile_values_stay_inside_one_component() {
        for raw in [
            b"../../etc".as_slice(),
            b"a/b",
            b"",
            b"..",
            b".",
            b"\xff\xfe\x00nul",
            b"a\\b",
        ] {
            let v = encode_value(raw);
            assert!(
                !v.contains('/') && !v.contains('\\') && !v.contains('\0'),
                "{v}"
            );
            assert!(v != "." && v != ".." && !v.is_empty(), "{v}");
        }
        assert_eq!(encode_value(b""), NULL_PARTITION);
        assert_eq!(
            encode_value(NULL_PARTITION.as_bytes()),
            "%5F_HIVE_DEFAULT_PARTITION__"
        );
        let long = "x".repeat(10_000);
        let v = encode_value(long.as_bytes());
        assert!(v.len() <= MAX_VALUE_BYTES, "{}", v.len());
        let other = format!("{}y", "x".repeat(9_999));
        assert_ne!(v, encode_value(other.as_bytes()));
        let long_escaped = "/".repeat(5_000);
        let v = encode_value(long_escaped.as_bytes());
        assert!(v.len() <= MAX_VALUE_BYTES);
        assert!(!v.contains('/'));
    }

    #[test]
    fn file_names_are_deterministic_and_sortable() {
        assert_eq!(
            file_name("app.logs", 3, 42),
            "app.logs-00003-00000000000000000042.parquet"
        );
        assert!(file_name("t", 0, 9) < file_name("t", 0, 10));
    }

    #[test]
    fn source_files_are_recognised_by_their_whole_name() {
        assert!(is_source_file(&file_name("app.logs", 3, 42), "app.logs", 3));
        assert!(!is_source_file(
            &file_name("app.logs", 3, 42),
            "app.logs",
            0
        ));
        assert!(!is_source_file(
            &file_name("app.logs-00003-x", 3, 42),
            "app.logs",
            3
        ));
        assert!(!is_source_file(
            "compacted-0123456789abcdef.parquet",
            "app.logs",
            3
        ));
        let m = source_merged_name("app.logs", 3, 0xabc);
        assert_eq!(m, "app.logs-00003-compacted-0000000000000abc.parquet");
        assert!(is_source_merged(&m, "app.logs", 3));
        assert!(!is_source_merged(&m, "app.logs", 0));
        assert!(!is_source_file(&m, "app.logs", 3));
        assert!(is_any_source_merged(&m));
        assert!(!is_any_source_merged("compacted-0123456789abcdef.parquet"));
        assert!(!is_any_source_merged(&file_name("app.logs", 3, 42)));
    }
}
