//! `logwarden ingest`: Kafka (or a file) to the Parquet archive.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use logwarden_ingest::file::FileSource;
use logwarden_ingest::kafka::{KafkaSource, StopWhen};
use logwarden_ingest::metrics::IngestMetrics;
use logwarden_ingest::parse::Parser;
use logwarden_ingest::segment::Segmenter;
use logwarden_ingest::writer::Writer;
use logwarden_storage::LocalArchive;

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
    pub archive: PathBuf,
    pub consumed: u64,
    pub archived: u64,
    pub files: u64,
    pub bytes_written: u64,
    pub parse_issues: u64,
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
    let root = cfg.output_dir()?;
    let archive = LocalArchive::open(&root, cfg.archive.clone())
        .with_context(|| format!("opening the archive at {}", root.display()))?;
    let parser = Parser::new(cfg.parse.clone()).context("invalid [parse] configuration")?;
    let segmenter = Segmenter::new(cfg.ingest.segment.clone());
    if cfg.telemetry.enabled {
        let mut checks = vec![crate::telemetry::archive_ready(
            Some(root.clone()),
            metrics.clone(),
        )];
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
    let writer = Writer::spawn(
        Box::new(archive),
        &cfg.ingest.writer,
        metrics.clone(),
        force,
    );
    let started = Instant::now();
    let mut active = None;
    match input {
        Input::Kafka { stop } => {
            let mut kafka = cfg.kafka.clone();
            kafka.group = cfg.ingest.group.clone();
            let source = KafkaSource {
                kafka,
                stop,
                shutdown_timeout: Duration::from_secs_f64(cfg.ingest.shutdown_timeout_secs),
            };
            let summary = source.run(parser, segmenter, writer, metrics.clone(), shutdown)?;
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
            let source = FileSource { name };
            let lines = if path.as_os_str() == "-" {
                source.run(
                    std::io::stdin().lock(),
                    parser,
                    segmenter,
                    writer,
                    metrics.clone(),
                    shutdown,
                )?
            } else {
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                source.run(f, parser, segmenter, writer, metrics.clone(), shutdown)?
            };
            tracing::info!(lines, "input archived");
        }
    }
    let get = IngestMetrics::get;
    let parse_issues = metrics.parse_issues.iter().map(get).sum();
    Ok(IngestReport {
        archive: root,
        consumed: get(&metrics.records_consumed),
        archived: get(&metrics.records_archived),
        files: get(&metrics.files_written),
        bytes_written: get(&metrics.bytes_written),
        parse_issues,
        elapsed: started.elapsed(),
        active: active.unwrap_or_else(|| started.elapsed()),
    })
}
