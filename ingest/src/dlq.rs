//! Dead letters of strict mode (`[parse] mode = "strict"`): a message that
//! cannot be parsed ([`ParseIssue::is_unparseable`]) is produced, unchanged
//! (key, payload and its own headers), to the dead-letter topic instead of
//! being archived, with headers that say why and where it came from:
//!
//! | header | value |
//! |---|---|
//! | `logwarden.error` | the parse issue (`invalid_utf8`, `empty`, `malformed_json`, `oversized`) |
//! | `logwarden.source.topic` | the source topic |
//! | `logwarden.source.partition` | the source partition, decimal |
//! | `logwarden.source.offset` | the source offset, decimal |
//!
//! The source offset of a dead letter is committed only once the broker has
//! confirmed its delivery (`acks=all`) *and* every archived record before it
//! is durable: [`Gate`] tracks both per partition. A delivery that fails for
//! good stops ingest without committing, like a sink failure, so the message
//! is dead-lettered again by the next run (at least once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::kafka::{log_client_error, KafkaConfig};
use crate::record::ParseIssue;

/// Header naming the parse issue.
pub const HEADER_ERROR: &str = "logwarden.error";
/// Header naming the source topic.
pub const HEADER_TOPIC: &str = "logwarden.source.topic";
/// Header with the source partition.
pub const HEADER_PARTITION: &str = "logwarden.source.partition";
/// Header with the source offset.
pub const HEADER_OFFSET: &str = "logwarden.source.offset";

/// Longest a dead letter waits for room in the producer queue before ingest
/// gives up on it (the broker is unreachable for that long).
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait between attempts while the producer queue is full.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(5);
/// librdkafka `queue.buffering.max.kbytes` of the dead-letter producer: the
/// bound on dead letters held in memory while in flight.
const QUEUE_MAX_KBYTES: u32 = 64 * 1024;
/// librdkafka `message.max.bytes` of the dead-letter producer: an oversized
/// payload is dead-lettered whole (the broker's own limit still applies).
const MESSAGE_MAX_BYTES: u32 = 128 << 20;

/// librdkafka `message.timeout.ms` of the dead-letter producer: how long a
/// dead letter may stay undelivered (retried meanwhile) before ingest stops.
/// Shorter than librdkafka's 5 minutes, because the source offsets wait on
/// it.
const MESSAGE_TIMEOUT_MS: u32 = 30_000;
/// librdkafka `linger.ms` of the dead-letter producer.
const LINGER_MS: u32 = 5;

/// The outcome of one dead letter, from the producer's delivery report.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The assignment epoch the message was consumed under.
    pub epoch: u64,
    pub result: Result<(), String>,
}

/// What travels with a dead letter to its delivery report.
struct Opaque {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    epoch: u64,
}

/// Collects delivery reports on the producer's polling thread. Bounded: one
/// report per in-flight dead letter, and those are bounded by the producer
/// queue ([`QUEUE_MAX_KBYTES`]).
#[derive(Default)]
struct DeliveryContext {
    reports: Mutex<Vec<Delivery>>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Opaque>;

    fn delivery(&self, result: &DeliveryResult<'_>, o: Box<Opaque>) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.to_string()),
        };
        let d = Delivery {
            topic: o.topic,
            partition: o.partition,
            offset: o.offset,
            epoch: o.epoch,
            result,
        };
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d);
    }
}

/// One source message to dead-letter.
pub struct DeadLetter<'a> {
    pub topic: &'a Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub epoch: u64,
    pub issue: ParseIssue,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The source message's own headers, copied first.
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// The dead-letter producer of one ingest process.
pub struct DeadLetters {
    producer: ThreadedProducer<DeliveryContext>,
    /// `{topic}` pattern of the dead-letter topic name.
    pattern: String,
    names: HashMap<Arc<str>, String>,
}

impl DeadLetters {
    /// A producer with `acks=all` on the cluster of `kafka`; `pattern` names
    /// the dead-letter topic (`{topic}` is the source topic).
    pub fn new(kafka: &KafkaConfig, pattern: &str) -> Result<Self, KafkaError> {
        let mut cc = kafka.producer_config();
        cc.set("acks", "all");
        // Defaults that `[kafka.properties]` may override.
        for (k, v) in [
            ("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES.to_string()),
            ("message.max.bytes", MESSAGE_MAX_BYTES.to_string()),
            ("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string()),
            ("linger.ms", LINGER_MS.to_string()),
        ] {
            if !kafka.properties.contains_key(k) {
                cc.set(k, v);
            }
        }
        let producer = cc.create_with_context(DeliveryContext::default())?;
        Ok(Self {
            producer,
            pattern: pattern.to_owned(),
            names: HashMap::new(),
        })
    }

    /// The dead-letter topic of source topic `topic`.
    pub fn topic_for(&mut self, topic: &Arc<str>) -> &str {
        let pattern = &self.pattern;
        self.names
            .entry(topic.clone())
            .or_insert_with(|| pattern.replace("{topic}", topic))
    }

    /// Queues a dead letter; its outcome comes later from
    /// [`DeadLetters::take_deliveries`]. Fails when the producer refuses it
    /// (queue full for [`QUEUE_FULL_TIMEOUT`], invalid message).
    pub fn send(&mut self, d: &DeadLetter<'_>) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(d.headers.len() + 4);
        for (k, v) in &d.headers {
            headers = headers.insert(Header { key: k, value: *v });
        }
        let partition = d.partition.to_string();
        let offset = d.offset.to_string();
        for (k, v) in [
            (HEADER_ERROR, d.issue.as_str()),
            (HEADER_TOPIC, &**d.topic),
            (HEADER_PARTITION, &partition),
            (HEADER_OFFSET, &offset),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let topic = self.topic_for(d.topic).to_owned();
        let deadline = Instant::now() + QUEUE_FULL_TIMEOUT;
        loop {
            let mut rec = BaseRecord::with_opaque_to(
                &topic,
                Box::new(Opaque {
                    topic: d.topic.clone(),
                    partition: d.partition,
                    offset: d.offset,
                    epoch: d.epoch,
                }),
            )
            .headers(headers.clone());
            if let Some(k) = d.key {
                rec = rec.key(k);
            }
            if let Some(p) = d.payload {
                rec = rec.payload(p);
            }
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < deadline =>
                {
                    // The producer's own thread drains the queue.
                    std::thread::sleep(QUEUE_FULL_RETRY);
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Delivery reports received since the last call.
    pub fn take_deliveries(&self) -> Vec<Delivery> {
        let mut r = self
            .producer
            .context()
            .reports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *r)
    }
}

/// A dead letter waiting for its offset to be committed.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    /// Every archived record of the partition before this message is below
    /// this offset: they must be durable before it may be committed.
    after: i64,
    /// Where a commit must stop while this dead letter is undelivered: its
    /// own offset, or the first offset of the durable segment around it
    /// (committing inside a written segment would make the replay keep its
    /// file and archive its later rows twice).
    floor: i64,
    delivered: bool,
}

/// The commit frontier of one source partition, from durable segments and
/// delivered dead letters. Without dead letters it is simply the
/// `next_offset` of the last durable segment.
#[derive(Debug, Default)]
pub struct Gate {
    /// Everything below is durable or delivered (dead letters excepted,
    /// which `dead` holds until delivered).
    base: Option<i64>,
    /// The last offset handed out for commit.
    last: Option<i64>,
    /// Dead letters not yet known to lie below a committed offset, in
    /// offset order.
    dead: VecDeque<Entry>,
}

impl Gate {
    /// The first message of an assignment is at `offset`.
    pub fn start(&mut self, offset: i64) {
        if self.base.is_none() {
            self.base = Some(offset);
            self.last = Some(offset);
        }
    }

    /// The segment `[first_offset, next_offset)` is durable. Returns the
    /// offset to commit, when it moved.
    pub fn archived(&mut self, first_offset: i64, next_offset: i64) -> Option<i64> {
        for e in &mut self.dead {
            if (first_offset..next_offset).contains(&e.offset) {
                e.floor = e.floor.min(first_offset);
            }
        }
        self.base = Some(self.base.map_or(next_offset, |b| b.max(next_offset)));
        self.advance()
    }

    /// The message at `offset` was dead-lettered; `after` is the offset
    /// after the previous message of the partition (the message itself when
    /// it is the first).
    pub fn dead_lettered(&mut self, offset: i64, after: i64) {
        self.start(offset);
        self.dead.push_back(Entry {
            offset,
            after: after.min(offset),
            floor: offset,
            delivered: false,
        });
    }

    /// The dead letter of `offset` was delivered. Returns the offset to
    /// commit, when it moved.
    pub fn delivered(&mut self, offset: i64) -> Option<i64> {
        if let Some(e) = self.dead.iter_mut().find(|e| e.offset == offset) {
            e.delivered = true;
        }
        self.advance()
    }

    /// Whether a dead letter is still waiting for its delivery report.
    pub fn in_flight(&self) -> bool {
        self.dead.iter().any(|e| !e.delivered)
    }

    fn advance(&mut self) -> Option<i64> {
        let mut base = self.base?;
        while let Some(e) = self.dead.front() {
            if !e.delivered || (e.offset >= base && base < e.after) {
                break;
            }
            base = base.max(e.offset + 1);
            self.dead.pop_front();
        }
        self.base = Some(base);
        // An undelivered dead letter holds the commit at its floor.
        let commit = match self.dead.front() {
            Some(e) if e.offset < base => e.floor,
            _ => base,
        };
        if self.last.is_some_and(|l| commit <= l) {
            return None;
        }
        self.last = Some(commit);
        Some(commit)
    }
}

#[cfg(test)]
mod tests {
    use super::Gate;

    #[test]
    fn without_dead_letters_durable_segments_commit() {
        let mut g = Gate::default();
        g.start(10);
        assert_eq!(g.archived(10, 15), Some(15));
        assert_eq!(g.archived(10, 15), None);
        assert_eq!(g.archived(15, 20), Some(20));
    }

    #[test]
    fn a_dead_letter_inside_a_segment_holds_it_until_delivered() {
        let mut g = Gate::default();
        g.start(0);
        g.dead_lettered(5, 5);
        assert!(g.in_flight());
        // Segment [0, 3) is durable; [3, 10) holds 3, 4 and 6..=9 and is
        // durable too, but 5 is not yet delivered: the commit stops at the
        // start of 5's segment, never inside a written one.
        assert_eq!(g.archived(0, 3), Some(3));
        assert_eq!(g.archived(3, 10), None);
        assert_eq!(g.delivered(5), Some(10));
        assert!(!g.in_flight());
    }

    #[test]
    fn a_trailing_dead_letter_waits_for_the_records_before_it() {
        let mut g = Gate::default();
        g.start(0);
        // Records 0..=4 in a segment still being written; 5 and 6 dead.
        g.dead_lettered(5, 5);
        g.dead_lettered(6, 6);
        assert_eq!(g.delivered(6), None);
        assert_eq!(g.delivered(5), None, "records 0..=4 are not durable yet");
        assert_eq!(g.archived(0, 5), Some(7));
    }

    #[test]
    fn dead_letters_first_in_an_assignment_commit_on_delivery() {
        let mut g = Gate::default();
        g.dead_lettered(3, 3);
        assert_eq!(g.delivered(3), Some(4));
        g.dead_lettered(4, 4);
        assert_eq!(g.archived(4, 4), None);
        assert_eq!(g.delivered(4), Some(5));
    }

    #[test]
    fn an_undelivered_dead_letter_blocks_later_ones() {
        let mut g = Gate::default();
        g.start(0);
        g.dead_lettered(1, 1);
        g.dead_lettered(2, 2);
        assert_eq!(g.archived(0, 1), Some(1));
        // A segment after the undelivered ones: they are between segments,
        // so the commit may stop right at the first of them.
        assert_eq!(g.archived(3, 5), None);
        assert_eq!(g.delivered(2), None);
        assert_eq!(g.delivered(1), Some(5));
    }
}
