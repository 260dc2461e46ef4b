//! Judging one closed window of one signal, and the incident lifecycle:
//! fire once, stay quiet while the series stays anomalous, resolve after
//! enough normal windows.

use crate::alert::{
    alert_id, fingerprint, rfc3339_us, series_key, window_label, Alert, AlertStatus, Direction,
    SeriesRef, Severity, Signal, ALERT_SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};

use crate::config::DetectorConfig;
use crate::stats::{CountDist, ErrorDist};

/// Lower and upper percentiles reported as the expected range.
const RANGE_LOW_Q: f64 = 0.01;
const RANGE_HIGH_Q: f64 = 0.99;
/// Smallest p-value represented (f64 tails underflow to 0 far beyond it).
const MIN_P: f64 = 1e-300;
/// Critical needs the square of the threshold's surprise (p <= threshold^2)
/// and a change an operator would call large: the count off by at least this
/// fraction of the expectation...
const CRITICAL_COUNT_CHANGE: f64 = 0.5;
/// ...or the error ratio up by at least this many percentage points...
const CRITICAL_RATIO_INCREASE: f64 = 0.10;
/// ...or a metric sample off its expectation by at least this fraction of
/// it.
const CRITICAL_METRIC_CHANGE: f64 = 0.5;

/// One closed window of one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowCtx {
    pub start_us: i64,
    pub end_us: i64,
    pub events: u64,
    pub errors: u64,
}

/// The model a window was judged against, kept to report its range.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Model {
    Count(CountDist),
    Errors {
        dist: ErrorDist,
        n: u64,
    },
    /// No distribution: a static threshold (range = the allowed side) or
    /// new templates (range 0-0).
    Fixed {
        low: f64,
        high: f64,
    },
    /// A metric sample: the scorer's expected range, and the p-value its
    /// score is 0.5 at (`[detect.metric] p_threshold`).
    Metric {
        low: f64,
        high: f64,
        p_threshold: f64,
    },
}

impl Model {
    pub(crate) fn range(&self) -> (f64, f64) {
        match self {
            Model::Count(d) => (
                d.quantile(RANGE_LOW_Q) as f64,
                d.quantile(RANGE_HIGH_Q) as f64,
            ),
            Model::Errors { dist, n } => {
                let n = (*n).max(1) as f64;
                (
                    dist.quantile(RANGE_LOW_Q) as f64 / n,
                    dist.quantile(RANGE_HIGH_Q) as f64 / n,
                )
            }
            Model::Fixed { low, high } | Model::Metric { low, high, .. } => (*low, *high),
        }
    }

    /// The p-value that scores 0.5: the model's own, else `p_threshold`.
    pub(crate) fn threshold(&self, cfg: &DetectorConfig) -> f64 {
        match self {
            Model::Metric { p_threshold, .. } => *p_threshold,
            _ => cfg.p_threshold,
        }
    }
}

/// The verdict on one window of one signal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Judgement {
    pub probability: f64,
    pub direction: Direction,
    /// Below the alert threshold and past the absolute floors.
    pub anomalous: bool,
    /// Normal enough to count towards resolving an open incident.
    pub recovered: bool,
    pub observed: f64,
    pub expected: f64,
    pub model: Model,
}

/// An open incident on one signal of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Incident {
    start_us: i64,
    direction: Direction,
    severity: Severity,
    fingerprint: String,
    windows: u32,
    normal_streak: u32,
    last: (Judgement, WindowCtx),
    /// Opened while a signal that explains it was in an incident of its
    /// own (see [`step_with`]): it runs its course without any alert.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    silent: bool,
}

/// One signal's incident and its cool-down after the last resolve.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Track {
    /// Boxed: most tracks have no incident, and a track is kept for every
    /// signal of every series.
    pub incident: Option<Box<Incident>>,
    /// Windows starting before this do not open a new incident.
    pub cooldown_until_us: i64,
}

impl Track {
    /// Whether an incident is open, silent or not.
    pub fn is_open(&self) -> bool {
        self.incident.is_some()
    }

    /// The direction of the open incident, if any.
    pub fn open_direction(&self) -> Option<Direction> {
        self.incident.as_ref().map(|i| i.direction)
    }
}

/// Which series a judgement is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesId<'a> {
    pub service: &'a str,
    pub signal: Signal,
    pub dimension: Option<&'a str>,
}

/// What the caller should do with the baseline after [`step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaselineAction {
    /// Fold the window in (clipped): it was normal.
    Update,
    /// Leave the baseline alone: the window was anomalous.
    Keep,
    /// The incident outlived `max_incident_windows`: start a new warm-up.
    Reset,
}

/// Maps a p-value to [0, 1]: `s / (s + s_threshold)` with `s = -log10 p`,
/// so 0 for p = 1, 0.5 exactly at the threshold, towards 1 beyond.
pub fn score(probability: f64, threshold: f64) -> f64 {
    let s = -probability.clamp(MIN_P, 1.0).log10();
    let s_thr = -threshold.clamp(MIN_P, 1.0 - f64::EPSILON).log10();
    let v = s / (s + s_thr);
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn severity(signal: Signal, j: &Judgement, threshold: f64) -> Severity {
    let very_unlikely = j.probability <= threshold * threshold;
    let large = match signal {
        Signal::EventCount | Signal::WarnCount | Signal::LevelCount | Signal::TemplateCount => {
            (j.observed - j.expected).abs() >= CRITICAL_COUNT_CHANGE * j.expected.max(1.0)
        }
        Signal::ErrorRatio => j.observed - j.expected >= CRITICAL_RATIO_INCREASE,
        Signal::FieldMean | Signal::FieldHigh => j.observed >= 2.0 * j.expected,
        Signal::Metric => {
            (j.observed - j.expected).abs() >= CRITICAL_METRIC_CHANGE * j.expected.abs()
        }
        // New templates warn; a rule's severity is its own (set by caller).
        Signal::NewTemplate | Signal::Threshold => false,
    };
    if very_unlikely && large {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// Advances the incident state of one signal by one judged window, pushing
/// any alert, and says what to do with the baseline.
pub(crate) fn step(
    track: &mut Track,
    id: SeriesId<'_>,
    j: Judgement,
    win: WindowCtx,
    cfg: &DetectorConfig,
    out: &mut Vec<Alert>,
) -> BaselineAction {
    step_with(track, id, j, win, cfg, Opening::default(), out)
}

/// How a new incident opens, when a window opens one.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Opening {
    /// The severity of a threshold rule; `None`: from the judgement.
    pub severity: Option<Severity>,
    /// Another signal of the service that explains this one is in an
    /// incident: the new incident is silent (no `firing`, no `resolved`, no
    /// cool-down). One cause gives one alert, not one per symptom.
    pub explained: bool,
}

/// [`step`] with control over how a new incident opens.
pub(crate) fn step_with(
    track: &mut Track,
    id: SeriesId<'_>,
    j: Judgement,
    win: WindowCtx,
    cfg: &DetectorConfig,
    opening: Opening,
    out: &mut Vec<Alert>,
) -> BaselineAction {
    let Some(inc) = track.incident.as_mut() else {
        if !j.anomalous {
            return BaselineAction::Update;
        }
        if win.start_us < track.cooldown_until_us {
            // Flapping guard: the series resolved moments ago.
            return BaselineAction::Keep;
        }
        let key = series_key(id.service, id.signal, id.dimension);
        let inc = Incident {
            start_us: win.start_us,
            direction: j.direction,
            severity: opening
                .severity
                .unwrap_or_else(|| severity(id.signal, &j, cfg.p_threshold)),
            fingerprint: fingerprint(&key, win.start_us),
            windows: 1,
            normal_streak: 0,
            last: (j, win),
            silent: opening.explained,
        };
        if !inc.silent {
            out.push(build(AlertStatus::Firing, id, &inc, cfg, None));
        }
        track.incident = Some(Box::new(inc));
        return BaselineAction::Keep;
    };
    inc.windows = inc.windows.saturating_add(1);
    let action = if j.recovered {
        inc.normal_streak += 1;
        BaselineAction::Update
    } else {
        inc.normal_streak = 0;
        BaselineAction::Keep
    };
    inc.last = (j, win);
    if inc.normal_streak >= cfg.resolve_after_windows {
        if !inc.silent {
            out.push(build(AlertStatus::Resolved, id, inc, cfg, None));
            track.cooldown_until_us = win
                .end_us
                .saturating_add(i64::from(cfg.cooldown_windows).saturating_mul(cfg.window_us()));
        }
        track.incident = None;
        return action;
    }
    if cfg.max_incident_windows > 0 && inc.windows >= cfg.max_incident_windows {
        if !inc.silent {
            let note = format!(
                "new level accepted after {} windows, baseline restarts",
                inc.windows
            );
            out.push(build(AlertStatus::Resolved, id, inc, cfg, Some(&note)));
        }
        track.incident = None;
        return BaselineAction::Reset;
    }
    action
}

/// Closes an open incident because its series is dropped (evicted or
/// forgotten), so no consumer is left with a firing alert forever.
pub(crate) fn retire(
    track: &mut Track,
    id: SeriesId<'_>,
    reason: &str,
    cfg: &DetectorConfig,
    out: &mut Vec<Alert>,
) {
    if let Some(inc) = track.incident.take().filter(|i| !i.silent) {
        out.push(build(AlertStatus::Resolved, id, &inc, cfg, Some(reason)));
    }
}

/// What a metric scorer's verdict on one sample means for its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricStep {
    /// The sample opens an incident.
    Open,
    /// An incident is open and carries on.
    Continue,
    /// The sample ends the open incident: healed, or (`accepted`) the new
    /// level accepted after `max_incident_rows`.
    End { accepted: bool },
}

/// Advances the incident of one metric series by one scored sample. The
/// scorer decides when an incident opens and ends; this turns that into
/// alerts with the same rules as the windowed signals: one `firing`, one
/// `resolved`, and no new incident while the series cools down
/// (`cooldown_windows` of event time after a resolve).
pub(crate) fn step_metric(
    track: &mut Track,
    id: SeriesId<'_>,
    j: Judgement,
    win: WindowCtx,
    cfg: &DetectorConfig,
    what: MetricStep,
    out: &mut Vec<Alert>,
) {
    match (what, track.incident.as_mut()) {
        (MetricStep::Open, None) => {
            if win.start_us < track.cooldown_until_us {
                return;
            }
            let key = series_key(id.service, id.signal, id.dimension);
            let threshold = j.model.threshold(cfg);
            let inc = Incident {
                start_us: win.start_us,
                direction: j.direction,
                severity: severity(id.signal, &j, threshold),
                fingerprint: fingerprint(&key, win.start_us),
                windows: 1,
                normal_streak: 0,
                last: (j, win),
                silent: false,
            };
            out.push(build(AlertStatus::Firing, id, &inc, cfg, None));
            track.incident = Some(Box::new(inc));
        }
        (MetricStep::Open | MetricStep::Continue, Some(inc)) => {
            inc.windows = inc.windows.saturating_add(1);
            inc.last = (j, win);
        }
        (MetricStep::End { accepted }, Some(inc)) => {
            inc.windows = inc.windows.saturating_add(1);
            inc.last = (j, win);
            let note = accepted.then(|| {
                format!(
                    "new level accepted after {} samples, the model carries on from it",
                    inc.windows
                )
            });
            out.push(build(AlertStatus::Resolved, id, inc, cfg, note.as_deref()));
            if !accepted {
                track.cooldown_until_us = win.end_us.saturating_add(
                    i64::from(cfg.cooldown_windows).saturating_mul(cfg.window_us()),
                );
            }
            track.incident = None;
        }
        (MetricStep::Continue | MetricStep::End { .. }, None) => {}
    }
}

/// The firing alert of an open incident, as of its latest window (same
/// fingerprint and alert id as the one sent when it fired).
pub(crate) fn firing(track: &Track, id: SeriesId<'_>, cfg: &DetectorConfig) -> Option<Alert> {
    track
        .incident
        .as_ref()
        .filter(|inc| !inc.silent)
        .map(|inc| build(AlertStatus::Firing, id, inc, cfg, None))
}

/// A sample's value as logged when it has at most 4 decimals (`95`,
/// `12.25`), else rounded to 4.
fn short_value(v: f64) -> String {
    if ((v * 1e4).round() / 1e4 - v).abs() <= f64::EPSILON * v.abs() {
        format!("{v}")
    } else {
        format!("{v:.4}")
    }
}

fn build(
    status: AlertStatus,
    id: SeriesId<'_>,
    inc: &Incident,
    cfg: &DetectorConfig,
    note: Option<&str>,
) -> Alert {
    let (service, signal) = (id.service, id.signal);
    let (j, win) = &inc.last;
    let (low, high) = j.model.range();
    let what = match signal {
        Signal::WarnCount => format!(
            "{service} warnings {} in {}, expected {:.0} (range {low:.0}-{high:.0}), p={:.1e}",
            j.observed,
            window_label(win.start_us, win.end_us),
            j.expected,
            j.probability
        ),
        Signal::LevelCount => format!(
            "{service} {} records {} in {}, expected {:.0} (range {low:.0}-{high:.0}), p={:.1e}",
            id.dimension.unwrap_or_default(),
            j.observed,
            window_label(win.start_us, win.end_us),
            j.expected,
            j.probability
        ),
        Signal::TemplateCount => format!(
            "{service} template {} logged {} times in {}, expected {:.0} (range {low:.0}-{high:.0}), p={:.1e}",
            id.dimension.unwrap_or_default(),
            j.observed,
            window_label(win.start_us, win.end_us),
            j.expected,
            j.probability
        ),
        Signal::NewTemplate => format!(
            "{service} logged {} new template(s) in {}",
            j.observed,
            window_label(win.start_us, win.end_us)
        ),
        Signal::FieldMean | Signal::FieldHigh => format!(
            "{service} {} {} {:.4} in {}, expected {:.4} (range {low:.4}-{high:.4}), p={:.1e}",
            id.dimension.unwrap_or_default(),
            if signal == Signal::FieldMean { "mean" } else { "high quantile" },
            j.observed,
            window_label(win.start_us, win.end_us),
            j.expected,
            j.probability
        ),
        Signal::Metric => format!(
            "{service} {} {} at {}, expected {:.4} (range {low:.4} to {high:.4}), p={:.1e}",
            id.dimension.unwrap_or_default(),
            short_value(j.observed),
            rfc3339_us(win.start_us),
            j.expected,
            j.probability
        ),
        Signal::Threshold => format!(
            "{service} rule {}: {} {} in {} (threshold {})",
            id.dimension.unwrap_or_default(),
            j.observed,
            match j.direction {
                Direction::High => "above",
                Direction::Low => "below",
            },
            window_label(win.start_us, win.end_us),
            j.expected
        ),
        Signal::EventCount => format!(
            "{service} event count {} in {}, expected {:.0} (range {low:.0}-{high:.0}), p={:.1e}",
            win.events,
            window_label(win.start_us, win.end_us),
            j.expected,
            j.probability
        ),
        Signal::ErrorRatio => format!(
            "{service} error ratio {:.1}% ({}/{}) in {}, expected {:.1}% (range {:.1}-{:.1}%), p={:.1e}",
            100.0 * j.observed,
            win.errors,
            win.events,
            window_label(win.start_us, win.end_us),
            100.0 * j.expected,
            100.0 * low,
            100.0 * high,
            j.probability
        ),
    };
    let summary = match (status, note) {
        (AlertStatus::Firing, _) => {
            format!("{what} ({} {})", inc.direction.as_str(), signal.as_str())
        }
        (AlertStatus::Resolved, None) => format!(
            "resolved after {} {} (since {}): {what}",
            inc.windows,
            if signal == Signal::Metric {
                "samples"
            } else {
                "windows"
            },
            rfc3339_us(inc.start_us)
        ),
        (AlertStatus::Resolved, Some(note)) => format!("resolved, {note}: {what}"),
    };
    Alert {
        schema_version: ALERT_SCHEMA_VERSION.to_string(),
        alert_id: alert_id(&inc.fingerprint, status),
        fingerprint: inc.fingerprint.clone(),
        status,
        series: SeriesRef {
            service: service.to_string(),
            signal,
            direction: inc.direction,
            dimension: id.dimension.map(str::to_string),
        },
        incident_start: rfc3339_us(inc.start_us),
        incident_start_us: inc.start_us,
        window_start: rfc3339_us(win.start_us),
        window_end: rfc3339_us(win.end_us),
        window_start_us: win.start_us,
        window_end_us: win.end_us,
        window_events: win.events,
        window_errors: win.errors,
        observed: j.observed,
        expected: j.expected,
        expected_low: low,
        expected_high: high,
        probability: j.probability,
        score: score(j.probability, j.model.threshold(cfg)),
        severity: inc.severity,
        summary,
        top_templates: Vec::new(),
        samples: Vec::new(),
        related: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_print_as_logged_or_rounded() {
        assert_eq!(short_value(95.0), "95");
        assert_eq!(short_value(12.25), "12.25");
        assert_eq!(short_value(12.419564875024514), "12.4196");
        assert_eq!(short_value(-0.5), "-0.5");
    }

    #[test]
    fn score_is_half_at_threshold_and_monotone() {
        assert!((score(1e-6, 1e-6) - 0.5).abs() < 1e-12);
        assert_eq!(score(1.0, 1e-6), 0.0);
        assert!(score(1e-12, 1e-6) > score(1e-7, 1e-6));
        assert!(score(0.0, 1e-6) < 1.0 && score(0.0, 1e-6) > 0.95);
        assert_eq!(score(f64::NAN, 1e-6), 0.0);
    }
}
