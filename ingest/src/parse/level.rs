//! Level normalization: every severity vocabulary we meet, mapped onto
//! [`Level`].
//!
//! Decisions: syslog severities 0-2 (emerg, alert, crit) are `Fatal`, 3 is
//! `Error`, 4 `Warn`, 5-6 (notice, info) `Info`, 7 `Debug`. Numbers 0-7 are
//! read as syslog severities, 10/20/.../60 as bunyan/pino levels; other
//! numbers are unknown. zap's `dpanic` is `Error` (it only panics in
//! development), Java's `severe` is `Error`, `fine`/`finer`/`finest` map to
//! debug/trace.

use crate::record::Level;

/// Longest level word worth lowercasing; longer values are never levels.
const MAX_LEVEL_LEN: usize = 16;

/// Normalizes a level word or number (case-insensitive, surrounding spaces
/// ignored). `None` when the text is not a known level.
pub fn parse_level(s: &str) -> Option<Level> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_LEVEL_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_LEVEL_LEN];
    for (dst, src) in buf.iter_mut().zip(t.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    let lower = &buf[..t.len()];
    Some(match lower {
        b"trace" | b"trc" | b"t" | b"v" | b"verbose" | b"finest" | b"finer" | b"all" => {
            Level::Trace
        }
        b"debug" | b"dbg" | b"d" | b"fine" | b"config" | b"debug1" | b"debug2" | b"debug3" => {
            Level::Debug
        }
        b"info" | b"inf" | b"i" | b"information" | b"informational" | b"notice" | b"n" | b"log" => {
            Level::Info
        }
        b"warn" | b"warning" | b"wrn" | b"w" => Level::Warn,
        b"error" | b"err" | b"e" | b"severe" | b"dpanic" | b"fail" | b"failure" => Level::Error,
        b"fatal" | b"ftl" | b"f" | b"crit" | b"critical" | b"c" | b"emerg" | b"emergency"
        | b"alert" | b"panic" => Level::Fatal,
        _ => return parse_numeric_level(lower),
    })
}

fn parse_numeric_level(lower: &[u8]) -> Option<Level> {
    if lower.is_empty() || lower.len() > 3 || !lower.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = lower
        .iter()
        .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
    level_from_number(i64::from(n))
}

/// A numeric level: 0-7 syslog severity, 10-60 bunyan/pino.
pub fn level_from_number(n: i64) -> Option<Level> {
    Some(match n {
        0..=7 => syslog_severity(n as u8),
        10 => Level::Trace,
        20 => Level::Debug,
        30 => Level::Info,
        40 => Level::Warn,
        50 => Level::Error,
        60 => Level::Fatal,
        _ => return None,
    })
}

/// A syslog severity (the low three bits of PRI).
pub fn syslog_severity(sev: u8) -> Level {
    match sev {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

/// True for the words accepted as a bare level token inside free text. Single
/// letters and `log`/`all`/`config` are excluded: in prose they are too often
/// something else.
pub fn parse_text_level(token: &str) -> Option<Level> {
    if token.len() < 3 {
        return None;
    }
    let lower_is = |w: &str| token.eq_ignore_ascii_case(w);
    if ["log", "all", "config", "fine", "fail", "failure", "n"]
        .iter()
        .any(|w| lower_is(w))
    {
        return None;
    }
    parse_level(token).filter(|_| !token.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies() {
        let cases: &[(&str, Level)] = &[
            ("W", Level::Warn),
            ("WARN", Level::Warn),
            ("warning", Level::Warn),
            ("Warn", Level::Warn),
            ("E", Level::Error),
            ("ERR", Level::Error),
            ("error", Level::Error),
            ("ERROR", Level::Error),
            ("SEVERE", Level::Error),
            ("CRIT", Level::Fatal),
            ("critical", Level::Fatal),
            ("FATAL", Level::Fatal),
            ("panic", Level::Fatal),
            ("emerg", Level::Fatal),
            ("alert", Level::Fatal),
            ("I", Level::Info),
            ("D", Level::Debug),
            ("V", Level::Trace),
            ("T", Level::Trace),
            ("notice", Level::Info),
            ("Information", Level::Info),
            (" info ", Level::Info),
            ("debug", Level::Debug),
            ("trace", Level::Trace),
            ("10", Level::Trace),
            ("20", Level::Debug),
            ("30", Level::Info),
            ("40", Level::Warn),
            ("50", Level::Error),
            ("60", Level::Fatal),
            ("0", Level::Fatal),
            ("2", Level::Fatal),
            ("3", Level::Error),
            ("4", Level::Warn),
            ("5", Level::Info),
            ("6", Level::Info),
            ("7", Level::Debug),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_level(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn unknown_levels() {
        for text in [
            "",
            "loud",
            "35",
            "1000",
            "a very long level text indeed",
            "é",
        ] {
            assert_eq!(parse_level(text), None, "{text:?}");
        }
    }

    #[test]
    fn text_levels_are_stricter() {
        assert_eq!(parse_text_level("INFO"), Some(Level::Info));
        assert_eq!(parse_text_level("notice"), Some(Level::Info));
        assert_eq!(parse_text_level("E"), None);
        assert_eq!(parse_text_level("30"), None);
        assert_eq!(parse_text_level("log"), None);
    }
}
