//! Parsing: one payload in, one [`LogRecord`] out, whatever the format.
//!
//! [`Parser::parse`] first applies the payload guards (empty, oversized,
//! invalid UTF-8), then the user patterns ([`custom`]), then either the
//! forced format ([`ParserConfig::format`]) or auto-detection, which looks at
//! the first byte of the line:
//!
//! - `{` -> [`json`] (a Docker json-file wrapper is unwrapped by [`container`]),
//! - `<` -> [`syslog`] (RFC 5424 or RFC 3164),
//! - a digit -> Kubernetes CRI ([`container`]), then access log ([`access`]),
//!   then text,
//! - anything else -> [`logfmt`] when the line starts with `key=`, an access
//!   log with a host name, then [`text`] (which also recognizes RFC 3164
//!   lines without PRI).
//!
//! Structured formats (JSON, logfmt, user patterns) first put every field in
//! `rec.attributes`, then [`Scratch::resolve`] picks the timestamp, level,
//! service, host and message out of them by alias ([`roles`]).
//!
//! Outcomes worth knowing: an empty payload gives message `""`,
//! `Format::Invalid` and `ParseIssue::Empty`; a JSON or logfmt record without
//! a message field gets an empty message (its fields are all attributes); an
//! unusable timestamp is kept in the `timestamp_raw` attribute and the event
//! time falls back to the Kafka time, then the ingest time. `rec.raw` holds
//! the original bytes for `invalid_utf8`, `malformed_json` and `field_type`
//! (not for `oversized` or `empty`). Only the first issue found is recorded.
//!
//! Example configuration:
//!
//! ```toml
//! [parse]
//! format = "auto"
//! default_timezone = "+02:00"
//! [[parse.patterns]]
//! name = "legacy"
//! regex = '^(?P<timestamp>\S+ \S+) <(?P<level>\w+)> (?P<message>.*)$'
//! timestamp_format = "%d.%m.%Y %H:%M:%S"
//! ```
//!
//! Allocation: the attribute strings of the previous record are recycled
//! into a pool when the caller reuses the same `LogRecord`, so a steady
//! stream of similar lines parses without allocating.

mod access;
mod container;
mod custom;
mod json;
mod level;
mod logfmt;
mod roles;
mod syslog;
mod text;
mod timestamp;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::record::{Format, LogRecord, ParseIssue, TimeSource};
use crate::template::{TemplateConfig, TemplateConfigError, TemplateMiner};

pub use custom::PatternConfig;
pub use level::{parse_level, syslog_severity};
pub use timestamp::{parse_value as parse_timestamp, TimeCtx};

use roles::{Kind, Role};

/// What the transport knows about a payload besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext {
    /// The Kafka message timestamp in microseconds, when there is one.
    pub transport_time_us: Option<i64>,
    /// When the payload was read, in microseconds; the last-resort event time.
    pub ingest_time_us: i64,
}

/// Which parser to use for every payload of a source.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FormatOverride {
    /// Detect the format of each payload from its first bytes.
    #[default]
    Auto,
    /// JSON objects; anything else is kept as text, marked `malformed_json`.
    Json,
    /// `key=value` pairs.
    Logfmt,
    /// RFC 5424 or RFC 3164; other lines fall back to text.
    Syslog,
    /// nginx/Apache combined or common log format; other lines fall back to text.
    Access,
    /// Kubernetes CRI or Docker json-file wrappers; other lines are auto-detected.
    Container,
    /// Plain text with an optional leading timestamp and level.
    Text,
}

/// What happens to a payload that cannot be parsed (see
/// [`ParseIssue::is_unparseable`]).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ParseMode {
    /// Archive it as raw text with a parse-error marker.
    #[default]
    Lenient,
    /// Send it, unchanged, to a dead-letter topic
    /// ([`ParserConfig::dead_letter_topic`]) instead of the archive.
    Strict,
}

/// Settings of one source topic (`[parse.topics.NAME]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TopicParseConfig {
    /// The format of this topic's payloads, overriding [`ParserConfig::format`].
    pub format: FormatOverride,
}

/// Parser settings (the `[parse]` table of the configuration file).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParserConfig {
    /// Payloads longer than this are truncated (and marked `oversized`).
    pub max_message_bytes: usize,
    /// Force one format (`auto`, `json`, `logfmt`, `syslog`, `access`,
    /// `container`, `text`); `auto` detects it per payload.
    pub format: FormatOverride,
    /// Time zone of timestamps that carry none: `UTC` or a fixed offset such
    /// as `+02:00`.
    pub default_timezone: String,
    /// User patterns, tried in order before the built-in formats.
    pub patterns: Vec<PatternConfig>,
    /// Nested JSON objects deeper than this are kept as JSON text in one
    /// attribute instead of being flattened further.
    pub max_json_depth: usize,
    /// At most this many attributes per record; the rest are dropped and
    /// counted in the `attributes_dropped` attribute.
    pub max_attributes: usize,
    /// Template mining of messages (the `[parse.templates]` table).
    pub templates: TemplateConfig,
    /// `lenient` archives unparseable payloads with a parse-error marker;
    /// `strict` sends them to the dead-letter topic (Kafka ingest only).
    pub mode: ParseMode,
    /// Dead-letter topic of strict mode; `{topic}` stands for the source
    /// topic.
    pub dead_letter_topic: String,
    /// Per-topic settings, by source topic name (`[parse.topics.NAME]`).
    pub topics: BTreeMap<String, TopicParseConfig>,
}

/// Default for [`ParserConfig::max_message_bytes`]: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Default for [`ParserConfig::format`]: detect per payload.
pub const DEFAULT_FORMAT: FormatOverride = FormatOverride::Auto;
/// Default for [`ParserConfig::default_timezone`].
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// Default for [`ParserConfig::max_json_depth`].
pub const DEFAULT_MAX_JSON_DEPTH: usize = 16;
/// Default for [`ParserConfig::max_attributes`].
pub const DEFAULT_MAX_ATTRIBUTES: usize = 256;
/// Default for [`ParserConfig::mode`].
pub const DEFAULT_MODE: ParseMode = ParseMode::Lenient;
/// Default for [`ParserConfig::dead_letter_topic`]: `<topic>.dlq`.
pub const DEFAULT_DEAD_LETTER_TOPIC: &str = "{topic}.dlq";
/// The placeholder of [`ParserConfig::dead_letter_topic`].
const TOPIC_PLACEHOLDER: &str = "{topic}";

impl Default for ParserConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            format: DEFAULT_FORMAT,
            default_timezone: DEFAULT_TIMEZONE.to_owned(),
            patterns: Vec::new(),
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            templates: TemplateConfig::default(),
            mode: DEFAULT_MODE,
            dead_letter_topic: DEFAULT_DEAD_LETTER_TOPIC.to_owned(),
            topics: BTreeMap::new(),
        }
    }
}

impl ParserConfig {
    /// The dead-letter topic of source topic `topic`.
    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        self.dead_letter_topic.replace(TOPIC_PLACEHOLDER, topic)
    }
}

/// Error in the parser configuration.
#[derive(Debug, thiserror::Error)]
pub enum ParserConfigError {
    #[error("parse.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("parse.patterns[{index}].{field}: {reason}")]
    Pattern {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("parse.{0}")]
    Template(#[from] TemplateConfigError),
}

/// Alias keys (`msg`, `level`, ...) kept past `max_attributes`: enough for
/// every known field, so that a line with a thousand `msg=` pairs is still
/// bounded.
const MAX_ALIAS_OVERFLOW: usize = 16;

/// Strings kept for reuse: more would only hold memory.
const MAX_POOLED_STRINGS: usize = 512;
/// Strings with more capacity than this are freed rather than pooled, so one
/// huge record does not pin its memory.
const MAX_POOLED_CAPACITY: usize = 4096;

/// Per-parser reusable state shared by the format modules.
pub(crate) struct Scratch {
    pool: Vec<String>,
    /// The JSON kind of each entry of `rec.attributes`, while resolving.
    kinds: Vec<Kind>,
    /// Roles for which an alias key held an object or array.
    wrong_type: [bool; Role::COUNT],
    /// Dotted key being built while flattening JSON.
    key: String,
    /// Whether `rec.event_time_us` holds a parsed time.
    have_time: bool,
    max_attributes: usize,
    dropped: usize,
    max_json_depth: usize,
}

impl Scratch {
    fn new(cfg: &ParserConfig) -> Self {
        Self {
            pool: Vec::new(),
            kinds: Vec::new(),
            wrong_type: [false; Role::COUNT],
            key: String::new(),
            have_time: false,
            max_attributes: cfg.max_attributes,
            dropped: 0,
            max_json_depth: cfg.max_json_depth,
        }
    }

    /// Moves the strings of the previous record into the pool.
    fn recycle(&mut self, rec: &mut LogRecord) {
        for (k, v) in rec.attributes.drain(..) {
            Self::give(&mut self.pool, k);
            Self::give(&mut self.pool, v);
        }
        if let Some(s) = rec.service.take() {
            Self::give(&mut self.pool, s);
        }
        if let Some(s) = rec.host.take() {
            Self::give(&mut self.pool, s);
        }
    }

    /// Returns a string to the pool.
    pub(crate) fn give_back(&mut self, s: String) {
        Self::give(&mut self.pool, s);
    }

    fn give(pool: &mut Vec<String>, s: String) {
        if pool.len() < MAX_POOLED_STRINGS && s.capacity() <= MAX_POOLED_CAPACITY {
            pool.push(s);
        }
    }

    fn begin(&mut self) {
        self.kinds.clear();
        self.wrong_type = [false; Role::COUNT];
        self.have_time = false;
        self.dropped = 0;
    }

    /// A pooled string holding `s`.
    pub(crate) fn string(&mut self, s: &str) -> String {
        match self.pool.pop() {
            Some(mut out) => {
                out.clear();
                out.push_str(s);
                out
            }
            None => s.to_owned(),
        }
    }

    /// Appends an attribute, honouring [`ParserConfig::max_attributes`]
    /// (alias keys are kept past it, up to [`MAX_ALIAS_OVERFLOW`] more, so
    /// the known fields can still be found).
    pub(crate) fn push_attr(&mut self, rec: &mut LogRecord, key: &str, value: &str, kind: Kind) {
        let n = rec.attributes.len();
        if n >= self.max_attributes
            && (n >= self.max_attributes + MAX_ALIAS_OVERFLOW || roles::role_of(key).is_none())
        {
            self.dropped += 1;
            return;
        }
        let k = self.string(key);
        let v = self.string(value);
        rec.attributes.push((k, v));
        self.kinds.push(kind);
    }

    /// Keeps only the last of the attributes that share a key: a JSON
    /// object or logfmt line that repeats a key, a dotted key that also
    /// comes nested (`"http.status"` and `"http":{"status"}`), a field named
    /// like one the parser adds. The keys of a Parquet map must be unique,
    /// and engines such as Trino refuse a map that repeats one. Keys of
    /// different lengths, most pairs, are told apart without reading them.
    fn unique_keys(&mut self, rec: &mut LogRecord) {
        let attrs = &mut rec.attributes;
        let repeated = (1..attrs.len()).any(|j| attrs[..j].iter().any(|(k, _)| *k == attrs[j].0));
        if !repeated {
            return;
        }
        let mut i = 0;
        while i < attrs.len() {
            if attrs[i + 1..].iter().any(|(k, _)| *k == attrs[i].0) {
                let (k, v) = attrs.remove(i);
                Self::give(&mut self.pool, k);
                Self::give(&mut self.pool, v);
            } else {
                i += 1;
            }
        }
    }

    /// Appends a text attribute.
    pub(crate) fn attr(&mut self, rec: &mut LogRecord, key: &str, value: &str) {
        self.push_attr(rec, key, value, Kind::Str);
    }

    /// Sets the event time if plausible; otherwise records `raw` as
    /// `timestamp_raw`. Returns whether the time was used.
    pub(crate) fn set_time(&mut self, rec: &mut LogRecord, us: i64, raw: &str) -> bool {
        if timestamp::plausible(us) {
            self.use_time(rec, us);
            true
        } else {
            self.attr(rec, roles::TIMESTAMP_RAW, raw);
            false
        }
    }

    /// Sets the event time to `us`, parsed from the record (and already
    /// found plausible).
    pub(crate) fn use_time(&mut self, rec: &mut LogRecord, us: i64) {
        rec.event_time_us = us;
        rec.time_source = TimeSource::Parsed;
        self.have_time = true;
    }

    /// Records an issue unless an earlier one is already set.
    pub(crate) fn issue(rec: &mut LogRecord, issue: ParseIssue) {
        if rec.parse_issue.is_none() {
            rec.parse_issue = Some(issue);
        }
    }

    /// Sets `rec.message` to `s`.
    pub(crate) fn set_message(rec: &mut LogRecord, s: &str) {
        rec.message.clear();
        rec.message.push_str(s);
    }

    /// Sets `rec.service` from a pooled string.
    pub(crate) fn set_service(&mut self, rec: &mut LogRecord, s: &str) {
        if !s.is_empty() {
            rec.service = Some(self.string(s));
        }
    }

    /// Sets `rec.host` from a pooled string.
    pub(crate) fn set_host(&mut self, rec: &mut LogRecord, s: &str) {
        if !s.is_empty() && s != "-" {
            rec.host = Some(self.string(s));
        }
    }
}

/// Turns payloads into records. One per consumer thread; not shared.
pub struct Parser {
    cfg: ParserConfig,
    default_offset_secs: i32,
    patterns: Vec<custom::Pattern>,
    scratch: Scratch,
    miner: Option<TemplateMiner>,
    /// Per-topic formats that differ from the global one.
    topic_formats: HashMap<String, FormatOverride>,
    /// The format of the payload being parsed.
    format: FormatOverride,
}

impl Parser {
    pub fn new(cfg: ParserConfig) -> Result<Self, ParserConfigError> {
        if cfg.max_message_bytes == 0 {
            return Err(ParserConfigError::Invalid {
                field: "max_message_bytes",
                reason: "must be at least 1".to_owned(),
            });
        }
        if cfg.max_json_depth == 0 {
            return Err(ParserConfigError::Invalid {
                field: "max_json_depth",
                reason: "must be at least 1".to_owned(),
            });
        }
        let default_offset_secs =
            timestamp::parse_offset_setting(&cfg.default_timezone).map_err(|reason| {
                ParserConfigError::Invalid {
                    field: "default_timezone",
                    reason,
                }
            })?;
        let patterns = cfg
            .patterns
            .iter()
            .enumerate()
            .map(|(index, p)| custom::Pattern::compile(index, p))
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.dead_letter_topic.trim().is_empty() {
            return Err(ParserConfigError::Invalid {
                field: "dead_letter_topic",
                reason: "must not be empty".to_owned(),
            });
        }
        let topic_formats = cfg
            .topics
            .iter()
            .filter(|(_, t)| t.format != cfg.format)
            .map(|(name, t)| (name.clone(), t.format))
            .collect();
        let scratch = Scratch::new(&cfg);
        let miner = if cfg.templates.enabled {
            Some(TemplateMiner::new(&cfg.templates)?)
        } else {
            None
        };
        let format = cfg.format;
        Ok(Self {
            cfg,
            default_offset_secs,
            patterns,
            scratch,
            miner,
            topic_formats,
            format,
        })
    }

    /// A parser of the same configuration that does not mine templates,
    /// for parsing on another thread.
    pub fn fork(&self) -> Result<Self, ParserConfigError> {
        let mut p = Self::new(self.cfg.clone())?;
        p.miner = None;
        Ok(p)
    }

    /// The configuration the parser runs with.
    pub fn config(&self) -> &ParserConfig {
        &self.cfg
    }

    /// Like [`Parser::parse`], with the format configured for source topic
    /// `topic` (`[parse.topics.NAME]`, else the global `format`).
    pub fn parse_topic(
        &mut self,
        topic: &str,
        payload: Option<&[u8]>,
        ctx: &ParseContext,
        rec: &mut LogRecord,
    ) {
        if self.topic_formats.is_empty() {
            self.parse(payload, ctx, rec);
            return;
        }
        self.format = self
            .topic_formats
            .get(topic)
            .copied()
            .unwrap_or(self.cfg.format);
        self.parse(payload, ctx, rec);
        self.format = self.cfg.format;
    }

    /// The template miner, when template mining is on.
    pub fn miner(&self) -> Option<&TemplateMiner> {
        self.miner.as_ref()
    }

    /// Takes the template miner out of the parser, which then leaves the
    /// template of every record empty: ingest's parse threads parse without
    /// it, and the thread that reads their batches back in input order
    /// mines them whole ([`crate::template::mine_batch`]).
    pub fn take_miner(&mut self) -> Option<TemplateMiner> {
        self.miner.take()
    }

    /// Continues template mining from a restored miner (e.g. a checkpoint),
    /// so that template ids stay those of the run that saved it. Ignored
    /// when template mining is off.
    pub fn set_miner(&mut self, miner: TemplateMiner) {
        if self.miner.is_some() {
            self.miner = Some(miner);
        }
    }

    /// Parses one payload into `rec` (which is cleared first). Never fails:
    /// what cannot be parsed is kept as text or raw bytes with
    /// `rec.parse_issue` set.
    pub fn parse(&mut self, payload: Option<&[u8]>, ctx: &ParseContext, rec: &mut LogRecord) {
        self.scratch.recycle(rec);
        rec.clear();
        self.scratch.begin();
        let tc = TimeCtx {
            default_offset_secs: self.default_offset_secs,
            now_us: ctx.ingest_time_us,
        };
        let original = payload.unwrap_or_default();
        let mut bytes = original;
        if bytes.len() > self.cfg.max_message_bytes {
            bytes = truncate_at_char_boundary(bytes, self.cfg.max_message_bytes);
            Scratch::issue(rec, ParseIssue::Oversized);
        }
        let text: Cow<'_, str> = match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                Scratch::issue(rec, ParseIssue::InvalidUtf8);
                String::from_utf8_lossy(bytes)
            }
        };
        let line = trim_line(&text);
        if line.trim().is_empty() {
            Scratch::issue(rec, ParseIssue::Empty);
            rec.format = Format::Invalid;
        } else {
            self.parse_line(line, &tc, rec, true);
        }
        if self.scratch.dropped > 0 {
            let n = self.scratch.dropped.to_string();
            self.scratch.dropped = 0;
            rec.attributes
                .push((roles::ATTRIBUTES_DROPPED.to_owned(), n));
        }
        self.scratch.unique_keys(rec);
        if !self.scratch.have_time {
            match ctx.transport_time_us {
                Some(t) => {
                    rec.event_time_us = t;
                    rec.time_source = TimeSource::Kafka;
                }
                None => {
                    rec.event_time_us = ctx.ingest_time_us;
                    rec.time_source = TimeSource::Ingest;
                }
            }
        }
        if matches!(
            rec.parse_issue,
            Some(ParseIssue::InvalidUtf8 | ParseIssue::MalformedJson | ParseIssue::FieldType)
        ) {
            rec.raw = Some(original.to_vec());
        }
        if let Some(miner) = self.miner.as_mut() {
            if !rec.message.is_empty() {
                let (id, template) = miner.observe(&rec.message);
                rec.template_id = Some(id);
                rec.template = Some(template);
            }
        }
    }

    /// Parses one line (already UTF-8, trimmed of its line ending).
    /// `unwrap` allows one level of container unwrapping.
    fn parse_line(&mut self, line: &str, tc: &TimeCtx, rec: &mut LogRecord, unwrap: bool) {
        for p in &mut self.patterns {
            if p.apply(line, tc, &mut self.scratch, rec) {
                rec.format = Format::Custom;
                return;
            }
        }
        let s = line.trim_start();
        match self.format {
            FormatOverride::Auto => self.auto(s, tc, rec, unwrap),
            FormatOverride::Json => {
                if !self.json(s, tc, rec, unwrap) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            FormatOverride::Logfmt => logfmt::parse(s, tc, &mut self.scratch, rec),
            FormatOverride::Syslog => {
                if !syslog::parse(s, tc, &mut self.scratch, rec) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            FormatOverride::Access => {
                if !access::parse(s, tc, &mut self.scratch, rec) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            FormatOverride::Container => self.auto(s, tc, rec, unwrap),
            FormatOverride::Text => text::parse(s, tc, &mut self.scratch, rec),
        }
    }

    fn auto(&mut self, s: &str, tc: &TimeCtx, rec: &mut LogRecord, unwrap: bool) {
        let Some(&first) = s.as_bytes().first() else {
            Scratch::set_message(rec, s);
            return;
        };
        match first {
            b'{' => {
                if !self.json(s, tc, rec, unwrap) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            b'<' => {
                if !syslog::parse(s, tc, &mut self.scratch, rec) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            b'0'..=b'9' => {
                if unwrap {
                    if let Some(cri) = container::split_cri(s) {
                        self.unwrap_cri(cri, tc, rec);
                        return;
                    }
                }
                if !access::parse(s, tc, &mut self.scratch, rec) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
            _ => {
                if logfmt::looks_like(s) {
                    logfmt::parse(s, tc, &mut self.scratch, rec);
                } else if !access::parse(s, tc, &mut self.scratch, rec) {
                    text::parse(s, tc, &mut self.scratch, rec);
                }
            }
        }
    }

    /// JSON, with Docker json-file unwrapping. False (with `MalformedJson`
    /// recorded and `rec` reset) when the text is not a JSON object.
    fn json(&mut self, s: &str, tc: &TimeCtx, rec: &mut LogRecord, unwrap: bool) -> bool {
        match json::flatten(s, &mut self.scratch, rec, tc, unwrap) {
            json::Flattened::NotJson => {
                self.scratch.recycle(rec);
                self.scratch.kinds.clear();
                self.scratch.wrong_type = [false; Role::COUNT];
                Scratch::issue(rec, ParseIssue::MalformedJson);
                return false;
            }
            json::Flattened::Resolved => {}
            json::Flattened::Attributes => {
                if unwrap {
                    if let Some(inner) = container::take_docker(&mut self.scratch, rec) {
                        self.unwrap_docker(inner, tc, rec);
                        return true;
                    }
                }
                self.scratch.resolve(rec, tc);
            }
        }
        rec.format = Format::Json;
        true
    }

    fn unwrap_docker(&mut self, d: container::Docker, tc: &TimeCtx, rec: &mut LogRecord) {
        let inner = trim_line(&d.log);
        self.scratch.recycle(rec);
        self.scratch.kinds.clear();
        self.parse_line(inner, tc, rec, false);
        if !self.scratch.have_time {
            if let Some(us) = timestamp::parse_value(&d.time, tc) {
                self.scratch.set_time(rec, us, &d.time);
            }
        }
        self.scratch.attr(rec, "stream", &d.stream);
        for (k, v) in &d.extra {
            self.scratch.attr(rec, k, v);
        }
        rec.format = Format::Container;
        self.scratch.give_docker(d);
    }

    fn unwrap_cri(&mut self, c: container::Cri<'_>, tc: &TimeCtx, rec: &mut LogRecord) {
        self.parse_line(c.message, tc, rec, false);
        if !self.scratch.have_time {
            if let Some(us) = timestamp::parse_value(c.time, tc) {
                self.scratch.set_time(rec, us, c.time);
            }
        }
        self.scratch.attr(rec, "stream", c.stream);
        if c.partial {
            self.scratch.attr(rec, "partial", "true");
        }
        rec.format = Format::Container;
    }
}

/// Cuts `bytes` to at most `max` bytes without splitting a UTF-8 sequence
/// (when the input is UTF-8; otherwise it is lossy-decoded anyway).
fn truncate_at_char_boundary(bytes: &[u8], max: usize) -> &[u8] {
    let mut end = max.min(bytes.len());
    // Step back over at most three continuation bytes.
    let mut steps = 0;
    while end > 0 && steps < 4 && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
        steps += 1;
    }
    &bytes[..end]
}

/// Strips the line ending and a UTF-8 byte-order mark.
fn trim_line(s: &str) -> &str {
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    s.trim_end_matches(['\n', '\r'])
}
