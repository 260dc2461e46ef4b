//! `logwarden demo`: the whole pipeline with nothing installed. An in-process
//! Kafka-protocol cluster (librdkafka's mock cluster) receives generated logs
//! with an injected incident; ingest and detect run against it concurrently;
//! each alert is printed as it arrives on the alert topic; at the end a
//! summary and a DuckDB query over the archive.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;

use logwarden_detect::metrics::DetectMetrics;
use logwarden_detect::{Alert, AlertStatus, Severity};
use logwarden_ingest::kafka::{close_consumer, MeteredContext, StopWhen, CLOSE_TIMEOUT};
use logwarden_ingest::metrics::IngestMetrics;

use crate::config::Config;
use crate::generate_cmd::GenerateArgs;
use crate::ingest_cmd::{self, Input};
use crate::{detect_cmd, generate_cmd, shutdown};

/// Topic the demo's logs go to.
const LOGS_TOPIC: &str = "logs";
/// Partitions of the demo's log topic.
const LOGS_PARTITIONS: i32 = 3;
/// Hours of event time the demo generates.
const DEMO_HOURS: f64 = 3.0;
/// Average events per second of event time in the demo's logs.
const DEMO_EVENTS_PER_SEC: f64 = 20.0;
/// Share of the demo's duration spent producing; the rest lets the pipeline drain.
const PRODUCE_SHARE: f64 = 0.6;
/// Longest wait for ingest and detect to join their groups before logs are
/// generated.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct DemoArgs {
    /// How long the demo runs, in seconds (Ctrl-C ends it early).
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Archive directory.
    #[arg(long, default_value = "./logwarden-demo/archive")]
    pub output: PathBuf,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The incident to inject (see `logwarden generate --help`).
    #[arg(long, default_value = "error-burst:payments@120m+8m")]
    pub incident: String,
}

pub fn run(mut cfg: Config, args: &DemoArgs) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("starting the embedded Kafka cluster")?;
    cluster.create_topic(LOGS_TOPIC, LOGS_PARTITIONS, 1)?;
    cluster.create_topic(&cfg.detect.alerts_topic, 1, 1)?;
    let brokers = cluster.bootstrap_servers();
    cfg.kafka.brokers = brokers.clone();
    cfg.kafka.topics = vec![LOGS_TOPIC.into()];
    cfg.kafka.session_timeout_ms = 6_000;
    // Both stages share this process: no HTTP endpoints to collide with a
    // running ingest or detect.
    cfg.telemetry.enabled = false;
    cfg.ingest.output = args.output.to_string_lossy().into_owned();
    // Short segments so files appear while the demo runs.
    cfg.ingest.segment.max_age_secs = 5.0;
    let signals = shutdown::Signals::install()?;
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs_f64(args.duration_secs.max(5.0));
    println!("logwarden demo: embedded Kafka at {brokers}, {DEMO_HOURS} hours of logs from 6 services, incident {}", args.incident);
    println!("archive: {}\n", args.output.display());

    // Generator: DEMO_HOURS of event time ending now, paced over part of the demo.
    let gen_args = GenerateArgs {
        brokers: Some(brokers.clone()),
        topic: LOGS_TOPIC.into(),
        count: u64::MAX,
        seed: args.seed,
        rate: 0.0,
        duration: Some(format!("{DEMO_HOURS}h")),
        speedup: Some(DEMO_HOURS * 3600.0 / (duration.as_secs_f64() * PRODUCE_SHARE)),
        events_per_sec: Some(DEMO_EVENTS_PER_SEC),
        start: Some(format!("now-{}h", DEMO_HOURS)),
        incident: vec![args.incident.parse().map_err(anyhow::Error::msg)?],
        json_share: 0.8,
        truth: None,
        producer_properties: Vec::new(),
    };
    let metrics = Arc::new(IngestMetrics::default());
    let ingest = {
        let (cfg, metrics, stop) = (cfg.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || {
            ingest_cmd::run(
                &cfg,
                Input::Kafka {
                    stop: StopWhen::Never,
                },
                metrics,
                stop,
                Arc::new(AtomicBool::new(false)),
            )
        })
    };
    let detect_metrics = Arc::new(DetectMetrics::default());
    let detect = {
        let (cfg, stop, metrics) = (cfg.clone(), stop.clone(), detect_metrics.clone());
        std::thread::spawn(move || detect_cmd::run(&cfg, StopWhen::Never, stop, metrics, |_| {}))
    };
    // The embedded cluster keeps only the last few MiB of each partition:
    // logs produced before ingest and detect have joined their groups could
    // be gone by the time they read, so the generator waits for both.
    let joined = || {
        [&metrics.kafka, &detect_metrics.kafka]
            .iter()
            .all(|k| k.snapshot().assigned_partitions > 0)
    };
    let join_deadline = Instant::now() + JOIN_TIMEOUT;
    while !joined() && !signals.graceful.load(Ordering::Relaxed) {
        if Instant::now() >= join_deadline {
            tracing::warn!("ingest and detect have not joined their groups yet; generating anyway");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The demo's length counts from the first log.
    let started = Instant::now();
    let generator = std::thread::spawn(move || generate_cmd::run(&gen_args));

    // Subscriber: what a user of the alert topic sees.
    let mut alerts_config = ClientConfig::new();
    alerts_config
        .set("bootstrap.servers", &brokers)
        .set("group.id", "logwarden-demo-alerts")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000");
    let alerts_consumer: BaseConsumer<MeteredContext> =
        alerts_config.create_with_context(MeteredContext::new(Arc::default(), &alerts_config))?;
    alerts_consumer.subscribe(&[cfg.detect.alerts_topic.as_str()])?;
    let mut alerts = Vec::new();
    while started.elapsed() < duration && !signals.graceful.load(Ordering::Relaxed) {
        if let Some(Ok(msg)) = alerts_consumer.poll(Duration::from_millis(200)) {
            match msg.payload().map(serde_json::from_slice::<Alert>) {
                Some(Ok(alert)) => {
                    let severity = match alert.severity {
                        Severity::Warning => "warning",
                        Severity::Critical => "critical",
                    };
                    println!("ALERT [{severity}] {}", headline(&alert));
                    alerts.push(alert);
                }
                _ => println!("unreadable alert message at offset {}", msg.offset()),
            }
        }
    }
    close_consumer(alerts_consumer, CLOSE_TIMEOUT);
    stop.store(true, Ordering::SeqCst);
    println!("\nstopping: flushing open segments and committing");
    let gen_result = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator panicked"))?;
    if let Err(e) = gen_result {
        tracing::warn!(error = %e, "generator stopped early");
    }
    let ingest_report = ingest
        .join()
        .map_err(|_| anyhow::anyhow!("ingest panicked"))??;
    let detect_report = detect
        .join()
        .map_err(|_| anyhow::anyhow!("detect panicked"))??;
    let root = std::fs::canonicalize(&ingest_report.archive)
        .unwrap_or_else(|_| ingest_report.archive.clone().into());
    println!("\n== summary");
    println!("records consumed by ingest: {}", ingest_report.consumed);
    println!("records archived:           {}", ingest_report.archived);
    println!(
        "files written:              {} ({} bytes)",
        ingest_report.files, ingest_report.bytes_written
    );
    println!("archive:                    {}", root.display());
    println!("records seen by detect:     {}", detect_report.records);
    println!("alerts published:           {}", detect_report.alerts);
    for a in &alerts {
        println!("  {} {}", a.alert_id, headline(a));
    }
    println!("\nquery the archive:");
    println!(
        "  duckdb -c \"SELECT service, level, count(*) AS n FROM read_parquet('{}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY ALL\"",
        root.display()
    );
    Ok(())
}

/// An alert in one line: a resolved alert's summary already says so.
fn headline(a: &Alert) -> String {
    match a.status {
        AlertStatus::Firing => format!("firing: {}", a.summary),
        AlertStatus::Resolved => a.summary.clone(),
    }
}
