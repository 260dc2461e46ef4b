//! The Kafka source of ingest: a consumer-group member that parses messages
//! into segments, hands closed segments to the [`Writer`], and commits a
//! segment's `next_offset` only after the writer reports it durable.
//!
//! Threads: the poll loop runs on the caller's (dedicated, blocking) thread
//! with a [`BaseConsumer`]; rebalance callbacks run inside `poll()` on that
//! same thread. The poll thread copies messages into chunks that a
//! [`ParsePool`] parses on its own threads, and mines each parsed chunk as
//! it reads it back in order; in strict mode it also dead-letters the
//! chunk's unparseable messages then.
//! The sink runs on the writer thread. Consumption pauses while
//! the writer queue is full and polling continues (heartbeats, rebalances),
//! so `max.poll.interval.ms` is never exceeded because of a slow sink.
//!
//! Revocation: the open segments of revoked partitions are closed and written
//! and, when durable within `revoke_timeout`, committed before the callback
//! returns; whatever is not durable by then is dropped uncommitted, and the
//! next owner replays it (after [`Sink::recover`](crate::sink::Sink::recover)
//! removed any file written for it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::dlq::{DeadLetter, DeadLetters, Gate};
use crate::metrics::{IngestMetrics, KafkaClientMetrics, TopicCounters};
use crate::options::{require, InvalidOption};
use crate::parse::{ParseMode, Parser};
use crate::pool::{Incoming, ParsePool, Parsed, PoolError};
use crate::segment::Segmenter;
use crate::sink::Segment;
use crate::template::{mine_batch, TemplateMiner};
use crate::writer::{Ack, Job, Writer};

/// Longest single wait for the writer when its queue is full.
const BACKLOG_WAIT: Duration = Duration::from_millis(100);
/// Longest a message waits in the parse pool's open chunk before the chunk
/// is sent to the workers as it is.
const CHUNK_WAIT: Duration = Duration::from_millis(50);
/// A backlog older than this pauses consumption.
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// librdkafka `queued.min.messages` for consumers.
const PREFETCH_MESSAGES: u32 = 1_000_000;

/// librdkafka `fetch.queue.backoff.ms` for consumers: how long a partition's
/// next fetch waits while the consumer's prefetch queue is over
/// `queued.max.messages.kbytes` (64 MiB). librdkafka's default, 1,000 ms,
/// leaves the poll loop starved for up to a second each time it drains a
/// full queue while catching up: 1M lines from 3 partitions took 3.8 s with
/// it and 2.9 s with 10 ms, the end-of-input check included (README,
/// performance).
const FETCH_QUEUE_BACKOFF_MS: u32 = 10;

/// librdkafka `fetch.wait.max.ms` of a run that stops when caught up: the
/// longest a fetch waits at the broker for new data. Requests on one broker
/// connection are answered in order, so each watermark query of the
/// end-of-input check waits behind an idle partition's fetch: with the
/// default (500 ms) the check took 1.4 s on 3 partitions, with 50 ms about
/// 50 ms per partition (0.14 s), with 10 ms about 10 ms per partition. The
/// only cost is an empty fetch every 10 ms once a partition has no new data.
const CATCH_UP_FETCH_WAIT_MS: u32 = 10;

/// librdkafka `receive.message.max.bytes` for consumers: the largest fetch
/// response accepted, so a single message up to about this size (which
/// librdkafka returns even when it exceeds `fetch.max.bytes`) is consumed,
/// truncated by the parser, and archived instead of stalling its partition.
const MAX_RECEIVE_BYTES: u32 = 256 << 20;

/// librdkafka `statistics.interval.ms`: how often the client reports the
/// broker connections, assignment and lag behind `/metrics` and `/readyz`.
/// `kafka.properties` can override it.
pub const STATISTICS_INTERVAL_MS: u32 = 1_000;

/// Default for [`KafkaConfig::session_timeout_ms`].
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;
/// Default for [`KafkaConfig::revoke_timeout_secs`].
pub const DEFAULT_REVOKE_TIMEOUT_SECS: f64 = 15.0;

/// Kafka client settings shared by ingest, detect and the alert producer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id: not read from the `[kafka]` table but set from
    /// `[ingest] group` or `[detect] group`.
    #[serde(skip)]
    pub group: String,
    /// Group session timeout in milliseconds.
    pub session_timeout_ms: u64,
    /// How long a revocation may wait for open data to become durable.
    pub revoke_timeout_secs: f64,
    /// Extra librdkafka properties (TLS, SASL, tuning), passed through as is.
    /// A value `${env:NAME}` is read from the environment variable NAME and
    /// `${file:PATH}` from a file (without its trailing newline), so secrets
    /// need not sit in the configuration file. Values of secret keys (see
    /// [`is_secret_key`]) are never logged or printed.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            topics: Vec::new(),
            group: "logwarden-ingest".into(),
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            revoke_timeout_secs: DEFAULT_REVOKE_TIMEOUT_SECS,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The librdkafka configuration of a manual-commit consumer-group member.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 4).max(100).to_string(),
            )
            .set("client.id", "logwarden")
            // Prefetch deeper than librdkafka's default (100k messages per
            // partition): the parse thread then rarely finds the queue empty.
            // Memory stays bounded by `queued.max.messages.kbytes` (64 MiB).
            .set("queued.min.messages", PREFETCH_MESSAGES.to_string())
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string())
            .set("receive.message.max.bytes", MAX_RECEIVE_BYTES.to_string())
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string());
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Adjusts a consumer configuration for a run that stops when caught up
    /// ([`caught_up`]): end-of-partition events on, and short fetch waits
    /// unless the properties set their own.
    pub fn set_catch_up(&self, c: &mut ClientConfig) {
        c.set("enable.partition.eof", "true");
        if !self.properties.contains_key("fetch.wait.max.ms") {
            c.set("fetch.wait.max.ms", CATCH_UP_FETCH_WAIT_MS.to_string());
        }
    }

    /// The librdkafka configuration of a producer on the same cluster.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "logwarden");
        for (k, v) in &self.properties {
            if !k.starts_with("group.") && !k.starts_with("enable.auto") {
                c.set(k, v);
            }
        }
        c
    }

    /// Replaces `${env:NAME}` and `${file:PATH}` property values by what
    /// they refer to. The error names the property, never its value.
    pub fn resolve_secrets(&mut self) -> Result<(), String> {
        for (key, value) in self.properties.iter_mut() {
            *value = resolve_reference(value)
                .map_err(|reason| format!("kafka.properties.\"{key}\": {reason}"))?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            !self.brokers.trim().is_empty(),
            "kafka.brokers",
            "must not be empty",
        )?;
        require(
            !self.topics.is_empty() && self.topics.iter().all(|t| !t.trim().is_empty()),
            "kafka.topics",
            "must name at least one topic, and no empty one",
        )?;
        require(
            !self.group.trim().is_empty(),
            "kafka.group",
            "must not be empty",
        )?;
        require(
            self.revoke_timeout_secs.is_finite() && self.revoke_timeout_secs > 0.0,
            "kafka.revoke_timeout_secs",
            "must be positive",
        )
    }
}

/// Parts of key names whose values are secrets: librdkafka's
/// `sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
/// `ssl.key.pem`, `sasl.oauthbearer.client.secret`,
/// `sasl.oauthbearer.config`, `sasl.jaas.config`, and object-store
/// credentials (`secret_access_key`, `session_token`, ...).
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "private",
    "key.pem",
    "oauthbearer.config",
    "jaas",
];

/// True for configuration keys whose values are secrets: never logged, and
/// redacted by `logwarden config check`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

/// Resolves one `${env:NAME}` or `${file:PATH}` reference; other values are
/// returned as they are.
fn resolve_reference(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return Ok(value.to_string());
    };
    if let Some(name) = inner.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = inner.strip_prefix("file:") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    Err("expected ${env:NAME} or ${file:PATH}".to_string())
}

/// When the source stops on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopWhen {
    /// Run until shut down.
    #[default]
    Never,
    /// Stop once every assigned partition is consumed up to the end it had
    /// when checked (backfills, tests, benchmarks).
    CaughtUp,
}

/// What a finished run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Every record consumed was made durable and committed at exit.
    pub clean_exit: bool,
    /// From the first record consumed to the end of the run (zero if none).
    pub active: Duration,
}

struct PartState {
    epoch: u64,
    /// A recovery job was queued for this assignment.
    started: bool,
    /// Next offset to consume, once a message was seen.
    next: Option<i64>,
    /// Highest offset reported durable and not yet committed.
    to_commit: Option<i64>,
    /// Commit frontier from durable segments and delivered dead letters.
    gate: Gate,
}

impl PartState {
    /// A new assignment of a partition, with the next epoch.
    fn assigned(next_epoch: &mut u64) -> Self {
        let epoch = *next_epoch;
        *next_epoch += 1;
        Self {
            epoch,
            started: false,
            next: None,
            to_commit: None,
            gate: Gate::default(),
        }
    }
}

type Key = (Arc<str>, i32);

/// Maps looked up once per message (partition state, partition ends): keys
/// are topic names and partition numbers, so ahash (as the template cache
/// uses) rather than SipHash.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// State shared by the poll loop and the rebalance callbacks.
struct Core {
    /// The workers that parse the messages.
    pool: ParsePool,
    /// The miner, filling the template columns of each parsed chunk as it
    /// is read back, in offset order.
    miner: Option<TemplateMiner>,
    /// When the pool's open chunk took its first message.
    chunk_opened: Option<Instant>,
    segmenter: Segmenter,
    writer: Writer,
    metrics: Arc<IngestMetrics>,
    parts: FastMap<Key, PartState>,
    /// Interned topic names, each with its record counters.
    topics: Vec<(Arc<str>, Arc<TopicCounters>)>,
    next_epoch: u64,
    /// Jobs waiting for room in the writer queue.
    pending: VecDeque<(Key, Job)>,
    paused: bool,
    revoke_timeout: Duration,
    fatal: Option<String>,
    first_record: Option<Instant>,
    eof: EofTracker,
    /// Since when jobs have been waiting for room in the writer queue.
    backlog_since: Option<Instant>,
    /// The dead-letter producer, in strict mode.
    dlq: Option<DeadLetters>,
}

impl Core {
    /// An error from the consumer's poll: the end of a partition (then
    /// true), or an error to count and log.
    fn poll_error(&mut self, e: KafkaError) -> bool {
        if let KafkaError::PartitionEOF(p) = e {
            self.eof.eof(p);
            return true;
        }
        self.metrics.consumer_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "consumer error");
        false
    }

    /// Index in `topics` of `topic`, added (with its metrics) when new.
    fn topic_index(&mut self, topic: &str) -> usize {
        if let Some(i) = self.topics.iter().position(|(t, _)| &**t == topic) {
            return i;
        }
        self.topics.push((topic.into(), self.metrics.topic(topic)));
        self.topics.len() - 1
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        let i = self.topic_index(topic);
        self.topics[i].0.clone()
    }

    fn process<M: Message>(&mut self, msg: &M) {
        let (topic, partition, offset, ts, payload) = (
            msg.topic(),
            msg.partition(),
            msg.offset(),
            msg.timestamp(),
            msg.payload(),
        );
        self.first_record.get_or_insert_with(Instant::now);
        self.eof.message(partition);
        let t = self.topic_index(topic);
        let topic = self.topics[t].0.clone();
        let key = (topic.clone(), partition);
        // A message of a partition no callback announced gets an
        // assignment of its own.
        let next_epoch = &mut self.next_epoch;
        let part = self
            .parts
            .entry(key.clone())
            .or_insert_with(|| PartState::assigned(next_epoch));
        let part_epoch = part.epoch;
        if !part.started {
            part.started = true;
            part.gate.start(offset);
            self.pending.push_back((
                key.clone(),
                Job::Recover {
                    topic: topic.clone(),
                    partition,
                    replay_from: offset,
                    epoch: part_epoch,
                },
            ));
        }
        let prev_next = part.next.replace(offset + 1);
        let incoming = Incoming {
            offset,
            after: prev_next.unwrap_or(offset),
            transport_time_us: transport_time_us(ts),
            payload,
            key: msg.key(),
        };
        // Read only in strict mode: librdkafka parses a message's headers
        // (allocating) on each call, which cost the poll thread about a
        // seventh of its time when done for every message.
        let headers = || {
            msg.headers()
                .into_iter()
                .flat_map(|h| h.iter().map(|x| (x.key, x.value)))
        };
        self.pool_message(&topic, t, partition, incoming, headers);
    }

    /// Adds a message to the pool's open chunk, sending the chunk first if
    /// the message cannot join it.
    fn pool_message<'a, H>(
        &mut self,
        topic: &Arc<str>,
        t: usize,
        partition: i32,
        msg: Incoming<'a>,
        headers: impl FnOnce() -> H,
    ) where
        H: Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        if self.fatal.is_some() {
            // Nothing after a failed chunk can be archived in order.
            return;
        }
        if !self.pool.fits(topic, partition) {
            self.send_chunk();
        }
        if !self.pool.has_open() {
            self.chunk_opened = Some(Instant::now());
        }
        let counters = &self.topics[t].1;
        self.pool.add(topic, partition, counters, msg, headers);
    }

    /// Sends the pool's open chunk to the workers, taking in the oldest
    /// parsed chunk if the workers had no room.
    fn send_chunk(&mut self) {
        self.chunk_opened = None;
        match self.pool.send() {
            Ok(Some(parsed)) => self.take_parsed(parsed),
            Ok(None) => {}
            Err(e) => self.pool_failed(e),
        }
    }

    /// Takes in the parsed chunks that are ready, in order; with `all`,
    /// first sends the open chunk and waits for every chunk in flight, so
    /// that each partition's segment holds every message consumed.
    fn collect_parsed(&mut self, all: bool) {
        if self.fatal.is_some() {
            return;
        }
        if all {
            self.send_chunk();
        }
        loop {
            match self.pool.receive(all) {
                Ok(Some(parsed)) => self.take_parsed(parsed),
                Ok(None) => break,
                Err(e) => {
                    self.pool_failed(e);
                    break;
                }
            }
        }
    }

    /// Sends the open chunk once it has waited `CHUNK_WAIT`: a slow stream
    /// still reaches its segment promptly.
    fn send_stale_chunk(&mut self, now: Instant) {
        if self
            .chunk_opened
            .is_some_and(|t| now.duration_since(t) >= CHUNK_WAIT)
        {
            self.send_chunk();
        }
    }

    /// Mines a parsed chunk's templates and appends it to its partition's
    /// segment, queueing the segments that close.
    fn take_parsed(&mut self, parsed: Parsed) {
        let Parsed {
            topic,
            partition,
            batch,
            bytes,
            dead,
        } = parsed;
        if !dead.is_empty() {
            let key = (topic.clone(), partition);
            let epoch = self.parts.get(&key).map_or(0, |p| p.epoch);
            for d in &dead {
                let letter = DeadLetter {
                    topic: &topic,
                    partition,
                    offset: d.offset,
                    epoch,
                    issue: d.issue,
                    key: d.key.as_deref(),
                    payload: d.payload.as_deref(),
                    headers: d
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_deref()))
                        .collect(),
                };
                self.dead_letter(&letter, &key, d.after);
            }
        }
        if batch.num_rows() == 0 {
            return;
        }
        let batch = match self.miner.as_mut() {
            Some(m) => match mine_batch(m, &batch) {
                Ok(b) => b,
                Err(e) => return self.pool_failed(e.into()),
            },
            None => batch,
        };
        for segment in self
            .segmenter
            .append_batch(&topic, partition, batch, bytes, Instant::now())
        {
            self.queue_write(segment);
        }
    }

    /// The pool cannot go on: nothing more can be archived in order, so
    /// the run stops (what is durable stays committed).
    fn pool_failed(&mut self, e: PoolError) {
        tracing::error!(error = %e, "parsing stopped");
        self.fatal.get_or_insert_with(|| e.to_string());
    }

    /// Sets the queue and buffer gauges (once per poll-loop turn).
    fn update_gauges(&self) {
        let m = &self.metrics;
        IngestMetrics::set(&m.writer_queue_depth, self.writer.in_flight());
        IngestMetrics::set(&m.pending_segments, self.pending.len());
        IngestMetrics::set(&m.open_segments, self.segmenter.open_segments());
        IngestMetrics::set(&m.buffered_bytes, self.segmenter.buffered_bytes());
        IngestMetrics::set(&m.buffered_records, self.segmenter.buffered_rows());
        if let Some(miner) = &self.miner {
            IngestMetrics::set(&m.templates, miner.len());
        }
    }

    /// Produces a dead letter instead of archiving the record; its offset is
    /// committed once delivered (see [`Gate`]).
    fn dead_letter(&mut self, d: &DeadLetter<'_>, key: &Key, after: i64) {
        let Some(dlq) = self.dlq.as_mut() else {
            return;
        };
        match dlq.send(d) {
            Ok(()) => {
                let t = self.topic_index(d.topic);
                self.topics[t].1.count_dead_letter(d.issue);
                if let Some(p) = self.parts.get_mut(key) {
                    p.gate.dead_lettered(d.offset, after);
                }
            }
            Err(e) => {
                tracing::error!(topic = %d.topic, partition = d.partition, offset = d.offset, error = %e,
                    "dead letter could not be produced; stopping without committing it");
                self.fatal
                    .get_or_insert_with(|| format!("dead-letter producer: {e}"));
            }
        }
    }

    /// Records delivered dead letters; a failed one is fatal (it stays
    /// uncommitted and is dead-lettered again by the next run).
    fn absorb_dead_letters(&mut self) {
        let Some(dlq) = self.dlq.as_ref() else {
            return;
        };
        for d in dlq.take_deliveries() {
            if let Err(e) = &d.result {
                tracing::error!(topic = %d.topic, partition = d.partition, offset = d.offset, error = %e,
                    "dead letter not delivered; stopping without committing it");
                self.fatal
                    .get_or_insert_with(|| format!("dead letter not delivered: {e}"));
                continue;
            }
            let key = (d.topic.clone(), d.partition);
            if let Some(p) = self.parts.get_mut(&key) {
                if p.epoch == d.epoch {
                    if let Some(c) = p.gate.delivered(d.offset) {
                        p.to_commit = Some(c);
                    }
                }
            }
        }
    }

    /// Whether a dead letter of `keys` waits for its delivery report.
    fn dead_letters_in_flight(&self, keys: &[Key]) -> bool {
        self.dlq.is_some()
            && keys
                .iter()
                .any(|k| self.parts.get(k).is_some_and(|p| p.gate.in_flight()))
    }

    /// Moves pending jobs into the writer queue while it has room.
    fn feed_writer(&mut self) {
        while let Some((key, job)) = self.pending.pop_front() {
            if let Err(job) = self.writer.try_send(job) {
                self.pending.push_front((key, job));
                return;
            }
        }
    }

    /// Records durable offsets from the writer's acknowledgements.
    fn absorb(&mut self, acks: Vec<Ack>) {
        for ack in acks {
            let key = (ack.topic.clone(), ack.partition);
            match ack.result {
                Ok(_) => {
                    let Some(next) = ack.next_offset else {
                        continue;
                    };
                    match self.parts.get_mut(&key) {
                        Some(p) if p.epoch == ack.epoch => {
                            if let Some(c) = p.gate.archived(ack.first_offset, next) {
                                p.to_commit = Some(c);
                            }
                            self.metrics
                                .segments_committed
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        _ => tracing::debug!(
                            topic = %ack.topic, partition = ack.partition,
                            "durable segment of a revoked assignment left uncommitted"
                        ),
                    }
                }
                Err(e) => {
                    tracing::error!(
                        topic = %ack.topic, partition = ack.partition, first_offset = ack.first_offset,
                        error = %e, "segment could not be made durable; stopping without committing it"
                    );
                    self.fatal.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }

    /// Marks offsets whose commit failed for committing again, unless the
    /// partition was revoked since or a later offset is already waiting.
    fn retry_commits(&mut self, failed: Vec<(String, i32, i64)>) {
        for (topic, partition, offset) in failed {
            let topic = self.intern(&topic);
            if let Some(p) = self.parts.get_mut(&(topic, partition)) {
                if p.to_commit.is_none_or(|o| o < offset) {
                    p.to_commit = Some(offset);
                }
            }
        }
    }

    /// Offsets ready to commit, restricted to `only` when given.
    fn take_commits(&mut self, only: Option<&[Key]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (key, p) in self.parts.iter_mut() {
            if only.is_some_and(|keys| !keys.contains(key)) {
                continue;
            }
            if let Some(off) = p.to_commit.take() {
                let _ = tpl.add_partition_offset(&key.0, key.1, Offset::Offset(off));
            }
        }
        tpl
    }

    /// Pauses or resumes consumption to match the pending backlog.
    fn apply_backpressure<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        // A full queue first costs a short wait for the writer: pausing
        // drops librdkafka's prefetched messages, so it is kept for a sink
        // that stays slow (an outage), not for the normal hand-off.
        if !self.pending.is_empty() {
            let since = *self.backlog_since.get_or_insert_with(Instant::now);
            if let Some(ack) = self.writer.wait_ack(BACKLOG_WAIT) {
                self.absorb(vec![ack]);
                self.feed_writer();
            }
            if self.pending.is_empty() || since.elapsed() < PAUSE_AFTER {
                if self.pending.is_empty() {
                    self.backlog_since = None;
                }
                if !self.paused {
                    return;
                }
            }
        } else {
            self.backlog_since = None;
        }
        let want_pause = !self.pending.is_empty();
        if want_pause == self.paused {
            return;
        }
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let r = if want_pause {
            self.metrics
                .backpressure_pauses
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                pending = self.pending.len(),
                "writer queue full, pausing consumption"
            );
            consumer.pause(&assignment)
        } else {
            tracing::debug!("writer queue has room, resuming consumption");
            consumer.resume(&assignment)
        };
        match r {
            Ok(()) => self.paused = want_pause,
            Err(e) => tracing::warn!(error = %e, "pause/resume failed"),
        }
    }

    /// Hands the open segments of partitions at their end to the writer. A
    /// run that stops when caught up ends with them: they are written while
    /// the broker is asked for the final offsets, not after.
    fn close_ended(&mut self) {
        self.collect_parsed(true);
        let ended: Vec<Key> = self
            .parts
            .keys()
            .filter(|(_, p)| self.eof.at_end(*p))
            .cloned()
            .collect();
        self.close_partitions(&ended);
    }

    /// Closes the open segments of `keys` and queues them for the writer.
    fn close_partitions(&mut self, keys: &[Key]) {
        for key in keys {
            if let Some(segment) = self.segmenter.close_partition(&key.0, key.1) {
                self.queue_write(segment);
            }
        }
    }

    /// Queues a closed segment for the writer, under its partition's
    /// current assignment.
    fn queue_write(&mut self, segment: Segment) {
        let key = (segment.topic.clone(), segment.partition);
        let epoch = self.parts.get(&key).map_or(0, |p| p.epoch);
        self.pending.push_back((key, Job::Write { segment, epoch }));
    }

    /// Writes and commits the given partitions' data, waiting up to `timeout`;
    /// what is not durable by then stays uncommitted. Whether everything
    /// of `keys` was committed.
    fn flush_and_commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        keys: &[Key],
        timeout: Duration,
    ) -> bool {
        self.collect_parsed(true);
        self.close_partitions(keys);
        let deadline = Instant::now() + timeout;
        loop {
            self.feed_writer();
            let acks = self.writer.try_acks();
            self.absorb(acks);
            self.absorb_dead_letters();
            let waiting = self.pending.iter().any(|(k, _)| keys.contains(k))
                || self.writer.in_flight() > 0
                || self.dead_letters_in_flight(keys);
            if !waiting || Instant::now() >= deadline || self.fatal.is_some() {
                break;
            }
            if let Some(a) = self.writer.wait_ack(Duration::from_millis(20)) {
                self.absorb(vec![a]);
            }
        }
        let tpl = self.take_commits(Some(keys));
        let clean = !self.pending.iter().any(|(k, _)| keys.contains(k))
            && !self.dead_letters_in_flight(keys)
            && self.fatal.is_none();
        if tpl.count() > 0 {
            let started = Instant::now();
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "offset commit failed; the data will be replayed and replaced");
                self.retry_commits(offsets_of(&tpl));
                return false;
            }
            self.metrics.commit_seconds.observe(started.elapsed());
        }
        clean
    }

    /// After a clean final commit: tells the sink, for every partition in
    /// `keys`, the offset the group has committed, as a recovery at that
    /// offset. Nothing is at or past it, so nothing is deleted; the sink's
    /// in-flight record of the partition empties, and compaction may take
    /// every file this run wrote (otherwise the last segments would wait for
    /// the partition's next recovery). A failure here loses nothing: the
    /// record stays as it was, so it is only logged.
    fn settle_committed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        keys: &[Key],
        timeout: Duration,
    ) {
        let mut tpl = TopicPartitionList::new();
        for key in keys {
            tpl.add_partition(&key.0, key.1);
        }
        let committed = match consumer.committed_offsets(tpl, timeout) {
            Ok(c) => offsets_of(&c),
            Err(e) => {
                tracing::warn!(error = %e, "reading the committed offsets at exit failed; the last segments stay protected from compaction until the next recovery");
                return;
            }
        };
        for (topic, partition, offset) in committed {
            let topic = self.intern(&topic);
            let key = (topic.clone(), partition);
            let Some(p) = self.parts.get(&key) else {
                continue;
            };
            let job = Job::Recover {
                topic,
                partition,
                replay_from: offset,
                epoch: p.epoch,
            };
            self.pending.push_back((key, job));
        }
        let deadline = Instant::now() + timeout;
        while !self.pending.is_empty() || self.writer.in_flight() > 0 {
            self.feed_writer();
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!("settling the in-flight records at exit timed out");
                return;
            }
            if let Some(a) = self
                .writer
                .wait_ack(Duration::from_millis(20).min(deadline - now))
            {
                if let Err(e) = a.result {
                    tracing::warn!(topic = %a.topic, partition = a.partition, error = %e,
                        "settling the in-flight record at exit failed; its files stay protected from compaction until the next recovery");
                }
            }
        }
    }

    fn revoke<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, tpl: &TopicPartitionList) {
        let keys: Vec<Key> = tpl
            .elements()
            .iter()
            .map(|e| (self.intern(e.topic()), e.partition()))
            .collect();
        let clean = self.flush_and_commit(consumer, &keys, self.revoke_timeout);
        for key in &keys {
            self.segmenter.discard_partition(&key.0, key.1);
            self.pending.retain(|(k, _)| k != key);
            self.parts.remove(key);
        }
        tracing::info!(partitions = keys.len(), clean, "partitions revoked");
    }

    fn assign(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            let key = (self.intern(e.topic()), e.partition());
            let part = PartState::assigned(&mut self.next_epoch);
            self.parts.insert(key, part);
        }
        // A fresh assignment is not paused; the next tick pauses it again if
        // the backlog is still there.
        self.paused = false;
        tracing::info!(partitions = tpl.count(), "partitions assigned");
    }
}

/// The (topic, partition, offset) entries of a list that carry an offset.
fn offsets_of(tpl: &TopicPartitionList) -> Vec<(String, i32, i64)> {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// A Kafka message timestamp in microseconds, when it has one.
pub fn transport_time_us(ts: Timestamp) -> Option<i64> {
    match ts {
        Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) if ms >= 0 => {
            Some(ms.saturating_mul(1000))
        }
        _ => None,
    }
}

/// The consumer context: routes rebalance callbacks to the shared core.
pub struct IngestContext {
    core: Arc<Mutex<Core>>,
    metrics: Arc<IngestMetrics>,
    protocol: AssignProtocol,
}

impl IngestContext {
    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock is a bug; keep going with the data.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for IngestContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if log_client_error(error, reason) {
            self.metrics
                .kafka
                .client_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics.kafka.observe(&statistics);
    }
}

/// Logs a librdkafka client error, except end-of-partition events, which
/// are not errors and which the poll loops handle themselves. True when it
/// was an error.
pub fn log_client_error(error: KafkaError, reason: &str) -> bool {
    let eof = matches!(error, KafkaError::PartitionEOF(_))
        || matches!(&error, KafkaError::Global(code) if *code == rdkafka::types::RDKafkaErrorCode::PartitionEOF);
    if !eof {
        tracing::error!(error = %error, reason, "kafka client error");
    }
    !eof
}

/// Logs an assignment change of a consumer without rebalance hooks.
fn log_rebalance(rebalance: &Rebalance<'_>) {
    match rebalance {
        Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "partitions assigned"),
        Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "partitions revoked"),
        Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
    }
}

/// How a consumer hands the partitions of a rebalance to librdkafka: the
/// eager protocol replaces the whole assignment, the cooperative one adds
/// and removes partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignProtocol {
    Eager,
    Cooperative,
}

impl AssignProtocol {
    /// The protocol a consumer created from `config` uses: cooperative with
    /// the `consumer` group protocol (KIP-848) or a cooperative assignor
    /// (librdkafka refuses a mix of cooperative and eager ones).
    pub fn of(config: &ClientConfig) -> Self {
        let consumer_protocol = config
            .get("group.protocol")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("consumer"));
        let cooperative_assignor = config
            .get("partition.assignment.strategy")
            .is_some_and(|s| s.to_ascii_lowercase().contains("cooperative"));
        if consumer_protocol || cooperative_assignor {
            Self::Cooperative
        } else {
            Self::Eager
        }
    }
}

/// What rdkafka's default rebalance handling does, with the protocol known
/// up front instead of asked of librdkafka inside the callback: that
/// question waits, with no timeout, on the consumer group, and a group that
/// has finished closing never answers. A rebalance that reaches a closed
/// consumer (an assignment that arrived as it closed) is dropped for the
/// same reason.
fn handle_rebalance<C: ConsumerContext>(
    ctx: &C,
    consumer: &BaseConsumer<C>,
    protocol: AssignProtocol,
    err: RDKafkaRespErr,
    tpl: &mut TopicPartitionList,
) {
    if consumer.closed() {
        tracing::debug!(
            partitions = tpl.count(),
            "rebalance after the consumer closed: ignored"
        );
        return;
    }
    let rebalance = match err {
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
        RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
        other => Rebalance::Error(KafkaError::Rebalance(other.into())),
    };
    ctx.pre_rebalance(consumer, &rebalance);
    let applied = match (&rebalance, protocol) {
        (Rebalance::Assign(tpl), AssignProtocol::Eager) => consumer.assign(tpl),
        (Rebalance::Assign(tpl), AssignProtocol::Cooperative) => consumer.incremental_assign(tpl),
        (Rebalance::Revoke(tpl), AssignProtocol::Cooperative) => consumer.incremental_unassign(tpl),
        (Rebalance::Error(_), AssignProtocol::Cooperative) => consumer.incremental_unassign(tpl),
        (_, AssignProtocol::Eager) => consumer.unassign(),
    };
    if let Err(e) = applied {
        tracing::warn!(error = %e, "applying a rebalance failed");
    }
    ctx.post_rebalance(consumer, &rebalance);
}

/// Longest a consumer's close (leaving its group) may take once its data is
/// durable and committed; see [`close_consumer`].
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes `consumer`, which leaves its group, on a thread of its own, and
/// waits at most `timeout` for it. True when it closed in time. Call it once
/// everything the consumer read is durable and committed: a close that does
/// not finish in time is left behind (the group then notices the member's
/// departure when its session expires, as after a crash), and nothing is
/// lost or duplicated by that. librdkafka's close waits without a timeout
/// on the consumer group for the calls of a rebalance that reaches it while
/// it closes, and a group that finishes closing in between never answers.
pub fn close_consumer<C>(consumer: BaseConsumer<C>, timeout: Duration) -> bool
where
    C: ConsumerContext + 'static,
    BaseConsumer<C>: Send,
{
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        // The consumer went with the thread's closure: dropped, so closed.
        tracing::warn!(error = %e, "closing the consumer on this thread");
        return true;
    }
    let in_time = closed.recv_timeout(timeout).is_ok();
    if !in_time {
        tracing::warn!(
            timeout_secs = timeout.as_secs_f64(),
            "the consumer did not leave its group in time; its session expiry will"
        );
    }
    in_time
}

/// Context of consumers that need no rebalance hooks but report to
/// `/metrics` (detect): counts client errors and keeps the statistics.
pub struct MeteredContext {
    metrics: Arc<KafkaClientMetrics>,
    protocol: AssignProtocol,
}

impl MeteredContext {
    /// The context of a consumer created from `config`.
    pub fn new(metrics: Arc<KafkaClientMetrics>, config: &ClientConfig) -> Self {
        Self {
            metrics,
            protocol: AssignProtocol::of(config),
        }
    }
}

impl ClientContext for MeteredContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if log_client_error(error, reason) {
            self.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.metrics.observe(&statistics);
    }
}

impl ConsumerContext for MeteredContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        handle_rebalance(self, consumer, self.protocol, err, tpl);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        log_rebalance(rebalance);
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        handle_rebalance(self, consumer, self.protocol, err, tpl);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.core().revoke(consumer, tpl);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.core().assign(tpl),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// Settings of one Kafka ingest run.
pub struct KafkaSource {
    pub kafka: KafkaConfig,
    pub stop: StopWhen,
    /// Upper bound on the time a graceful shutdown spends flushing.
    pub shutdown_timeout: Duration,
    /// Threads parsing the messages (at least one).
    pub parse_threads: usize,
}

/// Errors that end an ingest run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the sink failed permanently: {0}")]
    Sink(String),
    #[error("starting the parse threads: {0}")]
    Pool(#[from] PoolError),
}

impl KafkaSource {
    /// Runs until `shutdown` is set (or caught up, per `stop`), then closes
    /// and writes the open segments, commits what became durable within
    /// `shutdown_timeout`, and returns. Blocking: call it from a dedicated
    /// thread.
    pub fn run(
        &self,
        mut parser: Parser,
        segmenter: Segmenter,
        writer: Writer,
        metrics: Arc<IngestMetrics>,
        shutdown: Arc<AtomicBool>,
    ) -> Result<RunSummary, IngestError> {
        let dlq = match parser.config().mode {
            ParseMode::Strict => Some(DeadLetters::new(
                &self.kafka,
                &parser.config().dead_letter_topic,
            )?),
            ParseMode::Lenient => None,
        };
        let pool = ParsePool::start(&parser, self.parse_threads)?;
        let miner = parser.take_miner();
        for t in &self.kafka.topics {
            metrics.topic(t);
        }
        let core = Arc::new(Mutex::new(Core {
            pool,
            miner,
            chunk_opened: None,
            segmenter,
            writer,
            metrics: metrics.clone(),
            parts: FastMap::default(),
            topics: Vec::new(),
            next_epoch: 1,
            pending: VecDeque::new(),
            paused: false,
            revoke_timeout: Duration::from_secs_f64(self.kafka.revoke_timeout_secs),
            fatal: None,
            first_record: None,
            eof: EofTracker::default(),
            backlog_since: None,
            dlq,
        }));
        let mut cc = self.kafka.consumer_config();
        if self.stop == StopWhen::CaughtUp {
            self.kafka.set_catch_up(&mut cc);
        }
        let ctx = IngestContext {
            core: core.clone(),
            metrics,
            protocol: AssignProtocol::of(&cc),
        };
        let consumer: BaseConsumer<IngestContext> = cc.create_with_context(ctx)?;
        let topics: Vec<&str> = self.kafka.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        tracing::info!(brokers = %self.kafka.brokers, topics = ?topics, group = %self.kafka.group, "ingest started");

        let lock = || core.lock().unwrap_or_else(|p| p.into_inner());
        let mut cadence = CatchUpCadence::new(Instant::now());
        // The end-of-input check asks the broker for offsets: only when a poll
        // came back empty, so it never slows a flowing stream.
        let mut idle = false;
        while !shutdown.load(Ordering::Relaxed) {
            let timeout = if lock().pending.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(10)
            };
            // The core is never locked across `poll()`: rebalance and commit
            // callbacks run inside it and lock the core themselves.
            // A partition's end counts as an empty poll: the next poll
            // could wait its whole timeout for an event that is not coming.
            match consumer.poll(timeout) {
                Some(Ok(msg)) => {
                    lock().process(&msg);
                    drop(msg);
                    // Drain what librdkafka already has before the upkeep below.
                    for _ in 0..1024 {
                        if !lock().pending.is_empty() {
                            break;
                        }
                        match consumer.poll(Duration::ZERO) {
                            Some(Ok(m)) => lock().process(&m),
                            Some(Err(e)) => idle |= lock().poll_error(e),
                            None => break,
                        }
                    }
                }
                Some(Err(e)) => idle |= lock().poll_error(e),
                None => idle = true,
            }
            let mut c = lock();
            // Idle, every chunk is parsed and in its segment before the
            // upkeep below (which may close segments at the end of input).
            c.send_stale_chunk(Instant::now());
            c.collect_parsed(idle);
            c.feed_writer();
            let acks = c.writer.try_acks();
            c.absorb(acks);
            c.absorb_dead_letters();
            for segment in c.segmenter.close_due(Instant::now()) {
                c.queue_write(segment);
            }
            if self.stop == StopWhen::CaughtUp && idle {
                c.close_ended();
            }
            c.feed_writer();
            c.apply_backpressure(&consumer);
            let tpl = c.take_commits(None);
            if tpl.count() > 0 {
                // Synchronous: one broker round trip per durable segment
                // (segments are seconds apart), and its latency and failure
                // are known here. (Async commit callbacks are not delivered
                // to this BaseConsumer's poll.) A failed commit is retried
                // on the next turn of the loop.
                let started = Instant::now();
                match consumer.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => c.metrics.commit_seconds.observe(started.elapsed()),
                    Err(e) => {
                        c.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "offset commit failed; retrying it");
                        c.retry_commits(offsets_of(&tpl));
                    }
                }
            }
            c.update_gauges();
            if let Some(f) = c.fatal.clone() {
                drop(c);
                close_consumer(consumer, CLOSE_TIMEOUT);
                return Err(IngestError::Sink(f));
            }
            if self.stop == StopWhen::CaughtUp
                && std::mem::take(&mut idle)
                && cadence.due(&c.eof, Instant::now())
            {
                let next = |t: &str, p: i32| {
                    c.parts
                        .iter()
                        .find(|((pt, pp), _)| &**pt == t && *pp == p)
                        .and_then(|(_, s)| s.next)
                };
                if cadence.stops(caught_up(&consumer, &c.eof, next)) {
                    tracing::info!("caught up: every partition consumed or committed to its end");
                    break;
                }
            }
        }

        // Graceful stop: stop polling, write what is open, commit what is durable.
        let mut c = lock();
        let keys: Vec<Key> = c.parts.keys().cloned().collect();
        let clean = c.flush_and_commit(&consumer, &keys, self.shutdown_timeout);
        if clean && c.writer.in_flight() == 0 && c.pending.is_empty() && c.fatal.is_none() {
            c.settle_committed(&consumer, &keys, self.shutdown_timeout);
        }
        c.writer.shutdown();
        let fatal = c.fatal.clone();
        let active = c.first_record.map(|t| t.elapsed()).unwrap_or_default();
        drop(c);
        consumer.unsubscribe();
        close_consumer(consumer, CLOSE_TIMEOUT);
        if let Some(f) = fatal {
            return Err(IngestError::Sink(f));
        }
        tracing::info!(clean, "ingest stopped");
        Ok(RunSummary {
            clean_exit: clean,
            active,
        })
    }
}

/// Which partitions have reached their end, from librdkafka's partition-EOF
/// events (which name the partition but not the topic).
#[derive(Debug, Default)]
pub struct EofTracker {
    at_end: FastMap<i32, bool>,
    /// Times a partition reached its end (was not at its end before).
    ends: u64,
}

impl EofTracker {
    /// A message of `partition` arrived: it is not at its end.
    pub fn message(&mut self, partition: i32) {
        self.at_end.insert(partition, false);
    }

    /// librdkafka reported the end of `partition`.
    pub fn eof(&mut self, partition: i32) {
        if self.at_end.insert(partition, true) != Some(true) {
            self.ends += 1;
        }
    }

    pub fn at_end(&self, partition: i32) -> bool {
        self.at_end.get(&partition).copied().unwrap_or(false)
    }
}

/// Least time between two end-of-input checks ([`caught_up`]) when no
/// partition reached its end in between: a check that gets past the
/// end-of-partition events costs a broker round trip per partition.
const CATCH_UP_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// When a run that stops at the end of its input checks for it: at once
/// after a partition reports its end (the last one to end makes the check
/// succeed without waiting), otherwise at most every
/// [`CATCH_UP_CHECK_INTERVAL`].
#[derive(Debug)]
pub struct CatchUpCadence {
    last: Instant,
    ends: u64,
    /// The last check found the group done while this member held nothing.
    done_holding_none: bool,
}

impl CatchUpCadence {
    pub fn new(now: Instant) -> Self {
        Self {
            last: now,
            ends: 0,
            done_holding_none: false,
        }
    }

    /// Whether a check's result ends the run. A member that holds no
    /// partition must find the group done on two checks in a row, with a
    /// poll between them: the first check can return just as the member's
    /// group join completes (its committed-offsets request waits for the
    /// group coordinator), and the assignment is then on its way. Stopping
    /// at that moment closes the consumer in the middle of a rebalance,
    /// which librdkafka may never finish (see [`close_consumer`]); the poll
    /// applies the assignment instead, and the run stops once the assigned
    /// partitions report their end.
    pub fn stops(&mut self, check: CatchUp) -> bool {
        let stops = match check {
            CatchUp::Behind => false,
            CatchUp::Done => true,
            CatchUp::DoneHoldingNone => self.done_holding_none,
        };
        self.done_holding_none = check == CatchUp::DoneHoldingNone;
        stops
    }

    /// Whether to check now; if so, the check is counted as done at `now`.
    pub fn due(&mut self, eof: &EofTracker, now: Instant) -> bool {
        let due = eof.ends != self.ends
            || now.saturating_duration_since(self.last) >= CATCH_UP_CHECK_INTERVAL;
        if due {
            self.last = now;
            self.ends = eof.ends;
        }
        due
    }
}

/// The result of an end-of-input check ([`caught_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Something is left to read, here or at another member.
    Behind,
    /// Every partition this member holds is read to its end, and the group
    /// has committed the others to theirs.
    Done,
    /// This member holds no partition, and the group has committed every
    /// partition to its end.
    DoneHoldingNone,
}

/// Done when every assigned partition is consumed to its end: librdkafka
/// reported its end since its last message, and the consumed position is at
/// or past the high watermark. Both are checked because some Kafka-protocol
/// brokers report high watermarks late. `next` gives the next offset to
/// consume of a partition when a message of it was seen; otherwise the
/// group's committed offset (or the low watermark) stands for it.
///
/// The partitions of the subscribed topics that this member does not hold
/// must also be committed by the group to their end. Otherwise another
/// member still has work there, or one that died and whose session has not
/// yet expired holds them; the rebalance that follows its expiry hands them
/// over, and a run that had stopped already would leave them undone.
///
/// A member that holds no partition (more members than partitions, or
/// between a revocation and the next assignment) is caught up once the group
/// has committed every partition to its end: there is nothing left for it
/// to read, and waiting for a rebalance to hand it partitions that are done
/// would only delay its exit. At least one partition must be known, so a
/// run whose topics the cluster does not list yet (or that subscribed by
/// pattern only) waits for an assignment. [`CatchUpCadence::stops`] says
/// when such a result ends the run.
pub fn caught_up<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    eof: &EofTracker,
    next: impl Fn(&str, i32) -> Option<i64>,
) -> CatchUp {
    let Ok(assignment) = consumer.assignment() else {
        return CatchUp::Behind;
    };
    if assignment
        .elements()
        .iter()
        .any(|e| !eof.at_end(e.partition()))
    {
        return CatchUp::Behind;
    }
    let Some(all) = subscribed_partitions(consumer, &assignment) else {
        return CatchUp::Behind;
    };
    if all.count() == 0 {
        return CatchUp::Behind;
    }
    let committed = consumer
        .committed_offsets(all.clone(), Duration::from_secs(5))
        .ok();
    for e in all.elements() {
        let (topic, partition) = (e.topic(), e.partition());
        let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))
        else {
            return CatchUp::Behind;
        };
        let committed_off = committed.as_ref().and_then(|c| {
            c.find_partition(topic, partition)
                .and_then(|el| match el.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
        });
        let held = assignment.find_partition(topic, partition).is_some();
        let consumed = if held { next(topic, partition) } else { None };
        if consumed.or(committed_off).unwrap_or(low) < high {
            return CatchUp::Behind;
        }
    }
    if assignment.count() == 0 {
        CatchUp::DoneHoldingNone
    } else {
        CatchUp::Done
    }
}

/// The `assignment` and every other partition of the topics the consumer
/// subscribed to by name (a `^` pattern stands for no topic in particular),
/// from the cluster's metadata; `None` when it cannot be read.
fn subscribed_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    assignment: &TopicPartitionList,
) -> Option<TopicPartitionList> {
    let subscription = consumer.subscription().ok()?;
    let mut all = assignment.clone();
    for e in subscription.elements() {
        if e.topic().starts_with('^') {
            continue;
        }
        let md = consumer
            .fetch_metadata(Some(e.topic()), Duration::from_secs(5))
            .ok()?;
        for t in md.topics() {
            for p in t.partitions() {
                if all.find_partition(t.name(), p.id()).is_none() {
                    all.add_partition(t.name(), p.id());
                }
            }
        }
    }
    Some(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn catch_up_shortens_fetch_waits_unless_the_properties_set_them() {
        let mut cfg = KafkaConfig::default();
        let mut c = cfg.consumer_config();
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(c.get("fetch.wait.max.ms"), None);
        cfg.set_catch_up(&mut c);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("enable.partition.eof"), Some("true"));
        cfg.properties
            .insert("fetch.wait.max.ms".into(), "200".into());
        let mut c = cfg.consumer_config();
        cfg.set_catch_up(&mut c);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("200"));
    }

    /// The end-of-input check runs at once when a partition reaches its
    /// end, and otherwise at most every interval.
    #[test]
    fn the_catch_up_check_is_due_when_a_partition_ends_or_the_interval_passed() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut eof = EofTracker::default();
        let mut cadence = CatchUpCadence::new(t0);
        assert!(!cadence.due(&eof, ms(10)));
        eof.eof(0);
        assert!(cadence.due(&eof, ms(20)), "a partition ended");
        assert!(!cadence.due(&eof, ms(30)), "nothing new");
        // The same partition reported again is no new end.
        eof.eof(0);
        assert!(!cadence.due(&eof, ms(40)));
        eof.eof(1);
        assert!(cadence.due(&eof, ms(50)), "another partition ended");
        assert!(!cadence.due(&eof, ms(249)));
        assert!(cadence.due(&eof, ms(250)), "the interval passed");
        // A partition that got a message and ends again counts anew.
        eof.message(0);
        assert!(!eof.at_end(0));
        eof.eof(0);
        assert!(cadence.due(&eof, ms(260)));
    }

    /// A member that holds no partition is caught up once the group has
    /// committed every partition of its topics to the end, and not before;
    /// a topic the cluster does not list gives no partition to go by.
    #[test]
    fn a_member_without_partitions_is_caught_up_when_the_group_is() {
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 2, 1).expect("topic");
        let brokers = cluster.bootstrap_servers();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("producer");
        for p in 0..2 {
            for _ in 0..3 {
                producer
                    .send(BaseRecord::<(), _>::to("t").partition(p).payload("x"))
                    .expect("queued");
            }
        }
        producer.flush(Duration::from_secs(10)).expect("produced");
        let consumer = |group: &str| -> BaseConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer")
        };
        // Offsets committed for a group with no members yet.
        let commit = |group: &str, offsets: [i64; 2]| {
            let mut tpl = TopicPartitionList::new();
            for (p, o) in offsets.into_iter().enumerate() {
                tpl.add_partition_offset("t", p as i32, Offset::Offset(o))
                    .expect("offset");
            }
            consumer(group)
                .commit(&tpl, CommitMode::Sync)
                .expect("committed");
        };
        commit("one-left", [3, 2]);
        commit("done", [3, 3]);
        let eof = EofTracker::default();
        // Subscribed, never polled: a member holding no partition. It is
        // closed as ingest closes its consumer: its join may complete as it
        // closes, and librdkafka's close can then wait for good.
        let idle = |group: &str, topic: &str| {
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", &brokers)
                .set("group.id", group)
                .set("enable.auto.commit", "false");
            let c: BaseConsumer<MeteredContext> = config
                .create_with_context(MeteredContext::new(Arc::default(), &config))
                .expect("consumer");
            c.subscribe(&[topic]).expect("subscribed");
            assert_eq!(c.assignment().expect("assignment").count(), 0);
            let check = caught_up(&c, &eof, |_, _| None);
            close_consumer(c, CLOSE_TIMEOUT);
            check
        };
        assert_eq!(idle("nothing-committed", "t"), CatchUp::Behind);
        assert_eq!(idle("one-left", "t"), CatchUp::Behind, "one record left");
        assert_eq!(idle("done", "t"), CatchUp::DoneHoldingNone);
        assert_eq!(idle("done", "not-a-topic"), CatchUp::Behind);
    }

    /// A member holding no partition stops on the second check in a row
    /// that finds the group done; one holding partitions on the first.
    #[test]
    fn holding_nothing_takes_two_done_checks_in_a_row() {
        let mut cadence = CatchUpCadence::new(Instant::now());
        assert!(!cadence.stops(CatchUp::DoneHoldingNone));
        assert!(!cadence.stops(CatchUp::Behind));
        assert!(!cadence.stops(CatchUp::DoneHoldingNone));
        assert!(cadence.stops(CatchUp::DoneHoldingNone));
        let mut cadence = CatchUpCadence::new(Instant::now());
        assert!(cadence.stops(CatchUp::Done));
        let mut cadence = CatchUpCadence::new(Instant::now());
        assert!(!cadence.stops(CatchUp::DoneHoldingNone));
        assert!(cadence.stops(CatchUp::Done));
    }

    #[test]
    fn secrets_come_from_the_environment_and_files() {
        let dir = std::env::temp_dir().join(format!("logwarden-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-a-file\n").unwrap();
        std::env::set_var("LOGWARDEN_TEST_SASL_PW", "from-the-env");
        let mut cfg = KafkaConfig::default();
        cfg.properties.insert(
            "sasl.password".into(),
            "${env:LOGWARDEN_TEST_SASL_PW}".into(),
        );
        cfg.properties.insert(
            "ssl.key.password".into(),
            format!("${{file:{}}}", file.display()),
        );
        cfg.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        cfg.resolve_secrets().unwrap();
        assert_eq!(cfg.properties["sasl.password"], "from-the-env");
        assert_eq!(cfg.properties["ssl.key.password"], "from-a-file");
        assert!(is_secret_key("sasl.password") && is_secret_key("ssl.key.password"));
        assert!(is_secret_key("sasl.jaas.config") && !is_secret_key("security.protocol"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_secret_is_an_error_naming_the_property_not_the_value() {
        let mut cfg = KafkaConfig::default();
        cfg.properties.insert(
            "sasl.password".into(),
            "${env:LOGWARDEN_TEST_SURELY_UNSET_1234}".into(),
        );
        let e = cfg.resolve_secrets().unwrap_err();
        assert!(e.contains("sasl.password"), "{e}");
        assert!(e.contains("LOGWARDEN_TEST_SURELY_UNSET_1234"), "{e}");
        let mut cfg = KafkaConfig::default();
        cfg.properties
            .insert("sasl.password".into(), "${vault:x}".into());
        assert!(cfg.resolve_secrets().is_err());
    }
}
