//! Syslog: RFC 5424 (`<165>1 2003-10-11T22:14:15.003Z host app 123 ID47
//! [exampleSDID@32473 iut="3"] msg`) and RFC 3164 (`<34>Oct 11 22:14:15 host
//! app[pid]: msg`). Structured data goes to `sd.<id>.<param>` attributes,
//! the facility to `syslog.facility`, and the severity sets the level.

use crate::record::{Format, LogRecord};

use super::level::syslog_severity;
use super::timestamp::{self, TimeCtx};
use super::Scratch;

/// Facility names by number (RFC 5424 table 1).
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
/// Largest valid PRI value (facility 23, severity 7).
const MAX_PRI: u32 = 191;
/// The tag of an RFC 3164 line must end (with `:`) within this many bytes.
const MAX_TAG_LEN: usize = 64;

/// Parses a line starting with `<PRI>`. False when it is not syslog.
pub fn parse(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return false;
    }
    let digits = b[1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || digits > 3 || b.get(1 + digits) != Some(&b'>') {
        return false;
    }
    let pri: u32 = s[1..1 + digits].parse().unwrap_or(u32::MAX);
    if pri > MAX_PRI {
        return false;
    }
    let rest = &s[2 + digits..];
    rec.level = syslog_severity((pri & 7) as u8);
    let facility = FACILITIES[(pri >> 3) as usize];
    let rb = rest.as_bytes();
    let version_len = rb.iter().take_while(|c| c.is_ascii_digit()).count();
    if (1..=2).contains(&version_len) && rb.get(version_len) == Some(&b' ') {
        rfc5424(&rest[version_len + 1..], tc, scratch, rec);
    } else {
        rfc3164(rest, tc, scratch, rec);
    }
    scratch.attr(rec, "syslog.facility", facility);
    rec.format = Format::Syslog;
    true
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

fn rfc5424(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) {
    let mut it = s.splitn(6, ' ');
    let ts = it.next().unwrap_or("-");
    let host = it.next().unwrap_or("-");
    let app = it.next().unwrap_or("-");
    let procid = it.next().unwrap_or("-");
    let msgid = it.next().unwrap_or("-");
    let rest = it.next().unwrap_or("");
    if let Some(ts) = nil(ts) {
        match timestamp::parse_value(ts, tc) {
            Some(us) => {
                scratch.set_time(rec, us, ts);
            }
            None => scratch.attr(rec, super::roles::TIMESTAMP_RAW, ts),
        }
    }
    if let Some(h) = nil(host) {
        scratch.set_host(rec, h);
    }
    if let Some(a) = nil(app) {
        scratch.set_service(rec, a);
    }
    if let Some(p) = nil(procid) {
        scratch.attr(rec, "pid", p);
    }
    if let Some(m) = nil(msgid) {
        scratch.attr(rec, "msgid", m);
    }
    let msg = if let Some(after) = rest.strip_prefix('-') {
        after
    } else if rest.starts_with('[') {
        match structured_data(rest, scratch, rec) {
            Some(used) => &rest[used..],
            None => rest,
        }
    } else {
        rest
    };
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Scratch::set_message(rec, msg.trim_end());
}

/// Parses `[id k="v" ...][id2 ...]`; returns the bytes used, or `None` (with
/// nothing added) when malformed.
fn structured_data(s: &str, scratch: &mut Scratch, rec: &mut LogRecord) -> Option<usize> {
    let b = s.as_bytes();
    let mut pairs: Vec<(usize, usize, usize, String)> = Vec::new();
    let mut ids: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let id_start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b']' {
            i += 1;
        }
        if i == id_start || i >= b.len() {
            return None;
        }
        let id_idx = ids.len();
        ids.push((id_start, i));
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => i += 1,
                _ => {
                    let name_start = i;
                    while i < b.len() && b[i] != b'=' && b[i] != b' ' && b[i] != b']' {
                        i += 1;
                    }
                    if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    let name_end = i;
                    i += 2;
                    let mut value = String::new();
                    let mut seg = i;
                    loop {
                        match b.get(i)? {
                            b'"' => break,
                            b'\\' if matches!(b.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                                value.push_str(&s[seg..i]);
                                seg = i + 1;
                                i += 2;
                            }
                            _ => i += 1,
                        }
                    }
                    value.push_str(&s[seg..i]);
                    i += 1;
                    pairs.push((id_idx, name_start, name_end, value));
                }
            }
        }
    }
    let mut key = std::mem::take(&mut scratch.key);
    for (id_idx, ns, ne, value) in &pairs {
        let (is, ie) = ids[*id_idx];
        key.clear();
        key.push_str("sd.");
        key.push_str(&s[is..ie]);
        key.push('.');
        key.push_str(&s[*ns..*ne]);
        scratch.attr(rec, &key, value);
    }
    scratch.key = key;
    Some(i)
}

fn rfc3164(s: &str, tc: &TimeCtx, scratch: &mut Scratch, rec: &mut LogRecord) {
    let mut rest = s;
    if let Some((us, n)) = timestamp::parse_prefix(s, tc) {
        scratch.set_time(rec, us, &s[..n]);
        rest = &s[n..];
    }
    let h = header_3164(rest, false).unwrap_or(Header {
        host: None,
        service: None,
        pid: None,
        msg: rest.trim_start(),
    });
    apply_header(&h, scratch, rec);
}

/// The part of an RFC 3164 line after the timestamp.
#[derive(Debug, PartialEq)]
pub struct Header<'a> {
    pub host: Option<&'a str>,
    pub service: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub msg: &'a str,
}

/// Stores a parsed header in `rec`.
pub fn apply_header(h: &Header<'_>, scratch: &mut Scratch, rec: &mut LogRecord) {
    if let Some(host) = h.host {
        scratch.set_host(rec, host);
    }
    if let Some(service) = h.service {
        scratch.set_service(rec, service);
    }
    if let Some(pid) = h.pid {
        scratch.attr(rec, "pid", pid);
    }
    Scratch::set_message(rec, h.msg.trim_end());
}

/// Splits `host tag[pid]: msg` (host optional). With `require_tag`, `None`
/// when no tag ending in `:` is found; otherwise the host is still taken.
pub fn header_3164(rest: &str, require_tag: bool) -> Option<Header<'_>> {
    let rest = rest.trim_start_matches(' ');
    let (t1, after1) = rest.split_once(' ').unwrap_or((rest, ""));
    if let Some(tag) = t1.strip_suffix(':') {
        if valid_tag(tag) {
            let (service, pid) = split_tag(tag);
            return Some(Header {
                host: None,
                service: Some(service),
                pid,
                msg: after1,
            });
        }
    }
    if t1.is_empty() {
        return None;
    }
    let after1 = after1.trim_start_matches(' ');
    let ab = after1.as_bytes();
    let window = &ab[..ab.len().min(MAX_TAG_LEN)];
    let colon = window
        .iter()
        .enumerate()
        .position(|(i, &c)| c == b':' && (i + 1 == ab.len() || ab[i + 1] == b' '));
    if let Some(pos) = colon {
        let tag = &after1[..pos];
        if valid_tag(tag) {
            let (service, pid) = split_tag(tag);
            let msg = &after1[pos + 1..];
            return Some(Header {
                host: Some(t1),
                service: Some(service),
                pid,
                msg: msg.strip_prefix(' ').unwrap_or(msg),
            });
        }
    }
    if require_tag {
        return None;
    }
    Some(Header {
        host: Some(t1),
        service: None,
        pid: None,
        msg: after1,
    })
}

/// A tag: a program name, optionally `[pid]`, at most one space (`syslogd
/// 1.4.1`), no `=` (that would be a logfmt pair).
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_' || b[0] == b'-')
        && b.iter().filter(|&&c| c == b' ').count() <= 1
        && !b.iter().any(|&c| matches!(c, b'=' | b'"' | b'\''))
}

/// `sshd(pam_unix)[19939]` -> (`sshd(pam_unix)`, `19939`); `syslogd 1.4.1`
/// -> (`syslogd`, none).
fn split_tag(tag: &str) -> (&str, Option<&str>) {
    let (name, pid) = match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((name, pid)) => (name, Some(pid)),
        None => (tag, None),
    };
    // `syslogd 1.4.1` -> `syslogd`; `-- root` -> `root`.
    let name = name
        .split(' ')
        .find(|w| w.bytes().any(|c| c.is_ascii_alphanumeric()))
        .unwrap_or(name);
    (name, pid.filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = header_3164("combo sshd(pam_unix)[19939]: authentication failure", true);
        assert_eq!(
            h,
            Some(Header {
                host: Some("combo"),
                service: Some("sshd(pam_unix)"),
                pid: Some("19939"),
                msg: "authentication failure",
            })
        );
        let h = header_3164("combo syslogd 1.4.1: restart.", true).expect("header");
        assert_eq!(h.service, Some("syslogd"));
        assert_eq!(h.msg, "restart.");
        let h = header_3164("app[12]: no host here", true).expect("header");
        assert_eq!(h.host, None);
        assert_eq!(h.service, Some("app"));
        assert_eq!(header_3164("a sentence with no tag at all", true), None);
        assert_eq!(header_3164("host a=b: x", true), None);
    }
}
