//! The file source of ingest (`--input FILE` or `-`): backfills old logs into
//! the same archive. Provenance is the input's name as topic, partition 0 and
//! the line number (from 0) as offset, so re-running a backfill of the same
//! file replaces its files instead of duplicating rows.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::IngestMetrics;
use crate::parse::{ParseContext, Parser};
use crate::record::{LogRecord, Provenance};
use crate::segment::Segmenter;
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
}

impl FileSource {
    /// Archives every line of `input`; returns the number of lines read.
    pub fn run(
        &self,
        input: impl Read,
        mut parser: Parser,
        mut segmenter: Segmenter,
        mut writer: Writer,
        metrics: Arc<IngestMetrics>,
        shutdown: Arc<AtomicBool>,
    ) -> Result<u64, FileSourceError> {
        let mut lines = LineReader::new(input);
        let mut rec = LogRecord::default();
        let mut offset: i64 = 0;
        let mut failure: Option<String> = None;
        let counters = metrics.topic(&self.name);
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
        loop {
            if shutdown.load(Ordering::Relaxed) {
                writer.shutdown();
                return Err(FileSourceError::Interrupted);
            }
            let Some(payload) = lines.next_line()? else {
                break;
            };
            let now_us = crate::record::ingest_now_us();
            let ctx = ParseContext {
                transport_time_us: None,
                ingest_time_us: now_us,
            };
            parser.parse_topic(&self.name, Some(payload), &ctx, &mut rec);
            counters.count_parsed(&rec, payload.len());
            let prov = Provenance {
                topic: self.name.clone(),
                partition: 0,
                offset,
            };
            offset += 1;
            for segment in segmenter.append(&prov, &rec, now_us, Instant::now) {
                send(&mut writer, Job::Write { segment, epoch: 0 }, &mut failure);
            }
            if let Some(f) = failure.take() {
                writer.shutdown();
                return Err(FileSourceError::Sink(f));
            }
        }
        for segment in segmenter.close_all() {
            send(&mut writer, Job::Write { segment, epoch: 0 }, &mut failure);
        }
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
            None => Ok(offset as u64),
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

    /// Endings are stripped the same way whether a line is lent from the
    /// buffer or gathered across reads.
    #[test]
    fn lines_are_split_whether_lent_or_gathered() {
        let long = "x".repeat(3 * READ_BUFFER_BYTES / 2);
        let text = format!("a\nb\r\n\n\r\nlast {long}\nc\r\nno ending");
        let expected: Vec<Vec<u8>> = ["a", "b", "", "", &format!("last {long}"), "c", "no ending"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        assert_eq!(lines(text.as_bytes()), expected);
        for chunk in [1, 2, 7, 4096] {
            let trickle = Trickle {
                data: text.as_bytes(),
                chunk,
            };
            assert_eq!(lines(trickle), expected, "reads of {chunk} bytes");
        }
        assert!(lines(&b""[..]).is_empty());
        assert_eq!(lines(&b"\n"[..]), vec![Vec::<u8>::new()]);
    }
}
