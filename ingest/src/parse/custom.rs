//! User-defined patterns: a regex with named captures, tried before the
//! built-in formats. Captures named `timestamp`, `level`, `service`, `host`
//! and `message` fill the record (other names are resolved with the same
//! aliases as JSON keys); the rest become attributes.

use chrono::{DateTime, NaiveDateTime};
use regex::{CaptureLocations, Regex};
use serde::{Deserialize, Serialize};

use crate::record::LogRecord;

use super::roles::{Kind, TIMESTAMP_RAW};
use super::timestamp::TimeCtx;
use super::{ParserConfigError, Scratch};

/// One user pattern (an entry of `[[parse.patterns]]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PatternConfig {
    /// A name for the pattern, stored in the `pattern` attribute of the
    /// records it parses; empty by default (no attribute).
    pub name: String,
    /// The regex; named captures become fields (required).
    pub regex: String,
    /// A chrono format (`%d.%m.%Y %H:%M:%S%.f`, `%z` for a zone) for the
    /// `timestamp` capture; by default the built-in forms are recognized.
    pub timestamp_format: Option<String>,
}

/// A compiled pattern.
pub struct Pattern {
    name: String,
    re: Regex,
    locs: CaptureLocations,
    /// (capture index, capture name) of the named captures.
    names: Vec<(usize, String)>,
    timestamp_format: Option<String>,
}

impl Pattern {
    /// Compiles entry `index` of the configuration.
    pub fn compile(index: usize, cfg: &PatternConfig) -> Result<Self, ParserConfigError> {
        let re = Regex::new(&cfg.regex).map_err(|e| ParserConfigError::Pattern {
            index,
            field: "regex",
            reason: e.to_string(),
        })?;
        let names: Vec<(usize, String)> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_owned())))
            .collect();
        if names.is_empty() {
            return Err(ParserConfigError::Pattern {
                index,
                field: "regex",
                reason: "needs at least one named capture such as (?P<message>.*)".to_owned(),
            });
        }
        if let Some(f) = &cfg.timestamp_format {
            let bad = chrono::format::StrftimeItems::new(f)
                .any(|item| matches!(item, chrono::format::Item::Error));
            if bad || f.is_empty() {
                return Err(ParserConfigError::Pattern {
                    index,
                    field: "timestamp_format",
                    reason: format!("invalid chrono format {f:?}"),
                });
            }
        }
        Ok(Self {
            name: cfg.name.clone(),
            locs: re.capture_locations(),
            re,
            names,
            timestamp_format: cfg.timestamp_format.clone(),
        })
    }

    /// Parses `line` into `rec` if the pattern matches it.
    pub fn apply(
        &mut self,
        line: &str,
        tc: &TimeCtx,
        scratch: &mut Scratch,
        rec: &mut LogRecord,
    ) -> bool {
        if self.re.captures_read(&mut self.locs, line).is_none() {
            return false;
        }
        for (i, name) in &self.names {
            let Some((start, end)) = self.locs.get(*i) else {
                continue;
            };
            let value = &line[start..end];
            if name == "timestamp" {
                if let Some(fmt) = &self.timestamp_format {
                    match parse_with_format(value, fmt, tc) {
                        Some(us) => {
                            scratch.set_time(rec, us, value);
                        }
                        None => scratch.attr(rec, TIMESTAMP_RAW, value),
                    }
                    continue;
                }
            }
            scratch.push_attr(rec, name, value, Kind::Str);
        }
        if !self.name.is_empty() {
            scratch.attr(rec, "pattern", &self.name);
        }
        scratch.resolve(rec, tc);
        true
    }
}

fn parse_with_format(value: &str, fmt: &str, tc: &TimeCtx) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_str(value, fmt) {
        return Some(dt.timestamp_micros());
    }
    let naive = NaiveDateTime::parse_from_str(value, fmt).ok()?;
    let utc = naive.and_utc().timestamp_micros();
    Some(utc - i64::from(tc.default_offset_secs) * 1_000_000)
}
