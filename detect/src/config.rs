//! Detector configuration: every knob has a doc comment, a named default and
//! is checked by [`DetectorConfig::validate`] before a detector is built.

use logwarden_ingest::record::Level;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default tumbling window: one minute.
pub const DEFAULT_WINDOW_SECS: u64 = 60;
/// Default allowed lateness: the watermark trails the highest event time by this much.
pub const DEFAULT_ALLOWED_LATENESS_SECS: u64 = 10;
/// Default number of closed windows a series needs before it may alert.
pub const DEFAULT_WARMUP_WINDOWS: u32 = 15;
/// Default tail-probability threshold per window and test.
pub const DEFAULT_P_THRESHOLD: f64 = 1e-6;
/// Default p-value a window must reach to count as "back to normal" while an
/// incident is open (hysteresis: between the two thresholds the incident
/// neither fires again nor counts towards resolution).
pub const DEFAULT_RESOLVE_P_THRESHOLD: f64 = 1e-3;
/// Default minimum error count in a window before the error ratio may alert.
pub const DEFAULT_MIN_ERRORS: u64 = 5;
/// Default minimum absolute change of the event count before it may alert.
pub const DEFAULT_MIN_COUNT_CHANGE: f64 = 10.0;
/// Default consecutive normal windows that resolve an incident.
pub const DEFAULT_RESOLVE_AFTER_WINDOWS: u32 = 3;
/// Default incident length after which the new level is accepted (0 = never).
pub const DEFAULT_MAX_INCIDENT_WINDOWS: u32 = 180;
/// Default smoothing of the rolling baselines (weight of the newest window).
pub const DEFAULT_BASELINE_ALPHA: f64 = 0.05;
/// Default prior error ratio mixed into the error-ratio baseline.
pub const DEFAULT_ERROR_PRIOR_RATIO: f64 = 0.01;
/// Default weight of that prior, in events.
pub const DEFAULT_ERROR_PRIOR_EVENTS: f64 = 100.0;
/// Default number of empty windows emitted for a silent series (6 h of 1 min).
pub const DEFAULT_MAX_SILENT_WINDOWS: u32 = 360;
/// Default silence after which a series is forgotten (24 h of 1 min).
pub const DEFAULT_FORGET_AFTER_WINDOWS: u32 = 1440;
/// Default cap on tracked series; the least recently seen is evicted.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// Default windows after a resolve during which the same series does not
/// fire again.
pub const DEFAULT_COOLDOWN_WINDOWS: u32 = 10;
/// Default windows a service's templates are learned before a template it
/// has not logged before alerts (0 disables new-template alerts).
pub const DEFAULT_NEW_TEMPLATE_WARMUP_WINDOWS: u32 = 60;
/// Default records of a new template in one window before it alerts.
pub const DEFAULT_NEW_TEMPLATE_MIN_COUNT: u64 = 5;
/// Default high quantile of numeric fields.
pub const DEFAULT_FIELD_QUANTILE: f64 = 0.95;
/// Default relative increase of a field statistic before it may alert.
pub const DEFAULT_MIN_FIELD_CHANGE: f64 = 0.2;
/// Default values of a field in a window before the window is judged.
pub const DEFAULT_MIN_FIELD_VALUES: u64 = 20;
/// Default cap on metric series (service and metric field); the least
/// recently seen is evicted. A warm series holds about 110 KiB with the
/// default `[detect.metric]` model (and about twice that in a checkpoint).
pub const DEFAULT_MAX_METRIC_SERIES: usize = 1000;
/// Most metric fields.
pub const MAX_METRIC_FIELDS: usize = 16;
/// Default levels with a count series of their own (`level_count`).
pub const DEFAULT_LEVEL_COUNTS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
/// Default number of templates per service with a count series
/// (`template_count`): the most frequent ones.
pub const DEFAULT_TRACKED_TEMPLATES: usize = 10;
/// Most templates per service that may be tracked.
pub const MAX_TRACKED_TEMPLATES: usize = 100;
/// Default expected records of a template per window below which its
/// window is not judged (rare templates are noise, not signal).
pub const DEFAULT_TEMPLATE_MIN_EXPECTED: f64 = 5.0;

/// What a threshold rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSignal {
    /// Records per window.
    EventCount,
    /// Error and fatal records per window.
    ErrorCount,
    /// Error and fatal records over all records, in [0, 1].
    ErrorRatio,
    /// Warning records per window.
    WarnCount,
}

impl RuleSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSignal::EventCount => "event_count",
            RuleSignal::ErrorCount => "error_count",
            RuleSignal::ErrorRatio => "error_ratio",
            RuleSignal::WarnCount => "warn_count",
        }
    }
}

/// Which side of the threshold is a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    Above,
    Below,
}

/// A static threshold: e.g. "payments error_count above 50 for 2 windows".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    /// Name of the rule, unique; the alert's `series.dimension`.
    pub name: String,
    /// The service it applies to; empty: every service.
    #[serde(default)]
    pub service: String,
    /// The measured value.
    pub signal: RuleSignal,
    /// `above` or `below`.
    pub op: RuleOp,
    /// The threshold (a count, or a ratio in [0, 1]).
    pub value: f64,
    /// Consecutive violating windows before it fires (at least 1).
    #[serde(default = "one")]
    pub for_windows: u32,
    /// Severity of its alerts.
    #[serde(default = "warning")]
    pub severity: crate::alert::Severity,
}

fn one() -> u32 {
    1
}

fn warning() -> crate::alert::Severity {
    crate::alert::Severity::Warning
}

/// Why a [`DetectorConfig`] was rejected. Each variant names the field; none
/// of them can be fixed by retrying.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DetectConfigError {
    #[error("detect config: `{field}` must be greater than zero")]
    Zero { field: &'static str },
    #[error("detect config: `{field}` must be in {range}, got {value}")]
    OutOfRange {
        field: &'static str,
        range: &'static str,
        value: f64,
    },
    #[error("detect config: `level_counts`: `{name}` is not a level (trace, debug, info, warn, error, fatal, unknown)")]
    Level { name: String },
    #[error("detect config: rule `{name}`: {why}")]
    Rule { name: String, why: String },
    #[error("detect config: `{field}`: `{name}` {why}")]
    Name {
        field: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("detect config: `{field}` ({value}) must be at least `{other}` ({other_value})")]
    Ordering {
        field: &'static str,
        value: f64,
        other: &'static str,
        other_value: f64,
    },
}

/// Configuration of the [`crate::Detector`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Length of the tumbling event-time windows, in seconds.
    pub window_secs: u64,
    /// How far behind the highest event time seen the watermark trails, in
    /// seconds; a window closes once the watermark passes its end.
    pub allowed_lateness_secs: u64,
    /// Closed windows a series must see before it may alert.
    pub warmup_windows: u32,
    /// A window is anomalous when its tail probability is below this.
    pub p_threshold: f64,
    /// While an incident is open, a window counts as normal again only when
    /// its tail probability is at least this (must be >= `p_threshold`).
    pub resolve_p_threshold: f64,
    /// Minimum number of errors in a window before the error ratio may alert.
    pub min_errors: u64,
    /// Minimum |observed - expected| event count before the count may alert.
    pub min_count_change: f64,
    /// Consecutive normal windows that resolve an open incident.
    pub resolve_after_windows: u32,
    /// An incident lasting this many windows is resolved and the series'
    /// baseline restarts its warm-up, accepting the new level (0 = never).
    pub max_incident_windows: u32,
    /// Weight of the newest window in the exponentially weighted baselines,
    /// in (0, 1); smaller is slower to adapt.
    pub baseline_alpha: f64,
    /// Prior error ratio of a new series, in [0, 1).
    pub error_prior_ratio: f64,
    /// Weight of that prior, in events (0 disables it).
    pub error_prior_events: f64,
    /// Empty windows emitted for a series after its last record; then it
    /// stays quiet until it logs again.
    pub max_silent_windows: u32,
    /// Windows of silence after which a series is forgotten (must be >=
    /// `max_silent_windows`).
    pub forget_after_windows: u32,
    /// Maximum number of tracked series; the least recently seen is evicted.
    pub max_series: usize,
    /// After an incident resolves, windows during which the same series
    /// does not fire again (flapping guard).
    pub cooldown_windows: u32,
    /// Windows of a service during which its templates are only learned;
    /// afterwards a template it has not logged before alerts (0: never).
    pub new_template_warmup_windows: u32,
    /// Records of a new template in one window before it alerts.
    pub new_template_min_count: u64,
    /// Static threshold rules, judged on every closed window.
    pub rules: Vec<ThresholdRule>,
    /// Numeric fields (record attributes, e.g. `duration_ms`) whose window
    /// mean and high quantile are tracked per service; at most 16.
    pub fields: Vec<String>,
    /// The high quantile of the fields, in (0, 1).
    pub field_quantile: f64,
    /// Relative increase of a field statistic over its baseline before it
    /// may alert (0.2: 20% slower).
    pub min_field_change: f64,
    /// Values of a field in a window before that window is judged.
    pub min_field_values: u64,
    /// Numeric fields (record attributes, e.g. `queue_depth`) of
    /// metric-like records: each value is a sample scored on arrival
    /// against its (service, field) series, no windowing (`metric` alerts,
    /// model in `[detect.metric]`); at most 16.
    pub metric_fields: Vec<String>,
    /// Maximum number of metric series (service and metric field); the
    /// least recently seen is evicted.
    pub max_metric_series: usize,
    /// Levels whose records per window are a series of their own per
    /// service (`level_count`, upwards only): names among `trace`, `debug`,
    /// `info`, `warn`, `error`, `fatal`, `unknown`.
    pub level_counts: Vec<String>,
    /// The most frequent templates of each service that get a count series
    /// of their own (`template_count`, upwards only), at most 100; 0
    /// disables template series.
    pub tracked_templates: usize,
    /// A template series' window is judged only when its expected count is
    /// at least this (rare templates do not alert on noise).
    pub template_min_expected: f64,
    /// Count baselines learn a daily profile (and weekday factors) and
    /// follow it once the data has shown it (at least 2 days; 2 weeks for
    /// weekdays) and it forecasts better than the plain baseline.
    pub seasonality: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_WINDOW_SECS,
            allowed_lateness_secs: DEFAULT_ALLOWED_LATENESS_SECS,
            warmup_windows: DEFAULT_WARMUP_WINDOWS,
            p_threshold: DEFAULT_P_THRESHOLD,
            resolve_p_threshold: DEFAULT_RESOLVE_P_THRESHOLD,
            min_errors: DEFAULT_MIN_ERRORS,
            min_count_change: DEFAULT_MIN_COUNT_CHANGE,
            resolve_after_windows: DEFAULT_RESOLVE_AFTER_WINDOWS,
            max_incident_windows: DEFAULT_MAX_INCIDENT_WINDOWS,
            baseline_alpha: DEFAULT_BASELINE_ALPHA,
            error_prior_ratio: DEFAULT_ERROR_PRIOR_RATIO,
            error_prior_events: DEFAULT_ERROR_PRIOR_EVENTS,
            max_silent_windows: DEFAULT_MAX_SILENT_WINDOWS,
            forget_after_windows: DEFAULT_FORGET_AFTER_WINDOWS,
            max_series: DEFAULT_MAX_SERIES,
            cooldown_windows: DEFAULT_COOLDOWN_WINDOWS,
            new_template_warmup_windows: DEFAULT_NEW_TEMPLATE_WARMUP_WINDOWS,
            new_template_min_count: DEFAULT_NEW_TEMPLATE_MIN_COUNT,
            rules: Vec::new(),
            fields: Vec::new(),
            field_quantile: DEFAULT_FIELD_QUANTILE,
            min_field_change: DEFAULT_MIN_FIELD_CHANGE,
            min_field_values: DEFAULT_MIN_FIELD_VALUES,
            metric_fields: Vec::new(),
            max_metric_series: DEFAULT_MAX_METRIC_SERIES,
            level_counts: DEFAULT_LEVEL_COUNTS.iter().map(|l| l.to_string()).collect(),
            tracked_templates: DEFAULT_TRACKED_TEMPLATES,
            template_min_expected: DEFAULT_TEMPLATE_MIN_EXPECTED,
            seasonality: true,
        }
    }
}

/// Most numeric fields tracked.
pub const MAX_FIELDS: usize = 16;

/// Longest accepted window or lateness: one week, which keeps every
/// microsecond computation far from overflow.
const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;

impl DetectorConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), DetectConfigError> {
        if self.window_secs == 0 {
            return Err(DetectConfigError::Zero {
                field: "window_secs",
            });
        }
        if self.window_secs > MAX_DURATION_SECS {
            return Err(DetectConfigError::OutOfRange {
                field: "window_secs",
                range: "1..=604800",
                value: self.window_secs as f64,
            });
        }
        if self.allowed_lateness_secs > MAX_DURATION_SECS {
            return Err(DetectConfigError::OutOfRange {
                field: "allowed_lateness_secs",
                range: "0..=604800",
                value: self.allowed_lateness_secs as f64,
            });
        }
        if self.warmup_windows == 0 {
            return Err(DetectConfigError::Zero {
                field: "warmup_windows",
            });
        }
        open_unit("p_threshold", self.p_threshold)?;
        open_unit("resolve_p_threshold", self.resolve_p_threshold)?;
        if self.resolve_p_threshold < self.p_threshold {
            return Err(DetectConfigError::Ordering {
                field: "resolve_p_threshold",
                value: self.resolve_p_threshold,
                other: "p_threshold",
                other_value: self.p_threshold,
            });
        }
        if !(self.min_count_change.is_finite() && self.min_count_change >= 0.0) {
            return Err(DetectConfigError::OutOfRange {
                field: "min_count_change",
                range: "[0, inf)",
                value: self.min_count_change,
            });
        }
        if self.resolve_after_windows == 0 {
            return Err(DetectConfigError::Zero {
                field: "resolve_after_windows",
            });
        }
        open_unit("baseline_alpha", self.baseline_alpha)?;
        if !(self.error_prior_ratio.is_finite() && (0.0..1.0).contains(&self.error_prior_ratio)) {
            return Err(DetectConfigError::OutOfRange {
                field: "error_prior_ratio",
                range: "[0, 1)",
                value: self.error_prior_ratio,
            });
        }
        if !(self.error_prior_events.is_finite() && self.error_prior_events >= 0.0) {
            return Err(DetectConfigError::OutOfRange {
                field: "error_prior_events",
                range: "[0, inf)",
                value: self.error_prior_events,
            });
        }
        if self.forget_after_windows < self.max_silent_windows {
            return Err(DetectConfigError::Ordering {
                field: "forget_after_windows",
                value: f64::from(self.forget_after_windows),
                other: "max_silent_windows",
                other_value: f64::from(self.max_silent_windows),
            });
        }
        if self.max_series == 0 {
            return Err(DetectConfigError::Zero {
                field: "max_series",
            });
        }
        if self.new_template_min_count == 0 {
            return Err(DetectConfigError::Zero {
                field: "new_template_min_count",
            });
        }
        open_unit("field_quantile", self.field_quantile)?;
        if !(self.min_field_change.is_finite() && self.min_field_change >= 0.0) {
            return Err(DetectConfigError::OutOfRange {
                field: "min_field_change",
                range: "[0, inf)",
                value: self.min_field_change,
            });
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(DetectConfigError::OutOfRange {
                field: "fields",
                range: "at most 16 fields",
                value: self.fields.len() as f64,
            });
        }
        if self.metric_fields.len() > MAX_METRIC_FIELDS {
            return Err(DetectConfigError::OutOfRange {
                field: "metric_fields",
                range: "at most 16 fields",
                value: self.metric_fields.len() as f64,
            });
        }
        for (i, f) in self.metric_fields.iter().enumerate() {
            let bad = |why| {
                Err(DetectConfigError::Name {
                    field: "metric_fields",
                    name: f.clone(),
                    why,
                })
            };
            if f.trim().is_empty() {
                return bad("is empty");
            }
            if self.metric_fields[..i].contains(f) {
                return bad("is listed twice");
            }
        }
        if self.max_metric_series == 0 {
            return Err(DetectConfigError::Zero {
                field: "max_metric_series",
            });
        }
        if let Some(bad) = self.level_counts.iter().find(|l| level_named(l).is_none()) {
            return Err(DetectConfigError::Level { name: bad.clone() });
        }
        if self.tracked_templates > MAX_TRACKED_TEMPLATES {
            return Err(DetectConfigError::OutOfRange {
                field: "tracked_templates",
                range: "0..=100",
                value: self.tracked_templates as f64,
            });
        }
        if !(self.template_min_expected.is_finite() && self.template_min_expected >= 0.0) {
            return Err(DetectConfigError::OutOfRange {
                field: "template_min_expected",
                range: "[0, inf)",
                value: self.template_min_expected,
            });
        }
        for (i, r) in self.rules.iter().enumerate() {
            let bad = |why: &str| {
                Err(DetectConfigError::Rule {
                    name: r.name.clone(),
                    why: why.to_string(),
                })
            };
            if r.name.is_empty() || r.name.contains('/') {
                return bad("the name must be non-empty, without `/`");
            }
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return bad("two rules have this name");
            }
            if !r.value.is_finite() || r.value < 0.0 {
                return bad("the value must be a non-negative number");
            }
            if r.signal == RuleSignal::ErrorRatio && r.value > 1.0 {
                return bad("an error_ratio threshold is in [0, 1]");
            }
            if r.for_windows == 0 {
                return bad("for_windows must be at least 1");
            }
        }
        Ok(())
    }

    /// What the count baselines need from the configuration.
    pub fn count_params(&self) -> crate::baseline::CountParams {
        crate::baseline::CountParams {
            alpha: self.baseline_alpha,
            window_us: self.window_us(),
            seasonal: self.seasonality,
        }
    }

    /// Whether records of `level` get a `level_count` series.
    pub fn counts_level(&self, level: Level) -> bool {
        self.level_counts.iter().any(|l| l == level.as_str())
    }

    /// The window length in microseconds.
    pub fn window_us(&self) -> i64 {
        // Bounded by MAX_DURATION_SECS after validation.
        i64::try_from(self.window_secs.min(MAX_DURATION_SECS)).unwrap_or(0) * 1_000_000
    }

    /// The allowed lateness in microseconds.
    pub fn allowed_lateness_us(&self) -> i64 {
        i64::try_from(self.allowed_lateness_secs.min(MAX_DURATION_SECS)).unwrap_or(0) * 1_000_000
    }
}

/// The level called `name` (as in the archive and the alerts).
pub fn level_named(name: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.as_str() == name)
}

fn open_unit(field: &'static str, value: f64) -> Result<(), DetectConfigError> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(DetectConfigError::OutOfRange {
            field,
            range: "(0, 1)",
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let cfg = DetectorConfig {
            window_secs: 0,
            ..DetectorConfig::default()
        };
        let err = cfg.validate().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("window_secs")));

        let cfg = DetectorConfig {
            resolve_p_threshold: 1e-9,
            ..DetectorConfig::default()
        };
        let err = cfg.validate().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("resolve_p_threshold")));
    }

    #[test]
    fn deserialize_rejects_unknown_fields_and_fills_defaults() {
        let cfg: Result<DetectorConfig, _> = serde_json::from_str(r#"{"window_secs": 30}"#);
        assert!(cfg.is_ok_and(|c| c.window_secs == 30 && c.warmup_windows == 15));
        let bad: Result<DetectorConfig, _> = serde_json::from_str(r#"{"windw_secs": 30}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn metric_fields_are_checked_by_name() {
        let cfg: DetectorConfig =
            serde_json::from_str(r#"{"metric_fields": ["queue_depth", "cpu_pct"]}"#)
                .expect("metric fields");
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.max_metric_series, DEFAULT_MAX_METRIC_SERIES);
        for (fields, needle) in [
            (vec!["a", "a"], "`a` is listed twice"),
            (vec![" "], "is empty"),
        ] {
            let cfg = DetectorConfig {
                metric_fields: fields.iter().map(|f| f.to_string()).collect(),
                ..DetectorConfig::default()
            };
            let err = cfg.validate().err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("metric_fields") && e.contains(needle)),
                "{err:?}"
            );
        }
        let cfg = DetectorConfig {
            max_metric_series: 0,
            ..DetectorConfig::default()
        };
        let err = cfg.validate().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_metric_series")));
    }

    #[test]
    fn rules_parse_with_defaults_and_reject_typos() {
        let cfg: DetectorConfig = serde_json::from_str(
            r#"{"rules": [{"name": "r", "signal": "error_count", "op": "above", "value": 50}]}"#,
        )
        .expect("a rule");
        let r = &cfg.rules[0];
        assert_eq!((r.for_windows, r.severity), (1, crate::Severity::Warning));
        assert_eq!(r.service, "");
        assert!(cfg.validate().is_ok());
        let typo: Result<DetectorConfig, _> = serde_json::from_str(
            r#"{"rules": [{"name": "r", "signal": "error_count", "op": "above", "value": 5, "windows": 2}]}"#,
        );
        assert!(typo.is_err());
        let twice = DetectorConfig {
            rules: vec![r.clone(), r.clone()],
            ..DetectorConfig::default()
        };
        assert!(twice.validate().is_err());
    }
}
