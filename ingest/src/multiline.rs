//! Multi-line events in files: which lines continue the event of the line
//! before them (a stack trace after the line that logged the error), so
//! that a backfill archives the event as one record instead of one record
//! per line.
//!
//! The rule needs no configuration and errs on the side of not joining:
//! - a line that starts with a space or a tab (and has more than blanks):
//!   Java's `\tat ...` and `\t... 12 more`, Python's `  File "..."`, and
//!   indented detail in general;
//! - Java's `Caused by: ...` and Python's `Traceback (most recent call
//!   last):`, which start the next part of a trace;
//! - an exception named by its qualified class, `java.lang.IllegalStateException:
//!   boom` (a dotted name ending in `Exception`, `Error` or `Throwable`),
//!   which Java loggers print on the line after the message;
//! - inside a trace only (the line before was itself a continuation):
//!   a bare exception name, `ValueError: bad value`, Python's last line.
//!
//! A line never continues a JSON line (one starting with `{`), and an event
//! takes at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes: the line past
//! either starts the next record.

/// Most lines one event takes (its first line included).
pub const MAX_LINES: usize = 512;
/// Most bytes one event takes, each line ending counted as one byte (the
/// size of its message, whose lines are joined by `\n`, plus one).
pub const MAX_BYTES: usize = 64 * 1024;

/// Whether `line` continues the event of the lines before it. `in_trace`:
/// the line before was itself a continuation.
pub fn continues(line: &[u8], in_trace: bool) -> bool {
    match line.first() {
        None => false,
        Some(b' ' | b'\t') => line.iter().any(|b| !b.is_ascii_whitespace()),
        Some(b'C') => line.starts_with(b"Caused by: ") || exception_head(line, in_trace),
        Some(b'T') => {
            line.starts_with(b"Traceback (most recent call last):")
                || exception_head(line, in_trace)
        }
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' || *b == b'$' => {
            exception_head(line, in_trace)
        }
        _ => false,
    }
}

/// A line that names an exception: its first word, up to `:` or the end of
/// the line, is a class name ending in `Exception`, `Error` or `Throwable`,
/// qualified by a package (`java.io.IOException`), or bare inside a trace.
fn exception_head(line: &[u8], in_trace: bool) -> bool {
    let name_end = line
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'$'))
        .unwrap_or(line.len());
    // The name is the whole line, or is followed by `:`.
    if name_end < line.len() && line[name_end] != b':' {
        return false;
    }
    let name = &line[..name_end];
    let class = name.rsplit(|&b| b == b'.').next().unwrap_or(name);
    let is_exception = [&b"Exception"[..], b"Error", b"Throwable"]
        .iter()
        .any(|s| class.ends_with(s))
        && class.first().is_some_and(u8::is_ascii_uppercase);
    if !is_exception {
        return false;
    }
    let qualified = name.len() > class.len()
        && name
            .split(|&b| b == b'.')
            .all(|part| part.first().is_some_and(|b| !b.is_ascii_digit()));
    qualified || in_trace
}

/// Groups lines into events, line by line: feed each line with
/// [`Joiner::next`], which says whether it continues the current event.
#[derive(Debug, Default)]
pub struct Joiner {
    /// The current event's first line is one others may continue.
    anchored: bool,
    lines: usize,
    bytes: usize,
    in_trace: bool,
}

impl Joiner {
    /// Lines of the current event so far.
    pub fn event_lines(&self) -> usize {
        self.lines
    }

    /// Whether `line` (without its ending) joins the current event;
    /// otherwise it starts the next one. An event's bytes count each line
    /// with one byte for its ending, whatever the file's endings: the size
    /// of its message, whose lines are joined by `\n`, plus one.
    pub fn next(&mut self, line: &[u8]) -> bool {
        let len = line.len() + 1;
        let joins = self.anchored
            && self.lines < MAX_LINES
            && self.bytes + len <= MAX_BYTES
            && continues(line, self.in_trace);
        if joins {
            self.lines += 1;
            self.bytes += len;
            self.in_trace = true;
        } else {
            self.anchored = line.first().is_some_and(|&b| b != b'{');
            self.lines = 1;
            self.bytes = len;
            self.in_trace = false;
        }
        joins
    }
}

/// The events of `lines` as one [`Joiner`] groups them, each one's lines
/// joined by `\n`: what the readers of files must agree with.
#[cfg(test)]
pub(crate) fn group<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut joiner = Joiner::default();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in lines {
        // A fresh joiner starts an event with the first line.
        let joins = joiner.next(line);
        match out.last_mut() {
            Some(last) if joins => {
                last.push(b'\n');
                last.extend_from_slice(line);
            }
            _ => out.push(line.to_vec()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events of `text` as the joiner groups its lines.
    fn events(text: &str) -> Vec<String> {
        group(text.lines().map(str::as_bytes))
            .into_iter()
            .map(|e| String::from_utf8(e).expect("utf-8"))
            .collect()
    }

    #[test]
    fn a_java_stack_trace_is_one_event() {
        let log = "\
2024-05-01 10:00:00,001 ERROR [main] c.e.Service - request failed
java.lang.IllegalStateException: boom
\tat com.example.Service.handle(Service.java:42)
\tat com.example.Main.main(Main.java:7)
Caused by: java.io.IOException: disk gone
\tat com.example.Disk.read(Disk.java:9)
\t... 2 more
2024-05-01 10:00:01,000 INFO [main] c.e.Service - recovered";
        let ev = events(log);
        assert_eq!(ev.len(), 2, "{ev:#?}");
        assert_eq!(ev[0].lines().count(), 7);
        assert!(ev[1].ends_with("recovered"));
    }

    #[test]
    fn a_python_traceback_is_one_event() {
        let log = "\
2024-05-01 10:00:00,001 - app - ERROR - parsing failed
Traceback (most recent call last):
  File \"app.py\", line 3, in <module>
    int(\"x\")
ValueError: invalid literal for int() with base 10: 'x'
2024-05-01 10:00:00,002 - app - INFO - next";
        let ev = events(log);
        assert_eq!(ev.len(), 2, "{ev:#?}");
        assert!(ev[0].ends_with("'x'"));
    }

    #[test]
    fn ordinary_lines_stay_apart() {
        let log = "\
plain message one
ValueError: reported as its own line, not inside a trace
ConnectionError
java.version is 21
2024-05-01 10:00:00 INFO ok
{\"msg\":\"json\"}
  indented after JSON
user.name: alice
1.2.3Error: a version, not a class

  ";
        let ev = events(log);
        assert_eq!(ev.len(), log.lines().count(), "{ev:#?}");
    }

    #[test]
    fn an_event_is_capped_in_lines_and_bytes() {
        let mut log = String::from("ERROR first\n");
        for i in 0..(MAX_LINES + 10) {
            log.push_str(&format!("\tat frame{i}\n"));
        }
        let ev = events(&log);
        assert_eq!(ev[0].lines().count(), MAX_LINES);
        assert_eq!(
            ev.len(),
            2,
            "the line past the cap starts an event, which the rest continue"
        );

        let long = format!("\t{}", "x".repeat(MAX_BYTES / 2));
        // The second long line would pass the cap, and so would the third
        // after it.
        let ev = events(&format!("ERROR big\n{long}\n{long}\n{long}"));
        assert_eq!(
            ev.len(),
            3,
            "{:?}",
            ev.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(ev.iter().all(|e| e.len() <= MAX_BYTES));
    }
}
