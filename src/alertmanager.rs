//! Alerts to a Prometheus Alertmanager (`POST /api/v2/alerts`), from a
//! thread of its own behind a bounded queue, so a slow or absent
//! Alertmanager never holds detection up.
//!
//! Each detector alert becomes one Alertmanager alert: labels `alertname`,
//! `service`, `signal`, `direction`, `severity`, `fingerprint` (one
//! Alertmanager alert per incident), `dimension` when the alert has one,
//! annotations `summary`, `observed`,
//! `expected`, `range`, `probability`, `score`, `window`, `alert_id`.
//! `startsAt` is the incident's start. Firing alerts are sent again every
//! [`RESEND_INTERVAL`] with `endsAt` [`ENDS_AT_RESENDS`] intervals ahead, as
//! Prometheus does, so Alertmanager keeps them active while detect runs and
//! lets them lapse if detect is gone; a resolved alert is sent with `endsAt`
//! set. A failed POST (connection error, 429, 5xx) is retried with
//! exponential backoff ([`MIN_BACKOFF`] to [`MAX_BACKOFF`]); newer states of
//! the same incident replace older ones while waiting. A 4xx answer drops the
//! batch (it would fail again) with an error.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use logwarden_detect::metrics::DetectMetrics;
use logwarden_detect::{rfc3339_us, Alert, AlertStatus, Severity};

/// The `alertname` label of every alert.
pub const ALERT_NAME: &str = "LogwardenAnomaly";
/// Alerts waiting for the sender thread; beyond, new alerts are dropped
/// (and counted).
pub const QUEUE_CAPACITY: usize = 1024;
/// Incidents whose latest state waits to be sent, and firing incidents kept
/// for resending: at most this many each.
const MAX_TRACKED: usize = 10_000;
/// How often firing alerts are sent again.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// `endsAt` of a firing alert lies this many resend intervals ahead.
const ENDS_AT_RESENDS: u32 = 4;
/// First retry delay after a failed POST; doubled up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Timeout of one POST.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long pending alerts may still be retried.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<&'static str, String>,
    pub annotations: BTreeMap<&'static str, String>,
    pub starts_at: String,
    /// Resolved alerts: when it ended. Firing ones: set at send time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

/// The Alertmanager form of a detector alert; `now_us` is the wall clock.
pub fn postable(a: &Alert, now_us: i64) -> PostableAlert {
    let severity = match a.severity {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    };
    let mut labels = BTreeMap::from([
        ("alertname", ALERT_NAME.to_string()),
        ("service", a.series.service.clone()),
        ("signal", a.series.signal.as_str().to_string()),
        ("direction", a.series.direction.as_str().to_string()),
        ("severity", severity.to_string()),
        ("fingerprint", a.fingerprint.clone()),
    ]);
    if let Some(d) = &a.series.dimension {
        // The level, template, field or rule: routable like the signal.
        labels.insert("dimension", d.clone());
    }
    let annotations = BTreeMap::from([
        ("summary", a.summary.clone()),
        ("observed", format!("{}", a.observed)),
        ("expected", format!("{}", a.expected)),
        ("range", format!("{} - {}", a.expected_low, a.expected_high)),
        ("probability", format!("{:e}", a.probability)),
        ("score", format!("{:.3}", a.score)),
        ("window", format!("{} - {}", a.window_start, a.window_end)),
        ("alert_id", a.alert_id.clone()),
    ]);
    // Alertmanager wants startsAt <= endsAt; event times may run ahead of
    // the wall clock.
    let starts_us = a.incident_start_us.min(now_us);
    let ends_at = (a.status == AlertStatus::Resolved)
        .then(|| rfc3339_us(a.window_end_us.min(now_us).max(starts_us)));
    PostableAlert {
        labels,
        annotations,
        starts_at: rfc3339_us(starts_us),
        ends_at,
    }
}

enum Msg {
    Alert(Box<Alert>),
    Stop,
}

/// The sender: [`send`](Self::send) queues, a thread posts. Dropping it
/// stops the thread after at most [`SHUTDOWN_GRACE`] of retries.
pub struct Alertmanager {
    tx: SyncSender<Msg>,
    worker: Option<JoinHandle<()>>,
    metrics: Arc<DetectMetrics>,
}

impl Alertmanager {
    /// Starts the sender thread for the Alertmanager at `url` (its base,
    /// e.g. `http://alertmanager:9093`).
    pub fn start(url: &str, metrics: Arc<DetectMetrics>) -> anyhow::Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("alertmanager_url `{url}`: expected http://HOST:PORT or https://HOST:PORT");
        }
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let m = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("alertmanager".into())
            .spawn(move || Worker::new(endpoint, m).run(rx))
            .context("starting the alertmanager thread")?;
        Ok(Self {
            tx,
            worker: Some(worker),
            metrics,
        })
    }

    /// Queues an alert; never blocks (a full queue drops it, counted in
    /// `logwarden_detect_alertmanager_dropped_total`).
    pub fn send(&self, alert: &Alert) {
        match self.tx.try_send(Msg::Alert(Box::new(alert.clone()))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics
                    .alertmanager_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(alert_id = %alert.alert_id, "alertmanager queue full; alert dropped");
            }
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        // Blocks only while the queue is full, which the worker drains.
        let _ = self.tx.send(Msg::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

struct Worker {
    endpoint: String,
    agent: ureq::Agent,
    metrics: Arc<DetectMetrics>,
    /// Latest state per incident (fingerprint), not yet accepted.
    pending: BTreeMap<String, PostableAlert>,
    /// Firing incidents, resent every [`RESEND_INTERVAL`].
    firing: BTreeMap<String, PostableAlert>,
    backoff: Duration,
    next_try: Instant,
    next_resend: Instant,
}

impl Worker {
    fn new(endpoint: String, metrics: Arc<DetectMetrics>) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(tls)
            .build()
            .into();
        let now = Instant::now();
        Self {
            endpoint,
            agent,
            metrics,
            pending: BTreeMap::new(),
            firing: BTreeMap::new(),
            backoff: Duration::ZERO,
            next_try: now,
            next_resend: now + RESEND_INTERVAL,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut stop_by: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wake = if self.pending.is_empty() {
                self.next_resend
            } else {
                self.next_try.min(self.next_resend)
            };
            let wait = match stop_by {
                Some(_) => Duration::ZERO,
                None => wake.saturating_duration_since(now),
            };
            match rx.recv_timeout(wait) {
                Ok(Msg::Alert(a)) => {
                    self.accept(&a);
                    // Take whatever else is queued before posting.
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Alert(a) => self.accept(&a),
                            Msg::Stop => stop_by = Some(Instant::now() + SHUTDOWN_GRACE),
                        }
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    stop_by.get_or_insert(Instant::now() + SHUTDOWN_GRACE);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= self.next_resend {
                self.next_resend = now + RESEND_INTERVAL;
                for (fp, a) in &self.firing {
                    if !self.pending.contains_key(fp) && self.pending.len() < MAX_TRACKED {
                        self.pending.insert(fp.clone(), a.clone());
                    }
                }
            }
            if !self.pending.is_empty() && now >= self.next_try {
                self.post();
            }
            if let Some(deadline) = stop_by {
                if self.pending.is_empty() {
                    return;
                }
                if Instant::now() >= deadline {
                    let n = self.pending.len() as u64;
                    self.metrics
                        .alertmanager_dropped
                        .fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(
                        alerts = n,
                        "alertmanager unreachable at shutdown; alerts dropped"
                    );
                    return;
                }
                // Wait for the next try, but not past the deadline.
                std::thread::sleep(
                    self.next_try
                        .min(deadline)
                        .saturating_duration_since(Instant::now()),
                );
            }
        }
    }

    fn accept(&mut self, a: &Alert) {
        let p = postable(a, chrono::Utc::now().timestamp_micros());
        let fp = a.fingerprint.clone();
        match a.status {
            AlertStatus::Firing => {
                if self.firing.len() < MAX_TRACKED || self.firing.contains_key(&fp) {
                    self.firing.insert(fp.clone(), p.clone());
                }
            }
            AlertStatus::Resolved => {
                self.firing.remove(&fp);
            }
        }
        if self.pending.len() < MAX_TRACKED || self.pending.contains_key(&fp) {
            self.pending.insert(fp, p);
        } else {
            self.metrics
                .alertmanager_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Posts every pending alert in one request.
    fn post(&mut self) {
        let now_us = chrono::Utc::now().timestamp_micros();
        let lease_us = (RESEND_INTERVAL * ENDS_AT_RESENDS).as_micros() as i64;
        let batch: Vec<PostableAlert> = self
            .pending
            .values()
            .map(|a| {
                let mut a = a.clone();
                if a.ends_at.is_none() {
                    a.ends_at = Some(rfc3339_us(now_us + lease_us));
                }
                a
            })
            .collect();
        let body = match serde_json::to_string(&batch) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoding alerts for alertmanager");
                self.pending.clear();
                return;
            }
        };
        let result = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .send(body.as_str());
        let n = batch.len() as u64;
        match result {
            Ok(_) => {
                self.metrics
                    .alertmanager_sent
                    .fetch_add(n, Ordering::Relaxed);
                self.pending.clear();
                self.backoff = Duration::ZERO;
                tracing::debug!(alerts = n, "alerts sent to alertmanager");
            }
            Err(ureq::Error::StatusCode(code)) if code != 429 && (400..500).contains(&code) => {
                self.metrics
                    .alertmanager_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .alertmanager_dropped
                    .fetch_add(n, Ordering::Relaxed);
                tracing::error!(status = code, alerts = n, endpoint = %self.endpoint, "alertmanager refused the alerts; dropped");
                self.pending.clear();
            }
            Err(e) => {
                self.metrics
                    .alertmanager_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                self.next_try = Instant::now() + self.backoff;
                tracing::warn!(error = %e, alerts = n, retry_in_ms = self.backoff.as_millis() as u64, "posting to alertmanager failed; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use logwarden_detect::{Direction, SeriesRef, Signal};

    fn alert(status: AlertStatus) -> Alert {
        Alert {
            schema_version: "1".into(),
            alert_id: "id".into(),
            fingerprint: "fp".into(),
            status,
            series: SeriesRef {
                service: "payments".into(),
                signal: Signal::ErrorRatio,
                direction: Direction::High,
                dimension: None,
            },
            incident_start: rfc3339_us(1_000_000_000),
            incident_start_us: 1_000_000_000,
            window_start: rfc3339_us(1_060_000_000),
            window_end: rfc3339_us(1_120_000_000),
            window_start_us: 1_060_000_000,
            window_end_us: 1_120_000_000,
            window_events: 100,
            window_errors: 40,
            observed: 0.4,
            expected: 0.01,
            expected_low: 0.0,
            expected_high: 0.05,
            probability: 1e-20,
            score: 0.8,
            severity: Severity::Critical,
            summary: "payments error ratio 40%".into(),
            top_templates: Vec::new(),
            samples: Vec::new(),
            related: Vec::new(),
        }
    }

    #[test]
    fn labels_annotations_and_times() {
        let p = postable(&alert(AlertStatus::Firing), 2_000_000_000);
        assert_eq!(p.labels["alertname"], ALERT_NAME);
        assert_eq!(p.labels["service"], "payments");
        assert_eq!(p.labels["signal"], "error_ratio");
        assert_eq!(p.labels["severity"], "critical");
        assert_eq!(p.labels["fingerprint"], "fp");
        assert!(!p.labels.contains_key("dimension"));
        let mut level = alert(AlertStatus::Firing);
        level.series.signal = Signal::LevelCount;
        level.series.dimension = Some("fatal".into());
        let p2 = postable(&level, 2_000_000_000);
        assert_eq!(p2.labels["signal"], "level_count");
        assert_eq!(p2.labels["dimension"], "fatal");
        assert_eq!(p.annotations["probability"], "1e-20");
        assert_eq!(p.annotations["range"], "0 - 0.05");
        assert_eq!(p.starts_at, rfc3339_us(1_000_000_000));
        assert_eq!(p.ends_at, None);
        let r = postable(&alert(AlertStatus::Resolved), 2_000_000_000);
        assert_eq!(r.ends_at, Some(rfc3339_us(1_120_000_000)));
        // Event time ahead of the wall clock: clamped to now.
        let r = postable(&alert(AlertStatus::Resolved), 500_000_000);
        assert_eq!(r.starts_at, rfc3339_us(500_000_000));
        assert_eq!(r.ends_at, Some(rfc3339_us(500_000_000)));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["startsAt"].is_string() && json["endsAt"].is_string());
    }

    #[test]
    fn a_bad_url_is_refused() {
        assert!(Alertmanager::start("alertmanager:9093", Default::default()).is_err());
    }
}
