//! The log-record model shared by every stage of logwarden.
//!
//! A [`LogRecord`] is what a parser makes of one Kafka message (or one input
//! line). Ingest turns records into Arrow batches ([`crate::schema`]); detect
//! reads the same fields to build its series. `docs/schema.md` maps each field
//! to its Arrow and Parquet column.

use std::fmt;
use std::sync::Arc;

/// Severity, normalized from whatever vocabulary the application used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    #[default]
    Unknown,
}

impl Level {
    /// All levels, in increasing severity, `Unknown` last.
    pub const ALL: [Level; 7] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
        Level::Unknown,
    ];

    /// The lowercase name stored in the archive and used in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
            Level::Unknown => "unknown",
        }
    }

    /// True for `error` and `fatal`: what the error-ratio signals count.
    pub fn is_error(self) -> bool {
        matches!(self, Level::Error | Level::Fatal)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record's event time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeSource {
    /// Parsed from the log line itself.
    #[default]
    Parsed,
    /// The line had no usable timestamp: the Kafka message timestamp was used.
    Kafka,
    /// Neither the line nor the transport had one: the ingest time was used.
    Ingest,
    /// A line of a file or stdin without a usable timestamp (a stack
    /// trace's continuation, say): the event time of the input's last
    /// record before it that had its own was used.
    Previous,
}

impl TimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Parsed => "parsed",
            TimeSource::Kafka => "kafka",
            TimeSource::Ingest => "ingest",
            TimeSource::Previous => "previous",
        }
    }
}

/// Which parser produced the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    Json,
    Logfmt,
    Syslog,
    Access,
    Container,
    Custom,
    #[default]
    Text,
    /// Nothing could be parsed: the payload is kept in `raw`.
    Invalid,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Logfmt => "logfmt",
            Format::Syslog => "syslog",
            Format::Access => "access",
            Format::Container => "container",
            Format::Custom => "custom",
            Format::Text => "text",
            Format::Invalid => "invalid",
        }
    }
}

/// Why a record could not be fully parsed. Stored in the `parse_error`
/// column; the record is still archived, with its raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseIssue {
    /// The payload is not valid UTF-8; `message` holds a lossy decoding.
    InvalidUtf8,
    /// The payload (or the Kafka message) was empty or had no payload.
    Empty,
    /// The payload looked like JSON but did not parse; kept as text.
    MalformedJson,
    /// A known field had a value of the wrong type (for example a numeric
    /// `level` object); the value was kept as an attribute.
    FieldType,
    /// The payload exceeded the configured maximum size and was truncated.
    Oversized,
    /// JSON nested deeper than the configured `max_json_depth`: the deeper
    /// objects are kept as JSON text in one attribute each.
    JsonTooDeep,
}

impl ParseIssue {
    pub const ALL: [ParseIssue; 6] = [
        ParseIssue::InvalidUtf8,
        ParseIssue::Empty,
        ParseIssue::MalformedJson,
        ParseIssue::FieldType,
        ParseIssue::Oversized,
        ParseIssue::JsonTooDeep,
    ];

    /// Whether the payload could not be parsed as a whole (strict mode sends
    /// these to the dead-letter topic): not UTF-8, empty, broken JSON, or cut
    /// at the size limit. A wrong field type or a depth limit still leaves a
    /// well-parsed record.
    pub fn is_unparseable(self) -> bool {
        matches!(
            self,
            ParseIssue::InvalidUtf8
                | ParseIssue::Empty
                | ParseIssue::MalformedJson
                | ParseIssue::Oversized
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParseIssue::InvalidUtf8 => "invalid_utf8",
            ParseIssue::Empty => "empty",
            ParseIssue::MalformedJson => "malformed_json",
            ParseIssue::FieldType => "field_type",
            ParseIssue::Oversized => "oversized",
            ParseIssue::JsonTooDeep => "json_too_deep",
        }
    }
}

/// Where a record came from: a Kafka topic, partition and offset, or for
/// backfill an input file (topic = the input's name, partition 0, offset =
/// the line number counted from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// One parsed log record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRecord {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub event_time_us: i64,
    pub time_source: TimeSource,
    pub level: Level,
    pub service: Option<String>,
    pub host: Option<String>,
    pub message: String,
    /// Every other field, as (key, value) text; nested keys are dotted.
    pub attributes: Vec<(String, String)>,
    pub format: Format,
    pub parse_issue: Option<ParseIssue>,
    /// The original bytes, kept only when the record could not be parsed
    /// cleanly (`parse_issue` is set).
    pub raw: Option<Vec<u8>>,
    /// Stable id of the message's template, when template mining is on.
    pub template_id: Option<u64>,
    pub template: Option<Arc<str>>,
}

impl LogRecord {
    /// For the records of one input read in order (a file, stdin): a record
    /// that fell back to the ingest time takes `last`, the event time of
    /// the last record with a time of its own, when there is one; a record
    /// with its own time becomes `last`.
    pub fn inherit_time(&mut self, last: &mut Option<i64>) {
        match self.time_source {
            TimeSource::Parsed => *last = Some(self.event_time_us),
            TimeSource::Ingest => {
                if let Some(t) = *last {
                    self.event_time_us = t;
                    self.time_source = TimeSource::Previous;
                }
            }
            TimeSource::Kafka | TimeSource::Previous => {}
        }
    }

    /// Appends `rest`, the lines that continue the record's line (a stack
    /// trace; see [`crate::multiline`]), to the message after a newline.
    /// Line endings become `\n`; invalid UTF-8 is replaced.
    pub fn continue_message(&mut self, rest: &[u8]) {
        self.message.push('\n');
        let text = String::from_utf8_lossy(rest);
        if text.contains('\r') {
            self.message.push_str(&text.replace("\r\n", "\n"));
        } else {
            self.message.push_str(&text);
        }
    }

    /// Clears the record for reuse without giving back its allocations.
    pub fn clear(&mut self) {
        self.event_time_us = 0;
        self.time_source = TimeSource::Parsed;
        self.level = Level::Unknown;
        self.service = None;
        self.host = None;
        self.message.clear();
        self.attributes.clear();
        self.format = Format::Text;
        self.parse_issue = None;
        self.raw = None;
        self.template_id = None;
        self.template = None;
    }

    /// A rough in-memory size, used for the byte limits of buffers.
    pub fn approx_bytes(&self) -> usize {
        64 + self.message.len()
            + self.service.as_ref().map_or(0, String::len)
            + self.host.as_ref().map_or(0, String::len)
            + self.raw.as_ref().map_or(0, Vec::len)
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
    }
}

/// Formats a template id the way it is stored and shown: 16 hex digits.
pub fn template_id_hex(id: u64) -> String {
    let mut buf = [0u8; 16];
    template_id_hex_into(id, &mut buf).to_owned()
}

/// [`template_id_hex`] into a caller's buffer, without allocating (the
/// per-record path).
pub fn template_id_hex_into(id: u64, buf: &mut [u8; 16]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// The ingest time of a record parsed now, in microseconds since the epoch,
/// truncated to the millisecond: finer digits are only noise, and as noise
/// they took 4% of the archive's bytes.
pub fn ingest_now_us() -> i64 {
    let us = chrono::Utc::now().timestamp_micros();
    us - us.rem_euclid(1000)
}
