//! Online log-template mining: every message gets, as it arrives, the id and
//! text of its template (`Failed password for <*> from <*> port <*> ssh<*>`).
//!
//! # How a line is mined
//! 1. [`masking`]: the line is split on whitespace and every token is masked
//!    by shape (numbers with units, IPs, UUIDs, hex, paths, URLs, e-mails,
//!    host names, month/day names, quoted strings; `key=value` keeps the key
//!    and masks the value). The masks aim to be right the first time, since a
//!    line's id cannot be revised later.
//! 2. [`miner`]: templates are indexed by (token count, first masked token).
//!    A line joins the best template of its bucket when the weighted share of
//!    the template's literal words it matches reaches
//!    [`TemplateConfig::similarity_threshold`]; a mismatch in the second
//!    token weighs triple, and a token may only stand for a variable if it
//!    has the same surrounding punctuation and `key=` as the template's (so
//!    `by (uid=0)` and `by LOGIN(uid=0)` stay apart). Differing positions of
//!    the joined template become variables that keep that frame
//!    (`user=<*>`, `(<*>)`), which later lines must fit in turn.
//!
//! # Template ids
//! A template's id is [`stable_hash`] (64-bit FNV-1a, no seed) of its text at
//! the moment it was *created*, i.e. the masked first line that founded it.
//! It never changes afterwards: when the template later generalizes (a token
//! becomes `<*>`), its text changes but its id does not, so every line of a
//! template carries one id and old ids stay valid for as long as the
//! template lives. Consequences:
//! - Two processes that see the same stream (ingest and detect) assign the
//!   same ids: mining is deterministic (no randomness, no hash-map iteration
//!   order in any decision; ties between templates break on fewer
//!   wildcards, then the smaller id).
//! - A process that starts mid-stream may found a template on a different
//!   first line and so give it a different id; [`TemplateMiner::snapshot`] /
//!   [`TemplateMiner::restore`] (serde, JSON) carry the state across a
//!   restart so that it resumes with the same templates, ids, counts and LRU
//!   order, and continues exactly as if it had never stopped. A snapshot
//!   records [`MINING_RULES_VERSION`] and the settings it was mined with;
//!   a build with other rules, or other settings, does not restore it (the
//!   caller mines afresh: templates whose founding line masks alike keep
//!   their ids).
//! - A template evicted by the `max_templates` cap and seen again is
//!   recreated; it gets the same id when the line that refounds it masks to
//!   the same text as the original founder (the common case for templates
//!   whose variables are masked), otherwise a new one.
//! - Why not hash the *current* text: the first lines of every template
//!   would then carry an id that later lines do not, which splits every
//!   group whose variables are not all masked on the first line.
//!
//! # Bounds
//! At most [`TemplateConfig::max_templates`] templates (least recently used
//! evicted), each of at most `max_tokens` tokens of at most
//! `max_token_bytes` bytes; `observe` allocates only when it creates or
//! generalizes a template, or caches a routing decision (two caches, of
//! masked lines and of line shapes, at most 8 MiB each, emptied when full).

mod batch;
mod config;
pub mod eval;
pub mod masking;
mod miner;

pub use batch::mine_batch;
pub use config::{
    MaskKind, TemplateConfig, TemplateConfigError, DEFAULT_ENABLED, DEFAULT_MAX_TEMPLATES,
    DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_SIMILARITY_THRESHOLD,
};
pub use miner::{
    stable_hash, MinerSnapshot, RestoreError, SnapshotToken, TemplateMiner, TemplateSnapshot,
    MINING_RULES_VERSION, SNAPSHOT_FORMAT_VERSION,
};

#[cfg(test)]
mod tests;
