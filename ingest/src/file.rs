//! The file source of ingest (`--input FILE` or `-`): backfills old logs into
//! the same archive. Provenance is the input's name as topic, partition 0 and
//! the line number (from 0) as offset, so re-running a backfill of the same
//! file replaces its files instead of duplicating rows.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, DictionaryArray, Int32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::lanes::Lanes;
use crate::metrics::{IngestMetrics, TopicCounters};
use crate::multiline::Joiner;
use crate::parse::{Parser, ParserConfigError};
use crate::pool::BatchParser;
use crate::record::TimeSource;
use crate::schema::col;
use crate::segment::{SegmentConfig, FILE_MAX_BYTES};
use crate::sink::Segment;
use crate::template::mine_batch;
use crate::writer::{Job, Writer};

/// Buffer size of the line reader.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Errors that end a backfill.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("reading the input: {0}")]
    Read(#[from] std::io::Error),
    #[error("the sink failed permanently: {0}")]
    Sink(String),
    #[error("interrupted before the input was fully archived")]
    Interrupted,
    #[error("building a segment: {0}")]
    Batch(#[from] ArrowError),
    #[error("starting a parser: {0}")]
    Parser(#[from] ParserConfigError),
    #[error("a parse thread stopped")]
    ParseThread,
    #[error("starting a parse thread: {0}")]
    Spawn(std::io::Error),
}

/// Reads newline-separated payloads: `\n` and `\r\n` endings are
/// stripped, a last line without an ending is kept. A line that lies
/// whole in the read buffer is lent from it; one that straddles two reads
/// is gathered in a second buffer.
pub struct LineReader<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    /// Bytes of the read buffer lent by the previous call, consumed at the
    /// next one.
    lent: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, input),
            line: Vec::new(),
            lent: 0,
        }
    }

    /// The next payload, or `None` at the end of the input.
    pub fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.reader.consume(std::mem::take(&mut self.lent));
        let buf = self.reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some(at) = memchr::memchr(b'\n', buf) {
            self.lent = at + 1;
            return Ok(Some(strip_ending(&self.reader.buffer()[..=at])));
        }
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line)?;
        Ok(Some(strip_ending(&self.line)))
    }
}

/// Reads events: a line and the lines that continue it ([`multiline`]),
/// grouped as the backfill groups them.
///
/// [`multiline`]: crate::multiline
pub struct EventReader<R> {
    lines: LineReader<R>,
    joiner: Joiner,
    first: Vec<u8>,
    rest: Vec<u8>,
    /// The line read after the last event, which starts the next one.
    next: Option<Vec<u8>>,
}

impl<R: Read> EventReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            lines: LineReader::new(input),
            joiner: Joiner::default(),
            first: Vec::new(),
            rest: Vec::new(),
            next: None,
        }
    }

    /// The next event's first line and the lines continuing it (joined by
    /// `\n`), if any; `None` at the end of the input.
    #[allow(clippy::type_complexity)]
    pub fn next_event(&mut self) -> std::io::Result<Option<(&[u8], Option<&[u8]>)>> {
        let mut spare = match self.next.take() {
            // The line read ahead starts this event; the buffer it replaces
            // takes the next read-ahead.
            Some(line) => std::mem::replace(&mut self.first, line),
            None => {
                let Some(line) = self.lines.next_line()? else {
                    return Ok(None);
                };
                self.joiner.next(line);
                self.first.clear();
                self.first.extend_from_slice(line);
                Vec::new()
            }
        };
        self.rest.clear();
        while let Some(line) = self.lines.next_line()? {
            if self.joiner.next(line) {
                if !self.rest.is_empty() {
                    self.rest.push(b'\n');
                }
                self.rest.extend_from_slice(line);
            } else {
                spare.clear();
                spare.extend_from_slice(line);
                self.next = Some(spare);
                break;
            }
        }
        let rest = (!self.rest.is_empty()).then_some(self.rest.as_slice());
        Ok(Some((self.first.as_slice(), rest)))
    }
}

/// `line` without its `\n` or `\r\n`.
fn strip_ending(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(p) => p.strip_suffix(b"\r").unwrap_or(p),
        None => line,
    }
}

/// Reads newline-separated payloads from `input` and archives them.
pub struct FileSource {
    /// Name recorded as the records' topic (and in file names).
    pub name: Arc<str>,
    /// Threads parsing the input. The reading thread cuts the input into
    /// chunks of lines, each parsed into Arrow on a parse thread in turn,
    /// and joins the chunks back in input order into segments: the same
    /// records, offsets and segment limits whatever the number of threads.
    /// The reading thread also mines the templates of each parsed chunk
    /// (the parser's miner), in input order.
    pub parse_threads: usize,
    /// Width of the archive's time partitions in microseconds (an hour for
    /// `dt=/hour=` directories), if it has any. A segment that fills is cut
    /// where the partition of its records last changes, when that is in its
    /// second half: an input in time order then writes each partition in one
    /// file, which compaction has no reason to rewrite.
    pub time_partition_us: Option<i64>,
}

/// A chunk closes at this many lines…
const CHUNK_LINES: usize = 4_096;
/// …or once it holds this many bytes of input (whole lines).
const CHUNK_BYTES: usize = 1 << 20;

// An event always fits a chunk, with room for the next one.
const _: () =
    assert!(crate::multiline::MAX_BYTES < CHUNK_BYTES && crate::multiline::MAX_LINES < CHUNK_LINES);
/// Chunks in flight per parse thread: one being parsed, one waiting.
const IN_FLIGHT_PER_THREAD: usize = 2;

/// Consecutive events of the input, the first at `first_offset`, read in
/// one block: `data` holds their lines with their endings, `spans` where
/// each event is: its start, the end of its first line, and the end of its
/// last line (without their endings). An event is one line, or a line and
/// the lines that continue it ([`multiline`]).
#[derive(Default)]
struct Chunk {
    first_offset: i64,
    data: Vec<u8>,
    spans: Vec<(usize, usize, usize)>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.spans.len()
    }

    /// Each event's first line, and the lines that continue it (with the
    /// endings between them), if any.
    fn events(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.spans.iter().map(|&(a, first_end, end)| {
            let first = &self.data[a..first_end];
            let rest = (end > first_end).then(|| {
                let r = &self.data[first_end..end];
                let r = r.strip_prefix(b"\r").unwrap_or(r);
                r.strip_prefix(b"\n").unwrap_or(r)
            });
            (first, rest)
        })
    }
}

/// Cuts the input into chunks of whole events, reading straight into each
/// chunk's buffer. The lines are split as [`LineReader`] splits them, and
/// grouped into events by [`Joiner`]: a chunk's last event is held back for
/// the next chunk unless the input ends with it, since the lines after it
/// may continue it. Events never straddle chunks, whatever the chunk sizes.
struct ChunkReader<R> {
    input: R,
    /// Bytes read past the last whole event of the previous chunk.
    carry: Vec<u8>,
    eof: bool,
    /// Events handed out so far: the next chunk's first offset.
    offset: i64,
    /// Lines handed out so far.
    lines: u64,
    /// Events a chunk closes at ([`CHUNK_LINES`]; fewer in tests). At
    /// least two: a chunk that closes on its count holds back its last
    /// event, and one event alone could not be held back. (A chunk that
    /// closes on its bytes with one event holds a line of about
    /// [`CHUNK_BYTES`], longer than any event may grow, so nothing could
    /// continue it.)
    max_events: usize,
}

impl<R: Read> ChunkReader<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            carry: Vec::new(),
            eof: false,
            offset: 0,
            lines: 0,
            max_events: CHUNK_LINES,
        }
    }

    /// Refills `chunk` (its buffers reused) with the next events; none at
    /// the end of the input.
    fn fill(&mut self, chunk: &mut Chunk) -> std::io::Result<()> {
        chunk.first_offset = self.offset;
        chunk.spans.clear();
        chunk.data.clear();
        std::mem::swap(&mut chunk.data, &mut self.carry);
        let mut joiner = Joiner::default();
        let mut lines = 0u64;
        // Start of the next line, and how far `data` has no newline.
        let (mut start, mut searched) = (0, 0);
        let mut add = |chunk: &mut Chunk, start: usize, next: usize| {
            let line = strip_ending(&chunk.data[start..next]);
            let end = start + line.len();
            lines += 1;
            // A fresh joiner starts an event with the chunk's first line.
            let joins = joiner.next(line);
            match chunk.spans.last_mut() {
                Some(last) if joins => last.2 = end,
                _ => chunk.spans.push((start, end, end)),
            }
        };
        loop {
            while chunk.spans.len() < self.max_events {
                let from = start.max(searched);
                let Some(at) = memchr::memchr(b'\n', &chunk.data[from..]) else {
                    searched = chunk.data.len();
                    break;
                };
                let next = from + at + 1;
                add(chunk, start, next);
                start = next;
            }
            if chunk.spans.len() >= self.max_events || start >= CHUNK_BYTES || self.eof {
                break;
            }
            // Into the buffer's spare room, which need not be zeroed first.
            chunk.data.reserve(READ_BUFFER_BYTES);
            let n = (&mut self.input)
                .take(READ_BUFFER_BYTES as u64)
                .read_to_end(&mut chunk.data)?;
            self.eof = n == 0;
        }
        // A last line without an ending is kept as it is.
        if self.eof && chunk.spans.len() < self.max_events && start < chunk.data.len() {
            let end = chunk.data.len();
            add(chunk, start, end);
            start = end;
        }
        let ended = self.eof && start == chunk.data.len();
        if !ended && chunk.spans.len() > 1 {
            if let Some((first, _, _)) = chunk.spans.pop() {
                start = first;
                lines -= joiner.event_lines() as u64;
            }
        }
        self.carry.extend_from_slice(&chunk.data[start..]);
        chunk.data.truncate(start);
        self.offset += chunk.spans.len() as i64;
        self.lines += lines;
        Ok(())
    }
}

/// A parsed chunk: its records as a batch, with the chunk to reuse.
struct Piece {
    batch: RecordBatch,
    /// In-memory size of the records, as the segmenter counts it.
    bytes: usize,
    chunk: Chunk,
}

/// One parse thread's work: parses each line of `chunk` and returns the
/// records as a batch.
struct ChunkParser {
    rows: BatchParser,
    name: Arc<str>,
    counters: Arc<TopicCounters>,
}

impl ChunkParser {
    fn parse(&mut self, chunk: Chunk) -> Result<Piece, ArrowError> {
        let lines = chunk
            .events()
            .zip(chunk.first_offset..)
            .map(|((line, rest), offset)| (offset, None, Some(line), rest));
        let (batch, bytes) = self
            .rows
            .parse(&self.name, 0, &self.counters, lines, |_, _| true)?;
        Ok(Piece {
            batch,
            bytes,
            chunk,
        })
    }
}

/// Joins parsed chunks, in input order, into segments that close on the
/// segmenter's row and byte limits (never over `max_rows`: a chunk is cut
/// where a segment fills). A full segment ends at the last change of time
/// partition in its second half, if there is one; the rows after it open
/// the next segment. A segment of at least an eighth of the byte limit
/// also ends where time moves on to a later partition than any of its rows
/// (rows arriving late for an earlier one do not end it): a backfill in
/// time order writes one segment, and so one file, per partition, and its
/// last segment, written after the input ends with no parsing left to
/// overlap, holds no more than the last partition.
struct Assembler {
    topic: Arc<str>,
    max_rows: usize,
    max_bytes: usize,
    time_partition_us: Option<i64>,
    batches: Vec<RecordBatch>,
    first_offset: i64,
    rows: usize,
    bytes: usize,
    /// The latest time partition of the open segment's rows.
    latest_partition: Option<i64>,
}

/// Fraction of the byte limit a segment holds before a later time
/// partition ends it.
const TURN_MIN_FRACTION: usize = 8;

impl Assembler {
    fn new(topic: Arc<str>, cfg: &SegmentConfig, time_partition_us: Option<i64>) -> Self {
        Self {
            topic,
            max_rows: cfg.max_rows,
            max_bytes: cfg.max_bytes_or(FILE_MAX_BYTES),
            time_partition_us,
            batches: Vec::new(),
            first_offset: 0,
            rows: 0,
            bytes: 0,
            latest_partition: None,
        }
    }

    /// The first of `batch`'s first `limit` rows whose time partition is
    /// later than any before it in the open segment, once the segment (with
    /// the rows before it, of `bytes` for the batch) holds enough to end
    /// there. Notes the partitions of the rows it passes.
    fn turn(&mut self, batch: &RecordBatch, limit: usize, bytes: usize) -> Option<usize> {
        let width = self.time_partition_us?;
        let times = batch
            .column_by_name(col::EVENT_TIME)?
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()?;
        let n = batch.num_rows();
        let min_bytes = self.max_bytes / TURN_MIN_FRACTION;
        for (i, t) in times.values()[..limit].iter().enumerate() {
            let part = t.div_euclid(width);
            match self.latest_partition {
                Some(latest) if part <= latest => {}
                Some(_) if self.rows + i > 0 && self.bytes + bytes * i / n >= min_bytes => {
                    return Some(i);
                }
                _ => self.latest_partition = Some(part),
            }
        }
        None
    }

    /// The latest time partition of the rows still open.
    fn open_latest_partition(&self) -> Option<i64> {
        let width = self.time_partition_us?;
        self.batches
            .iter()
            .filter_map(|b| {
                b.column_by_name(col::EVENT_TIME)?
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
            })
            .flat_map(|times| times.values().iter().map(|t| t.div_euclid(width)))
            .max()
    }

    /// Adds the records of a chunk starting at `first_offset`; returns the
    /// segments that filled.
    fn push(
        &mut self,
        mut batch: RecordBatch,
        mut first_offset: i64,
        mut bytes: usize,
    ) -> Vec<Segment> {
        let mut full = Vec::new();
        while batch.num_rows() > 0 {
            if self.batches.is_empty() {
                self.first_offset = first_offset;
            }
            let n = batch.num_rows();
            let mut take = n.min(self.max_rows - self.rows);
            let turn = self.turn(&batch, take, bytes);
            if let Some(at) = turn {
                take = at;
            }
            let share = bytes * take / n;
            if take > 0 {
                self.batches.push(batch.slice(0, take));
            }
            self.rows += take;
            self.bytes += share;
            batch = batch.slice(take, n - take);
            first_offset += take as i64;
            bytes -= share;
            if turn.is_some() {
                full.extend(self.close_first(self.rows));
                self.latest_partition = None;
            } else if self.rows >= self.max_rows || self.bytes >= self.max_bytes {
                let rows = self.partition_end().unwrap_or(self.rows);
                full.extend(self.close_first(rows));
                self.latest_partition = self.open_latest_partition();
            }
        }
        full
    }

    /// The open segment, if it has records.
    fn close(&mut self) -> Option<Segment> {
        self.close_first(self.rows)
    }

    /// Where the open segment's last change of time partition is (the index
    /// of the first row of the last partition), if it lies in the second half.
    fn partition_end(&self) -> Option<usize> {
        let width = self.time_partition_us?;
        let half = self.rows.div_ceil(2).max(1);
        // Row indices from the last down to `half`, with their partitions.
        let mut end = self.rows;
        let mut later: Option<i64> = None;
        for batch in self.batches.iter().rev() {
            let start = end - batch.num_rows();
            let times = batch
                .column_by_name(col::EVENT_TIME)?
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()?;
            for (i, t) in times.values().iter().enumerate().rev() {
                let row = start + i;
                let part = t.div_euclid(width);
                if later.is_some_and(|p| p != part) {
                    return Some(row + 1);
                }
                if row < half {
                    return None;
                }
                later = Some(part);
            }
            end = start;
        }
        None
    }

    /// Closes the first `rows` rows of the open segment (all of them, or the
    /// rows before a change of partition); the rest stay open.
    fn close_first(&mut self, rows: usize) -> Option<Segment> {
        if self.batches.is_empty() {
            return None;
        }
        let mut head = Vec::new();
        let mut left = rows;
        let mut rest = std::mem::take(&mut self.batches).into_iter();
        for b in rest.by_ref() {
            let n = b.num_rows();
            if n <= left {
                left -= n;
                head.push(b);
            } else {
                head.push(b.slice(0, left));
                self.batches.push(b.slice(left, n - left));
                break;
            }
            if left == 0 {
                break;
            }
        }
        self.batches.extend(rest);
        let segment = Segment {
            topic: self.topic.clone(),
            partition: 0,
            first_offset: self.first_offset,
            next_offset: self.first_offset + rows as i64,
            batches: head,
        };
        // The byte count is an estimate: the rows kept take their share
        // (`self.rows` is not 0: there were batches).
        let kept = self.rows - rows;
        self.bytes = self.bytes * kept / self.rows;
        self.rows = kept;
        self.first_offset += rows as i64;
        Some(segment)
    }
}

impl FileSource {
    /// Archives every line of `input`; returns the number of lines read.
    pub fn run(
        &self,
        input: impl Read,
        parser: Parser,
        segment: &SegmentConfig,
        mut writer: Writer,
        metrics: Arc<IngestMetrics>,
        shutdown: Arc<AtomicBool>,
    ) -> Result<u64, FileSourceError> {
        let mut failure: Option<String> = None;
        send(
            &mut writer,
            Job::Recover {
                topic: self.name.clone(),
                partition: 0,
                replay_from: 0,
                epoch: 0,
            },
            &mut failure,
        );
        let mut feed = Feed {
            writer: &mut writer,
            failure: &mut failure,
            shutdown: &shutdown,
        };
        let read = self.parse_on_threads(input, parser, segment, &metrics, &mut feed);
        let lines = match read {
            Ok(lines) => lines,
            Err(e) => {
                writer.shutdown();
                return Err(e);
            }
        };
        while writer.in_flight() > 0 {
            if let Some(ack) = writer.wait_ack(Duration::from_millis(100)) {
                if let Err(e) = ack.result {
                    failure.get_or_insert(e.to_string());
                }
            }
            if shutdown.load(Ordering::Relaxed) {
                break;
            }
        }
        writer.shutdown();
        match failure {
            Some(f) => Err(FileSourceError::Sink(f)),
            None if writer.in_flight() > 0 => Err(FileSourceError::Interrupted),
            None => Ok(lines),
        }
    }

    /// Parses chunks of lines on `parse_threads` threads, in turn; returns
    /// the number of lines.
    fn parse_on_threads(
        &self,
        input: impl Read,
        mut parser: Parser,
        limits: &SegmentConfig,
        metrics: &IngestMetrics,
        feed: &mut Feed<'_>,
    ) -> Result<u64, FileSourceError> {
        // Templates are mined here, on the thread that assembles the parsed
        // chunks in input order: each chunk's messages as it comes back, so
        // mining overlaps parsing instead of waiting for whole segments.
        let mut miner = parser.take_miner();
        let parsers = if self.parse_threads <= 1 {
            vec![parser]
        } else {
            (0..self.parse_threads)
                .map(|_| parser.fork())
                .collect::<Result<_, _>>()?
        };
        let counters = metrics.topic(&self.name);
        let workers = parsers.into_iter().map(|parser| ChunkParser {
            rows: BatchParser::new(parser),
            name: self.name.clone(),
            counters: counters.clone(),
        });
        let mut lanes = Lanes::start(
            "logwarden-parse",
            workers,
            IN_FLIGHT_PER_THREAD,
            ChunkParser::parse,
        )
        .map_err(FileSourceError::Spawn)?;
        let mut reader = ChunkReader::new(input);
        let mut segments = Assembler::new(self.name.clone(), limits, self.time_partition_us);
        let mut spare: Vec<Chunk> = Vec::new();
        let mut last_time: Option<i64> = None;
        let mut take = |lanes: &mut Lanes<Chunk, Result<Piece, ArrowError>>,
                        spare: &mut Vec<Chunk>,
                        feed: &mut Feed<'_>|
         -> Result<bool, FileSourceError> {
            let Some(piece) = lanes
                .receive(true)
                .map_err(|_| FileSourceError::ParseThread)?
            else {
                return Ok(false);
            };
            let piece = piece?;
            let first = piece.chunk.first_offset;
            let batch = match miner.as_mut() {
                Some(m) => {
                    let mined = mine_batch(m, &piece.batch)?;
                    IngestMetrics::set(&metrics.templates, m.len());
                    mined
                }
                None => piece.batch,
            };
            let batch = inherit_times(batch, &mut last_time)?;
            for segment in segments.push(batch, first, piece.bytes) {
                feed.write(segment);
            }
            spare.push(piece.chunk);
            Ok(true)
        };
        loop {
            feed.check()?;
            let mut chunk = spare.pop().unwrap_or_default();
            reader.fill(&mut chunk)?;
            if chunk.len() == 0 {
                break;
            }
            if lanes.is_full() {
                take(&mut lanes, &mut spare, feed)?;
            }
            lanes
                .send(chunk)
                .map_err(|_| FileSourceError::ParseThread)?;
        }
        loop {
            feed.check()?;
            if !take(&mut lanes, &mut spare, feed)? {
                break;
            }
        }
        if let Some(segment) = segments.close() {
            feed.write(segment);
        }
        feed.check()?;
        Ok(reader.lines)
    }
}

/// [`LogRecord::inherit_time`](crate::record::LogRecord::inherit_time)
/// over a parsed chunk's rows, in input order: a row whose time fell back
/// to the ingest time takes the event time of the last row with its own
/// before it (`last`, carried from chunk to chunk), and says `previous`.
/// A line without a timestamp in a file of lines with one is most often the
/// continuation of the line before it (a stack trace): this keeps it in
/// that line's time partition and order instead of today's.
fn inherit_times(batch: RecordBatch, last: &mut Option<i64>) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let (time_col, source_col) = (
        schema.index_of(col::EVENT_TIME)?,
        schema.index_of(col::TIME_SOURCE)?,
    );
    let times = batch
        .column(time_col)
        .as_primitive::<TimestampMicrosecondType>();
    let sources = batch.column(source_col).as_dictionary::<Int32Type>();
    let names = sources.values().as_string::<i32>();
    let key_of = |name: &str| {
        (0..names.len())
            .find(|&k| names.is_valid(k) && names.value(k) == name)
            .map(|k| k as i32)
    };
    let parsed = key_of(TimeSource::Parsed.as_str());
    let Some(ingest) = key_of(TimeSource::Ingest.as_str()) else {
        // Nothing to fill in: only `last` moves on.
        let keys = sources.keys();
        if let Some(row) = (0..keys.len())
            .rev()
            .find(|&r| Some(keys.value(r)) == parsed)
        {
            *last = Some(times.value(row));
        }
        return Ok(batch);
    };
    let previous = names.len() as i32;
    let mut new_times = times.values().to_vec();
    let mut new_keys = sources.keys().values().to_vec();
    for (t, k) in new_times.iter_mut().zip(new_keys.iter_mut()) {
        if Some(*k) == parsed {
            *last = Some(*t);
        } else if *k == ingest {
            if let Some(l) = *last {
                *t = l;
                *k = previous;
            }
        }
    }
    let mut values: Vec<Option<&str>> = names.iter().collect();
    values.push(Some(TimeSource::Previous.as_str()));
    let new_sources = DictionaryArray::try_new(
        Int32Array::new(new_keys.into(), sources.keys().nulls().cloned()),
        Arc::new(StringArray::from(values)),
    )?;
    let new_times = TimestampMicrosecondArray::new(new_times.into(), times.nulls().cloned())
        .with_data_type(times.data_type().clone());
    let mut columns = batch.columns().to_vec();
    columns[time_col] = Arc::new(new_times);
    columns[source_col] = Arc::new(new_sources);
    RecordBatch::try_new(schema, columns)
}

/// Hands segments to the writer and watches for the end of the run.
struct Feed<'a> {
    writer: &'a mut Writer,
    failure: &'a mut Option<String>,
    shutdown: &'a AtomicBool,
}

impl Feed<'_> {
    fn write(&mut self, segment: Segment) {
        send(self.writer, Job::Write { segment, epoch: 0 }, self.failure);
    }

    /// An error when the run must end: interrupted, or the sink failed.
    fn check(&mut self) -> Result<(), FileSourceError> {
        if self.shutdown.load(Ordering::Relaxed) {
            return Err(FileSourceError::Interrupted);
        }
        match self.failure.take() {
            Some(f) => Err(FileSourceError::Sink(f)),
            None => Ok(()),
        }
    }
}

/// Queues a job, waiting for room; records the first failure reported.
fn send(writer: &mut Writer, mut job: Job, failure: &mut Option<String>) {
    loop {
        for ack in writer.try_acks() {
            if let Err(e) = ack.result {
                failure.get_or_insert(e.to_string());
            }
        }
        match writer.try_send(job) {
            Ok(()) => return,
            Err(j) => {
                job = j;
                if writer.is_finished() {
                    failure.get_or_insert("the writer thread ended".into());
                    return;
                }
                if let Some(ack) = writer.wait_ack(Duration::from_millis(100)) {
                    if let Err(e) = ack.result {
                        failure.get_or_insert(e.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::compute::concat_batches;

    /// A reader that hands out at most `chunk` bytes per read, so lines
    /// straddle reads.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn lines(r: impl Read) -> Vec<Vec<u8>> {
        let mut reader = LineReader::new(r);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().expect("read") {
            out.push(line.to_vec());
        }
        out
    }

    /// The events of `r` as the backfill's chunks hold them: each one's
    /// lines joined by `\n`.
    fn chunked(r: impl Read) -> Vec<Vec<u8>> {
        chunked_by(r, CHUNK_LINES)
    }

    /// [`chunked`], with chunks of at most `max_events` events.
    fn chunked_by(r: impl Read, max_events: usize) -> Vec<Vec<u8>> {
        let mut reader = ChunkReader::new(r);
        reader.max_events = max_events.max(2);
        let mut chunk = Chunk::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        loop {
            reader.fill(&mut chunk).expect("read");
            if chunk.len() == 0 {
                return out;
            }
            assert_eq!(chunk.first_offset, out.len() as i64);
            assert!(chunk.len() <= max_events.max(2));
            // Endings between an event's lines become `\n`, as in its message.
            out.extend(chunk.events().map(|(first, rest)| {
                let rest = rest.map(|r| String::from_utf8_lossy(r).replace("\r\n", "\n"));
                event_text(first, rest.as_ref().map(|r| r.as_bytes()))
            }));
        }
    }

    /// The events of `lines` as one [`Joiner`] groups them, line by line.
    fn joined(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
        crate::multiline::group(lines.iter().map(Vec::as_slice))
    }

    /// An event's text as the readers give it: its first line, and the
    /// lines continuing it after a `\n`.
    fn event_text(first: &[u8], rest: Option<&[u8]>) -> Vec<u8> {
        match rest {
            Some(rest) => [first, b"\n", rest].concat(),
            None => first.to_vec(),
        }
    }

    /// The events an [`EventReader`] reads from `r`.
    fn read_events(r: impl Read) -> Vec<Vec<u8>> {
        let mut reader = EventReader::new(r);
        let mut events = Vec::new();
        while let Some((first, rest)) = reader.next_event().expect("read") {
            events.push(event_text(first, rest));
        }
        events
    }

    /// An event that reaches the byte cap is cut at the same line whether
    /// the file ends its lines with `\r\n` or `\n`, in the backfill's
    /// chunks as in the event reader.
    #[test]
    fn long_events_are_cut_alike_whatever_the_line_endings() {
        let frame = format!("\tat {}", "x".repeat(196));
        let text = |ending: &str| {
            let mut t = format!("ERROR first{ending}");
            for _ in 0..400 {
                t.push_str(&frame);
                t.push_str(ending);
            }
            t
        };
        let (crlf, lf) = (text("\r\n"), text("\n"));
        let expected = joined(&lines(lf.as_bytes()));
        assert!(expected.len() > 1, "the cap splits the trace");
        assert_eq!(chunked(lf.as_bytes()), expected);
        assert_eq!(chunked(crlf.as_bytes()), expected);
        assert_eq!(read_events(crlf.as_bytes()), expected);
    }

    /// The event reader groups lines as the backfill's chunks do.
    #[test]
    fn the_event_reader_groups_lines_as_the_backfill_does() {
        let text = "ERROR a\njava.io.IOException: x\n\tat a.B(B.java:1)\r\nplain\n\n\tat after an empty line\nERROR b\n  indented\nlast";
        let events = read_events(text.as_bytes());
        assert_eq!(events, chunked(text.as_bytes()));
        assert_eq!(events.len(), 6, "{events:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// Whatever the lines, chunk sizes and read sizes, the chunks hold
        /// the events one joiner finds over the whole input, in order.
        #[test]
        fn chunks_hold_the_events_of_one_joiner(
            picks in proptest::collection::vec((0..12usize, 0..3usize), 0..120),
            max_events in 2..6usize,
            read in 1..40usize,
            last_ending in proptest::bool::ANY,
        ) {
            const LINES: [&str; 12] = [
                "2024-05-01 10:00:00 ERROR failed",
                "\tat a.B.c(B.java:1)",
                "Caused by: java.io.IOException: x",
                "java.lang.IllegalStateException: boom",
                "ValueError: bad",
                "Traceback (most recent call last):",
                "{\"msg\":\"json\"}",
                "",
                "  ",
                "plain line",
                "  indented",
                "ts=1 level=info",
            ];
            const ENDINGS: [&str; 3] = ["\n", "\r\n", "\n"];
            let mut text = String::new();
            for (k, &(line, ending)) in picks.iter().enumerate() {
                text.push_str(LINES[line]);
                if k + 1 < picks.len() || last_ending {
                    text.push_str(ENDINGS[ending]);
                }
            }
            let expected = joined(&lines(text.as_bytes()));
            let trickle = Trickle { data: text.as_bytes(), chunk: read };
            proptest::prop_assert_eq!(&chunked_by(trickle, max_events), &expected);
            let events = read_events(Trickle { data: text.as_bytes(), chunk: read });
            proptest::prop_assert_eq!(events, expected);
        }
    }

    /// Stack traces are whole events whatever the chunks and reads cut:
    /// the same events as one joiner over the whole input, trace lines
    /// included across chunk boundaries.
    #[test]
    fn events_are_whole_whatever_the_chunks() {
        let mut text = String::new();
        for i in 0..2 * CHUNK_LINES + 100 {
            text.push_str(&format!("2024-05-01 10:00:00 ERROR event {i}\n"));
            if i % 7 == 0 {
                text.push_str("java.lang.IllegalStateException: boom\n");
                for f in 0..i % 5 {
                    text.push_str(&format!("\tat a.B.c{f}(B.java:{i})\r\n"));
                }
            }
        }
        let expected = joined(&lines(text.as_bytes()));
        assert_eq!(expected.len(), 2 * CHUNK_LINES + 100);
        assert!(
            expected[7].ends_with(b"(B.java:7)"),
            "{:?}",
            String::from_utf8_lossy(&expected[7])
        );
        assert_eq!(chunked(text.as_bytes()), expected);
        let trickle = Trickle {
            data: text.as_bytes(),
            chunk: 3000,
        };
        assert_eq!(chunked(trickle), expected);
    }

    /// Records what it is asked to write.
    struct Capture(Arc<std::sync::Mutex<Vec<Segment>>>);

    impl crate::sink::Sink for Capture {
        fn write(
            &mut self,
            segment: &Segment,
        ) -> Result<crate::sink::WriteStats, crate::sink::SinkError> {
            self.0.lock().expect("capture").push(segment.clone());
            Ok(crate::sink::WriteStats::default())
        }
    }

    /// Backfills `input` on `threads` parse threads; returns the segments.
    fn backfill(input: &[u8], threads: usize, cfg: SegmentConfig) -> Vec<Segment> {
        backfill_into(input, threads, cfg, None)
    }

    /// Like [`backfill`], into an archive of time partitions `part_us` wide.
    fn backfill_into(
        input: &[u8],
        threads: usize,
        cfg: SegmentConfig,
        part_us: Option<i64>,
    ) -> Vec<Segment> {
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let metrics = Arc::new(IngestMetrics::default());
        let writer = Writer::spawn(
            Box::new(Capture(written.clone())),
            &crate::writer::WriterConfig::default(),
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let source = FileSource {
            name: "input.log".into(),
            parse_threads: threads,
            time_partition_us: part_us,
        };
        // The parser mines templates, as ingest's does.
        let parser = Parser::new(crate::parse::ParserConfig::default()).expect("parser");
        let lines = source
            .run(
                input,
                parser,
                &cfg,
                writer,
                metrics.clone(),
                Arc::new(AtomicBool::new(false)),
            )
            .expect("backfill");
        let segments = std::mem::take(&mut *written.lock().expect("capture"));
        let rows: usize = segments.iter().map(Segment::num_rows).sum();
        // A record per event: a line, or a line and the lines continuing it.
        let records = metrics.total(|t| IngestMetrics::get(&t.records_consumed));
        assert_eq!(rows as u64, records, "{threads} threads");
        assert!(
            records <= lines && (records > 0) == (lines > 0),
            "{records} records, {lines} lines"
        );
        segments
    }

    /// Lines of every kind the parser meets: JSON with and without a
    /// timestamp, logfmt, syslog, plain text, empty lines, invalid UTF-8.
    fn mixed_input(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let line: Vec<u8> = match i % 7 {
                0 => format!(r#"{{"ts":"2026-03-01T10:{:02}:00Z","level":"warn","service":"api","msg":"slow {i}","ms":{i}}}"#, i % 60).into_bytes(),
                1 => format!("time=2026-03-01T11:00:00Z level=info service=db msg=\"query {i}\"").into_bytes(),
                2 => format!("<34>Mar  1 12:00:{:02} host{} sshd[42]: Failed password for u{i}", i % 60, i % 3).into_bytes(),
                3 => format!("2026-03-01 13:00:00 ERROR worker {i} crashed").into_bytes(),
                4 => Vec::new(),
                5 => [b"bad \xff\xfe bytes ".as_slice(), i.to_string().as_bytes()].concat(),
                _ => format!(r#"{{"message":"no time {i}","user":{{"id":{i}}}}}"#).into_bytes(),
            };
            out.extend_from_slice(&line);
            out.extend_from_slice(if i % 5 == 0 { b"\r\n" } else { b"\n" });
        }
        out
    }

    /// The batches' rows in order, without the columns that hold the time
    /// of ingest (which differs between two runs).
    fn rows(segments: &[Segment]) -> RecordBatch {
        let batches: Vec<RecordBatch> = segments.iter().flat_map(|s| s.batches.clone()).collect();
        let all = concat_batches(&batches[0].schema(), &batches).expect("concat");
        let keep: Vec<usize> = (0..all.num_columns())
            .filter(|&i| {
                let name = all.schema().field(i).name().clone();
                name != crate::schema::col::INGEST_TIME && name != crate::schema::col::EVENT_TIME
            })
            .collect();
        all.project(&keep).expect("project")
    }

    /// Parsed on several threads, a backfill writes the records one thread
    /// writes, in input order, in segments of contiguous offsets; on the
    /// row limit the segments are the same ones.
    #[test]
    fn parse_threads_write_the_same_segments() {
        let input = mixed_input(11_000);
        let by_rows = SegmentConfig {
            max_rows: 2_500,
            ..SegmentConfig::default()
        };
        let by_bytes = SegmentConfig {
            max_bytes: 300_000,
            max_buffered_bytes: 300_000,
            ..SegmentConfig::default()
        };
        for cfg in [by_rows, by_bytes] {
            let one = backfill(&input, 1, cfg.clone());
            let expected = rows(&one);
            assert_eq!(expected.num_rows(), 11_000);
            for threads in [2, 3] {
                let many = backfill(&input, threads, cfg.clone());
                let mut next = 0;
                for s in &many {
                    assert_eq!(s.first_offset, next, "{threads} threads: contiguous");
                    assert_eq!(s.num_rows() as i64, s.next_offset - s.first_offset);
                    assert!(s.num_rows() <= cfg.max_rows);
                    next = s.next_offset;
                }
                assert_eq!(next, 11_000);
                assert!(many.len() > 2, "the limits closed segments");
                if cfg.max_rows == 2_500 {
                    assert_eq!(ranges(&many), ranges(&one));
                }
                assert_eq!(rows(&many), expected, "{threads} threads");
            }
        }
    }

    /// A line without a timestamp takes the event time of the last line
    /// before it with one, across chunks and parse threads, and says
    /// `previous`; one before any such line keeps the ingest time.
    #[test]
    fn lines_without_a_time_take_the_time_of_the_line_before() {
        use arrow::array::ArrayAccessor;
        // Two lines before any time, so that the second chunk (at event
        // 4,095: a chunk's last event waits for the next chunk) opens with
        // a line without a time. Each error line has a stack trace, which
        // joins it, and a line of its own without a time after it.
        let mut input = b"no time yet\nstill none\n".to_vec();
        for i in 0..3_000 {
            input.extend_from_slice(
                format!(
                    "2024-05-01T{:02}:{:02}:{:02}Z ERROR request {i} failed\n\
                     java.lang.IllegalStateException: boom {i}\n\
                     \tat com.example.App.main(App.java:{i})\n\
                     retry scheduled for request {i}\n",
                    i / 3600,
                    i / 60 % 60,
                    i % 60
                )
                .as_bytes(),
            );
        }
        for threads in [1, 2] {
            let segments = backfill(&input, threads, SegmentConfig::default());
            let batches: Vec<RecordBatch> =
                segments.iter().flat_map(|s| s.batches.clone()).collect();
            let all = concat_batches(&batches[0].schema(), &batches).expect("concat");
            assert_eq!(all.num_rows(), 6_002);
            let messages = all
                .column_by_name(col::MESSAGE)
                .expect("message")
                .as_string::<i32>();
            let times = all
                .column_by_name(col::EVENT_TIME)
                .expect("event_time")
                .as_primitive::<TimestampMicrosecondType>();
            let sources = all
                .column_by_name(col::TIME_SOURCE)
                .expect("time_source")
                .as_dictionary::<Int32Type>()
                .downcast_dict::<StringArray>()
                .expect("strings");
            assert_eq!((sources.value(0), sources.value(1)), ("ingest", "ingest"));
            let start = chrono::DateTime::parse_from_rfc3339("2024-05-01T00:00:00Z")
                .expect("time")
                .timestamp_micros();
            for r in 2..all.num_rows() {
                let i = (r - 2) / 2;
                let (want, message) = if (r - 2) % 2 == 0 {
                    (
                        "parsed",
                        format!(
                            "request {i} failed\n\
                             java.lang.IllegalStateException: boom {i}\n\
                             \tat com.example.App.main(App.java:{i})"
                        ),
                    )
                } else {
                    ("previous", format!("retry scheduled for request {i}"))
                };
                assert_eq!(sources.value(r), want, "row {r}, {threads} threads");
                assert_eq!(times.value(r), start + i as i64 * 1_000_000, "row {r}");
                assert_eq!(messages.value(r), message, "row {r}, {threads} threads");
            }
        }
    }

    /// Segment ranges, as `(first, next)` offsets.
    fn ranges(segments: &[Segment]) -> Vec<(i64, i64)> {
        segments
            .iter()
            .map(|s| (s.first_offset, s.next_offset))
            .collect()
    }

    /// A full segment ends where the hour of its records last changes, if
    /// that is in its second half, so an input in time order writes each
    /// hour in as few files as the row limit allows.
    #[test]
    fn full_segments_end_where_the_hour_changes() {
        // Lines per hour, in time order.
        let hours = [700, 1_300, 400, 2_000, 200, 900];
        let mut input = Vec::new();
        for (h, &n) in hours.iter().enumerate() {
            for i in 0..n {
                let (m, s) = (i * 3_600 / n / 60, i * 3_600 / n % 60);
                input.extend_from_slice(
                    format!(r#"{{"ts":"2026-03-01T{h:02}:{m:02}:{s:02}Z","msg":"line {i}"}}"#)
                        .as_bytes(),
                );
                input.push(b'\n');
            }
        }
        let cfg = SegmentConfig {
            max_rows: 1_000,
            ..SegmentConfig::default()
        };
        let hour = Some(3_600_000_000);
        // 0..700 is hour 0; 700..1700 fills inside hour 1; 1700..2400 ends
        // hour 1 and holds hour 2; hour 3 (2400..4400) fills two segments;
        // at 5400 the last change (4600) is in the first half, so the
        // segment is cut at the row limit.
        let expected = [
            (0, 700),
            (700, 1_700),
            (1_700, 2_400),
            (2_400, 3_400),
            (3_400, 4_400),
            (4_400, 5_400),
            (5_400, 5_500),
        ];
        let mut aligned = Vec::new();
        for threads in [1, 2] {
            aligned = backfill_into(&input, threads, cfg.clone(), hour);
            assert_eq!(ranges(&aligned), expected, "{threads} threads");
        }
        // Without time partitions, segments close on the row limit alone;
        // either way they hold the same rows.
        let plain = backfill(&input, 2, cfg);
        let every_1000: Vec<(i64, i64)> = (0..=5)
            .map(|i| (i * 1_000, (i * 1_000 + 1_000).min(5_500)))
            .collect();
        assert_eq!(ranges(&plain), every_1000);
        assert_eq!(rows(&aligned), rows(&plain));
    }

    /// A segment that holds an eighth of the byte limit ends where time
    /// moves on to a later hour; a late line of an earlier hour does not end
    /// one, and an hour too small to end one joins the next.
    #[test]
    fn segments_end_where_time_moves_on_to_a_later_hour() {
        let line = |h: usize, i: usize, n: usize| {
            let (m, s) = (i * 3_600 / n / 60, i * 3_600 / n % 60);
            format!("{{\"ts\":\"2026-03-01T{h:02}:{m:02}:{s:02}Z\",\"msg\":\"line {i}\"}}\n")
        };
        let mut input = String::new();
        for (h, n) in [(0, 700), (1, 1_300), (2, 50), (3, 900)] {
            for i in 0..n {
                input.push_str(&line(h, i, n));
                if h == 1 && i == 9 {
                    // Late: the end of hour 0, after hour 1 began.
                    input.push_str(&line(0, 699, 700));
                }
            }
        }
        // Each of these lines counts about 73 bytes: the limit is about
        // 1,600 lines, an eighth of it about 200.
        let cfg = SegmentConfig {
            max_rows: 100_000,
            max_bytes: 8 * 200 * 73,
            ..SegmentConfig::default()
        };
        let expected = [(0, 700), (700, 2_001), (2_001, 2_951)];
        let mut aligned = Vec::new();
        for threads in [1, 2] {
            aligned = backfill_into(input.as_bytes(), threads, cfg.clone(), Some(3_600_000_000));
            assert_eq!(ranges(&aligned), expected, "{threads} threads");
        }
        // Without time partitions, only the limits end segments.
        let plain = backfill(input.as_bytes(), 2, cfg);
        assert_eq!(ranges(&plain), [(0, 2_951)]);
        assert_eq!(rows(&aligned), rows(&plain));
    }

    /// The rows a full segment leaves open (after its last change of hour)
    /// count as the next segment's: the next hour ends it.
    #[test]
    fn the_rows_left_open_by_a_full_segment_end_at_the_next_hour() {
        let line = |h: usize, i: usize| {
            format!(
                "{{\"ts\":\"2026-03-01T{h:02}:00:{:02}.{i:04}Z\",\"msg\":\"line {i}\"}}\n",
                i % 60
            )
        };
        let mut input = String::new();
        // Hour 0 (150 lines) is too small to end a segment at hour 1; a
        // late hour-0 line at 700 is where the full segment (1,000 rows)
        // ends, leaving hour 1's last 299 lines open when hour 2 begins.
        for i in 0..150 {
            input.push_str(&line(0, i));
        }
        for i in 150..1_000 {
            input.push_str(&line(if i == 700 { 0 } else { 1 }, i));
        }
        for i in 1_000..1_300 {
            input.push_str(&line(2, i));
        }
        let cfg = SegmentConfig {
            max_rows: 1_000,
            max_bytes: 8 * 200 * 73,
            ..SegmentConfig::default()
        };
        for threads in [1, 2] {
            let segments =
                backfill_into(input.as_bytes(), threads, cfg.clone(), Some(3_600_000_000));
            assert_eq!(
                ranges(&segments),
                [(0, 701), (701, 1_000), (1_000, 1_300)],
                "{threads} threads"
            );
        }
    }

    /// Endings are stripped the same way whether a line is lent from the
    /// buffer or gathered across reads, and by the backfill's chunks.
    #[test]
    fn lines_are_split_whether_lent_or_gathered() {
        let long = "x".repeat(3 * READ_BUFFER_BYTES / 2);
        let text = format!("a\nb\r\n\n\r\nlast {long}\nc\r\nno ending");
        let expected: Vec<Vec<u8>> = ["a", "b", "", "", &format!("last {long}"), "c", "no ending"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        assert_eq!(lines(text.as_bytes()), expected);
        assert_eq!(chunked(text.as_bytes()), expected);
        for chunk in [1, 2, 7, 4096] {
            let trickle = || Trickle {
                data: text.as_bytes(),
                chunk,
            };
            assert_eq!(lines(trickle()), expected, "reads of {chunk} bytes");
            assert_eq!(
                chunked(trickle()),
                expected,
                "chunks, reads of {chunk} bytes"
            );
        }
        for (text, expected) in [("", vec![]), ("\n", vec![""]), ("\r", vec!["\r"])] {
            let expected: Vec<Vec<u8>> = expected.iter().map(|l| l.as_bytes().to_vec()).collect();
            assert_eq!(lines(text.as_bytes()), expected, "{text:?}");
            assert_eq!(chunked(text.as_bytes()), expected, "{text:?}");
        }
        // Many short lines: chunks close on their line count.
        let short: String = (0..3 * CHUNK_LINES + 5)
            .map(|i| format!("{i}\r\n"))
            .collect();
        let expected: Vec<Vec<u8>> = (0..3 * CHUNK_LINES + 5)
            .map(|i| i.to_string().into_bytes())
            .collect();
        assert_eq!(chunked(short.as_bytes()), expected);
    }
}
