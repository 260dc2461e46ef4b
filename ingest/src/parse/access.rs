//! nginx/Apache access logs, common and combined formats:
//! `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200
//! 2326 "http://example.com/" "Mozilla/4.08"`, optionally followed by a
//! request time (a bare number) or `key=value` extras.
//!
//! The message is the whole line; the parts go to `client.ip`, `user.name`,
//! `http.method`, `http.path`, `http.protocol`, `http.status`, `http.bytes`,
//! `http.referer`, `http.user_agent` and `http.request_time`. The level
//! follows the status: 5xx error, 4xx warn, anything else info.

use crate::record::{Format, Level, LogRecord};

use super::timestamp::{self, TimeCtx};
use super::Scratch;

/// A `"..."` field at the start of `s` (with `\"` escapes left as is);
/// returns the inside and the rest after the closing quote.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn token(s: &str) -> Option<(&str, &str)> {
    let (t, rest) = s.split_once(' ')?;
    (!t.is_empty()).then_some((t, rest))
}

/// Parses an access log line. False (with nothing added to `rec`) when `s`
/// is not one.
pub fn parse(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) -> bool {
    // Cheap gate before any splitting: the ` [` of the time field early on.
    let head = &s.as_bytes()[..s.len().min(256)];
    if memchr::memmem::find(head, b" [").is_none() {
        return false;
    }
    let Some((client, rest)) = token(s) else {
        return false;
    };
    let Some((ident, rest)) = token(rest) else {
        return false;
    };
    // The user may not contain spaces; the time is bracketed.
    let Some((user, rest)) = token(rest) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('[') else {
        return false;
    };
    let Some((time, rest)) = rest.split_once("] ") else {
        return false;
    };
    let Some((request, rest)) = quoted(rest) else {
        return false;
    };
    let rest = rest.trim_start_matches(' ');
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status_ok =
        status == "-" || (status.len() == 3 && status.bytes().all(|c| c.is_ascii_digit()));
    if !status_ok {
        return false;
    }
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if bytes != "-" && !bytes.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Some(us) = timestamp::parse_value(time, tc) else {
        return false;
    };

    scratch.set_time(rec, us, time);
    scratch.attr(rec, "client.ip", client);
    if ident != "-" {
        scratch.attr(rec, "client.ident", ident);
    }
    if user != "-" {
        scratch.attr(rec, "user.name", user);
    }
    let mut parts = request.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(path), protocol)
            if !method.is_empty() && method.bytes().all(|c| c.is_ascii_uppercase()) =>
        {
            scratch.attr(rec, "http.method", method);
            scratch.attr(rec, "http.path", path);
            if let Some(p) = protocol {
                scratch.attr(rec, "http.protocol", p);
            }
        }
        _ => {
            if request != "-" {
                scratch.attr(rec, "http.request", request);
            }
        }
    }
    if status != "-" {
        scratch.attr(rec, "http.status", status);
    }
    if bytes != "-" {
        scratch.attr(rec, "http.bytes", bytes);
    }
    rec.level = match status.as_bytes().first() {
        Some(b'5') => Level::Error,
        Some(b'4') => Level::Warn,
        _ => Level::Info,
    };
    let mut rest = rest.trim();
    if let Some((referer, r)) = quoted(rest) {
        if referer != "-" {
            scratch.attr(rec, "http.referer", referer);
        }
        rest = r.trim_start();
        if let Some((ua, r)) = quoted(rest) {
            if ua != "-" {
                scratch.attr(rec, "http.user_agent", ua);
            }
            rest = r.trim();
        }
    }
    if !rest.is_empty() {
        extras(rest, scratch, rec);
    }
    Scratch::set_message(rec, s.trim_end());
    rec.format = Format::Access;
    true
}

/// What follows the user agent: a request time, `key=value` pairs, or
/// anything else kept whole.
fn extras(rest: &str, scratch: &mut Scratch, rec: &mut LogRecord) {
    if rest.parse::<f64>().is_ok() {
        scratch.attr(rec, "http.request_time", rest);
        return;
    }
    if rest.contains('=') {
        for pair in rest.split_ascii_whitespace() {
            match pair.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    let v = v.trim_matches('"');
                    let key = match k {
                        "rt" | "request_time" => "http.request_time",
                        "uct" | "upstream_connect_time" => "http.upstream_connect_time",
                        "urt" | "upstream_response_time" => "http.upstream_response_time",
                        other => other,
                    };
                    scratch.attr(rec, key, v);
                }
                _ => {}
            }
        }
        return;
    }
    scratch.attr(rec, "access.extra", rest);
}
