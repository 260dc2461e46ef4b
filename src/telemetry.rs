//! The HTTP endpoints of a running ingest or detect: `/metrics` (Prometheus
//! text format, OpenMetrics flavour), `/healthz` (the process is alive) and
//! `/readyz` (the process does its job: 200, or 503 with the reason).
//!
//! The server runs on its own thread with a small tokio runtime, apart from
//! the blocking poll loops. Nothing is recorded through it: a scrape reads the
//! atomic counters of [`IngestMetrics`] and [`DetectMetrics`] (each crate's
//! `metrics.rs`) and the last librdkafka statistics report, so the hot paths
//! pay one relaxed add per counter and no lock.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use logwarden_detect::metrics::{self as dm, DetectMetrics};
use logwarden_ingest::metrics::{Histogram, IngestMetrics, KafkaClientMetrics, TopicCounters};
use logwarden_ingest::record::ParseIssue;

/// Default for [`TelemetryConfig::ingest_listen`]: loopback only.
pub const DEFAULT_INGEST_LISTEN: &str = "127.0.0.1:9464";
/// Default for [`TelemetryConfig::detect_listen`]: loopback only.
pub const DEFAULT_DETECT_LISTEN: &str = "127.0.0.1:9465";
/// Default for [`TelemetryConfig::stale_after_secs`].
pub const DEFAULT_STALE_AFTER_SECS: f64 = 15.0;
/// Content type of the OpenMetrics text format that `/metrics` serves.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `[telemetry]` table: the HTTP endpoints of ingest and detect.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Serve `/metrics`, `/healthz` and `/readyz`.
    pub enabled: bool,
    /// Listen address (`host:port`) of `logwarden ingest`'s endpoints.
    /// Loopback by default; `0.0.0.0:9464` to be scraped from other hosts.
    pub ingest_listen: String,
    /// Listen address (`host:port`) of `logwarden detect`'s endpoints.
    pub detect_listen: String,
    /// `/readyz` fails when the Kafka client has not reported statistics
    /// for this many seconds (the poll loop is stuck).
    pub stale_after_secs: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ingest_listen: DEFAULT_INGEST_LISTEN.into(),
            detect_listen: DEFAULT_DETECT_LISTEN.into(),
            stale_after_secs: DEFAULT_STALE_AFTER_SECS,
        }
    }
}

impl TelemetryConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (key, v) in [
            ("telemetry.ingest_listen", &self.ingest_listen),
            ("telemetry.detect_listen", &self.detect_listen),
        ] {
            v.parse::<SocketAddr>()
                .with_context(|| format!("{key} `{v}` is not a host:port address"))?;
        }
        if !(self.stale_after_secs.is_finite() && self.stale_after_secs > 0.0) {
            anyhow::bail!("telemetry.stale_after_secs must be a positive number of seconds");
        }
        Ok(())
    }
}

/// One readiness condition: `Err(reason)` when not met.
pub type ReadyCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Binds `listen` (an error if taken) and serves the endpoints from a
/// thread of its own until the process exits. Returns the bound address.
pub fn serve(
    listen: &str,
    registry: Registry,
    ready: Vec<ReadyCheck>,
) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("binding the metrics listener {listen}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let registry = Arc::new(registry);
    let ready = Arc::new(ready);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics(&registry) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move { readyz(&ready) }
            }),
        );
    std::thread::Builder::new()
        .name("logwarden-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics listener failed");
                        return;
                    }
                };
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(addr)
}

fn metrics(registry: &Registry) -> axum::response::Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding: {e}\n"),
        )
            .into_response(),
    }
}

fn readyz(checks: &[ReadyCheck]) -> (StatusCode, String) {
    let reasons: Vec<String> = checks.iter().filter_map(|c| c().err()).collect();
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        let mut body = String::from("not ready:\n");
        for r in reasons {
            let _ = writeln!(body, "- {r}");
        }
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// Ready when the Kafka client reported recently, is connected to a broker
/// and has partitions assigned.
pub fn kafka_ready(kafka: Arc<KafkaClientMetrics>, stale_after: Duration) -> ReadyCheck {
    Box::new(move || {
        let s = kafka.snapshot();
        let Some(updated) = s.updated else {
            return Err("no statistics from the Kafka client yet".into());
        };
        if updated.elapsed() > stale_after {
            return Err(format!(
                "no statistics from the Kafka client for {:.0}s (poll loop stuck?)",
                updated.elapsed().as_secs_f64()
            ));
        }
        if s.brokers_up == 0 {
            return Err("not connected to any Kafka broker".into());
        }
        if s.assigned_partitions <= 0 {
            return Err(format!(
                "no partitions assigned (consumer group state `{}`)",
                s.group_state
            ));
        }
        Ok(())
    })
}

/// Ready when the archive directory accepts a new file and the sink is not
/// retrying a failure.
pub fn archive_ready(root: Option<PathBuf>, metrics: Arc<IngestMetrics>) -> ReadyCheck {
    Box::new(move || {
        if metrics.sink_failing.load(Ordering::Relaxed) {
            return Err("the archive sink is failing (retrying with backoff)".into());
        }
        if let Some(root) = &root {
            let probe = root.join(format!(".logwarden-readyz-{}", std::process::id()));
            std::fs::write(&probe, b"")
                .map_err(|e| format!("archive {} is not writable: {e}", root.display()))?;
            let _ = std::fs::remove_file(&probe);
        }
        Ok(())
    })
}

/// Ready while every alert handed to the producer was delivered.
pub fn alerts_ready(metrics: Arc<DetectMetrics>) -> ReadyCheck {
    Box::new(
        move || match DetectMetrics::get(&metrics.alert_delivery_failures) {
            0 => Ok(()),
            n => Err(format!(
                "{n} alerts could not be delivered to the alert topic"
            )),
        },
    )
}

/// The registry of `logwarden ingest`.
pub fn ingest_registry(metrics: Arc<IngestMetrics>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(IngestCollector(metrics)));
    r.register_collector(Box::new(ProcessCollector));
    r
}

/// The registry of `logwarden detect`.
pub fn detect_registry(metrics: Arc<DetectMetrics>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(DetectCollector(metrics)));
    r.register_collector(Box::new(ProcessCollector));
    r
}

type Enc<'a> = DescriptorEncoder<'a>;

/// A counter; `name` as scraped, ending in `_total` (the encoder adds it).
fn counter(enc: &mut Enc, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let base = name.strip_suffix("_total").unwrap_or(name);
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(base, help, None, c.metric_type())?)
}

/// A labelled counter family.
fn counters(
    enc: &mut Enc,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let base = name.strip_suffix("_total").unwrap_or(name);
    let mut m = enc.encode_descriptor(base, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(enc: &mut Enc, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn gauges(
    enc: &mut Enc,
    name: &str,
    help: &str,
    rows: &[(Vec<(&str, String)>, i64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram(enc: &mut Enc, name: &str, help: &str, h: &Histogram) -> std::fmt::Result {
    let (sum, count, buckets) = h.snapshot();
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

fn load(a: &std::sync::atomic::AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn as_gauge(a: &std::sync::atomic::AtomicU64) -> i64 {
    i64::try_from(load(a)).unwrap_or(i64::MAX)
}

/// `logwarden_errors_total{kind}`.
fn errors(enc: &mut Enc, kinds: &[(&str, u64)]) -> std::fmt::Result {
    let rows: Vec<(Vec<(&str, String)>, u64)> = kinds
        .iter()
        .map(|(k, v)| (vec![("kind", (*k).to_string())], *v))
        .collect();
    counters(
        enc,
        "logwarden_errors_total",
        "errors, by kind (each is also logged)",
        &rows,
    )
}

/// Kafka client metrics shared by ingest and detect.
fn kafka(enc: &mut Enc, k: &KafkaClientMetrics) -> std::fmt::Result {
    let s = k.snapshot();
    gauge(
        enc,
        "logwarden_kafka_brokers_up",
        "Kafka brokers the client has a connection up with",
        i64::try_from(s.brokers_up).unwrap_or(i64::MAX),
    )?;
    gauge(
        enc,
        "logwarden_kafka_assigned_partitions",
        "partitions assigned to this consumer-group member",
        s.assigned_partitions,
    )?;
    let lag: Vec<(Vec<(&str, String)>, i64)> = s
        .lag
        .iter()
        .map(|((t, p), v)| (vec![("topic", t.clone()), ("partition", p.to_string())], *v))
        .collect();
    gauges(
        enc,
        "logwarden_kafka_consumer_lag",
        "records behind the partition's end: high watermark minus the committed offset",
        &lag,
    )
}

#[derive(Debug)]
struct IngestCollector(Arc<IngestMetrics>);

impl Collector for IngestCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let m = &*self.0;
        let e = &mut enc;
        let topics = m.topics();
        let per_topic = |f: &dyn Fn(&TopicCounters) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
            topics
                .iter()
                .map(|(t, c)| (vec![("topic", t.to_string())], f(c)))
                .collect()
        };
        let per_reason =
            |f: &dyn Fn(&TopicCounters) -> &[AtomicU64]| -> Vec<(Vec<(&str, String)>, u64)> {
                topics
                    .iter()
                    .flat_map(|(t, c)| {
                        ParseIssue::ALL.iter().zip(f(c)).map(move |(i, n)| {
                            (
                                vec![("topic", t.to_string()), ("reason", i.as_str().to_string())],
                                load(n),
                            )
                        })
                    })
                    .collect()
            };
        counters(
            e,
            "logwarden_ingest_records_consumed_total",
            "records read from the source (Kafka messages or input lines), by topic",
            &per_topic(&|c| load(&c.records_consumed)),
        )?;
        counters(
            e,
            "logwarden_ingest_consumed_bytes_total",
            "payload bytes read from the source, by topic",
            &per_topic(&|c| load(&c.bytes_consumed)),
        )?;
        counters(
            e,
            "logwarden_ingest_records_parsed_total",
            "records parsed without issue, by topic",
            &per_topic(&|c| load(&c.records_parsed)),
        )?;
        counters(
            e,
            "logwarden_ingest_parse_errors_total",
            "records that failed to parse, by topic and reason: archived with parse_error set, or in strict mode sent to the dead-letter topic",
            &per_reason(&|c| &c.parse_issues),
        )?;
        counters(
            e,
            "logwarden_ingest_records_dead_lettered_total",
            "unparseable records sent to the dead-letter topic (strict mode), by topic and reason",
            &per_reason(&|c| &c.dead_lettered),
        )?;
        counters(
            e,
            "logwarden_ingest_records_archived_total",
            "records made durable in the archive, by topic",
            &per_topic(&|c| load(&c.records_archived)),
        )?;
        counter(
            e,
            "logwarden_ingest_files_written_total",
            "Parquet files published",
            load(&m.files_written),
        )?;
        counter(
            e,
            "logwarden_ingest_written_bytes_total",
            "Parquet bytes published",
            load(&m.bytes_written),
        )?;
        counter(
            e,
            "logwarden_ingest_segments_committed_total",
            "segments whose offsets were committed",
            load(&m.segments_committed),
        )?;
        counter(
            e,
            "logwarden_ingest_backpressure_pauses_total",
            "times consumption paused because the writer queue was full",
            load(&m.backpressure_pauses),
        )?;
        histogram(
            e,
            "logwarden_ingest_commit_duration_seconds",
            "time from asking for an offset commit to the broker's answer",
            &m.commit_seconds,
        )?;
        histogram(
            e,
            "logwarden_ingest_segment_write_duration_seconds",
            "time the sink took to make a segment durable, retries included",
            &m.segment_write_seconds,
        )?;
        gauge(
            e,
            "logwarden_ingest_writer_queue_segments",
            "segments in the writer queue or being written",
            as_gauge(&m.writer_queue_depth),
        )?;
        gauge(
            e,
            "logwarden_ingest_pending_segments",
            "closed segments waiting for room in the writer queue",
            as_gauge(&m.pending_segments),
        )?;
        gauge(
            e,
            "logwarden_ingest_open_segments",
            "open segments (source partitions with buffered records, each written as archive files on close)",
            as_gauge(&m.open_segments),
        )?;
        gauge(
            e,
            "logwarden_ingest_buffered_bytes",
            "bytes buffered in open segments",
            as_gauge(&m.buffered_bytes),
        )?;
        gauge(
            e,
            "logwarden_ingest_buffered_records",
            "records buffered in open segments",
            as_gauge(&m.buffered_records),
        )?;
        gauge(
            e,
            "logwarden_templates",
            "log templates held by the template miner",
            as_gauge(&m.templates),
        )?;
        let c = &m.compaction;
        for (name, help, v) in [
            (
                "logwarden_ingest_compaction_runs_total",
                "compaction runs ingest finished by itself, with or without anything to merge",
                &c.runs,
            ),
            (
                "logwarden_ingest_compaction_busy_runs_total",
                "compaction runs skipped because another compactor was working on the archive",
                &c.busy,
            ),
            (
                "logwarden_ingest_compaction_merged_files_total",
                "small Parquet files ingest's compaction merged away",
                &c.files_merged,
            ),
            (
                "logwarden_ingest_compaction_merged_bytes_total",
                "bytes of the small Parquet files ingest's compaction merged away",
                &c.bytes_merged,
            ),
            (
                "logwarden_ingest_compaction_files_written_total",
                "merged Parquet files ingest's compaction wrote",
                &c.files_written,
            ),
            (
                "logwarden_ingest_compaction_written_bytes_total",
                "bytes of the merged Parquet files ingest's compaction wrote",
                &c.bytes_written,
            ),
        ] {
            counter(e, name, help, load(v))?;
        }
        gauge(
            e,
            "logwarden_ingest_compaction_running",
            "1 while ingest's compaction is merging files",
            as_gauge(&c.running),
        )?;
        errors(
            e,
            &[
                ("kafka_client", load(&m.kafka.client_errors)),
                ("consumer", load(&m.consumer_errors)),
                ("commit", load(&m.commit_failures)),
                ("sink_retry", load(&m.sink_retries)),
                ("sink_fatal", load(&m.sink_failures)),
                ("compaction", load(&c.errors)),
            ],
        )?;
        kafka(e, &m.kafka)
    }
}

#[derive(Debug)]
struct DetectCollector(Arc<DetectMetrics>);

impl Collector for DetectCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let m = &*self.0;
        let e = &mut enc;
        let help = |name: &str| {
            dm::METRICS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, h)| *h)
        };
        for (name, a) in [
            (dm::RECORDS, &m.records),
            (dm::BYTES, &m.bytes),
            (dm::WINDOWS_CLOSED, &m.windows_closed),
            (dm::LATE_RECORDS, &m.late_records),
            (dm::OUT_OF_RANGE_RECORDS, &m.out_of_range_records),
            (dm::EVICTED_SERIES, &m.evicted_series),
            (dm::FORGOTTEN_SERIES, &m.forgotten_series),
            (dm::METRIC_RECORDS, &m.metric_records),
            (dm::EVICTED_METRIC_SERIES, &m.evicted_metric_series),
            (dm::FORGOTTEN_METRIC_SERIES, &m.forgotten_metric_series),
        ] {
            counter(e, name, help(name), load(a))?;
        }
        gauge(e, dm::SERIES, help(dm::SERIES), as_gauge(&m.series))?;
        gauge(
            e,
            dm::METRIC_SERIES,
            help(dm::METRIC_SERIES),
            as_gauge(&m.metric_series),
        )?;
        gauge(
            e,
            "logwarden_templates",
            "log templates held by the template miner",
            as_gauge(&m.templates),
        )?;
        let alerts: Vec<(Vec<(&str, String)>, u64)> = m
            .alerts()
            .into_iter()
            .map(|((status, signal, severity), n)| {
                (
                    vec![
                        ("status", status.to_string()),
                        ("signal", signal.to_string()),
                        ("severity", severity.to_string()),
                    ],
                    n,
                )
            })
            .collect();
        counters(e, dm::ALERTS, help(dm::ALERTS), &alerts)?;
        counter(
            e,
            "logwarden_detect_alertmanager_sent_total",
            "alerts Alertmanager accepted, resends of firing alerts included",
            load(&m.alertmanager_sent),
        )?;
        counter(
            e,
            "logwarden_detect_alertmanager_dropped_total",
            "alerts never delivered to Alertmanager (queue full, refused, unreachable at shutdown)",
            load(&m.alertmanager_dropped),
        )?;
        gauge(
            e,
            "logwarden_detect_alerts_in_flight",
            "alerts handed to the producer and not yet delivered",
            as_gauge(&m.alerts_in_flight),
        )?;
        errors(
            e,
            &[
                ("kafka_client", load(&m.kafka.client_errors)),
                ("consumer", load(&m.consumer_errors)),
                ("commit", load(&m.commit_failures)),
                ("alert_delivery", load(&m.alert_delivery_failures)),
                ("alertmanager", load(&m.alertmanager_failures)),
            ],
        )?;
        kafka(e, &m.kafka)
    }
}

/// `process_*` metrics from `/proc/self` (Linux), and the build.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut enc;
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                e,
                "process_open_fds",
                "open file descriptors",
                i64::try_from(rd.count()).unwrap_or(i64::MAX),
            )?;
        }
        // statm: sizes in pages; the second field is the resident set.
        if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        {
            gauge(
                e,
                "process_resident_memory_bytes",
                "resident memory size",
                pages.saturating_mul(PAGE_SIZE),
            )?;
        }
        let mut m = enc.encode_descriptor(
            "logwarden_build_info",
            "the running build (value 1)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1)
            .encode(m.encode_family(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])?)
    }
}

/// Page size assumed for `/proc/self/statm` (4 KiB on the platforms the
/// image is built for).
const PAGE_SIZE: i64 = 4096;
