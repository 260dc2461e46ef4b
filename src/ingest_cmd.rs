//! `logwarden ingest`: Kafka (or a file) to the Parquet archive.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use logwarden_ingest::file::FileSource;
use logwarden_ingest::kafka::{KafkaSource, StopWhen};
use logwarden_ingest::metrics::IngestMetrics;
use logwarden_ingest::parse::Parser;
use logwarden_ingest::segment::Segmenter;
use logwarden_ingest::sink::Sink;
use logwarden_ingest::writer::Writer;
use logwarden_storage::compactor::{compact_backfill, BackgroundCompactor};
use logwarden_storage::layout::time_bucket_us;
use logwarden_storage::{LocalArchive, Location, ObjectStoreArchive};

use crate::config::Config;

/// Where ingest reads from.
pub enum Input {
    Kafka {
        stop: StopWhen,
    },
    /// A file path, or `-` for standard input. `name` is recorded as the
    /// records' topic and names the archive files (default: the file name,
    /// or `stdin`): a backfill under the same name replaces the files of the
    /// previous one, so distinct inputs need distinct names.
    File {
        path: PathBuf,
        name: Option<String>,
    },
}

/// What an ingest run did, for the summary line.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Where the archive is (a directory or an `s3://` URL).
    pub archive: String,
    pub consumed: u64,
    pub archived: u64,
    pub files: u64,
    pub bytes_written: u64,
    pub parse_issues: u64,
    /// Unparseable messages sent to the dead-letter topic (strict mode).
    pub dead_lettered: u64,
    /// Small files ingest's own compaction merged, and the files it wrote.
    pub compacted_in: u64,
    pub compacted_out: u64,
    pub elapsed: Duration,
    /// From the first record to the end (Kafka; the whole run for a file).
    pub active: Duration,
}

/// Runs ingest to completion (caught up, end of file, or shutdown).
pub fn run(
    cfg: &Config,
    input: Input,
    metrics: Arc<IngestMetrics>,
    shutdown: Arc<AtomicBool>,
    force: Arc<AtomicBool>,
) -> anyhow::Result<IngestReport> {
    cfg.validate_ingest(matches!(input, Input::Kafka { .. }))?;
    let location = cfg.output_location()?;
    // A backfill's in-flight records say so: compaction then merges its
    // files apart, which a re-run of it deletes.
    let backfill = !matches!(input, Input::Kafka { .. });
    let archive: Box<dyn Sink> = match &location {
        Location::Local(root) => {
            let a = LocalArchive::open(root, cfg.archive.clone())
                .with_context(|| format!("opening the archive at {}", root.display()))?;
            Box::new(if backfill { a.for_backfill() } else { a })
        }
        Location::S3 { bucket, prefix } => {
            let a = ObjectStoreArchive::s3(bucket, prefix, cfg.archive.clone(), &cfg.archive.s3)
                .with_context(|| format!("opening the archive at {location}"))?;
            Box::new(if backfill { a.for_backfill() } else { a })
        }
    };
    let parser = Parser::new(cfg.parse.clone()).context("invalid [parse] configuration")?;
    if cfg.telemetry.enabled {
        // A local archive is checked for writability; an S3 one through the
        // sink's own failures.
        let local_root = match &location {
            Location::Local(root) => Some(root.clone()),
            Location::S3 { .. } => None,
        };
        let mut checks = vec![crate::telemetry::archive_ready(local_root, metrics.clone())];
        if matches!(input, Input::Kafka { .. }) {
            checks.push(crate::telemetry::kafka_ready(
                metrics.kafka.clone(),
                Duration::from_secs_f64(cfg.telemetry.stale_after_secs),
            ));
        }
        crate::telemetry::serve(
            &cfg.telemetry.ingest_listen,
            crate::telemetry::ingest_registry(metrics.clone()),
            checks,
        )?;
    }
    let writer = Writer::spawn(archive, &cfg.ingest.writer, metrics.clone(), force);
    let started = Instant::now();
    let mut active = None;
    match input {
        Input::Kafka { stop } => {
            // Stopped (and joined) when this scope ends, on errors too.
            let compactor = if cfg.archive.compaction.in_ingest {
                Some(
                    BackgroundCompactor::spawn(
                        location.clone(),
                        cfg.archive.clone(),
                        metrics.clone(),
                        shutdown.clone(),
                    )
                    .context("starting the compaction thread")?,
                )
            } else {
                None
            };
            let mut kafka = cfg.kafka.clone();
            kafka.group = cfg.ingest.group.clone();
            let source = KafkaSource {
                kafka,
                stop,
                shutdown_timeout: Duration::from_secs_f64(cfg.ingest.shutdown_timeout_secs),
                parse_threads: logwarden_ingest::stage_threads(cfg.ingest.parse_threads),
            };
            let segmenter = Segmenter::new(cfg.ingest.segment.clone());
            let summary = source.run(parser, segmenter, writer, metrics.clone(), shutdown)?;
            if let Some(c) = compactor {
                c.stop();
            }
            active = Some(summary.active);
            if !summary.clean_exit {
                tracing::warn!("stopped with data not yet durable; it stays uncommitted and is replayed on the next start");
            }
        }
        Input::File { path, name } => {
            let name: Arc<str> = match name {
                Some(n) if !n.trim().is_empty() => n.into(),
                Some(_) => anyhow::bail!("--source-name must not be empty"),
                None if path.as_os_str() == "-" => "stdin".into(),
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "input".into())
                    .into(),
            };
            let source = FileSource {
                name: name.clone(),
                parse_threads: logwarden_ingest::stage_threads(cfg.ingest.parse_threads),
                time_partition_us: time_bucket_us(&cfg.archive.partition_by),
            };
            let lines = if path.as_os_str() == "-" {
                source.run(
                    std::io::stdin().lock(),
                    parser,
                    &cfg.ingest.segment,
                    writer,
                    metrics.clone(),
                    shutdown.clone(),
                )?
            } else {
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                source.run(
                    f,
                    parser,
                    &cfg.ingest.segment,
                    writer,
                    metrics.clone(),
                    shutdown.clone(),
                )?
            };
            tracing::info!(lines, "input archived");
            // The whole input is durable: its files may now be compacted.
            match &location {
                Location::Local(root) => LocalArchive::open(root, cfg.archive.clone())
                    .and_then(|mut a| a.mark_settled(&name, 0)),
                Location::S3 { bucket, prefix } => {
                    ObjectStoreArchive::s3(bucket, prefix, cfg.archive.clone(), &cfg.archive.s3)
                        .and_then(|mut a| a.mark_settled(&name, 0))
                }
            }
            .context("recording the backfill as complete")?;
            // Its partitions are closed as far as this input goes: merge its
            // small files now rather than leave them to a later run.
            if cfg.archive.compaction.in_ingest && !shutdown.load(Ordering::Relaxed) {
                compact_backfill(&location, &cfg.archive, &name, &metrics, &shutdown);
            }
        }
    }
    let get = IngestMetrics::get;
    let parse_issues = metrics.total(|t| t.parse_issues.iter().map(get).sum());
    Ok(IngestReport {
        archive: location.to_string(),
        consumed: metrics.total(|t| get(&t.records_consumed)),
        archived: metrics.total(|t| get(&t.records_archived)),
        files: get(&metrics.files_written),
        bytes_written: get(&metrics.bytes_written),
        parse_issues,
        dead_lettered: metrics.total(|t| t.dead_lettered.iter().map(get).sum()),
        compacted_in: get(&metrics.compaction.files_merged),
        compacted_out: get(&metrics.compaction.files_written),
        elapsed: started.elapsed(),
        active: active.unwrap_or_else(|| started.elapsed()),
    })
}
