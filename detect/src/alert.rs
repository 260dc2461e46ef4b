//! The alert record published on the alert topic (schema in `docs/alerts.md`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the alert JSON schema; bump on incompatible changes.
pub const ALERT_SCHEMA_VERSION: &str = "3";
/// Most template counts an alert carries.
pub const MAX_ALERT_TEMPLATES: usize = 5;
/// Most sample lines an alert carries, and their longest length in bytes.
pub const MAX_ALERT_SAMPLES: usize = 3;
pub const MAX_SAMPLE_BYTES: usize = 300;

/// Lifecycle state of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// What is measured per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Records per window.
    EventCount,
    /// Error and fatal records over all records per window.
    ErrorRatio,
    /// Warning records per window: schema 2 only, not emitted any more
    /// (warnings are [`Signal::LevelCount`] with dimension `warn`); kept so
    /// that older alerts still parse.
    WarnCount,
    /// Records of one level per window (`series.dimension` names the level:
    /// `error`, `warn`, ...).
    LevelCount,
    /// Records of one of the service's most frequent templates per window
    /// (`series.dimension` is the template id, 16 hex digits).
    TemplateCount,
    /// Templates the service had not logged before, after its warm-up.
    NewTemplate,
    /// A static threshold rule from the configuration (`series.dimension`
    /// names it).
    Threshold,
    /// Mean of a numeric field per window (`series.dimension` names it).
    FieldMean,
    /// High quantile (`field_quantile`) of a numeric field per window.
    FieldHigh,
    /// One sample of a metric-like record, scored on arrival against its
    /// series, no window (`series.dimension` names the metric field).
    Metric,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::EventCount => "event_count",
            Signal::ErrorRatio => "error_ratio",
            Signal::WarnCount => "warn_count",
            Signal::LevelCount => "level_count",
            Signal::TemplateCount => "template_count",
            Signal::NewTemplate => "new_template",
            Signal::Threshold => "threshold",
            Signal::FieldMean => "field_mean",
            Signal::FieldHigh => "field_high",
            Signal::Metric => "metric",
        }
    }
}

/// Which way the observation left the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    High,
    Low,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::High => "high",
            Direction::Low => "low",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// The series an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesRef {
    pub service: String,
    pub signal: Signal,
    pub direction: Direction,
    /// What the series is of, for signals with one series per something:
    /// the rule's name (`threshold`), the field's (`field_mean`,
    /// `field_high`, `metric`), the level (`level_count`) or the template id
    /// (`template_count`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
}

/// A template's count in the alert's window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateCount {
    /// The template id, 16 hex digits (as `template_id` in the archive, in
    /// hex).
    pub template_id: String,
    pub count: u64,
    /// The template's text, when the publisher knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// One alert: an incident opening (`firing`) or closing (`resolved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Always [`ALERT_SCHEMA_VERSION`].
    pub schema_version: String,
    /// Deterministic id: hash of fingerprint and status (replays agree).
    pub alert_id: String,
    /// Stable id of the incident: hash of series key and incident start.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub series: SeriesRef,
    /// Start of the incident's first anomalous window.
    pub incident_start: String,
    pub incident_start_us: i64,
    /// The window this alert was decided on (RFC 3339 UTC, and microseconds);
    /// for `metric`, the sample's time (start and end alike).
    pub window_start: String,
    pub window_end: String,
    pub window_start_us: i64,
    pub window_end_us: i64,
    /// Records and error records in that window.
    pub window_events: u64,
    pub window_errors: u64,
    /// The observed value: a count, or a ratio in [0, 1].
    pub observed: f64,
    /// The baseline's expected value, in the same unit.
    pub expected: f64,
    /// 1st and 99th percentiles of the baseline distribution.
    pub expected_low: f64,
    pub expected_high: f64,
    /// Tail probability of the observation under the baseline.
    pub probability: f64,
    /// Surprise in [0, 1]: 0.5 at the alert threshold, towards 1 beyond.
    pub score: f64,
    pub severity: Severity,
    /// One human-readable line.
    pub summary: String,
    /// The service's most frequent templates in the window (for
    /// `new_template`: the new ones), at most [`MAX_ALERT_TEMPLATES`].
    #[serde(default)]
    pub top_templates: Vec<TemplateCount>,
    /// A few log lines of the window (errors first for error signals, lines
    /// of the new templates for `new_template`), each cut to
    /// [`MAX_SAMPLE_BYTES`], at most [`MAX_ALERT_SAMPLES`].
    #[serde(default)]
    pub samples: Vec<String>,
    /// Keys of the other series of the same service that fired in the same
    /// window: one cause, several symptoms.
    #[serde(default)]
    pub related: Vec<String>,
}

impl Alert {
    /// Fills in the text of the templates the alert names, from `text`
    /// (template id to template text; the detector only knows ids): in
    /// `top_templates`, and in the summary of a `template_count` alert.
    pub fn name_templates(&mut self, text: impl Fn(u64) -> Option<String>) {
        for t in &mut self.top_templates {
            if t.template.is_none() {
                t.template = u64::from_str_radix(&t.template_id, 16).ok().and_then(&text);
            }
        }
        if self.series.signal != Signal::TemplateCount {
            return;
        }
        let Some(dim) = self.series.dimension.as_deref() else {
            return;
        };
        let Some(name) = u64::from_str_radix(dim, 16).ok().and_then(&text) else {
            return;
        };
        let needle = format!("template {dim} ");
        if let Some(at) = self.summary.find(&needle) {
            let quoted = serde_json::to_string(&name).unwrap_or_default();
            self.summary
                .insert_str(at + needle.len() - 1, &format!(" {quoted}"));
        }
    }

    /// The Kafka message key: `service/signal`, so that one series' firing and
    /// resolved alerts land on one partition, in order.
    pub fn key(&self) -> String {
        series_key(
            &self.series.service,
            self.series.signal,
            self.series.dimension.as_deref(),
        )
    }
}

/// The key of one series: `service/signal`, or `service/signal/dimension`.
pub fn series_key(service: &str, signal: Signal, dimension: Option<&str>) -> String {
    match dimension {
        Some(d) => format!("{service}/{}/{d}", signal.as_str()),
        None => format!("{service}/{}", signal.as_str()),
    }
}

/// `line` cut to at most [`MAX_SAMPLE_BYTES`] on a character boundary.
pub(crate) fn sample_line(line: &str) -> String {
    let mut end = line.len().min(MAX_SAMPLE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

/// 64-bit FNV-1a: tiny, stable across Rust versions and platforms (unlike
/// `DefaultHasher`), which is what deterministic ids need.
pub(crate) fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The incident fingerprint: series key and incident start.
pub(crate) fn fingerprint(key: &str, incident_start_us: i64) -> String {
    format!(
        "{:016x}",
        fnv1a64(&[key.as_bytes(), &incident_start_us.to_be_bytes()])
    )
}

/// The alert id: fingerprint and status.
pub(crate) fn alert_id(fingerprint: &str, status: AlertStatus) -> String {
    format!(
        "{:016x}",
        fnv1a64(&[fingerprint.as_bytes(), status.as_str().as_bytes()])
    )
}

/// A UTC civil time split out of microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    pub fn from_us(us: i64) -> Self {
        let secs = us.div_euclid(1_000_000);
        let micros = us.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            micros,
        }
    }
}

/// RFC 3339 UTC, with a fractional part only when the time has one.
pub fn rfc3339_us(us: i64) -> String {
    let c = Civil::from_us(us);
    let frac = if c.micros == 0 {
        String::new()
    } else {
        format!(".{:06}", c.micros)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2024-05-01 16:05-16:06 UTC`, the short window label used in summaries.
pub(crate) fn window_label(start_us: i64, end_us: i64) -> String {
    let s = Civil::from_us(start_us);
    let e = Civil::from_us(end_us);
    let hm = |c: &Civil| {
        if c.second == 0 && c.micros == 0 {
            format!("{:02}:{:02}", c.hour, c.minute)
        } else {
            format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
        }
    };
    format!(
        "{:04}-{:02}-{:02} {}-{} UTC",
        s.year,
        s.month,
        s.day,
        hm(&s),
        hm(&e)
    )
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.status.as_str(), self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_us(1_714_579_500_000_000), "2024-05-01T16:05:00Z");
        assert_eq!(
            rfc3339_us(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn ids_are_stable() {
        let fp = fingerprint("checkout/error_ratio", 1_714_579_500_000_000);
        assert_eq!(
            fp,
            fingerprint("checkout/error_ratio", 1_714_579_500_000_000)
        );
        assert_ne!(
            fp,
            fingerprint("checkout/error_ratio", 1_714_579_560_000_000)
        );
        assert_ne!(
            alert_id(&fp, AlertStatus::Firing),
            alert_id(&fp, AlertStatus::Resolved)
        );
        assert_eq!(fp.len(), 16);
    }
}
