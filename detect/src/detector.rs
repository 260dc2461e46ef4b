//! The detector: per-service tumbling event-time windows, closed by the
//! watermark, judged against rolling baselines.
//!
//! Time only moves with the events: the watermark is the highest event time
//! seen minus the allowed lateness, and a window closes once the watermark
//! passes its end. Replaying the same events therefore yields the same
//! alerts, with the same ids, whatever the wall clock says.

use std::collections::BTreeMap;

use logwarden_ingest::record::{Level, LogRecord};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::alert::{
    sample_line, Alert, AlertStatus, Direction, Signal, TemplateCount, MAX_ALERT_SAMPLES,
    MAX_ALERT_TEMPLATES,
};
use crate::baseline::{CountBaseline, CountForecast, RatioBaseline};
use crate::config::{DetectConfigError, DetectorConfig, RuleOp, RuleSignal, MAX_FIELDS};
use crate::fields::{FieldAcc, FieldSeries};
use crate::incident::{
    firing, retire, score, step, step_metric, step_with, BaselineAction, Judgement, MetricStep,
    Model, Opening, SeriesId, Track, WindowCtx,
};
use crate::numeric::{IncidentEnd, NumericConfig, NumericScorer};

/// The series name used for records without a service.
pub const UNKNOWN_SERVICE: &str = "unknown";
/// Earliest accepted event time: 1970-01-01T00:00:00Z. Anything earlier is a
/// parse accident, not a log line.
pub const MIN_EVENT_TIME_US: i64 = 0;
/// First rejected event time: 2200-01-01T00:00:00Z. Keeps window arithmetic
/// far from overflow; note that an accepted far-future time still moves the
/// watermark (ingest marks such records via `TimeSource`).
pub const MAX_EVENT_TIME_US: i64 = 7_258_118_400_000_000;

/// What the detector needs from one log record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub event_time_us: i64,
    /// The series; `None` is the series [`UNKNOWN_SERVICE`].
    pub service: Option<&'a str>,
    pub level: Level,
    /// The message's template, for template counts and new templates.
    pub template_id: Option<u64>,
    /// The message, for sample lines in alerts.
    pub message: Option<&'a str>,
    /// Values of the configured numeric fields
    /// ([`DetectorConfig::fields`]), in that order; shorter is fine.
    pub values: &'a [Option<f64>],
    /// Values of the configured metric fields
    /// ([`DetectorConfig::metric_fields`]), in that order; shorter is fine.
    pub metrics: &'a [Option<f64>],
}

/// Reads the configured numeric fields of a record into `out` (one entry
/// per field, `None` when absent or not a number), for [`Event::values`].
pub fn field_values(fields: &[String], record: &LogRecord, out: &mut Vec<Option<f64>>) {
    out.clear();
    for f in fields {
        out.push(
            record
                .attributes
                .iter()
                .find(|(k, _)| k == f)
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite()),
        );
    }
}

impl<'a> Event<'a> {
    /// The detector's view of a parsed record.
    pub fn from_record(record: &'a LogRecord) -> Self {
        Self {
            event_time_us: record.event_time_us,
            service: record.service.as_deref(),
            level: record.level,
            template_id: record.template_id,
            message: Some(&record.message),
            values: &[],
            metrics: &[],
        }
    }
}

/// Distinct templates counted per open window of a series; the rest are
/// counted as events only.
const MAX_WINDOW_TEMPLATES: usize = 128;
/// Template lines kept per open window (one per template).
const MAX_WINDOW_TEMPLATE_LINES: usize = 8;
/// Templates remembered per service for new-template detection and the
/// choice of tracked templates; the least recently seen is forgotten beyond
/// it.
const MAX_KNOWN_TEMPLATES: usize = 1000;
/// A template enters the tracked set when its rate is at least this share
/// of `template_min_expected`...
const TRACK_MIN_SHARE: f32 = 0.5;
/// ...and, when the set is full, this many times the rate of the least
/// frequent tracked template, which it replaces (hysteresis against churn).
const TRACK_REPLACE_FACTOR: f32 = 1.5;

/// Position of a level in [`Level::ALL`].
fn level_index(level: Level) -> u8 {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
        Level::Fatal => 5,
        Level::Unknown => 6,
    }
}

/// The level at `index` in [`Level::ALL`] (`Unknown` past the end).
fn level_at(index: u8) -> Level {
    Level::ALL
        .get(usize::from(index))
        .copied()
        .unwrap_or(Level::Unknown)
}

/// What one open window of one series has counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counts {
    events: u64,
    errors: u64,
    /// Records per level, in [`Level::ALL`] order.
    #[serde(default)]
    levels: [u64; 7],
    /// Warnings, as state format 2 counted them (moved into `levels` when
    /// such a state is restored).
    #[serde(default, rename = "warns", skip_serializing)]
    legacy_warns: u64,
    /// Records per template (at most [`MAX_WINDOW_TEMPLATES`] templates).
    #[serde(default)]
    templates: BTreeMap<u64, u64>,
    /// The first line of a few templates.
    #[serde(default)]
    template_lines: BTreeMap<u64, String>,
    /// The first error lines and the first lines.
    #[serde(default)]
    error_lines: Vec<String>,
    #[serde(default)]
    lines: Vec<String>,
    /// Per configured numeric field.
    #[serde(default)]
    fields: Vec<FieldAcc>,
}

impl Counts {
    /// Counts one record; `tracked`: its template has a series (always
    /// counted, and its first line kept).
    fn add(&mut self, ev: &Event<'_>, tracked: bool) {
        self.events += 1;
        let error = ev.level.is_error();
        self.errors += u64::from(error);
        self.levels[usize::from(level_index(ev.level))] += 1;
        if let Some(t) = ev.template_id {
            let room = self.templates.len() < MAX_WINDOW_TEMPLATES;
            if let Some(c) = self.templates.get_mut(&t) {
                *c += 1;
            } else if room || tracked {
                self.templates.insert(t, 1);
                if self.template_lines.len() < MAX_WINDOW_TEMPLATE_LINES || tracked {
                    if let Some(m) = ev.message.filter(|m| !m.is_empty()) {
                        self.template_lines.insert(t, sample_line(m));
                    }
                }
            }
        }
        for (i, v) in ev.values.iter().enumerate().take(MAX_FIELDS) {
            if let Some(v) = v {
                if self.fields.len() <= i {
                    self.fields.resize_with(i + 1, FieldAcc::default);
                }
                self.fields[i].add(*v);
            }
        }
        if let Some(m) = ev.message.filter(|m| !m.is_empty()) {
            if error && self.error_lines.len() < MAX_ALERT_SAMPLES {
                self.error_lines.push(sample_line(m));
            }
            if self.lines.len() < MAX_ALERT_SAMPLES {
                self.lines.push(sample_line(m));
            }
        }
    }

    /// The most frequent templates, most frequent first (ties: smaller id).
    fn top_templates(&self) -> Vec<TemplateCount> {
        let mut v: Vec<(u64, u64)> = self.templates.iter().map(|(t, c)| (*t, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter()
            .take(MAX_ALERT_TEMPLATES)
            .map(|(t, c)| template_count(t, c))
            .collect()
    }
}

fn template_count(id: u64, count: u64) -> TemplateCount {
    TemplateCount {
        template_id: format!("{id:016x}"),
        count,
        template: None,
    }
}

/// The open windows of a series, by start, oldest first: usually one or
/// two, so a vector grown exactly (a map's node would hold room for 11).
/// Serialized as a map from window start to counts.
#[derive(Debug, Default)]
struct OpenWindows(Vec<(i64, Counts)>);

impl OpenWindows {
    fn entry(&mut self, ws: i64) -> &mut Counts {
        let at = self.0.partition_point(|(s, _)| *s < ws);
        if self.0.get(at).is_none_or(|(s, _)| *s != ws) {
            self.0.reserve_exact(1);
            self.0.insert(at, (ws, Counts::default()));
        }
        &mut self.0[at].1
    }

    fn remove(&mut self, ws: i64) -> Option<Counts> {
        let at = self.0.iter().position(|(s, _)| *s == ws)?;
        Some(self.0.remove(at).1)
    }

    #[cfg(test)]
    fn get(&self, ws: i64) -> Option<&Counts> {
        self.0.iter().find(|(s, _)| *s == ws).map(|(_, c)| c)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Start of the oldest open window.
    fn first(&self) -> Option<i64> {
        self.0.first().map(|(s, _)| *s)
    }

    fn counts_mut(&mut self) -> impl Iterator<Item = &mut Counts> {
        self.0.iter_mut().map(|(_, c)| c)
    }
}

impl Serialize for OpenWindows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for OpenWindows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i64, Counts>::deserialize(d)?;
        Ok(Self(map.into_iter().collect()))
    }
}

/// A count series: its baseline and its incident.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CountSeries {
    baseline: CountBaseline,
    track: Track,
}

/// The count series of one level of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LevelSeries {
    /// Position in [`Level::ALL`].
    level: u8,
    #[serde(flatten)]
    series: CountSeries,
}

/// The count series of one tracked template of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TemplateSeries {
    /// The level the template was last logged at (position in
    /// [`Level::ALL`]).
    level: u8,
    #[serde(flatten)]
    series: CountSeries,
}

/// A template a service logged: when last, and how often (records per
/// window, exponentially weighted with `baseline_alpha`, as of `last_us`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "KnownRepr")]
struct KnownTemplate {
    last_us: i64,
    rate: f32,
}

/// [`KnownTemplate`] as stored: state format 2 kept the window only.
#[derive(Deserialize)]
#[serde(untagged)]
enum KnownRepr {
    Window(i64),
    Full { last_us: i64, rate: f32 },
}

impl From<KnownRepr> for KnownTemplate {
    fn from(r: KnownRepr) -> Self {
        match r {
            KnownRepr::Window(last_us) => Self { last_us, rate: 0.0 },
            KnownRepr::Full { last_us, rate } => Self { last_us, rate },
        }
    }
}

impl KnownTemplate {
    /// The rate as of the window starting at `now_us`, with no record since.
    fn rate_at(&self, now_us: i64, window_us: i64, alpha: f64) -> f32 {
        let gap = ((now_us - self.last_us) / window_us.max(1)).clamp(0, 1 << 20);
        self.rate * (1.0 - alpha as f32).powi(gap as i32)
    }
}

/// A threshold rule's state in one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RuleTrack {
    /// Consecutive violating windows.
    streak: u32,
    track: Track,
}

/// Everything kept per service.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Series {
    /// Windows not closed yet (at most lateness / window + 2 of them).
    open: OpenWindows,
    /// Start of the next window of this series to close.
    next_close_us: i64,
    /// Start of the latest closed window that held a record (updated on
    /// close, not on arrival, so that a record far ahead cannot hide the
    /// silence before it).
    last_data_us: i64,
    /// Logical time of the last record, for least-recently-seen eviction.
    last_seen: u64,
    count: CountBaseline,
    count_track: Track,
    ratio: RatioBaseline,
    ratio_track: Track,
    /// Per level in `level_counts`, created with the level's first record,
    /// in level order.
    #[serde(default)]
    levels: Vec<LevelSeries>,
    /// The tracked templates: at most `tracked_templates`, the most
    /// frequent.
    #[serde(default)]
    templates: BTreeMap<u64, TemplateSeries>,
    /// State format 2's warning series, moved into `levels` on restore.
    #[serde(default, rename = "warn", skip_serializing)]
    legacy_warn: Option<CountBaseline>,
    #[serde(default, rename = "warn_track", skip_serializing)]
    legacy_warn_track: Option<Track>,
    /// Templates this service logged: the last window they were seen in
    /// and their rate.
    known_templates: BTreeMap<u64, KnownTemplate>,
    /// Closed windows that fed `known_templates`.
    template_windows: u32,
    new_template_track: Track,
    /// Per configured rule, by name.
    rules: BTreeMap<String, RuleTrack>,
    /// Per configured numeric field, by name.
    fields: BTreeMap<String, FieldSeries>,
}

/// One metric series: a metric field of a service, each sample scored on
/// arrival by its own [`NumericScorer`].
#[derive(Debug, Serialize, Deserialize)]
pub struct MetricSeries {
    scorer: NumericScorer,
    track: Track,
    /// Logical time of the last sample, for least-recently-seen eviction.
    last_seen: u64,
    /// Event time of the latest sample, for forgetting silent series.
    last_us: i64,
}

/// The metric series, by service, then by metric field.
type MetricMap = BTreeMap<String, BTreeMap<String, Box<MetricSeries>>>;

/// The verdict on one closed window of one signal, for backtests and plots
/// (see [`Detector::record_windows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowScore {
    pub service: String,
    pub signal: Signal,
    /// As the alerts' `series.dimension`: the level, template, field or
    /// rule, for signals with one series per such.
    pub dimension: Option<String>,
    pub window_start_us: i64,
    pub window_end_us: i64,
    pub observed: f64,
    /// `None` while the series warms up.
    pub expected: Option<f64>,
    pub expected_low: Option<f64>,
    pub expected_high: Option<f64>,
    /// Tail probability (1 while warming up).
    pub probability: f64,
    /// Score in [0, 1], as in the alerts.
    pub score: f64,
    /// Past the threshold and the absolute floors.
    pub anomalous: bool,
}

/// Counters of the detector, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorStats {
    /// Series windows closed and judged (empty windows of silent series too).
    pub windows_closed: u64,
    /// Records dropped because their window had already closed.
    pub late_records: u64,
    /// Records dropped because their event time is outside 1970..2200.
    pub out_of_range_records: u64,
    /// Series dropped to stay under `max_series`.
    pub evicted_series: u64,
    /// Series dropped after `forget_after_windows` of silence.
    pub forgotten_series: u64,
    /// Series tracked now.
    pub series: usize,
    /// Metric samples scored (one per configured metric field a record
    /// carries).
    pub metric_records: u64,
    /// Metric series dropped to stay under `max_metric_series`.
    pub evicted_metric_series: u64,
    /// Metric series dropped after `forget_after_windows` of silence.
    pub forgotten_metric_series: u64,
    /// Metric series tracked now.
    pub metric_series: usize,
}

/// Streaming anomaly detector over log records. Pure: no I/O, no clock.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    window_us: i64,
    lateness_us: i64,
    /// Ordered, so that alerts of one step come out in the same order on
    /// every replay. Boxed: a map node holds room for 11 entries, and
    /// sequential names leave nodes about half full.
    series: BTreeMap<String, Box<Series>>,
    max_event_time_us: Option<i64>,
    /// Highest event time counted (may be ahead of the watermark's).
    max_counted_us: Option<i64>,
    /// Every window starting before this is closed.
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
    /// Judged windows, when recording is on.
    window_log: Option<Vec<WindowScore>>,
    /// The model of new metric series (`[detect.metric]`).
    metric_model: NumericConfig,
    metric_series: MetricMap,
    /// Metric series in `metric_series`.
    metric_count: usize,
}

impl Detector {
    /// Validates `cfg` and builds an empty detector.
    pub fn new(cfg: DetectorConfig) -> Result<Self, DetectConfigError> {
        cfg.validate()?;
        Ok(Self {
            window_us: cfg.window_us(),
            lateness_us: cfg.allowed_lateness_us(),
            cfg,
            series: BTreeMap::new(),
            max_event_time_us: None,
            max_counted_us: None,
            closed_until_us: i64::MIN,
            tick: 0,
            stats: DetectorStats::default(),
            window_log: None,
            metric_model: NumericConfig::default(),
            metric_series: BTreeMap::new(),
            metric_count: 0,
        })
    }

    /// Sets the model of the metric series (`[detect.metric]`; the default
    /// otherwise): for new series, and from the next sample on for the
    /// existing ones (e.g. restored from a checkpoint), which keep what
    /// they learned.
    pub fn set_metric_model(&mut self, model: NumericConfig) {
        for fields in self.metric_series.values_mut() {
            for ms in fields.values_mut() {
                ms.scorer.set_config(model.clone());
            }
        }
        self.metric_model = model;
    }

    /// Turns recording of every judged window on or off (off by default:
    /// a live detector has no use for it).
    pub fn record_windows(&mut self, on: bool) {
        self.window_log = on.then(Vec::new);
    }

    /// The windows judged since the last call (empty when not recording).
    pub fn take_window_scores(&mut self) -> Vec<WindowScore> {
        self.window_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Counts one record and advances the watermark to its event time;
    /// returns the alerts of the windows that closed (usually none). For a
    /// single ordered input; with several inputs (Kafka partitions) use
    /// [`count`](Self::count) and drive the watermark with
    /// [`advance_to`](Self::advance_to).
    pub fn observe(&mut self, ev: &Event<'_>) -> Vec<Alert> {
        let mut out = self.count(ev);
        out.extend(self.advance_to(ev.event_time_us));
        out
    }

    /// Counts one record without moving the watermark, and scores its
    /// metric samples ([`DetectorConfig::metric_fields`]); returns the
    /// alerts of those samples, and of series evicted to make room.
    pub fn count(&mut self, ev: &Event<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        let t = ev.event_time_us;
        if !(MIN_EVENT_TIME_US..MAX_EVENT_TIME_US).contains(&t) {
            self.stats.out_of_range_records += 1;
            return out;
        }
        let service = ev.service.unwrap_or(UNKNOWN_SERVICE);
        self.tick += 1;
        if !self.cfg.metric_fields.is_empty() && ev.metrics.iter().any(Option::is_some) {
            // No window: a sample is scored even when its window has closed.
            self.score_metrics(ev, service, &mut out);
        }
        let ws = t.div_euclid(self.window_us) * self.window_us;
        if ws < self.closed_until_us {
            self.stats.late_records += 1;
            return out;
        }
        self.max_counted_us = Some(self.max_counted_us.map_or(t, |m| m.max(t)));
        if !self.series.contains_key(service) {
            if self.series.len() >= self.cfg.max_series {
                self.evict_least_recent(&mut out);
            }
            self.series.insert(
                service.to_string(),
                Box::new(Series {
                    open: OpenWindows::default(),
                    next_close_us: ws,
                    last_data_us: ws,
                    ..Series::default()
                }),
            );
        }
        if let Some(s) = self.series.get_mut(service) {
            s.last_seen = self.tick;
            if ws < s.next_close_us {
                s.next_close_us = ws;
                s.last_data_us = ws;
            }
            let tracked = match ev.template_id.and_then(|t| s.templates.get_mut(&t)) {
                Some(ts) => {
                    ts.level = level_index(ev.level);
                    true
                }
                None => false,
            };
            s.open.entry(ws).add(ev, tracked);
        }
        out
    }

    /// Scores the metric samples of one record against their series, in
    /// arrival order, and turns the scorers' incidents into alerts.
    fn score_metrics(&mut self, ev: &Event<'_>, service: &str, out: &mut Vec<Alert>) {
        let first = out.len();
        let t = ev.event_time_us;
        for i in 0..self.cfg.metric_fields.len().min(ev.metrics.len()) {
            let Some(value) = ev.metrics[i].filter(|v| v.is_finite()) else {
                continue;
            };
            let known = self
                .metric_series
                .get(service)
                .is_some_and(|m| m.contains_key(&self.cfg.metric_fields[i]));
            if !known {
                while self.metric_count >= self.cfg.max_metric_series {
                    if !self.evict_least_recent_metric(out) {
                        break;
                    }
                }
                let series = MetricSeries {
                    scorer: NumericScorer::new(self.metric_model.clone()),
                    track: Track::default(),
                    last_seen: 0,
                    last_us: t,
                };
                self.metric_series
                    .entry(service.to_string())
                    .or_default()
                    .insert(self.cfg.metric_fields[i].clone(), Box::new(series));
                self.metric_count += 1;
            }
            let name = &self.cfg.metric_fields[i];
            let Some(ms) = self
                .metric_series
                .get_mut(service)
                .and_then(|m| m.get_mut(name))
            else {
                continue;
            };
            ms.last_seen = self.tick;
            ms.last_us = ms.last_us.max(t);
            self.stats.metric_records += 1;
            let verdict = ms.scorer.score_at(Some(t), value);
            let what = if verdict.alert {
                MetricStep::Open
            } else if !ms.track.is_open() {
                continue;
            } else if ms.scorer.in_incident() {
                MetricStep::Continue
            } else {
                MetricStep::End {
                    accepted: verdict.ended == Some(IncidentEnd::Accepted),
                }
            };
            let expected = verdict.expected.map_or(value, |b| b.expected);
            let (low, high) = verdict.expected.map_or((value, value), |b| (b.low, b.high));
            let j = Judgement {
                probability: verdict.probability.unwrap_or(1.0),
                direction: if value >= expected {
                    Direction::High
                } else {
                    Direction::Low
                },
                anomalous: verdict.alert,
                recovered: !ms.scorer.in_incident(),
                observed: value,
                expected,
                model: Model::Metric {
                    low,
                    high,
                    p_threshold: self.metric_model.p_threshold,
                },
            };
            let win = WindowCtx {
                start_us: t,
                end_us: t,
                events: 1,
                errors: u64::from(ev.level.is_error()),
            };
            let id = sid(service, Signal::Metric, Some(name));
            step_metric(&mut ms.track, id, j, win, &self.cfg, what, out);
        }
        if out.len() > first {
            decorate_sample(&mut out[first..], ev);
        }
    }

    /// Drops the least recently seen metric series, resolving its incident;
    /// false when there is none.
    fn evict_least_recent_metric(&mut self, out: &mut Vec<Alert>) -> bool {
        let victim = self
            .metric_series
            .iter()
            .flat_map(|(service, m)| {
                m.iter()
                    .map(move |(name, ms)| (ms.last_seen, service, name))
            })
            .min_by_key(|(seen, _, _)| *seen)
            .map(|(_, service, name)| (service.clone(), name.clone()));
        let Some((service, name)) = victim else {
            return false;
        };
        let Some(fields) = self.metric_series.get_mut(&service) else {
            return false;
        };
        if let Some(mut ms) = fields.remove(&name) {
            debug!(service = %service, field = %name, "evicting least recently seen metric series");
            retire(
                &mut ms.track,
                sid(&service, Signal::Metric, Some(&name)),
                "series evicted (max_metric_series)",
                &self.cfg,
                out,
            );
            self.metric_count -= 1;
            self.stats.evicted_metric_series += 1;
        }
        if fields.is_empty() {
            self.metric_series.remove(&service);
        }
        true
    }

    /// Drops the metric series without a sample in the last
    /// `forget_after_windows` windows before `boundary`, resolving their
    /// incidents.
    fn forget_silent_metrics(&mut self, boundary: i64, out: &mut Vec<Alert>) {
        let horizon = boundary.saturating_sub(
            i64::from(self.cfg.forget_after_windows).saturating_mul(self.window_us),
        );
        let (cfg, stats, count) = (&self.cfg, &mut self.stats, &mut self.metric_count);
        self.metric_series.retain(|service, fields| {
            fields.retain(|name, ms| {
                if ms.last_us >= horizon {
                    return true;
                }
                debug!(service = %service, field = %name, "forgetting silent metric series");
                let id = sid(service, Signal::Metric, Some(name));
                retire(&mut ms.track, id, "series silent and forgotten", cfg, out);
                stats.forgotten_metric_series += 1;
                *count -= 1;
                false
            });
            !fields.is_empty()
        });
    }

    /// Moves event time forward without a record, as if one at
    /// `event_time_us` had been seen (for idle inputs: the caller decides
    /// what time it is, e.g. from Kafka partition watermarks).
    pub fn advance_to(&mut self, event_time_us: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        if (MIN_EVENT_TIME_US..MAX_EVENT_TIME_US).contains(&event_time_us)
            && self.max_event_time_us.is_none_or(|m| event_time_us > m)
        {
            self.max_event_time_us = Some(event_time_us);
            self.close_until(event_time_us - self.lateness_us, &mut out);
        }
        out
    }

    /// End of input: closes every window that lies entirely before the last
    /// event time, ignoring the lateness. The trailing partial window stays
    /// open (its count is truncated and would read as a traffic drop).
    pub fn flush(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        let last = match (self.max_event_time_us, self.max_counted_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(m) = last {
            self.max_event_time_us = Some(m);
            self.close_until(m.saturating_add(1), &mut out);
        }
        out
    }

    /// Starts every series' learning of its templates over, for
    /// `new_template_warmup_windows` windows, keeping what it knows: for
    /// when template ids may have changed (the template miner's state could
    /// not be restored, e.g. after an upgrade that changed the mining
    /// rules), so that templates known under new ids do not raise
    /// `new_template` alerts. Tracked template series only alert upwards,
    /// so the ids that went away stay quiet until they are replaced.
    pub fn relearn_templates(&mut self) {
        for s in self.series.values_mut() {
            s.template_windows = 0;
        }
    }

    /// The firing alerts of the incidents open now (e.g. to tell a
    /// receiver, after a restart from a checkpoint, what is still firing).
    pub fn open_incidents(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for (service, s) in &self.series {
            s.each_track(service, &self.cfg, |id, t| {
                out.extend(firing(t, id, &self.cfg));
            });
        }
        for (service, fields) in &self.metric_series {
            for (name, ms) in fields {
                let id = sid(service, Signal::Metric, Some(name));
                out.extend(firing(&ms.track, id, &self.cfg));
            }
        }
        out
    }

    /// The current watermark, if any record was seen.
    pub fn watermark_us(&self) -> Option<i64> {
        self.max_event_time_us.map(|m| m - self.lateness_us)
    }

    /// Series windows closed so far.
    pub fn windows_closed(&self) -> u64 {
        self.stats.windows_closed
    }

    /// Records dropped because their window had already closed.
    pub fn late_records(&self) -> u64 {
        self.stats.late_records
    }

    /// Series tracked now.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// All counters.
    pub fn stats(&self) -> DetectorStats {
        DetectorStats {
            series: self.series.len(),
            metric_series: self.metric_count,
            ..self.stats
        }
    }

    /// Closes every window whose end is at or before `watermark_us`.
    fn close_until(&mut self, watermark_us: i64, out: &mut Vec<Alert>) {
        let boundary = watermark_us.div_euclid(self.window_us) * self.window_us;
        if boundary <= self.closed_until_us {
            return;
        }
        self.closed_until_us = boundary;
        let mut forget = Vec::new();
        for (service, s) in self.series.iter_mut() {
            if s.close_until(
                service,
                boundary,
                &self.cfg,
                &mut self.stats,
                self.window_log.as_mut(),
                out,
            ) {
                forget.push(service.clone());
            }
        }
        for service in forget {
            if let Some(mut s) = self.series.remove(&service) {
                debug!(service = %service, "forgetting silent series");
                s.retire(&service, "series silent and forgotten", &self.cfg, out);
                self.stats.forgotten_series += 1;
            }
        }
        if self.metric_count > 0 {
            self.forget_silent_metrics(boundary, out);
        }
    }

    fn evict_least_recent(&mut self, out: &mut Vec<Alert>) {
        let victim = self
            .series
            .iter()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(k, _)| k.clone());
        if let Some(service) = victim {
            if let Some(mut s) = self.series.remove(&service) {
                debug!(service = %service, "evicting least recently seen series");
                s.retire(&service, "series evicted (max_series)", &self.cfg, out);
                self.stats.evicted_series += 1;
            }
        }
    }
}

/// Version of the detector state format ([`Detector::state`]); a state
/// of another version is refused, not misread.
pub const STATE_FORMAT_VERSION: u32 = 3;
/// The oldest state format still restored: format 2 lacks the level and
/// template series and the seasonal profiles (they start afresh), and its
/// warning series becomes the `warn` level series. A state without metric
/// series (saved before they existed) restores with none.
pub const OLDEST_STATE_FORMAT: u32 = 2;

/// Why a saved detector state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("detector state format {found}, this build reads formats {OLDEST_STATE_FORMAT} to {expected}")]
    Format { found: u32, expected: u32 },
    #[error("detector state was saved with {saved}-second windows, the configuration has {now}")]
    WindowChanged { saved: u64, now: u64 },
    #[error(transparent)]
    Config(#[from] DetectConfigError),
}

/// The detector's state by reference, for saving: every series' open
/// windows, baselines and open incidents, the watermark and the counters.
/// Serialize it (e.g. as JSON) and hand the parsed [`DetectorState`] to
/// [`Detector::from_state`] to carry on where this detector stands.
#[derive(Debug, Serialize)]
pub struct DetectorStateRef<'a> {
    format: u32,
    window_secs: u64,
    series: &'a BTreeMap<String, Box<Series>>,
    max_event_time_us: Option<i64>,
    max_counted_us: Option<i64>,
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
    metric_series: &'a MetricMap,
}

/// A saved detector state (see [`DetectorStateRef`]).
#[derive(Debug, Deserialize)]
pub struct DetectorState {
    format: u32,
    window_secs: u64,
    series: BTreeMap<String, Box<Series>>,
    max_event_time_us: Option<i64>,
    max_counted_us: Option<i64>,
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
    #[serde(default)]
    metric_series: MetricMap,
}

impl DetectorState {
    /// The watermark of the saved detector, if it had seen a record.
    pub fn watermark_us(&self, lateness_us: i64) -> Option<i64> {
        self.max_event_time_us.map(|m| m - lateness_us)
    }

    /// Series in the saved state.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

impl Detector {
    /// The state to save (see [`DetectorStateRef`]).
    pub fn state(&self) -> DetectorStateRef<'_> {
        DetectorStateRef {
            format: STATE_FORMAT_VERSION,
            window_secs: self.cfg.window_secs,
            series: &self.series,
            max_event_time_us: self.max_event_time_us,
            max_counted_us: self.max_counted_us,
            closed_until_us: self.closed_until_us,
            tick: self.tick,
            stats: self.stats,
            metric_series: &self.metric_series,
        }
    }

    /// A detector with `cfg` that carries on from a saved state: same
    /// baselines, warm-up progress, open incidents and watermark. Model
    /// settings may differ from the saved run's (they apply from now on),
    /// the window length may not.
    pub fn from_state(cfg: DetectorConfig, state: DetectorState) -> Result<Self, StateError> {
        if !(OLDEST_STATE_FORMAT..=STATE_FORMAT_VERSION).contains(&state.format) {
            return Err(StateError::Format {
                found: state.format,
                expected: STATE_FORMAT_VERSION,
            });
        }
        if state.window_secs != cfg.window_secs {
            return Err(StateError::WindowChanged {
                saved: state.window_secs,
                now: cfg.window_secs,
            });
        }
        let mut d = Self::new(cfg)?;
        d.series = state.series;
        for s in d.series.values_mut() {
            s.migrate();
        }
        d.max_event_time_us = state.max_event_time_us;
        d.max_counted_us = state.max_counted_us;
        d.closed_until_us = state.closed_until_us;
        d.tick = state.tick;
        d.stats = state.stats;
        d.metric_count = state.metric_series.values().map(BTreeMap::len).sum();
        d.metric_series = state.metric_series;
        let model = d.metric_model.clone();
        d.set_metric_model(model);
        Ok(d)
    }
}

fn sid<'a>(service: &'a str, signal: Signal, dimension: Option<&'a str>) -> SeriesId<'a> {
    SeriesId {
        service,
        signal,
        dimension,
    }
}

impl Series {
    /// Calls `f` with every signal's incident track of this series.
    fn each_track(
        &self,
        service: &str,
        _cfg: &DetectorConfig,
        mut f: impl FnMut(SeriesId<'_>, &Track),
    ) {
        f(sid(service, Signal::EventCount, None), &self.count_track);
        f(sid(service, Signal::ErrorRatio, None), &self.ratio_track);
        for l in &self.levels {
            let dim = level_at(l.level).as_str();
            f(sid(service, Signal::LevelCount, Some(dim)), &l.series.track);
        }
        for (t, ts) in &self.templates {
            let dim = format!("{t:016x}");
            f(
                sid(service, Signal::TemplateCount, Some(&dim)),
                &ts.series.track,
            );
        }
        f(
            sid(service, Signal::NewTemplate, None),
            &self.new_template_track,
        );
        for (name, rt) in &self.rules {
            f(sid(service, Signal::Threshold, Some(name)), &rt.track);
        }
        for (name, fs) in &self.fields {
            f(sid(service, Signal::FieldMean, Some(name)), &fs.mean_track);
            f(sid(service, Signal::FieldHigh, Some(name)), &fs.high_track);
        }
    }

    /// Closes this series' windows before `boundary`; true when the series
    /// has been silent long enough to be forgotten.
    fn close_until(
        &mut self,
        service: &str,
        boundary: i64,
        cfg: &DetectorConfig,
        stats: &mut DetectorStats,
        mut log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) -> bool {
        let window_us = cfg.window_us();
        while self.next_close_us < boundary {
            let ws = self.next_close_us;
            let counts = self.open.remove(ws).unwrap_or_default();
            if counts.events > 0 {
                self.last_data_us = ws;
            } else {
                let silent = (ws - self.last_data_us) / window_us;
                if silent > i64::from(cfg.max_silent_windows) {
                    if self.open.is_empty()
                        && (boundary - self.last_data_us) / window_us
                            > i64::from(cfg.forget_after_windows)
                    {
                        return true;
                    }
                    // Dormant: jump to the next window with data, if any.
                    self.next_close_us = self
                        .open
                        .first()
                        .filter(|k| *k < boundary)
                        .unwrap_or(boundary);
                    continue;
                }
            }
            let win = WindowCtx {
                start_us: ws,
                end_us: ws + window_us,
                events: counts.events,
                errors: counts.errors,
            };
            let first = out.len();
            let traffic = judge_counter(
                &mut self.count,
                &mut self.count_track,
                CounterSpec::new(sid(service, Signal::EventCount, None), counts.events, true),
                win,
                cfg,
                log.as_deref_mut(),
                out,
            );
            self.judge_ratio(service, win, cfg, log.as_deref_mut(), out);
            let ctx = ChildCtx {
                scale: traffic.scale(counts.events),
                hold: traffic.dropped,
                errors_open: self.ratio_track.is_open(),
            };
            self.judge_templates(service, win, &counts, ctx, cfg, log.as_deref_mut(), out);
            self.judge_levels(service, win, &counts, ctx, cfg, log.as_deref_mut(), out);
            let new = self.judge_new_templates(service, win, &counts, cfg, out);
            self.track_templates(service, win, &counts, cfg, out);
            self.judge_rules(service, win, &counts, cfg, out);
            self.judge_fields(service, win, &counts, cfg, log.as_deref_mut(), out);
            decorate(&mut out[first..], &counts, &new);
            stats.windows_closed += 1;
            self.next_close_us = ws + window_us;
        }
        false
    }

    fn judge_ratio(
        &mut self,
        service: &str,
        win: WindowCtx,
        cfg: &DetectorConfig,
        log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) {
        if win.events == 0 {
            // No evidence either way: the incident neither grows nor heals.
            return;
        }
        let (alpha, prior_ratio, prior_events) = (
            cfg.baseline_alpha,
            cfg.error_prior_ratio,
            cfg.error_prior_events,
        );
        if self.ratio.windows() < cfg.warmup_windows {
            let x = win.errors as f64 / win.events as f64;
            let id = sid(service, Signal::ErrorRatio, None);
            log_window(log, id, win, x, None, cfg);
            self.ratio
                .update(win.events, win.errors, alpha, prior_ratio, prior_events);
            return;
        }
        let dist = self
            .ratio
            .dist(win.events, alpha, prior_ratio, prior_events);
        let probability = dist.p_at_least(win.errors);
        let enough = win.errors >= cfg.min_errors;
        let j = Judgement {
            probability,
            direction: Direction::High,
            anomalous: probability < cfg.p_threshold && enough,
            recovered: probability >= cfg.resolve_p_threshold || !enough,
            observed: win.errors as f64 / win.events as f64,
            expected: self.ratio.ratio(alpha, prior_ratio, prior_events),
            model: Model::Errors {
                dist,
                n: win.events,
            },
        };
        let id = sid(service, Signal::ErrorRatio, None);
        log_window(log, id, win, j.observed, Some(&j), cfg);
        match step(
            &mut self.ratio_track,
            sid(service, Signal::ErrorRatio, None),
            j,
            win,
            cfg,
            out,
        ) {
            BaselineAction::Update => {
                self.ratio
                    .update(win.events, win.errors, alpha, prior_ratio, prior_events)
            }
            BaselineAction::Keep => {}
            BaselineAction::Reset => self.ratio.reset(),
        }
    }

    /// Templates of the window the service had not logged before: one
    /// incident while they keep coming (grouped), resolved after
    /// `resolve_after_windows` windows without any, then `cooldown_windows`
    /// of silence (rate limit). Returns the new templates with their counts.
    /// Also keeps `known_templates` (last window seen, rate) up to date.
    fn judge_new_templates(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        cfg: &DetectorConfig,
        out: &mut Vec<Alert>,
    ) -> Vec<(u64, u64)> {
        let alerting = cfg.new_template_warmup_windows > 0;
        if !(alerting || cfg.tracked_templates > 0) || counts.templates.is_empty() {
            return Vec::new();
        }
        let learning = self.template_windows < cfg.new_template_warmup_windows;
        let new: Vec<(u64, u64)> = counts
            .templates
            .iter()
            .filter(|(t, c)| {
                alerting
                    && !learning
                    && **c >= cfg.new_template_min_count
                    && !self.known_templates.contains_key(t)
            })
            .map(|(t, c)| (*t, *c))
            .collect();
        let (window_us, alpha) = (cfg.window_us(), cfg.baseline_alpha);
        for (t, c) in &counts.templates {
            let k = self.known_templates.entry(*t).or_default();
            *k = KnownTemplate {
                last_us: win.start_us,
                rate: k.rate_at(win.start_us, window_us, alpha) + alpha as f32 * (*c as f32),
            };
        }
        if self.known_templates.len() > MAX_KNOWN_TEMPLATES {
            let mut by_age: Vec<(i64, u64)> = self
                .known_templates
                .iter()
                .map(|(t, k)| (k.last_us, *t))
                .collect();
            by_age.sort_unstable();
            let excess = self.known_templates.len() - MAX_KNOWN_TEMPLATES;
            for (_, t) in by_age.into_iter().take(excess) {
                self.known_templates.remove(&t);
            }
        }
        if !alerting {
            return Vec::new();
        }
        self.template_windows = self.template_windows.saturating_add(1);
        if learning {
            return new;
        }
        let j = Judgement {
            probability: if new.is_empty() { 1.0 } else { 0.0 },
            direction: Direction::High,
            anomalous: !new.is_empty(),
            recovered: new.is_empty(),
            observed: new.len() as f64,
            expected: 0.0,
            model: Model::Fixed {
                low: 0.0,
                high: 0.0,
            },
        };
        step(
            &mut self.new_template_track,
            sid(service, Signal::NewTemplate, None),
            j,
            win,
            cfg,
            out,
        );
        new
    }

    /// Keeps the tracked templates the most frequent ones: a template of
    /// this window whose rate reaches `TRACK_MIN_SHARE *
    /// template_min_expected` joins while there is room, and replaces the
    /// least frequent tracked template once it is `TRACK_REPLACE_FACTOR`
    /// times as frequent. A replaced template is forgotten (its incident,
    /// if any, resolved).
    fn track_templates(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        cfg: &DetectorConfig,
        out: &mut Vec<Alert>,
    ) {
        let (window_us, alpha) = (cfg.window_us(), cfg.baseline_alpha);
        let rate_of = |known: &BTreeMap<u64, KnownTemplate>, t: &u64| {
            known
                .get(t)
                .map_or(0.0, |k| k.rate_at(win.start_us, window_us, alpha))
        };
        let weakest = |s: &Self| {
            s.templates
                .keys()
                .map(|t| (rate_of(&s.known_templates, t), *t))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        };
        while self.templates.len() > cfg.tracked_templates {
            // The configuration shrank since a restore.
            let Some((_, t)) = weakest(self) else { break };
            self.forget_template(service, t, cfg, out);
        }
        if cfg.tracked_templates == 0 {
            return;
        }
        let floor = TRACK_MIN_SHARE * cfg.template_min_expected as f32;
        let mut candidates: Vec<(f32, u64)> = counts
            .templates
            .keys()
            .filter(|t| !self.templates.contains_key(t))
            .map(|t| (rate_of(&self.known_templates, t), *t))
            .filter(|(r, _)| *r > 0.0 && *r >= floor)
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rate, t) in candidates {
            if self.templates.len() >= cfg.tracked_templates {
                let Some((low, victim)) = weakest(self) else {
                    break;
                };
                if rate <= TRACK_REPLACE_FACTOR * low {
                    break;
                }
                self.forget_template(service, victim, cfg, out);
            }
            self.templates.insert(
                t,
                TemplateSeries {
                    level: level_index(Level::Unknown),
                    series: CountSeries::default(),
                },
            );
        }
    }

    fn forget_template(
        &mut self,
        service: &str,
        t: u64,
        cfg: &DetectorConfig,
        out: &mut Vec<Alert>,
    ) {
        if let Some(mut ts) = self.templates.remove(&t) {
            let dim = format!("{t:016x}");
            retire(
                &mut ts.series.track,
                sid(service, Signal::TemplateCount, Some(&dim)),
                "template no longer among the most frequent",
                cfg,
                out,
            );
        }
    }

    /// The tracked templates' counts: upwards only, expected counts scaled
    /// to the window's traffic, quiet while rare.
    #[allow(clippy::too_many_arguments)]
    fn judge_templates(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        ctx: ChildCtx,
        cfg: &DetectorConfig,
        mut log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) {
        for (t, ts) in self.templates.iter_mut() {
            let level = ts.level;
            let explained = (level_at(level).is_error() && ctx.errors_open)
                || self
                    .levels
                    .iter()
                    .any(|l| l.level == level && l.series.track.is_open());
            let dim = format!("{t:016x}");
            let count = counts.templates.get(t).copied().unwrap_or(0);
            judge_counter(
                &mut ts.series.baseline,
                &mut ts.series.track,
                CounterSpec {
                    min_expected: cfg.template_min_expected,
                    ..ctx.spec(
                        sid(service, Signal::TemplateCount, Some(&dim)),
                        count,
                        explained,
                    )
                },
                win,
                cfg,
                log.as_deref_mut(),
                out,
            );
        }
    }

    /// The configured levels' counts: upwards only, expected counts scaled
    /// to the window's traffic. A level's series starts with its first
    /// record.
    #[allow(clippy::too_many_arguments)]
    fn judge_levels(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        ctx: ChildCtx,
        cfg: &DetectorConfig,
        mut log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) {
        if self
            .levels
            .iter()
            .any(|l| !cfg.counts_level(level_at(l.level)))
        {
            // Levels removed from the configuration since a restore.
            let (keep, gone): (Vec<LevelSeries>, Vec<LevelSeries>) =
                std::mem::take(&mut self.levels)
                    .into_iter()
                    .partition(|l| cfg.counts_level(level_at(l.level)));
            self.levels = keep;
            for mut l in gone {
                let id = sid(
                    service,
                    Signal::LevelCount,
                    Some(level_at(l.level).as_str()),
                );
                retire(&mut l.series.track, id, "level no longer counted", cfg, out);
            }
        }
        for (i, level) in Level::ALL.into_iter().enumerate() {
            let count = counts.levels[i];
            let idx = level_index(level);
            let pos = match self.levels.iter().position(|l| l.level >= idx) {
                Some(p) if self.levels[p].level == idx => p,
                _ if count == 0 || !cfg.counts_level(level) => continue,
                p => {
                    let p = p.unwrap_or(self.levels.len());
                    // Exact growth: most services log a few levels only.
                    self.levels.reserve_exact(1);
                    self.levels.insert(
                        p,
                        LevelSeries {
                            level: idx,
                            series: CountSeries::default(),
                        },
                    );
                    p
                }
            };
            let explained = (level.is_error() && ctx.errors_open)
                || self
                    .templates
                    .values()
                    .any(|t| t.level == idx && t.series.track.is_open());
            let l = &mut self.levels[pos];
            judge_counter(
                &mut l.series.baseline,
                &mut l.series.track,
                ctx.spec(
                    sid(service, Signal::LevelCount, Some(level.as_str())),
                    count,
                    explained,
                ),
                win,
                cfg,
                log.as_deref_mut(),
                out,
            );
        }
    }

    /// Moves the series of a state format 2 into this format.
    fn migrate(&mut self) {
        let warn = level_index(Level::Warn);
        if let Some(baseline) = self.legacy_warn.take() {
            let track = self.legacy_warn_track.take().unwrap_or_default();
            if !self.levels.iter().any(|l| l.level == warn) {
                let at = self.levels.partition_point(|l| l.level < warn);
                self.levels.insert(
                    at,
                    LevelSeries {
                        level: warn,
                        series: CountSeries { baseline, track },
                    },
                );
            }
        }
        for c in self.open.counts_mut() {
            let warns = std::mem::take(&mut c.legacy_warns);
            c.levels[usize::from(warn)] += warns;
        }
    }

    /// The mean and high quantile of each configured numeric field: upwards
    /// only (a regression), on windows with enough values.
    fn judge_fields(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        cfg: &DetectorConfig,
        mut log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) {
        for (i, name) in cfg.fields.iter().enumerate().take(MAX_FIELDS) {
            let Some(acc) = counts.fields.get(i).filter(|a| a.n >= cfg.min_field_values) else {
                continue;
            };
            let fs = self.fields.entry(name.clone()).or_default();
            let stats = [
                (Signal::FieldMean, acc.mean()),
                (Signal::FieldHigh, acc.quantile(cfg.field_quantile)),
            ];
            for (signal, x) in stats {
                let Some(x) = x else { continue };
                let (baseline, track) = match signal {
                    Signal::FieldMean => (&mut fs.mean, &mut fs.mean_track),
                    _ => (&mut fs.high, &mut fs.high_track),
                };
                let id = sid(service, signal, Some(name));
                if baseline.windows() < cfg.warmup_windows {
                    log_window(log.as_deref_mut(), id, win, x, None, cfg);
                    baseline.update(x, cfg.baseline_alpha);
                    continue;
                }
                let (expected, sd) = baseline.expected();
                let probability = baseline.p_high(x);
                let big_enough = x >= expected * (1.0 + cfg.min_field_change);
                let j = Judgement {
                    probability,
                    direction: Direction::High,
                    anomalous: probability < cfg.p_threshold && big_enough,
                    recovered: probability >= cfg.resolve_p_threshold || !big_enough,
                    observed: x,
                    expected,
                    // 1st-99th percentiles of the log-normal baseline.
                    model: Model::Fixed {
                        low: expected * (-2.326 * sd).exp(),
                        high: expected * (2.326 * sd).exp(),
                    },
                };
                log_window(log.as_deref_mut(), id, win, x, Some(&j), cfg);
                match step(track, id, j, win, cfg, out) {
                    BaselineAction::Update => baseline.update(x, cfg.baseline_alpha),
                    BaselineAction::Keep => {}
                    BaselineAction::Reset => baseline.reset(),
                }
            }
        }
    }

    /// The configured static thresholds.
    fn judge_rules(
        &mut self,
        service: &str,
        win: WindowCtx,
        counts: &Counts,
        cfg: &DetectorConfig,
        out: &mut Vec<Alert>,
    ) {
        if self.rules.len() > cfg.rules.len() {
            // Rules removed from the configuration since a restore.
            self.rules
                .retain(|name, _| cfg.rules.iter().any(|r| &r.name == name));
        }
        for r in &cfg.rules {
            if !r.service.is_empty() && r.service != service {
                continue;
            }
            let x = match r.signal {
                RuleSignal::EventCount => counts.events as f64,
                RuleSignal::ErrorCount => counts.errors as f64,
                RuleSignal::WarnCount => {
                    counts.levels[usize::from(level_index(Level::Warn))] as f64
                }
                RuleSignal::ErrorRatio if counts.events == 0 => continue,
                RuleSignal::ErrorRatio => counts.errors as f64 / counts.events as f64,
            };
            let (violated, direction) = match r.op {
                RuleOp::Above => (x > r.value, Direction::High),
                RuleOp::Below => (x < r.value, Direction::Low),
            };
            let rt = self.rules.entry(r.name.clone()).or_default();
            rt.streak = if violated {
                rt.streak.saturating_add(1)
            } else {
                0
            };
            let j = Judgement {
                probability: if violated { 0.0 } else { 1.0 },
                direction,
                anomalous: rt.streak >= r.for_windows,
                recovered: !violated,
                observed: x,
                expected: r.value,
                model: Model::Fixed {
                    low: r.value,
                    high: r.value,
                },
            };
            step_with(
                &mut rt.track,
                sid(service, Signal::Threshold, Some(&r.name)),
                j,
                win,
                cfg,
                Opening {
                    severity: Some(r.severity),
                    explained: false,
                },
                out,
            );
        }
    }

    fn retire(&mut self, service: &str, reason: &str, cfg: &DetectorConfig, out: &mut Vec<Alert>) {
        let fixed = [
            (Signal::EventCount, &mut self.count_track),
            (Signal::ErrorRatio, &mut self.ratio_track),
            (Signal::NewTemplate, &mut self.new_template_track),
        ];
        for (signal, track) in fixed {
            retire(track, sid(service, signal, None), reason, cfg, out);
        }
        for l in self.levels.iter_mut() {
            let id = sid(
                service,
                Signal::LevelCount,
                Some(level_at(l.level).as_str()),
            );
            retire(&mut l.series.track, id, reason, cfg, out);
        }
        for (t, ts) in self.templates.iter_mut() {
            let dim = format!("{t:016x}");
            let id = sid(service, Signal::TemplateCount, Some(&dim));
            retire(&mut ts.series.track, id, reason, cfg, out);
        }
        for (name, rt) in self.rules.iter_mut() {
            retire(
                &mut rt.track,
                sid(service, Signal::Threshold, Some(name)),
                reason,
                cfg,
                out,
            );
        }
        for (name, fs) in self.fields.iter_mut() {
            let id = sid(service, Signal::FieldMean, Some(name));
            retire(&mut fs.mean_track, id, reason, cfg, out);
            let id = sid(service, Signal::FieldHigh, Some(name));
            retire(&mut fs.high_track, id, reason, cfg, out);
        }
    }
}

/// How the level and template series of a window are judged, from the
/// service-wide signals of the same window.
#[derive(Debug, Clone, Copy)]
struct ChildCtx {
    /// The window's records over their expected number, when above 1: a
    /// child's expected count is scaled by it, so that a surge of all
    /// traffic alerts once (`event_count`), not once per level and template.
    scale: f64,
    /// The window is part of a traffic drop: children are judged but learn
    /// nothing from it (their baselines would sink with the traffic).
    hold: bool,
    /// The service's error ratio is in an incident, which explains error
    /// levels and templates.
    errors_open: bool,
}

impl ChildCtx {
    fn spec<'a>(&self, id: SeriesId<'a>, count: u64, explained: bool) -> CounterSpec<'a> {
        CounterSpec {
            scale: self.scale,
            hold: self.hold,
            explained,
            ..CounterSpec::new(id, count, false)
        }
    }
}

/// One count series' window to judge.
#[derive(Debug, Clone, Copy)]
struct CounterSpec<'a> {
    id: SeriesId<'a>,
    count: u64,
    /// Drops are anomalies too (event count), or only surges.
    both_directions: bool,
    /// Multiplies the forecast (see [`ChildCtx::scale`]).
    scale: f64,
    /// Below this expected count the window is not judged, only learned.
    min_expected: f64,
    /// A new incident would be explained by another signal's: silent.
    explained: bool,
    /// Judge, but do not learn from the window.
    hold: bool,
}

impl<'a> CounterSpec<'a> {
    fn new(id: SeriesId<'a>, count: u64, both_directions: bool) -> Self {
        Self {
            id,
            count,
            both_directions,
            scale: 1.0,
            min_expected: 0.0,
            explained: false,
            hold: false,
        }
    }
}

/// What the event count's judgement tells the rest of the window.
#[derive(Debug, Clone, Copy)]
struct CounterVerdict {
    /// The forecast, once past the warm-up.
    forecast: Option<CountForecast>,
    /// The window is anomalously low, or part of an unrecovered drop.
    dropped: bool,
}

impl CounterVerdict {
    /// `events` over the forecast, when above 1 (1 during the warm-up).
    fn scale(&self, events: u64) -> f64 {
        self.forecast
            .map_or(1.0, |f| (events as f64 / f.mean.max(1.0)).max(1.0))
    }
}

/// Judges one count signal of one window: both directions (event count) or
/// increases only (levels, templates).
fn judge_counter(
    baseline: &mut CountBaseline,
    track: &mut Track,
    spec: CounterSpec<'_>,
    win: WindowCtx,
    cfg: &DetectorConfig,
    log: Option<&mut Vec<WindowScore>>,
    out: &mut Vec<Alert>,
) -> CounterVerdict {
    let params = cfg.count_params();
    let id = spec.id;
    let x = spec.count as f64;
    let learn = |baseline: &mut CountBaseline, normal: bool| {
        if normal && !spec.hold {
            baseline.update(win.start_us, x, &params, true);
        } else {
            baseline.skip(win.start_us, x, &params);
        }
    };
    let forecast = baseline.predict(win.start_us);
    let warm = baseline.windows() >= cfg.warmup_windows;
    // An open incident is judged to its end whatever its expected count.
    let judged = warm && (forecast.mean >= spec.min_expected || track.is_open());
    let scaled = forecast.scaled(spec.scale);
    let dist = match scaled.dist() {
        Some(d) if judged => d,
        _ => {
            log_window(log, id, win, x, None, cfg);
            learn(baseline, true);
            return CounterVerdict {
                forecast: warm.then_some(forecast),
                dropped: false,
            };
        }
    };
    let p_high = dist.p_at_least(spec.count);
    let p_low = if spec.both_directions {
        dist.p_at_most(spec.count)
    } else {
        1.0
    };
    let (probability, direction) = if p_high <= p_low {
        (p_high, Direction::High)
    } else {
        (p_low, Direction::Low)
    };
    let change = if spec.both_directions {
        (x - scaled.mean).abs()
    } else {
        x - scaled.mean
    };
    let big_enough = change >= cfg.min_count_change;
    let j = Judgement {
        probability,
        direction,
        anomalous: probability < cfg.p_threshold && big_enough,
        recovered: probability >= cfg.resolve_p_threshold || !big_enough,
        observed: x,
        expected: scaled.mean,
        model: Model::Count(dist),
    };
    let (anomalous, recovered) = (j.anomalous, j.recovered);
    log_window(log, id, win, x, Some(&j), cfg);
    let opening = Opening {
        severity: None,
        explained: spec.explained,
    };
    match step_with(track, id, j, win, cfg, opening, out) {
        BaselineAction::Update => learn(baseline, true),
        BaselineAction::Keep => learn(baseline, false),
        BaselineAction::Reset => baseline.reset(),
    }
    let dropped = (anomalous && direction == Direction::Low)
        || (track.open_direction() == Some(Direction::Low) && !recovered);
    CounterVerdict {
        forecast: Some(forecast),
        dropped,
    }
}

/// Lists in each firing alert the other series that fired with it.
fn link_related(alerts: &mut [Alert]) {
    let keys: Vec<String> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(Alert::key)
        .collect();
    for a in alerts
        .iter_mut()
        .filter(|a| a.status == AlertStatus::Firing)
    {
        let key = a.key();
        a.related = keys.iter().filter(|k| **k != key).cloned().collect();
    }
}

/// Gives the firing alerts of one window their context: top templates (the
/// new ones for `new_template`), a few lines, and the other series of the
/// service that fired with them.
fn decorate(alerts: &mut [Alert], counts: &Counts, new: &[(u64, u64)]) {
    link_related(alerts);
    for a in alerts
        .iter_mut()
        .filter(|a| a.status == AlertStatus::Firing)
    {
        if a.series.signal == Signal::NewTemplate {
            let mut v = new.to_vec();
            v.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            a.top_templates = v
                .iter()
                .take(MAX_ALERT_TEMPLATES)
                .map(|(t, c)| template_count(*t, *c))
                .collect();
            a.samples = v
                .iter()
                .filter_map(|(t, _)| counts.template_lines.get(t).cloned())
                .take(MAX_ALERT_SAMPLES)
                .collect();
        } else if let Some(t) = a
            .series
            .dimension
            .as_deref()
            .filter(|_| a.series.signal == Signal::TemplateCount)
            .and_then(|d| u64::from_str_radix(d, 16).ok())
        {
            // The template itself first, then the window's others.
            let own = template_count(t, counts.templates.get(&t).copied().unwrap_or(0));
            let others = counts
                .top_templates()
                .into_iter()
                .filter(|c| c.template_id != own.template_id)
                .take(MAX_ALERT_TEMPLATES - 1)
                .collect::<Vec<_>>();
            a.top_templates = std::iter::once(own).chain(others).collect();
            a.samples = match counts.template_lines.get(&t) {
                Some(line) => vec![line.clone()],
                None => counts.lines.clone(),
            };
        } else {
            a.top_templates = counts.top_templates();
            let errors_first = match a.series.signal {
                Signal::ErrorRatio | Signal::Threshold => true,
                Signal::LevelCount => {
                    matches!(a.series.dimension.as_deref(), Some("error" | "fatal"))
                }
                _ => false,
            };
            a.samples = if errors_first && !counts.error_lines.is_empty() {
                counts.error_lines.clone()
            } else {
                counts.lines.clone()
            };
        }
    }
}

/// Gives the firing alerts of one metric-like record its context: the
/// record's line and template, and the other series it fired with.
fn decorate_sample(alerts: &mut [Alert], ev: &Event<'_>) {
    link_related(alerts);
    for a in alerts
        .iter_mut()
        .filter(|a| a.status == AlertStatus::Firing)
    {
        a.samples = ev
            .message
            .filter(|m| !m.is_empty())
            .map(sample_line)
            .into_iter()
            .collect();
        a.top_templates = ev
            .template_id
            .map(|t| template_count(t, 1))
            .into_iter()
            .collect();
    }
}

/// Records one judged window when recording is on.
fn log_window(
    log: Option<&mut Vec<WindowScore>>,
    id: SeriesId<'_>,
    win: WindowCtx,
    observed: f64,
    j: Option<&Judgement>,
    cfg: &DetectorConfig,
) {
    let Some(log) = log else { return };
    let range = j.map(|j| j.model.range());
    log.push(WindowScore {
        service: id.service.to_string(),
        signal: id.signal,
        dimension: id.dimension.map(str::to_string),
        window_start_us: win.start_us,
        window_end_us: win.end_us,
        observed,
        expected: j.map(|j| j.expected),
        expected_low: range.map(|r| r.0),
        expected_high: range.map(|r| r.1),
        probability: j.map_or(1.0, |j| j.probability),
        score: j.map_or(0.0, |j| score(j.probability, cfg.p_threshold)),
        anomalous: j.is_some_and(|j| j.anomalous),
    });
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
