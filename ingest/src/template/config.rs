//! Settings of the template miner (the `[template]` table of the
//! configuration file).

use serde::{Deserialize, Serialize};

/// Default for [`TemplateConfig::enabled`].
pub const DEFAULT_ENABLED: bool = true;
/// Default for [`TemplateConfig::max_templates`]: enough for the few hundred
/// to few thousand templates a real application emits, small enough (a few
/// MiB) that a hostile stream of unique lines cannot hurt.
pub const DEFAULT_MAX_TEMPLATES: usize = 10_000;
/// Default for [`TemplateConfig::similarity_threshold`]. A line joins a
/// template when at least this (weighted) share of the template's literal
/// words match. 0.75 lets `session closed for user <*>` absorb one differing
/// word in five, and keeps `cupsd startup succeeded` apart from
/// `cupsd shutdown succeeded`.
pub const DEFAULT_SIMILARITY_THRESHOLD: f64 = 0.75;
/// Default for [`TemplateConfig::max_tokens`]: longer lines keep their first
/// `max_tokens - 1` tokens and fold the rest into one trailing `<*>`.
pub const DEFAULT_MAX_TOKENS: usize = 128;
/// Default for [`TemplateConfig::max_token_bytes`]: a longer token is data
/// (a blob, a stack, an encoded payload) and is masked whole.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 128;

/// A class of variable text that is replaced by `<*>` before mining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Decimal numbers, signed or not, with units (`16K`, `200ms`, and a
    /// time unit written apart: `200 ms`, `<1 sec`), version
    /// and dotted/colon-separated numbers (`2.6.5-1`, `07:07:00`), release
    /// versions (`v1.2.3`, `1.2.4-rc1`), digit runs glued to words
    /// (`blk_-123`, `CPU#0`, `part-00590`), and the random parts of
    /// generated names, digits or not (`web-7d9f8b6c5d-xkcvb`).
    Numbers,
    /// IPv4 and IPv6 addresses, with or without a `:port`.
    Ip,
    /// UUIDs (`8-4-4-4-12` hex digits).
    Uuid,
    /// Hex words that contain a digit (`0x1f`, `ffff3000`, hashes).
    Hex,
    /// Absolute or relative file paths (`/var/log/x`, `./a/b`, `C:\x`).
    Path,
    /// URLs (`scheme://...`).
    Url,
    /// E-mail addresses.
    Email,
    /// Month and weekday names of timestamps (`Sun`, `Jul`); the numeric
    /// parts of dates and durations are covered by `numbers`.
    Time,
    /// Host names: three or more dotted labels ending in a top-level domain.
    Hostname,
    /// Quoted strings (`"..."`, `'...'`), even with spaces inside.
    Quoted,
}

impl MaskKind {
    /// Every mask, the default set.
    pub const ALL: [MaskKind; 10] = [
        MaskKind::Numbers,
        MaskKind::Ip,
        MaskKind::Uuid,
        MaskKind::Hex,
        MaskKind::Path,
        MaskKind::Url,
        MaskKind::Email,
        MaskKind::Time,
        MaskKind::Hostname,
        MaskKind::Quoted,
    ];
}

/// Template-miner settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateConfig {
    /// Whether records get a `template_id` at all.
    pub enabled: bool,
    /// Memory cap: at most this many templates are kept; beyond it the least
    /// recently used one is evicted.
    pub max_templates: usize,
    /// The classes of variables masked before mining (default: all).
    pub masks: Vec<MaskKind>,
    /// Minimum weighted share of matching literal words for a line to join an
    /// existing template, in `(0, 1]`.
    pub similarity_threshold: f64,
    /// Lines with more whitespace-separated tokens are folded after this many.
    pub max_tokens: usize,
    /// Tokens longer than this many bytes are masked whole.
    pub max_token_bytes: usize,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_ENABLED,
            max_templates: DEFAULT_MAX_TEMPLATES,
            masks: MaskKind::ALL.to_vec(),
            similarity_threshold: DEFAULT_SIMILARITY_THRESHOLD,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Invalid template-miner settings; names the offending field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateConfigError {
    #[error("templates.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl TemplateConfig {
    /// Checks the settings; called by [`super::TemplateMiner::new`].
    pub fn validate(&self) -> Result<(), TemplateConfigError> {
        let invalid = |field, reason: &str| {
            Err(TemplateConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_templates == 0 {
            return invalid("max_templates", "must be at least 1");
        }
        if !(self.similarity_threshold > 0.0 && self.similarity_threshold <= 1.0) {
            return invalid("similarity_threshold", "must be in (0, 1]");
        }
        if self.max_tokens < 2 {
            return invalid("max_tokens", "must be at least 2");
        }
        if self.max_token_bytes < 8 {
            return invalid("max_token_bytes", "must be at least 8");
        }
        Ok(())
    }
}
