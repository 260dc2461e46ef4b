//! Parsing Kafka messages on worker threads, in order.
//!
//! The poll thread copies each message into the open [`MessageChunk`] of its
//! partition run; a chunk closes when the next message is of another
//! partition, when it is full, or when the poll loop asks (idle, a
//! rebalance, the end). Closed chunks go round-robin to the workers, which
//! parse them into record batches; the batches are read back in the order
//! the chunks were sent, so a partition's records reach its segment in
//! offset order.
//!
//! In strict mode a chunk also carries each message's key and headers, and
//! a message that cannot be parsed comes back as a [`DeadRow`] (with its
//! original bytes) instead of a row of the batch, for the poll thread to
//! dead-letter in the same order.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;

use crate::lanes::{Lanes, Stopped};
use crate::metrics::TopicCounters;
use crate::parse::{ParseContext, ParseMode, Parser, ParserConfigError};
use crate::record::{LogRecord, ParseIssue, Provenance};
use crate::schema::LogBatchBuilder;

/// A chunk closes at this many messages…
const CHUNK_MESSAGES: usize = 4_096;
/// …or once its payloads take this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight per worker: one being parsed, one waiting.
const IN_FLIGHT_PER_WORKER: usize = 2;
/// Messages parsed between two readings of the clock for their ingest time
/// (well under a millisecond's worth, the precision ingest time keeps).
const CLOCK_EVERY: usize = 256;

/// A consumed message, as the poll thread hands it to [`ParsePool::add`].
pub struct Incoming<'a> {
    pub offset: i64,
    /// The offset after the partition's previous message (this message's
    /// own offset when it is the first): where a dead letter's wait for
    /// the records before it ends (see `dlq::Gate`).
    pub after: i64,
    pub transport_time_us: Option<i64>,
    pub payload: Option<&'a [u8]>,
    pub key: Option<&'a [u8]>,
}

/// One message of a chunk: where its bytes are in the chunk's data.
struct Row {
    offset: i64,
    after: i64,
    transport_time_us: Option<i64>,
    /// Payload span in `data`; `None` for a message without a payload.
    span: Option<(usize, usize)>,
    /// In strict mode: the key's span in `data`, and the range of the
    /// message's headers in `headers`.
    key: Option<(usize, usize)>,
    headers: (usize, usize),
}

/// A header of a message of a strict-mode chunk: spans in the chunk's data.
struct HeaderSpan {
    name: (usize, usize),
    value: Option<(usize, usize)>,
}

/// Consecutive messages of one partition, payloads copied into one buffer.
pub struct MessageChunk {
    topic: Arc<str>,
    partition: i32,
    counters: Arc<TopicCounters>,
    data: Vec<u8>,
    rows: Vec<Row>,
    headers: Vec<HeaderSpan>,
}

impl MessageChunk {
    fn empty(topic: Arc<str>, partition: i32, counters: Arc<TopicCounters>) -> Self {
        Self {
            topic,
            partition,
            counters,
            data: Vec::new(),
            rows: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn bytes(&self, span: (usize, usize)) -> &[u8] {
        &self.data[span.0..span.1]
    }

    /// The dead letter of row `i`: its original bytes, key and headers.
    fn dead_row(&self, i: usize, issue: ParseIssue) -> DeadRow {
        let row = &self.rows[i];
        DeadRow {
            offset: row.offset,
            after: row.after,
            issue,
            key: row.key.map(|k| self.bytes(k).to_vec()),
            payload: row.span.map(|p| self.bytes(p).to_vec()),
            headers: self.headers[row.headers.0..row.headers.1]
                .iter()
                .map(|h| {
                    (
                        String::from_utf8_lossy(self.bytes(h.name)).into_owned(),
                        h.value.map(|v| self.bytes(v).to_vec()),
                    )
                })
                .collect(),
        }
    }

    fn full(&self) -> bool {
        self.rows.len() >= CHUNK_MESSAGES || self.data.len() >= CHUNK_BYTES
    }
}

/// A message that strict mode sends to the dead-letter topic, unchanged.
pub struct DeadRow {
    pub offset: i64,
    /// See [`Incoming::after`].
    pub after: i64,
    pub issue: ParseIssue,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The records of a parsed chunk.
pub struct Parsed {
    pub topic: Arc<str>,
    pub partition: i32,
    pub batch: RecordBatch,
    /// In-memory size of the records, as the segmenter counts it.
    pub bytes: usize,
    /// In strict mode, the messages that could not be parsed, in offset
    /// order; they are not in `batch`.
    pub dead: Vec<DeadRow>,
}

/// A parse thread's state: parses payloads into the rows of a batch. Both
/// parse stages use it, this pool for Kafka chunks and the backfill's for
/// chunks of lines.
pub(crate) struct BatchParser {
    parser: Parser,
    rec: LogRecord,
    builder: LogBatchBuilder,
}

/// A message to parse: its offset, its transport time, its payload, and
/// lines that continue the payload's event (file input only).
pub(crate) type Message<'a> = (i64, Option<i64>, Option<&'a [u8]>, Option<&'a [u8]>);

impl BatchParser {
    pub(crate) fn new(parser: Parser) -> Self {
        Self {
            parser,
            rec: LogRecord::default(),
            builder: LogBatchBuilder::new(),
        }
    }

    /// Parses the `messages` of `(topic, partition)`, in order, into a
    /// batch; returns it with the records' in-memory size, as the segmenter
    /// counts it. A message whose record `keep` refuses (given its index
    /// and its record) is counted but left out of the batch.
    pub(crate) fn parse<'a>(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        counters: &TopicCounters,
        messages: impl Iterator<Item = Message<'a>>,
        mut keep: impl FnMut(usize, &LogRecord) -> bool,
    ) -> Result<(RecordBatch, usize), ArrowError> {
        let mut prov = Provenance {
            topic: topic.clone(),
            partition,
            offset: 0,
        };
        let mut ctx = ParseContext {
            transport_time_us: None,
            ingest_time_us: 0,
        };
        for (i, (offset, transport_time_us, payload, rest)) in messages.enumerate() {
            if i % CLOCK_EVERY == 0 {
                ctx.ingest_time_us = crate::record::ingest_now_us();
            }
            ctx.transport_time_us = transport_time_us;
            self.parser.parse_topic(topic, payload, &ctx, &mut self.rec);
            let mut len = payload.map_or(0, <[u8]>::len);
            if let Some(rest) = rest {
                self.rec.continue_message(rest);
                len += rest.len() + 1;
            }
            counters.count_parsed(&self.rec, len);
            if keep(i, &self.rec) {
                prov.offset = offset;
                self.builder.append(&self.rec, &prov, ctx.ingest_time_us);
            }
        }
        let bytes = self.builder.bytes();
        Ok((self.builder.finish()?, bytes))
    }
}

/// A worker thread's state.
struct Worker {
    rows: BatchParser,
    strict: bool,
}

impl Worker {
    fn parse(&mut self, chunk: &MessageChunk) -> Result<Parsed, ArrowError> {
        let mut dead = Vec::new();
        let strict = self.strict;
        let messages = chunk.rows.iter().map(|r| {
            (
                r.offset,
                r.transport_time_us,
                r.span.map(|p| chunk.bytes(p)),
                None,
            )
        });
        let (batch, bytes) = self.rows.parse(
            &chunk.topic,
            chunk.partition,
            &chunk.counters,
            messages,
            |i, rec| match rec.parse_issue.filter(|i| strict && i.is_unparseable()) {
                Some(issue) => {
                    dead.push(chunk.dead_row(i, issue));
                    false
                }
                None => true,
            },
        )?;
        Ok(Parsed {
            topic: chunk.topic.clone(),
            partition: chunk.partition,
            batch,
            bytes,
            dead,
        })
    }
}

/// Why the pool cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("a parse thread stopped")]
    Stopped(#[from] Stopped),
    #[error("building a batch of parsed records: {0}")]
    Arrow(#[from] ArrowError),
    #[error("starting a parse thread: {0}")]
    Spawn(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ParserConfigError),
}

/// Workers parsing chunks of messages, results read back in order.
pub struct ParsePool {
    lanes: Lanes<MessageChunk, (Result<Parsed, ArrowError>, MessageChunk)>,
    /// The chunk being filled.
    open: Option<MessageChunk>,
    /// Chunks that came back, kept to reuse their buffers.
    spare: Vec<MessageChunk>,
    /// Strict mode: chunks keep keys and headers for dead letters.
    strict: bool,
}

impl ParsePool {
    /// Starts `threads` workers (at least one), each with a fork of `parser`
    /// (whose mode says whether unparseable messages come back as
    /// [`DeadRow`]s).
    pub fn start(parser: &Parser, threads: usize) -> Result<Self, PoolError> {
        let strict = parser.config().mode == ParseMode::Strict;
        let workers = (0..threads.max(1))
            .map(|_| {
                Ok(Worker {
                    rows: BatchParser::new(parser.fork()?),
                    strict,
                })
            })
            .collect::<Result<Vec<_>, ParserConfigError>>()?;
        let lanes = Lanes::start(
            "logwarden-parse",
            workers,
            IN_FLIGHT_PER_WORKER,
            |w, chunk| {
                let result = w.parse(&chunk);
                (result, chunk)
            },
        )?;
        Ok(Self {
            lanes,
            open: None,
            spare: Vec::new(),
            strict,
        })
    }

    /// Whether a message of `(topic, partition)` can join the open chunk;
    /// if not, the caller [`send`](Self::send)s it first.
    pub fn fits(&self, topic: &str, partition: i32) -> bool {
        self.open
            .as_ref()
            .is_none_or(|c| c.partition == partition && &*c.topic == topic && !c.full())
    }

    /// Adds a message to the open chunk, opening one when there is none.
    /// Call [`fits`](Self::fits) first. Its key and headers are kept in
    /// strict mode only (`headers` is called only then).
    pub fn add<'a, H>(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        counters: &Arc<TopicCounters>,
        msg: Incoming<'a>,
        headers: impl FnOnce() -> H,
    ) where
        H: Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let chunk = self.open.get_or_insert_with(|| match self.spare.pop() {
            Some(mut c) => {
                c.topic = topic.clone();
                c.partition = partition;
                c.counters = counters.clone();
                c
            }
            None => MessageChunk::empty(topic.clone(), partition, counters.clone()),
        });
        let data = &mut chunk.data;
        let mut copy = |b: &[u8]| {
            let start = data.len();
            data.extend_from_slice(b);
            (start, data.len())
        };
        let span = msg.payload.map(&mut copy);
        let (mut key, first_header) = (None, chunk.headers.len());
        if self.strict {
            key = msg.key.map(&mut copy);
            for (name, value) in headers() {
                let name = copy(name.as_bytes());
                let value = value.map(&mut copy);
                chunk.headers.push(HeaderSpan { name, value });
            }
        }
        chunk.rows.push(Row {
            offset: msg.offset,
            after: msg.after,
            transport_time_us: msg.transport_time_us,
            span,
            key,
            headers: (first_header, chunk.headers.len()),
        });
    }

    /// Whether a chunk is open.
    pub fn has_open(&self) -> bool {
        self.open.is_some()
    }

    /// Chunks sent and not read back.
    pub fn in_flight(&self) -> usize {
        self.lanes.in_flight()
    }

    /// Sends the open chunk to its worker. When every worker already has
    /// its share in flight, first waits for the oldest result and returns
    /// it.
    pub fn send(&mut self) -> Result<Option<Parsed>, PoolError> {
        let Some(chunk) = self.open.take() else {
            return Ok(None);
        };
        let done = if self.lanes.is_full() {
            self.receive(true)?
        } else {
            None
        };
        self.lanes.send(chunk)?;
        Ok(done)
    }

    /// The oldest result, if it is ready (or, with `wait`, once it is).
    pub fn receive(&mut self, wait: bool) -> Result<Option<Parsed>, PoolError> {
        let Some((result, mut chunk)) = self.lanes.receive(wait)? else {
            return Ok(None);
        };
        chunk.data.clear();
        chunk.rows.clear();
        chunk.headers.clear();
        self.spare.push(chunk);
        Ok(Some(result?))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int32Type;

    use super::*;
    use crate::metrics::IngestMetrics;
    use crate::parse::ParserConfig;
    use crate::schema::col;

    fn incoming(
        offset: i64,
        transport_time_us: Option<i64>,
        payload: Option<&[u8]>,
    ) -> Incoming<'_> {
        Incoming {
            offset,
            after: offset,
            transport_time_us,
            payload,
            key: None,
        }
    }

    fn offsets(batch: &RecordBatch) -> Vec<i64> {
        let c = batch.column_by_name(col::OFFSET).expect("offset column");
        let a = c.as_any().downcast_ref::<Int64Array>().expect("Int64");
        a.values().to_vec()
    }

    fn messages(batch: &RecordBatch) -> Vec<String> {
        let c = batch.column_by_name(col::MESSAGE).expect("message column");
        c.as_string::<i32>()
            .iter()
            .map(|m| m.unwrap_or_default().to_string())
            .collect()
    }

    /// Messages of two partitions in runs of varying length, chunks sent at
    /// each change of partition and when full: every message comes back
    /// parsed, once, in the order it was added.
    #[test]
    fn chunks_come_back_parsed_in_order() {
        let parser = Parser::new(ParserConfig::default()).expect("parser");
        let metrics = IngestMetrics::default();
        let counters = metrics.topic("t");
        let topic: Arc<str> = "t".into();
        let mut pool = ParsePool::start(&parser, 3).expect("pool");
        let mut back = Vec::new();
        let mut sent = Vec::new();
        let mut next = [0i64, 1000];
        for run in 0..60usize {
            let partition = (run % 2) as i32;
            for _ in 0..(run * 397 % 5000 + 1) {
                if !pool.fits(&topic, partition) {
                    back.extend(pool.send().expect("send"));
                }
                let offset = next[partition as usize];
                next[partition as usize] += 1 + offset % 3;
                let line = format!(r#"{{"msg":"m {partition} {offset}","level":"warn"}}"#);
                let payload = (offset % 11 != 0).then_some(line.as_bytes());
                pool.add(
                    &topic,
                    partition,
                    &counters,
                    incoming(offset, Some(5), payload),
                    std::iter::empty,
                );
                sent.push((partition, offset, payload.is_some()));
            }
        }
        back.extend(pool.send().expect("send"));
        while let Some(p) = pool.receive(true).expect("receive") {
            back.push(p);
        }
        assert_eq!(pool.in_flight(), 0);
        let mut got = Vec::new();
        for p in &back {
            assert_eq!(p.batch.num_rows(), offsets(&p.batch).len());
            let partitions = p
                .batch
                .column_by_name(col::PARTITION)
                .expect("partition")
                .as_primitive::<Int32Type>()
                .values()
                .to_vec();
            assert!(partitions.iter().all(|&q| q == p.partition));
            for (o, m) in offsets(&p.batch).into_iter().zip(messages(&p.batch)) {
                got.push((p.partition, o, !m.is_empty()));
                if !m.is_empty() {
                    assert_eq!(m, format!("m {} {o}", p.partition));
                }
            }
        }
        assert_eq!(got, sent);
        assert!(back.len() > 60, "full chunks were cut: {}", back.len());
    }

    #[test]
    fn a_full_chunk_does_not_fit() {
        let parser = Parser::new(ParserConfig::default()).expect("parser");
        let counters = IngestMetrics::default().topic("t");
        let topic: Arc<str> = "t".into();
        let mut pool = ParsePool::start(&parser, 1).expect("pool");
        assert!(pool.fits(&topic, 0));
        let big = vec![b'x'; CHUNK_BYTES];
        pool.add(
            &topic,
            0,
            &counters,
            incoming(0, None, Some(&big)),
            std::iter::empty,
        );
        assert!(!pool.fits(&topic, 0), "a chunk of CHUNK_BYTES is full");
        assert!(pool.send().expect("send").is_none());
        assert!(pool.fits(&topic, 1));
        let parsed = pool.receive(true).expect("receive").expect("a result");
        assert_eq!(parsed.batch.num_rows(), 1);
        assert!(parsed.bytes >= CHUNK_BYTES / 2, "{}", parsed.bytes);
    }

    /// Strict mode: a message that cannot be parsed comes back as a dead
    /// row with its own bytes, key and headers, in offset order, and not in
    /// the batch; the messages around it are archived as usual. Lenient
    /// mode archives it, marked, and keeps no keys or headers.
    #[test]
    fn strict_mode_returns_unparseable_messages_as_dead_rows() {
        let lines: [&[u8]; 6] = [
            br#"{"msg":"a","level":"info"}"#,
            b"\xff\xfe not utf-8",
            br#"{"msg":"b","level":"info"}"#,
            b"",
            br#"{"msg":"c","level":"info"}"#,
            br#"{"msg":"d","#,
        ];
        for strict in [true, false] {
            let cfg = ParserConfig {
                mode: if strict {
                    ParseMode::Strict
                } else {
                    ParseMode::Lenient
                },
                ..ParserConfig::default()
            };
            let parser = Parser::new(cfg).expect("parser");
            let counters = IngestMetrics::default().topic("t");
            let topic: Arc<str> = "t".into();
            let mut pool = ParsePool::start(&parser, 2).expect("pool");
            for (i, line) in lines.iter().enumerate() {
                let offset = 10 + i as i64;
                let key = format!("k{offset}");
                let headers = [("trace", Some(&b"x1"[..])), ("empty", None)];
                pool.add(
                    &topic,
                    0,
                    &counters,
                    Incoming {
                        offset,
                        after: offset - 1,
                        transport_time_us: None,
                        payload: Some(line),
                        key: Some(key.as_bytes()),
                    },
                    || headers.into_iter(),
                );
            }
            assert!(pool.send().expect("send").is_none());
            let parsed = pool.receive(true).expect("receive").expect("a result");
            if !strict {
                assert!(parsed.dead.is_empty());
                assert_eq!(offsets(&parsed.batch), (10..16).collect::<Vec<_>>());
                continue;
            }
            assert_eq!(offsets(&parsed.batch), vec![10, 12, 14]);
            assert_eq!(messages(&parsed.batch), vec!["a", "b", "c"]);
            let dead: Vec<i64> = parsed.dead.iter().map(|d| d.offset).collect();
            assert_eq!(dead, vec![11, 13, 15]);
            for d in &parsed.dead {
                let i = (d.offset - 10) as usize;
                assert_eq!(d.payload.as_deref(), Some(lines[i]));
                assert_eq!(d.after, d.offset - 1);
                assert_eq!(d.key.as_deref(), Some(format!("k{}", d.offset).as_bytes()));
                assert_eq!(
                    d.headers,
                    vec![
                        ("trace".to_string(), Some(b"x1".to_vec())),
                        ("empty".to_string(), None)
                    ]
                );
                assert!(d.issue.is_unparseable(), "{:?}", d.issue);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(32))]

        /// Strict mode over many chunks of two partitions: every message
        /// comes back once, as a row when it parses and as a dead row when
        /// it does not, and each partition's rows and dead rows both come
        /// back in offset order.
        #[test]
        fn strict_mode_accounts_for_every_message_in_order(
            kinds in proptest::collection::vec((0..2i32, 0..5u8), 1..1500),
        ) {
            let cfg = ParserConfig {
                mode: ParseMode::Strict,
                ..ParserConfig::default()
            };
            let parser = Parser::new(cfg).expect("parser");
            let counters = IngestMetrics::default().topic("t");
            let topic: Arc<str> = "t".into();
            let mut pool = ParsePool::start(&parser, 2).expect("pool");
            let mut back = Vec::new();
            let mut next = [0i64; 2];
            let mut sent: [Vec<(i64, bool)>; 2] = [Vec::new(), Vec::new()];
            for &(partition, kind) in &kinds {
                let offset = next[partition as usize];
                next[partition as usize] += 1;
                let good = format!(r#"{{"msg":"m {offset}"}}"#);
                let payload: Option<&[u8]> = match kind {
                    0 | 1 => Some(good.as_bytes()),
                    2 => Some(b"\xc3\x28 bad utf-8"),
                    3 => None,
                    _ => Some(br#"{"msg": "#),
                };
                if !pool.fits(&topic, partition) {
                    back.extend(pool.send().expect("send"));
                }
                let msg = Incoming { offset, after: offset, transport_time_us: None, payload, key: None };
                pool.add(&topic, partition, &counters, msg, std::iter::empty);
                sent[partition as usize].push((offset, kind <= 1));
            }
            back.extend(pool.send().expect("send"));
            while let Some(p) = pool.receive(true).expect("receive") {
                back.push(p);
            }
            let mut rows: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
            let mut dead: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
            for p in &back {
                let q = p.partition as usize;
                rows[q].extend(offsets(&p.batch));
                dead[q].extend(p.dead.iter().map(|d| d.offset));
            }
            for q in 0..2 {
                let want_rows: Vec<i64> = sent[q].iter().filter(|s| s.1).map(|s| s.0).collect();
                let want_dead: Vec<i64> = sent[q].iter().filter(|s| !s.1).map(|s| s.0).collect();
                proptest::prop_assert_eq!(&rows[q], &want_rows);
                proptest::prop_assert_eq!(&dead[q], &want_dead);
            }
        }
    }
}
