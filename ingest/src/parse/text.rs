//! Plain text: an optional leading timestamp (bracketed or not), then an
//! optional header of pid, level, `[thread]` and logger, or a syslog-like
//! `host service[pid]:`; the message is the rest of the line.
//!
//! Examples: `2024-01-02 03:04:05,123 ERROR [main] com.x.Y - boom`,
//! `081109 203615 148 INFO dfs.DataNode: ...`, `[Sun Dec 04 04:47:44 2005]
//! [error] ...`, `Jun 14 15:16:01 combo sshd(pam_unix)[19939]: ...` and
//! `2024-05-01T10:00:00.123456+02:00 web01 app[99]: ...` (rsyslog's file
//! format; both recorded as syslog), `WARNING:root:msg` (Python's default
//! format), `2024-05-01 10:00:00,123 - app.db - ERROR - msg` (the Python
//! logging documentation's), `I0501 10:00:00.123456 1234 main.go:42] msg`
//! (Kubernetes' klog, Google's glog).

use crate::record::{Format, Level, LogRecord};

use super::level::parse_text_level;
use super::timestamp::{self, TimeCtx};
use super::{logfmt, syslog, Scratch};

/// A `[thread]` must close within this many bytes.
const MAX_THREAD_LEN: usize = 64;
/// A logger name longer than this is not taken for one.
const MAX_LOGGER_LEN: usize = 128;

/// Parses `s` as text. Always succeeds.
pub fn parse(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) {
    rec.format = Format::Text;
    let line = s.trim_start();
    if let Some((letter, us, n)) = timestamp::klog_prefix(line, tc) {
        scratch.set_time(rec, us, &line[1..n]);
        klog_header(letter, &line[n..], scratch, rec);
        return;
    }
    let (inner, bracketed) = match line.strip_prefix('[') {
        Some(r) => (r, true),
        None => (line, false),
    };
    let Some((us, n)) = timestamp::parse_prefix(inner, tc) else {
        header(line, false, scratch, rec);
        return;
    };
    scratch.set_time(rec, us, &inner[..n]);
    let mut rest = &inner[n..];
    if bracketed {
        rest = rest.strip_prefix(']').unwrap_or(rest);
    }
    let syslog_date = inner.as_bytes()[0].is_ascii_alphabetic() && !bracketed;
    if syslog_date {
        if let Some(h) = syslog::header_3164(rest, true) {
            syslog::apply_header(&h, scratch, rec);
            rec.format = Format::Syslog;
            return;
        }
    }
    // rsyslog's file format: an RFC 3339 time, then `host service[pid]:`.
    // The pid is required, and the host may not be a level or a number:
    // `ERROR worker[12]: crashed` is a level and a tagged service.
    if let Some(h) = syslog::header_3164(rest, true).filter(|h| {
        h.pid.is_some()
            && h.host
                .is_some_and(|host| looks_like_host(host) && level_token(host, true).is_none())
    }) {
        syslog::apply_header(&h, scratch, rec);
        rec.format = Format::Syslog;
        return;
    }
    let trimmed = rest.trim_start();
    if logfmt::looks_like(trimmed) {
        let mark = rec.attributes.len();
        if logfmt::parse_pairs(trimmed, scratch, rec) {
            scratch.resolve(rec, tc);
            rec.format = Format::Logfmt;
            return;
        }
        rec.attributes.truncate(mark);
        scratch.kinds.truncate(mark);
    }
    header(rest, true, scratch, rec);
}

/// A level token: `ERROR`, `error:`, `[error]`, `<warn>`, `[core:error]`.
/// Without a timestamp before it, a bare word must be upper case or end in
/// `:` (so that a sentence starting with "Error" keeps its first word).
fn level_token(tok: &str, after_time: bool) -> Option<Level> {
    let (inner, marked) = if let Some(t) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        (t.rsplit(':').next().unwrap_or(t), true)
    } else if let Some(t) = tok.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        (t, true)
    } else if let Some(t) = tok.strip_suffix(':') {
        (t, true)
    } else {
        (tok, false)
    };
    if !after_time && !marked && !inner.bytes().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    parse_text_level(inner)
}

/// A class-like logger name: `dfs.DataNode$PacketResponder`, `com.x.Y`.
fn looks_like_logger(tok: &str, need_dot: bool) -> bool {
    !tok.is_empty()
        && tok.len() <= MAX_LOGGER_LEN
        && tok.as_bytes()[0].is_ascii_alphabetic()
        && tok
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'$' | b'_' | b'-' | b'/'))
        && (!need_dot || tok.bytes().any(|c| c == b'.' || c == b'$'))
}

/// What follows klog's time: the thread id and `file:line]`, then the
/// message: `I0501 10:00:00.123456    1234 main.go:42] msg`.
fn klog_header(letter: u8, rest: &str, scratch: &mut Scratch, rec: &mut LogRecord) {
    rec.level = match letter {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        _ => Level::Fatal,
    };
    let mut r = rest.trim_start();
    let (tid, after) = split_token(r);
    if !tid.is_empty() && tid.bytes().all(|c| c.is_ascii_digit()) {
        scratch.attr(rec, "thread", tid);
        r = after.trim_start();
    }
    let (source, after) = split_token(r);
    if let Some(source) = source.strip_suffix(']').filter(|s| s.contains(':')) {
        scratch.attr(rec, "source", source);
        r = after;
    }
    Scratch::set_message(rec, r.trim_end());
}

/// A host name: letters, digits, `.`, `-` and `_`, with at least one
/// letter (a number before the level is a pid).
fn looks_like_host(tok: &str) -> bool {
    tok.len() <= MAX_LOGGER_LEN
        && tok
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && tok
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && tok.bytes().any(|c| c.is_ascii_alphabetic())
}

/// Python logging's ` - `-separated header after the time, as in its
/// documentation's `%(asctime)s - %(name)s - %(levelname)s - %(message)s`
/// (or level first): `(level, logger, message)`. Without a logger,
/// `- LEVEL - message`.
fn dashed_header(r: &str) -> Option<(Level, Option<&str>, &str)> {
    let x = r.strip_prefix("- ")?;
    let (a, rest) = x.split_once(" - ")?;
    let word = |t: &str| !t.is_empty() && !t.contains([' ', '\t']);
    if let Some(level) = parse_text_level(a).filter(|_| word(a)) {
        if let Some((b, msg)) = rest.split_once(" - ") {
            if word(b) && looks_like_logger(b, false) && parse_text_level(b).is_none() {
                return Some((level, Some(b), msg));
            }
        }
        return Some((level, None, rest));
    }
    let (b, msg) = rest.split_once(" - ")?;
    let level = parse_text_level(b).filter(|_| word(b))?;
    looks_like_logger(a, false).then_some((level, Some(a), msg))
}

fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn header(rest: &str, after_time: bool, scratch: &mut Scratch, rec: &mut LogRecord) {
    let mut r = rest.trim_start();

    // Python's default `LEVEL:logger:message`.
    if !after_time {
        if let Some((lvl, tail)) = r.split_once(':') {
            if lvl.len() >= 4 && lvl.bytes().all(|c| c.is_ascii_uppercase()) {
                if let Some(level) = parse_text_level(lvl) {
                    if let Some((logger, msg)) = tail.split_once(':') {
                        if looks_like_logger(logger, false) {
                            rec.level = level;
                            scratch.attr(rec, "logger", logger);
                            Scratch::set_message(rec, msg.trim_end());
                            return;
                        }
                    }
                }
            }
        }
    }

    if after_time {
        if let Some((level, logger, msg)) = dashed_header(r) {
            rec.level = level;
            if let Some(logger) = logger {
                scratch.attr(rec, "logger", logger);
            }
            Scratch::set_message(rec, msg.trim_end());
            return;
        }
    }

    // A numeric pid or thread id before the level (HDFS).
    let (tok, after) = split_token(r);
    if after_time && !tok.is_empty() && tok.bytes().all(|c| c.is_ascii_digit()) {
        let (next, _) = split_token(after.trim_start());
        if level_token(next, true).is_some() {
            scratch.attr(rec, "pid", tok);
            r = after.trim_start();
        }
    }

    // The level may follow the time's `,` or `|` (Windows CBS, some Java
    // layouts); without a level there, the separator stays in the message.
    let level_at = match r.strip_prefix([',', '|']) {
        Some(x) if after_time => x.trim_start(),
        _ => r,
    };
    let (tok, after) = split_token(level_at);
    let mut have_level = false;
    if let Some(level) = level_token(tok, after_time) {
        rec.level = level;
        have_level = true;
        r = after.trim_start();
        // `INFO - message` and `INFO | message` separators.
        for sep in ["- ", "| "] {
            if let Some(x) = r.strip_prefix(sep) {
                r = x;
            }
        }
    }

    if have_level && r.starts_with('[') {
        let window = &r.as_bytes()[..r.len().min(MAX_THREAD_LEN)];
        // `[client 1.2.3.4]` (Apache) is part of the message; threads have no spaces.
        let end = memchr::memchr(b']', window).filter(|&e| !window[..e].contains(&b' '));
        if let Some(end) = end {
            scratch.attr(rec, "thread", &r[1..end]);
            r = r[end + 1..].trim_start();
        }
    }

    let (tok, after) = split_token(r);
    // `service[pid]: message`, after a level or without one.
    let tagged = tok
        .strip_suffix("]:")
        .and_then(|tag| tag.rsplit_once('['))
        .filter(|(service, pid)| {
            !service.is_empty() && !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit())
        });
    if let Some((service, pid)) = tagged {
        scratch.set_service(rec, service);
        scratch.attr(rec, "pid", pid);
        r = after.trim_start();
    } else if have_level {
        if let Some(logger) = tok.strip_suffix(':') {
            if looks_like_logger(logger, true) {
                scratch.attr(rec, "logger", logger);
                r = after.trim_start();
            }
        } else if let Some(msg) = after.strip_prefix("- ") {
            if looks_like_logger(tok, false) {
                scratch.attr(rec, "logger", tok);
                r = msg;
            }
        }
    }
    Scratch::set_message(rec, r.trim_end());
}
