//! `logwarden alerts`: the alerts on the alert topic, one readable line each
//! (or the alert JSON, one per line), oldest first; `--follow` keeps
//! printing new ones. Reads every partition from its start without joining a
//! consumer group and commits nothing.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use logwarden_detect::{Alert, AlertStatus, Severity};
use logwarden_ingest::kafka::MeteredContext;

use crate::config::Config;

/// How long to wait for metadata and offsets from the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the existing alerts to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Clone)]
pub struct AlertsArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(long, env = "LOGWARDEN_BROKERS")]
    pub brokers: Option<String>,
    /// The alert topic (default `detect.alerts_topic`).
    #[arg(long, env = "LOGWARDEN_ALERTS_TOPIC")]
    pub alerts_topic: Option<String>,
    /// Print each alert's JSON (docs/alerts.md) on a line of its own.
    #[arg(long)]
    pub json: bool,
    /// Only the alerts of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Keep running and print alerts as they arrive.
    #[arg(long)]
    pub follow: bool,
}

/// One readable line: time, status, severity, series, summary.
pub fn format_alert(a: &Alert) -> String {
    let status = match a.status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "resolved",
    };
    let severity = match a.severity {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    };
    format!(
        "{}  {status:<8}  {severity:<8}  {:<28}  {}",
        a.window_end,
        a.key(),
        a.summary
    )
}

pub fn run(cfg: &Config, args: &AlertsArgs) -> anyhow::Result<()> {
    let mut kafka = cfg.kafka.clone();
    if let Some(b) = &args.brokers {
        kafka.brokers = b.clone();
    }
    let topic = args
        .alerts_topic
        .clone()
        .unwrap_or_else(|| cfg.detect.alerts_topic.clone());
    kafka.group = format!("logwarden-alerts-reader-{}", std::process::id());
    // The metered context keeps end-of-partition events out of the log.
    let mut cc = kafka.consumer_config();
    cc.set("statistics.interval.ms", "0")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<MeteredContext> = cc
        .create_with_context(MeteredContext::new(Arc::default(), &cc))
        .context("creating the consumer")?;
    let md = consumer
        .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
        .with_context(|| format!("reading the metadata of `{topic}`"))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic `{topic}` not found at {}", kafka.brokers);
    }
    // Where each partition ends now: the alerts to print before --follow.
    // A partition is read once librdkafka reports its end and the offsets
    // read reach the high watermark asked for at start (some brokers report
    // high watermarks late, so the end event is what counts).
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, p, METADATA_TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic}/{p}"))?;
        ends.insert(p, high.max(low));
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .context("assigning partitions")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut print = |a: &Alert| -> anyhow::Result<()> {
        if args
            .service
            .as_ref()
            .is_some_and(|s| *s != a.series.service)
        {
            return Ok(());
        }
        if args.json {
            serde_json::to_writer(&mut out, a).context("writing JSON")?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", format_alert(a))?;
        }
        Ok(())
    };
    let mut existing: Vec<Alert> = Vec::new();
    let mut undecodable = 0u64;
    // Next offset to read per partition.
    let mut read: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() >= deadline {
            bail!("timed out reading `{topic}`");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                read.insert(msg.partition(), msg.offset() + 1);
                match msg.payload().map(serde_json::from_slice::<Alert>) {
                    Some(Ok(a)) => existing.push(a),
                    _ => undecodable += 1,
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let next = read.get(&p).copied().unwrap_or(0);
                if ends.get(&p).is_some_and(|end| next >= *end) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => {}
        }
    }
    // Partitions interleave: the existing alerts in time order.
    existing.sort_by_key(|a| (a.window_end_us, a.status == AlertStatus::Resolved));
    for a in &existing {
        print(a)?;
    }
    if undecodable > 0 {
        eprintln!("{undecodable} messages on `{topic}` are not alerts");
    }
    if args.follow {
        loop {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(msg)) => match msg.payload().map(serde_json::from_slice::<Alert>) {
                    Some(Ok(a)) => {
                        print(&a)?;
                    }
                    _ => eprintln!(
                        "offset {} of {topic}/{}: not an alert",
                        msg.offset(),
                        msg.partition()
                    ),
                },
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
        }
    }
    Ok(())
}
