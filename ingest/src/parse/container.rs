//! Container runtime wrappers: Kubernetes CRI lines
//! (`2023-10-06T00:17:09.669794202Z stdout F message`) and Docker json-file
//! objects (`{"log":"...\n","stream":"stderr","time":"..."}`). The inner
//! line is parsed once more (never unwrapped twice); the wrapper's time is
//! used only when the inner line has none.

use crate::record::LogRecord;

use super::roles::Kind;
use super::Scratch;

/// A CRI line split into its parts.
#[derive(Debug)]
pub struct Cri<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// `P`: the runtime split a long line; this is not its end.
    pub partial: bool,
    pub message: &'a str,
}

/// Splits a CRI line, or `None` when `s` is not one.
pub fn split_cri(s: &str) -> Option<Cri<'_>> {
    let b = s.as_bytes();
    // Cheap gate: `YYYY-MM-DDT`.
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sp1 = memchr::memchr(b' ', b)?;
    let rest = &s[sp1 + 1..];
    let (stream, rest) = rest.split_once(' ')?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let (tag, message) = match rest.split_once(' ') {
        Some((tag, message)) => (tag, message),
        None => (rest, ""),
    };
    let partial = match tag.split(':').next() {
        Some("F") => false,
        Some("P") => true,
        _ => return None,
    };
    Some(Cri {
        time: &s[..sp1],
        stream,
        partial,
        message,
    })
}

/// A Docker json-file record taken out of the attributes.
#[derive(Debug, Default)]
pub struct Docker {
    pub log: String,
    pub stream: String,
    pub time: String,
    /// `attrs.*` members (labels and env added with `--log-opt`), renamed
    /// `container.*`.
    pub extra: Vec<(String, String)>,
}

/// If the flattened attributes are exactly a Docker json-file record, takes
/// them out of `rec` and returns them.
pub fn take_docker(scratch: &mut Scratch, rec: &mut LogRecord) -> Option<Docker> {
    let mut has_log = false;
    let mut has_stream = false;
    for (i, (k, _)) in rec.attributes.iter().enumerate() {
        let kind = scratch.kinds.get(i).copied().unwrap_or(Kind::Str);
        match k.as_str() {
            "log" if kind == Kind::Str => has_log = true,
            "stream" if kind == Kind::Str => has_stream = true,
            "time" => {}
            k if k.starts_with("attrs.") => {}
            _ => return None,
        }
    }
    if !(has_log && has_stream) {
        return None;
    }
    let mut d = Docker::default();
    for (k, v) in rec.attributes.drain(..) {
        match k.as_str() {
            "log" => d.log = v,
            "stream" => d.stream = v,
            "time" => d.time = v,
            _ => {
                let name = format!("container.{}", &k["attrs.".len()..]);
                d.extra.push((name, v));
            }
        }
        Scratch::give(&mut scratch.pool, k);
    }
    scratch.kinds.clear();
    Some(d)
}

impl Scratch {
    /// Returns the strings of a Docker record to the pool.
    pub(crate) fn give_docker(&mut self, d: Docker) {
        Self::give(&mut self.pool, d.log);
        Self::give(&mut self.pool, d.stream);
        Self::give(&mut self.pool, d.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let c = split_cri("2023-10-06T00:17:09.669794202Z stdout F hello world").expect("cri");
        assert_eq!(c.time, "2023-10-06T00:17:09.669794202Z");
        assert_eq!(c.stream, "stdout");
        assert!(!c.partial);
        assert_eq!(c.message, "hello world");
        let c = split_cri("2023-10-06T00:17:09Z stderr P").expect("cri");
        assert!(c.partial);
        assert_eq!(c.message, "");
        assert!(split_cri("2023-10-06T00:17:09Z INFO F x").is_none());
        assert!(split_cri("2023-10-06 00:17:09 stdout F x").is_none());
        assert!(split_cri("short").is_none());
    }
}
