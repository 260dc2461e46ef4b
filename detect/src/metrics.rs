//! Metric names and descriptions of the detect stage, in one place, and the
//! [`DetectMetrics`] the detect process keeps. The binary exposes them on
//! `/metrics` (names as scraped, counters ending in `_total`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use logwarden_ingest::metrics::KafkaClientMetrics;

/// (name, description) of every detect metric.
pub const METRICS: &[(&str, &str)] = &[
    (
        WINDOWS_CLOSED,
        "series windows closed and judged, including empty windows of silent series",
    ),
    (
        LATE_RECORDS,
        "records dropped because their window had already closed",
    ),
    (
        OUT_OF_RANGE_RECORDS,
        "records dropped because their event time is outside 1970..2200",
    ),
    (EVICTED_SERIES, "series dropped to stay under max_series"),
    (
        FORGOTTEN_SERIES,
        "series dropped after forget_after_windows of silence",
    ),
    (SERIES, "series tracked now"),
    (
        METRIC_RECORDS,
        "metric samples scored, one per configured metric field a record carries",
    ),
    (
        EVICTED_METRIC_SERIES,
        "metric series dropped to stay under max_metric_series",
    ),
    (
        FORGOTTEN_METRIC_SERIES,
        "metric series dropped after forget_after_windows of silence",
    ),
    (
        METRIC_SERIES,
        "metric series (service and metric field) tracked now",
    ),
    (ALERTS, "alerts emitted, by status, signal and severity"),
    (RECORDS, "records consumed and counted"),
    (BYTES, "payload bytes consumed"),
];

pub const WINDOWS_CLOSED: &str = "logwarden_detect_windows_closed_total";
pub const LATE_RECORDS: &str = "logwarden_detect_late_records_total";
pub const OUT_OF_RANGE_RECORDS: &str = "logwarden_detect_out_of_range_records_total";
pub const EVICTED_SERIES: &str = "logwarden_detect_evicted_series_total";
pub const FORGOTTEN_SERIES: &str = "logwarden_detect_forgotten_series_total";
pub const SERIES: &str = "logwarden_detect_series";
pub const METRIC_RECORDS: &str = "logwarden_detect_metric_records_total";
pub const EVICTED_METRIC_SERIES: &str = "logwarden_detect_evicted_metric_series_total";
pub const FORGOTTEN_METRIC_SERIES: &str = "logwarden_detect_forgotten_metric_series_total";
pub const METRIC_SERIES: &str = "logwarden_detect_metric_series";
pub const ALERTS: &str = "logwarden_detect_alerts_total";

pub const RECORDS: &str = "logwarden_detect_records_total";
pub const BYTES: &str = "logwarden_detect_consumed_bytes_total";

/// Counters and gauges of one detect process, set by its poll loop: plain
/// atomics (one relaxed add per record); alert counts sit behind a mutex
/// since alerts are rare.
#[derive(Debug, Default)]
pub struct DetectMetrics {
    /// Records consumed and counted.
    pub records: AtomicU64,
    /// Payload bytes consumed.
    pub bytes: AtomicU64,
    /// Last [`crate::DetectorStats`] seen (set once per poll-loop turn).
    pub windows_closed: AtomicU64,
    pub late_records: AtomicU64,
    pub out_of_range_records: AtomicU64,
    pub evicted_series: AtomicU64,
    pub forgotten_series: AtomicU64,
    pub series: AtomicU64,
    pub metric_records: AtomicU64,
    pub evicted_metric_series: AtomicU64,
    pub forgotten_metric_series: AtomicU64,
    pub metric_series: AtomicU64,
    /// Gauge: log templates held by the parser's template miner.
    pub templates: AtomicU64,
    /// Alerts handed to the producer, by (status, signal, severity).
    alerts: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    /// Alerts the producer could not deliver.
    pub alert_delivery_failures: AtomicU64,
    /// Gauge: alerts handed to the producer and not yet acknowledged.
    pub alerts_in_flight: AtomicU64,
    /// Alerts Alertmanager accepted (resends of firing alerts included).
    pub alertmanager_sent: AtomicU64,
    /// Alerts never delivered to Alertmanager (queue full, refused, or
    /// unreachable at shutdown).
    pub alertmanager_dropped: AtomicU64,
    /// Failed POSTs to Alertmanager (each retried or dropped).
    pub alertmanager_failures: AtomicU64,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// Errors returned by the consumer's poll.
    pub consumer_errors: AtomicU64,
    /// The Kafka client's view: brokers, assignment, lag.
    pub kafka: Arc<KafkaClientMetrics>,
}

impl DetectMetrics {
    /// Copies the detector's statistics.
    pub fn set_stats(&self, s: &crate::DetectorStats) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.windows_closed, s.windows_closed);
        set(&self.late_records, s.late_records);
        set(&self.out_of_range_records, s.out_of_range_records);
        set(&self.evicted_series, s.evicted_series);
        set(&self.forgotten_series, s.forgotten_series);
        set(&self.series, s.series as u64);
        set(&self.metric_records, s.metric_records);
        set(&self.evicted_metric_series, s.evicted_metric_series);
        set(&self.forgotten_metric_series, s.forgotten_metric_series);
        set(&self.metric_series, s.metric_series as u64);
    }

    /// Counts one alert handed to the producer.
    pub fn count_alert(&self, alert: &crate::Alert) {
        let severity = match alert.severity {
            crate::Severity::Warning => "warning",
            crate::Severity::Critical => "critical",
        };
        let key = (
            alert.status.as_str(),
            alert.series.signal.as_str(),
            severity,
        );
        *self
            .alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// Alert counts by (status, signal, severity).
    pub fn alerts(&self) -> Vec<((&'static str, &'static str, &'static str), u64)> {
        self.alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}
