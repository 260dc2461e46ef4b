//! logfmt: `ts=2024-01-02T03:04:05Z level=info msg="hello world" key=value`.
//!
//! Values may be double-quoted with `\"`, `\\`, `\n`, `\t` escapes; a key
//! without `=` is a flag and gets the value `true`. Known fields are picked
//! by the same aliases as JSON.

use crate::record::{Format, LogRecord};

use super::roles::Kind;
use super::timestamp::TimeCtx;
use super::Scratch;

fn is_key_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'@'
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'@' | b'/')
}

/// True when `s` starts with `key=`: the auto-detection gate.
pub fn looks_like(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.first().is_some_and(|&c| is_key_start(c)) {
        return false;
    }
    let n = b.iter().take_while(|&&c| is_key_byte(c)).count();
    b.get(n) == Some(&b'=')
}

/// Parses `s` as logfmt into `rec`. Returns false (leaving `rec` for the
/// caller to reset) when it is prose rather than pairs: no `key=value` pair
/// at all, or more bare words than pairs.
pub fn parse_pairs(s: &str, scratch: &mut Scratch, rec: &mut LogRecord) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut pairs = 0usize;
    let mut bare = 0usize;
    let mut value = scratch.string("");
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = &s[key_start..i];
        if i < b.len() && b[i] == b'=' {
            i += 1;
            value.clear();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let start = i;
                let mut seg = start;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        value.push_str(&s[seg..i]);
                        let unescaped = match b[i + 1] {
                            b'n' => Some('\n'),
                            b't' => Some('\t'),
                            b'r' => Some('\r'),
                            b'"' => Some('"'),
                            b'\\' => Some('\\'),
                            _ => None,
                        };
                        match unescaped {
                            Some(c) => {
                                value.push(c);
                                i += 2;
                            }
                            None => {
                                // Keep the backslash; what follows is copied as is.
                                value.push('\\');
                                i += 1;
                            }
                        }
                        seg = i;
                        continue;
                    }
                    i += 1;
                }
                // `i` is at a quote or the end; both are char boundaries.
                let end = i.min(b.len());
                value.push_str(&s[seg.min(end)..end]);
                i = (i + 1).min(b.len());
            } else {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value.push_str(&s[start..i]);
            }
            if key.is_empty() {
                bare += 1;
                continue;
            }
            pairs += 1;
            scratch.push_attr(rec, key, &value, Kind::Str);
        } else {
            bare += 1;
            scratch.push_attr(rec, key, "true", Kind::Str);
        }
    }
    Scratch::give(&mut scratch.pool, value);
    pairs > 0 && bare <= pairs
}

/// Parses `s` as logfmt, falling back to text for prose.
pub fn parse(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) {
    if parse_pairs(s, scratch, rec) {
        scratch.resolve(rec, tc);
        rec.format = Format::Logfmt;
    } else {
        scratch.recycle(rec);
        scratch.kinds.clear();
        super::text::parse(s, tc, scratch, rec);
    }
}
