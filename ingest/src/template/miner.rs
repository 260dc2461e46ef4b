//! The online miner: a Drain-like index (token count, first token) over
//! templates, with a similarity on literal words that refuses structurally
//! different tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::{TemplateConfig, TemplateConfigError};
use super::masking::{is_close, is_open, Masker, WILDCARD};

/// A mismatch in the second token counts this many times: the first words of
/// a message name the event (`Failed password` / `Failed none`), variables
/// tend to come later. Long lines can still absorb one.
const SECOND_TOKEN_WEIGHT: u32 = 3;

/// A template's LRU position is refreshed at most once per this many lines:
/// the LRU order is exact to within this many lines, and a hot template costs
/// no ordered-map update on most lines.
const LRU_TOUCH_INTERVAL: u64 = 64;

/// Hasher for keys that are already [`stable_hash`] outputs (bucket keys,
/// template ids).
#[derive(Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(super) type KeyMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Most bytes held by each of the exact-repeat caches (of masked lines, of
/// line shapes); a cache is cleared when full.
const CACHE_MAX_BYTES: usize = 8 << 20;
/// Masked lines, and lines, longer than this are not cached.
const CACHE_MAX_KEY: usize = 1024;

/// The templates of one (token count, first token) bucket.
#[derive(Default)]
struct Bucket {
    slots: Vec<u32>,
    /// Changes whenever a template of the bucket is created, generalized or
    /// evicted: a cached routing decision is valid only for the version it
    /// was made at.
    version: u64,
}

/// Where a masked line went, and the bucket version it went there at.
#[derive(Clone, Copy)]
struct Cached {
    slot: u32,
    version: u64,
}

/// A cached shape: its bytes, and where lines of it went (their bucket,
/// and the decision).
struct ShapeHit {
    shape: Box<[u8]>,
    key: u64,
    cached: Cached,
}

/// A line's shape and its fingerprint (a seeded hash of it).
#[derive(Clone, Copy)]
struct Shape<'a> {
    fp: u64,
    bytes: &'a [u8],
}

/// Slots of the table of shapes seen once lately.
const SEEN_SLOTS: usize = 4096;

/// Shape lookups per verdict on whether the shape cache pays.
const SHAPE_WINDOW: u32 = 1024;
/// Lines mined without the shape cache after a window in which fewer than
/// a quarter of the lookups hit: looking a shape up costs a fraction of
/// masking a line, so the cache pays from about that hit rate on.
const SHAPE_PAUSE: u64 = 32 * 1024;

/// Whether the shape cache pays on the stream at hand.
#[derive(Default)]
struct ShapeStats {
    lookups: u32,
    hits: u32,
    /// The tick until which lines skip the shape cache.
    paused_until: u64,
}

impl ShapeStats {
    fn active(&self, tick: u64) -> bool {
        tick >= self.paused_until
    }

    fn record(&mut self, hit: bool, tick: u64) {
        self.lookups += 1;
        self.hits += u32::from(hit);
        if self.lookups == SHAPE_WINDOW {
            if self.hits < SHAPE_WINDOW / 4 {
                self.paused_until = tick + SHAPE_PAUSE;
            }
            self.lookups = 0;
            self.hits = 0;
        }
    }
}

/// A line's shape: the line with every ASCII digit read as `0`.
///
/// Masking looks at a digit's class (digit, hex digit, word byte), never at
/// its value, so two lines of one shape mask to the same tokens wherever
/// the masked line kept no digit: every digit went into a wildcard, and
/// everything else was copied from the same bytes. Such lines route alike.
fn shape_of(message: &str, out: &mut Vec<u8>) {
    out.clear();
    out.resize(message.len(), 0);
    // Indexed over equal lengths, so that it compiles to vector code.
    for (o, &b) in out.iter_mut().zip(message.as_bytes()) {
        *o = if b.wrapping_sub(b'0') < 10 { b'0' } else { b };
    }
}

/// Version of [`MinerSnapshot`]'s layout (2: generalized positions keep
/// their frame).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// Version of the mining rules: how lines are masked and when a line joins a
/// template. Raised whenever a release mines some line differently (another
/// template, or another template text) under the same settings, so that a
/// snapshot taken by an older build is not mined on with rules that would
/// not have produced it. `testdata/mined.tsv` records what this version
/// mines from a fixed corpus, and the tests fail when that changes while
/// the version does not.
pub const MINING_RULES_VERSION: u32 = 5;

/// Stable 64-bit FNV-1a: the template id function. Fixed forever: changing it
/// changes every id in every archive.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One position of a template.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A (masked) token that every line of the template has here.
    Lit(Box<str>),
    /// A position seen to vary, as its frame: the punctuation and `key=`
    /// that every value here has around the variable (`user=<*>`,
    /// `(<*>)`, `<*>,`, or plain `<*>`).
    Var(Box<str>),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Self::Lit(t) | Self::Var(t) => t,
        }
    }
}

struct Cluster {
    id: u64,
    tokens: Vec<Token>,
    template: Arc<str>,
    count: u64,
    last_used: u64,
    bucket: u64,
    wildcards: usize,
}

impl Cluster {
    fn render(tokens: &[Token]) -> Arc<str> {
        let mut s = String::new();
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(t.text());
        }
        Arc::from(s)
    }
}

/// One position of a template in a [`TemplateSnapshot`]: a literal token as
/// a JSON string, a generalized position as `{"var": FRAME}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SnapshotToken {
    Literal(String),
    Variable {
        var: String,
    },
    /// Format 1's generalized position (`null`), read only so that such a
    /// snapshot parses and is refused for its version.
    Unframed,
}

/// One template in a [`MinerSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSnapshot {
    pub id: u64,
    pub tokens: Vec<SnapshotToken>,
    pub count: u64,
    pub last_used: u64,
}

/// The persisted state of a [`TemplateMiner`] (serde; JSON in practice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerSnapshot {
    pub format_version: u32,
    /// [`MINING_RULES_VERSION`] of the build that mined the state; 0 for
    /// snapshots from builds before the version was recorded.
    #[serde(default)]
    pub rules_version: u32,
    /// The configuration the state was mined with.
    pub config: TemplateConfig,
    /// The miner's logical clock (lines observed), for LRU order.
    pub tick: u64,
    /// Templates, least recently used first.
    pub templates: Vec<TemplateSnapshot>,
}

impl RestoreError {
    /// True when the snapshot is sound but was mined under another layout,
    /// other rules or other settings: mining afresh is the right answer
    /// (after an upgrade or a deliberate change of `[parse.templates]`),
    /// not a fault to stop for.
    pub fn mined_differently(&self) -> bool {
        matches!(
            self,
            Self::Version { .. } | Self::Rules { .. } | Self::ConfigMismatch { .. }
        )
    }
}

impl MinerSnapshot {
    pub fn to_json(&self) -> Result<String, RestoreError> {
        serde_json::to_string(self).map_err(RestoreError::Json)
    }

    pub fn from_json(s: &str) -> Result<Self, RestoreError> {
        serde_json::from_str(s).map_err(RestoreError::Json)
    }
}

/// Why a snapshot could not be restored. None of these go away on retry: the
/// caller starts with an empty miner (ids of new templates stay the same,
/// see the module docs) or fixes the configuration.
/// [`RestoreError::mined_differently`] tells the snapshots that are sound
/// but were mined under other rules or settings from broken ones.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] TemplateConfigError),
    #[error("template snapshot: format version {found}, expected {SNAPSHOT_FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("template snapshot: mined with a different `template.{field}`; mining it on would change ids")]
    ConfigMismatch { field: &'static str },
    #[error("template snapshot: mined with rules version {found}, this build mines with version {MINING_RULES_VERSION}")]
    Rules { found: u32 },
    #[error("template snapshot: {0}")]
    Invalid(String),
    #[error("template snapshot: json: {0}")]
    Json(#[source] serde_json::Error),
}

/// Online log-template miner. One per consumer thread; not shared.
pub struct TemplateMiner {
    cfg: TemplateConfig,
    masker: Masker,
    slots: Vec<Option<Cluster>>,
    free: Vec<u32>,
    buckets: KeyMap<Bucket>,
    /// Source of bucket versions (never repeats).
    versions: u64,
    /// Exact repeats of a masked line: scoring it again against an
    /// unchanged bucket would pick the same template, so it is skipped.
    /// Not part of the state (snapshots): it changes no decision.
    /// Keyed by text that comes from the logs: a hasher seeded at random
    /// (ahash, as Arrow uses), much faster than SipHash on short keys.
    cache: HashMap<Box<str>, Cached, ahash::RandomState>,
    cache_bytes: usize,
    /// Exact repeats of a line's shape ([`shape_of`]) whose masked line
    /// kept no digit: routed without masking the line again. Lines that
    /// differ only in their numbers (most repeats of a template) hit here.
    /// Keyed by fingerprint; an entry whose bytes differ is a miss.
    shapes: KeyMap<ShapeHit>,
    shapes_bytes: usize,
    /// Fingerprints of shapes seen lately, by `fp % SEEN_SLOTS`: a shape is
    /// cached on its second sighting, so a stream whose every line has a
    /// shape of its own (random ids with letters) allocates nothing.
    seen: Box<[u64]>,
    shape_hasher: ahash::RandomState,
    shape_stats: ShapeStats,
    shape: Vec<u8>,
    /// last_used tick -> slot; the first entry is the eviction victim.
    lru: BTreeMap<u64, u32>,
    tick: u64,
    live: usize,
    evictions: u64,
    buf: String,
    spans: Vec<(u32, u32)>,
}

impl std::fmt::Debug for TemplateMiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateMiner")
            .field("templates", &self.live)
            .field("observed", &self.tick)
            .field("evictions", &self.evictions)
            .finish()
    }
}

/// Leading opening punctuation of a token (a leading `<*>` is not punctuation).
fn lead(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_open(b[i]) && !s[i..].starts_with(WILDCARD) {
        i += 1;
    }
    &s[..i]
}

/// Trailing closing punctuation of a token.
fn trail(s: &str) -> &str {
    let b = s.as_bytes();
    let mut e = b.len();
    while e > 0 && is_close(b[e - 1]) && !s[..e].ends_with(WILDCARD) {
        e -= 1;
    }
    &s[e..]
}

/// Whether `p` is `w` (a word of three or more letters) with `s` or `es`.
fn plural_of(p: &str, w: &str) -> bool {
    w.len() >= 3
        && w.bytes().all(|c| c.is_ascii_alphabetic())
        && p.strip_prefix(w).is_some_and(|s| s == "s" || s == "es")
}

/// A word of three or more letters, the first upper case, the rest lower.
fn capitalized(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() >= 3 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_lowercase)
}

/// The frame of a position generalized from the literal `t`: its
/// punctuation and `key=` around the variable.
fn frame_of(t: &str) -> Box<str> {
    let head = match t.find('=') {
        Some(a) => &t[..=a],
        None => lead(t),
    };
    format!("{head}{WILDCARD}{}", trail(t)).into_boxed_str()
}

/// Whether two different tokens can be values of one variable: same
/// surrounding punctuation, same `key=`, and not two wordings of one place
/// (two capitalized words, or a word and its plural). A generalized
/// position's frame ([`frame_of`]) is held to the same test: its word holds
/// the wildcard, so only the punctuation and `key=` count.
pub(super) fn compatible(t: &str, m: &str) -> bool {
    let (lt, tt) = (lead(t), trail(t));
    if lt != lead(m) || tt != trail(m) {
        return false;
    }
    // The word inside the punctuation (none for a token of punctuation
    // alone, which is both lead and trail).
    let (ct, cm) = (
        t.get(lt.len()..t.len().saturating_sub(tt.len())),
        m.get(lt.len()..m.len().saturating_sub(tt.len())),
    );
    if let (Some(ct), Some(cm)) = (ct, cm) {
        // `VM Started` and `VM Paused`: a capitalized word inside a message
        // names the event (a state, an action) far more often than it is a
        // value, which are numbers, ids, names in lower case. Two of them
        // in one place are two events.
        if capitalized(ct) && capitalized(cm) {
            return false;
        }
        // `failure;` and `failures;`: a word and its plural are two
        // wordings, not two values.
        if plural_of(ct, cm) || plural_of(cm, ct) {
            return false;
        }
    }
    match (t.find('='), m.find('=')) {
        (None, None) => true,
        // An empty value (`rhost=`) is another event than a present one.
        (Some(a), Some(b)) => t[..a] == m[..b] && t[a + 1..].is_empty() == m[b + 1..].is_empty(),
        _ => false,
    }
}

impl TemplateMiner {
    pub fn new(cfg: &TemplateConfig) -> Result<Self, TemplateConfigError> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            masker: Masker::new(cfg),
            slots: Vec::new(),
            free: Vec::new(),
            buckets: KeyMap::default(),
            versions: 0,
            cache: HashMap::default(),
            cache_bytes: 0,
            shapes: KeyMap::default(),
            shapes_bytes: 0,
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            shape_hasher: ahash::RandomState::new(),
            shape_stats: ShapeStats::default(),
            shape: Vec::with_capacity(256),
            lru: BTreeMap::new(),
            tick: 0,
            live: 0,
            evictions: 0,
            buf: String::with_capacity(256),
            spans: Vec::with_capacity(32),
        })
    }

    /// The configuration the miner runs with.
    pub fn config(&self) -> &TemplateConfig {
        &self.cfg
    }

    /// Number of templates held.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Templates evicted so far to respect `max_templates`.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Lines observed so far.
    pub fn observed(&self) -> u64 {
        self.tick
    }

    /// (id, template, lines) of every template held, in no particular order.
    pub fn templates(&self) -> impl Iterator<Item = (u64, &str, u64)> + '_ {
        self.slots
            .iter()
            .flatten()
            .map(|c| (c.id, &*c.template, c.count))
    }

    /// Assigns `message` a template, creating or generalizing one if needed,
    /// and returns the template's id and its current text. The id is final:
    /// it never changes for the lines already given it.
    pub fn observe(&mut self, message: &str) -> (u64, Arc<str>) {
        // A multi-line message (a line and its stack trace) takes the
        // template of its first line: the frames below it vary with the
        // code path, the line says what happened.
        let message = match memchr::memchr(b'\n', message.as_bytes()) {
            Some(at) => message[..at].strip_suffix('\r').unwrap_or(&message[..at]),
            None => message,
        };
        self.tick += 1;
        let mut shape = std::mem::take(&mut self.shape);
        let shaped = message.len() <= CACHE_MAX_KEY && self.shape_stats.active(self.tick);
        let mut found = None;
        if shaped {
            shape_of(message, &mut shape);
            let fp = self.shape_hasher.hash_one(shape.as_slice());
            let hit = self
                .shapes
                .get(&fp)
                .filter(|h| *h.shape == *shape)
                .map(|h| (h.key, h.cached));
            let hit = hit.and_then(|(key, c)| self.reuse(key, c));
            self.shape_stats.record(hit.is_some(), self.tick);
            if let Some(hit) = hit {
                self.shape = shape;
                return hit;
            }
            found = Some(fp);
        }
        let shape_arg = found.map(|fp| Shape { fp, bytes: &shape });
        let result = self.mine(message, shape_arg);
        self.shape = shape;
        result
    }

    /// [`observe`](Self::observe) without the shape cache: the reference the
    /// tests hold it to.
    #[cfg(test)]
    pub(super) fn observe_unshaped(&mut self, message: &str) -> (u64, Arc<str>) {
        self.tick += 1;
        self.mine(message, None)
    }

    /// Line shapes whose routing is cached.
    #[cfg(test)]
    pub(super) fn shapes_cached(&self) -> usize {
        self.shapes.len()
    }

    /// [`observe`](Self::observe) past the shape cache: masks the line and
    /// routes it; remembers its shape (if given) when the decision holds for
    /// every line of that shape.
    fn mine(&mut self, message: &str, shape: Option<Shape<'_>>) -> (u64, Arc<str>) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut spans = std::mem::take(&mut self.spans);
        self.masker
            .tokenize(message, self.cfg.max_tokens, &mut buf, &mut spans);
        let tok = |i: usize| {
            let (a, b) = spans[i];
            &buf[a as usize..b as usize]
        };
        let n = spans.len();
        let key = bucket_key(n, if n > 0 { tok(0) } else { "" });

        if let Some(c) = self.cache.get(buf.as_str()).copied() {
            if let Some(hit) = self.reuse(key, c) {
                if let Some(shape) = shape {
                    self.remember_shape(shape, key, c.slot, &buf);
                }
                self.buf = buf;
                self.spans = spans;
                return hit;
            }
        }

        let mut best: Option<(u32, f64, usize, u64)> = None;
        if let Some(bucket) = self.buckets.get(&key) {
            for &slot in &bucket.slots {
                let Some(c) = self.slots[slot as usize].as_ref() else {
                    continue;
                };
                let Some(score) = self.score(c, n, &tok) else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some((_, s, w, id)) => {
                        score > s || (score == s && (c.wildcards, c.id) < (w, id))
                    }
                };
                if better {
                    best = Some((slot, score, c.wildcards, c.id));
                }
            }
        }

        let (result, slot, stable) = match best {
            Some((slot, ..)) => {
                let (r, changed) = self.update(slot, n, &tok);
                (r, slot, !changed)
            }
            None => {
                let (r, slot) = self.insert(key, n, &tok);
                (r, slot, true)
            }
        };
        // A line that joined a template without changing it, or founded one,
        // would go to the same template again while its bucket is unchanged.
        // (A line that generalized its template is not cached: with more
        // wildcards the template may now lose a tie to another.)
        if stable {
            self.remember(key, &buf, slot);
            if let Some(shape) = shape {
                self.remember_shape(shape, key, slot, &buf);
            }
        }
        self.buf = buf;
        self.spans = spans;
        result
    }

    /// Weighted share of the template's literal words that the line matches,
    /// or `None` if the line cannot belong to it.
    fn score<'a>(&self, c: &Cluster, n: usize, tok: &impl Fn(usize) -> &'a str) -> Option<f64> {
        if c.tokens.len() != n {
            return None;
        }
        let (mut total, mut matched) = (0u32, 0u32);
        for (i, t) in c.tokens.iter().enumerate() {
            let m = tok(i);
            let t = match t {
                Token::Lit(t) => &**t,
                Token::Var(frame) => {
                    if compatible(frame, m) {
                        continue;
                    }
                    return None;
                }
            };
            let w = if i == 1 { SECOND_TOKEN_WEIGHT } else { 1 };
            if t == m {
                if t != WILDCARD {
                    total += w;
                    matched += w;
                }
            } else {
                if i == 0 || !compatible(t, m) {
                    return None;
                }
                total += w;
            }
        }
        let s = if total == 0 {
            1.0
        } else {
            f64::from(matched) / f64::from(total)
        };
        (s >= self.cfg.similarity_threshold).then_some(s)
    }

    /// The template of a cached routing decision into bucket `key`, if the
    /// bucket has not changed since; counts the line to it.
    fn reuse(&mut self, key: u64, hit: Cached) -> Option<(u64, Arc<str>)> {
        let version = self.buckets.get(&key)?.version;
        if hit.version != version {
            return None;
        }
        self.touch(hit.slot);
        let c = self.slots[hit.slot as usize].as_mut()?;
        c.count += 1;
        Some((c.id, c.template.clone()))
    }

    fn remember(&mut self, key: u64, line: &str, slot: u32) {
        if line.len() > CACHE_MAX_KEY {
            return;
        }
        let Some(version) = self.buckets.get(&key).map(|b| b.version) else {
            return;
        };
        if self.cache_bytes + line.len() > CACHE_MAX_BYTES {
            self.cache.clear();
            self.cache_bytes = 0;
        }
        let entry = Cached { slot, version };
        match self.cache.get_mut(line) {
            Some(e) => *e = entry,
            None => {
                self.cache_bytes += line.len() + 32;
                self.cache.insert(Box::from(line), entry);
            }
        }
    }

    /// Caches the decision for every line of `shape`, if `masked` (the
    /// line as masked) kept no digit (see [`shape_of`]) and the shape was
    /// seen lately.
    fn remember_shape(&mut self, shape: Shape<'_>, key: u64, slot: u32, masked: &str) {
        if masked.bytes().any(|b| b.is_ascii_digit()) {
            return;
        }
        let Some(version) = self.buckets.get(&key).map(|b| b.version) else {
            return;
        };
        let cached = Cached { slot, version };
        if let Some(e) = self.shapes.get_mut(&shape.fp) {
            if *e.shape == *shape.bytes {
                e.key = key;
                e.cached = cached;
                return;
            }
        }
        let seen = &mut self.seen[(shape.fp % SEEN_SLOTS as u64) as usize];
        if *seen != shape.fp {
            *seen = shape.fp;
            return;
        }
        if self.shapes_bytes + shape.bytes.len() > CACHE_MAX_BYTES {
            self.shapes.clear();
            self.shapes_bytes = 0;
        }
        let entry = ShapeHit {
            shape: Box::from(shape.bytes),
            key,
            cached,
        };
        self.shapes_bytes += shape.bytes.len() + 48;
        if let Some(old) = self.shapes.insert(shape.fp, entry) {
            self.shapes_bytes -= old.shape.len() + 48;
        }
    }

    /// Invalidates the cached routing decisions of bucket `key`.
    fn bump(&mut self, key: u64) {
        self.versions += 1;
        if let Some(b) = self.buckets.get_mut(&key) {
            b.version = self.versions;
        }
    }

    fn touch(&mut self, slot: u32) {
        let tick = self.tick;
        if let Some(c) = self.slots[slot as usize].as_mut() {
            if tick - c.last_used < LRU_TOUCH_INTERVAL {
                return;
            }
            self.lru.remove(&c.last_used);
            c.last_used = tick;
            self.lru.insert(tick, slot);
        }
    }

    /// Adds a line to a template; also says whether the template changed.
    fn update<'a>(
        &mut self,
        slot: u32,
        n: usize,
        tok: &impl Fn(usize) -> &'a str,
    ) -> ((u64, Arc<str>), bool) {
        self.touch(slot);
        let Some(c) = self.slots[slot as usize].as_mut() else {
            unreachable!("best slot is live");
        };
        c.count += 1;
        let mut changed = false;
        for (i, t) in c.tokens.iter_mut().enumerate().take(n) {
            if let Token::Lit(lit) = t {
                if **lit != *tok(i) {
                    *t = Token::Var(frame_of(lit));
                    c.wildcards += 1;
                    changed = true;
                }
            }
        }
        let result = if changed {
            c.template = Cluster::render(&c.tokens);
            let r = (c.id, c.template.clone());
            let bucket = c.bucket;
            self.bump(bucket);
            r
        } else {
            (c.id, c.template.clone())
        };
        (result, changed)
    }

    /// Founds a template; also returns its slot.
    fn insert<'a>(
        &mut self,
        key: u64,
        n: usize,
        tok: &impl Fn(usize) -> &'a str,
    ) -> ((u64, Arc<str>), u32) {
        let tokens: Vec<Token> = (0..n).map(|i| Token::Lit(Box::from(tok(i)))).collect();
        let template = Cluster::render(&tokens);
        let id = stable_hash(template.as_bytes());
        let cluster = Cluster {
            id,
            tokens,
            template: template.clone(),
            count: 1,
            last_used: self.tick,
            bucket: key,
            wildcards: 0,
        };
        let slot = self.place(cluster);
        self.enforce_cap();
        ((id, template), slot)
    }

    fn place(&mut self, c: Cluster) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.buckets.entry(c.bucket).or_default().slots.push(slot);
        self.bump(c.bucket);
        self.lru.insert(c.last_used, slot);
        self.slots[slot as usize] = Some(c);
        self.live += 1;
        slot
    }

    fn enforce_cap(&mut self) {
        while self.live > self.cfg.max_templates {
            let Some((_, slot)) = self.lru.pop_first() else {
                break;
            };
            let Some(c) = self.slots[slot as usize].take() else {
                continue;
            };
            self.bump(c.bucket);
            if let Some(b) = self.buckets.get_mut(&c.bucket) {
                if let Some(p) = b.slots.iter().position(|&s| s == slot) {
                    b.slots.swap_remove(p);
                }
                if b.slots.is_empty() {
                    self.buckets.remove(&c.bucket);
                }
            }
            self.free.push(slot);
            self.live -= 1;
            self.evictions += 1;
        }
    }

    /// The miner's state, to persist and later [`TemplateMiner::restore`].
    pub fn snapshot(&self) -> MinerSnapshot {
        let templates = self
            .lru
            .values()
            .filter_map(|&slot| self.slots[slot as usize].as_ref())
            .map(|c| TemplateSnapshot {
                id: c.id,
                tokens: c
                    .tokens
                    .iter()
                    .map(|t| match t {
                        Token::Lit(t) => SnapshotToken::Literal(t.to_string()),
                        Token::Var(f) => SnapshotToken::Variable { var: f.to_string() },
                    })
                    .collect(),
                count: c.count,
                last_used: c.last_used,
            })
            .collect();
        MinerSnapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            rules_version: MINING_RULES_VERSION,
            config: self.cfg.clone(),
            tick: self.tick,
            templates,
        }
    }

    /// A miner that continues where the snapshot's left off, with `cfg`.
    /// The snapshot must come from a build with the same
    /// [`MINING_RULES_VERSION`], and settings that change how lines are
    /// mined must equal the snapshot's; `max_templates` may differ (a
    /// smaller cap evicts at once).
    pub fn restore(cfg: &TemplateConfig, snap: MinerSnapshot) -> Result<Self, RestoreError> {
        if snap.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(RestoreError::Version {
                found: snap.format_version,
            });
        }
        if snap.rules_version != MINING_RULES_VERSION {
            return Err(RestoreError::Rules {
                found: snap.rules_version,
            });
        }
        let mut miner = Self::new(cfg)?;
        let old = &snap.config;
        let mut masks_a = old.masks.clone();
        let mut masks_b = cfg.masks.clone();
        masks_a.sort_by_key(|m| *m as u8);
        masks_a.dedup();
        masks_b.sort_by_key(|m| *m as u8);
        masks_b.dedup();
        let mismatch = if masks_a != masks_b {
            Some("masks")
        } else if old.similarity_threshold != cfg.similarity_threshold {
            Some("similarity_threshold")
        } else if old.max_tokens != cfg.max_tokens {
            Some("max_tokens")
        } else if old.max_token_bytes != cfg.max_token_bytes {
            Some("max_token_bytes")
        } else {
            None
        };
        if let Some(field) = mismatch {
            return Err(RestoreError::ConfigMismatch { field });
        }
        miner.tick = snap.tick;
        for t in snap.templates {
            let n = t.tokens.len();
            if n > cfg.max_tokens || t.last_used > snap.tick {
                return Err(RestoreError::Invalid(format!(
                    "template {:016x} does not fit the configuration",
                    t.id
                )));
            }
            if miner.lru.contains_key(&t.last_used) {
                return Err(RestoreError::Invalid(format!(
                    "two templates last used at tick {}",
                    t.last_used
                )));
            }
            let mut tokens = Vec::with_capacity(n);
            for (i, x) in t.tokens.into_iter().enumerate() {
                tokens.push(match x {
                    SnapshotToken::Literal(s) => Token::Lit(s.into()),
                    SnapshotToken::Variable { var } if i > 0 && var.contains(WILDCARD) => {
                        Token::Var(var.into())
                    }
                    SnapshotToken::Variable { .. } | SnapshotToken::Unframed => {
                        return Err(RestoreError::Invalid(format!(
                            "template {:016x}: a generalized first token, or a variable without its {WILDCARD}",
                            t.id
                        )))
                    }
                });
            }
            let first = match tokens.first() {
                Some(Token::Lit(s)) => &**s,
                _ => "",
            };
            let bucket = bucket_key(n, first);
            let wildcards = tokens.iter().filter(|x| matches!(x, Token::Var(_))).count();
            let template = Cluster::render(&tokens);
            miner.place(Cluster {
                id: t.id,
                tokens,
                template,
                count: t.count,
                last_used: t.last_used,
                bucket,
                wildcards,
            });
        }
        miner.enforce_cap();
        Ok(miner)
    }
}

fn bucket_key(n: usize, first: &str) -> u64 {
    let mut h = stable_hash(first.as_bytes());
    h ^= (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h
}

#[cfg(test)]
mod shape_stats_tests {
    use super::*;

    #[test]
    fn the_shape_cache_pauses_after_a_window_of_misses_and_comes_back() {
        let mut s = ShapeStats::default();
        let mut tick = 0;
        // A window a quarter of whose lookups hit keeps the cache on.
        for i in 0..SHAPE_WINDOW {
            tick += 1;
            s.record(i % 4 == 0, tick);
        }
        assert!(s.active(tick + 1));
        // A window with fewer hits sets it aside for SHAPE_PAUSE lines.
        for i in 0..SHAPE_WINDOW {
            tick += 1;
            s.record(i % 5 == 0, tick);
        }
        assert!(!s.active(tick + 1));
        assert!(!s.active(tick + SHAPE_PAUSE - 1));
        assert!(s.active(tick + SHAPE_PAUSE));
    }
}
