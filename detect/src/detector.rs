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

use crate::alert::{Alert, Direction, Signal};
use crate::baseline::{CountBaseline, RatioBaseline};
use crate::config::{DetectConfigError, DetectorConfig};
use crate::incident::{
    firing, retire, score, step, BaselineAction, Incident, Judgement, Model, WindowCtx,
};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Event time, microseconds since the Unix epoch, UTC.
    pub event_time_us: i64,
    /// The series; `None` is the series [`UNKNOWN_SERVICE`].
    pub service: Option<&'a str>,
    pub level: Level,
    /// Reserved for per-template signals.
    pub template_id: Option<u64>,
}

impl<'a> Event<'a> {
    /// The detector's view of a parsed record.
    pub fn from_record(record: &'a LogRecord) -> Self {
        Self {
            event_time_us: record.event_time_us,
            service: record.service.as_deref(),
            level: record.level,
            template_id: record.template_id,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    events: u64,
    errors: u64,
}

/// Everything kept per service.
#[derive(Debug, Serialize, Deserialize)]
pub struct Series {
    /// Windows not closed yet (at most lateness / window + 2 of them).
    open: BTreeMap<i64, Counts>,
    /// Start of the next window of this series to close.
    next_close_us: i64,
    /// Start of the latest closed window that held a record (updated on
    /// close, not on arrival, so that a record far ahead cannot hide the
    /// silence before it).
    last_data_us: i64,
    /// Logical time of the last record, for least-recently-seen eviction.
    last_seen: u64,
    count: CountBaseline,
    count_incident: Option<Incident>,
    ratio: RatioBaseline,
    ratio_incident: Option<Incident>,
}

/// The verdict on one closed window of one signal, for backtests and plots
/// (see [`Detector::record_windows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowScore {
    pub service: String,
    pub signal: Signal,
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
}

/// Streaming anomaly detector over log records. Pure: no I/O, no clock.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    window_us: i64,
    lateness_us: i64,
    /// Ordered, so that alerts of one step come out in the same order on
    /// every replay.
    series: BTreeMap<String, Series>,
    max_event_time_us: Option<i64>,
    /// Highest event time counted (may be ahead of the watermark's).
    max_counted_us: Option<i64>,
    /// Every window starting before this is closed.
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
    /// Judged windows, when recording is on.
    window_log: Option<Vec<WindowScore>>,
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
        })
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

    /// Counts one record without moving the watermark; returns alerts only
    /// when a series had to be evicted to make room.
    pub fn count(&mut self, ev: &Event<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        let t = ev.event_time_us;
        if !(MIN_EVENT_TIME_US..MAX_EVENT_TIME_US).contains(&t) {
            self.stats.out_of_range_records += 1;
            return out;
        }
        let ws = t.div_euclid(self.window_us) * self.window_us;
        if ws < self.closed_until_us {
            self.stats.late_records += 1;
            return out;
        }
        let service = ev.service.unwrap_or(UNKNOWN_SERVICE);
        self.tick += 1;
        self.max_counted_us = Some(self.max_counted_us.map_or(t, |m| m.max(t)));
        if !self.series.contains_key(service) {
            if self.series.len() >= self.cfg.max_series {
                self.evict_least_recent(&mut out);
            }
            self.series.insert(
                service.to_string(),
                Series {
                    open: BTreeMap::new(),
                    next_close_us: ws,
                    last_data_us: ws,
                    last_seen: 0,
                    count: CountBaseline::default(),
                    count_incident: None,
                    ratio: RatioBaseline::default(),
                    ratio_incident: None,
                },
            );
        }
        if let Some(s) = self.series.get_mut(service) {
            s.last_seen = self.tick;
            if ws < s.next_close_us {
                s.next_close_us = ws;
                s.last_data_us = ws;
            }
            let c = s.open.entry(ws).or_default();
            c.events += 1;
            c.errors += u64::from(ev.level.is_error());
        }
        out
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

    /// The firing alerts of the incidents open now (e.g. to tell a
    /// receiver, after a restart from a checkpoint, what is still firing).
    pub fn open_incidents(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for (service, s) in &self.series {
            out.extend(firing(
                &s.count_incident,
                service,
                Signal::EventCount,
                &self.cfg,
            ));
            out.extend(firing(
                &s.ratio_incident,
                service,
                Signal::ErrorRatio,
                &self.cfg,
            ));
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
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Why a saved detector state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("detector state format {found}, this build reads format {expected}")]
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
    series: &'a BTreeMap<String, Series>,
    max_event_time_us: Option<i64>,
    max_counted_us: Option<i64>,
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
}

/// A saved detector state (see [`DetectorStateRef`]).
#[derive(Debug, Deserialize)]
pub struct DetectorState {
    format: u32,
    window_secs: u64,
    series: BTreeMap<String, Series>,
    max_event_time_us: Option<i64>,
    max_counted_us: Option<i64>,
    closed_until_us: i64,
    tick: u64,
    stats: DetectorStats,
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
        }
    }

    /// A detector with `cfg` that carries on from a saved state: same
    /// baselines, warm-up progress, open incidents and watermark. Model
    /// settings may differ from the saved run's (they apply from now on),
    /// the window length may not.
    pub fn from_state(cfg: DetectorConfig, state: DetectorState) -> Result<Self, StateError> {
        if state.format != STATE_FORMAT_VERSION {
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
        d.max_event_time_us = state.max_event_time_us;
        d.max_counted_us = state.max_counted_us;
        d.closed_until_us = state.closed_until_us;
        d.tick = state.tick;
        d.stats = state.stats;
        Ok(d)
    }
}

impl Series {
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
            let counts = self.open.remove(&ws).unwrap_or_default();
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
                        .keys()
                        .next()
                        .copied()
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
            self.judge_count(service, win, cfg, log.as_deref_mut(), out);
            self.judge_ratio(service, win, cfg, log.as_deref_mut(), out);
            stats.windows_closed += 1;
            self.next_close_us = ws + window_us;
        }
        false
    }

    fn judge_count(
        &mut self,
        service: &str,
        win: WindowCtx,
        cfg: &DetectorConfig,
        log: Option<&mut Vec<WindowScore>>,
        out: &mut Vec<Alert>,
    ) {
        let x = win.events as f64;
        let forecast = self.count.predict(win.start_us);
        let dist = match forecast.dist() {
            Some(d) if self.count.windows() >= cfg.warmup_windows => d,
            _ => {
                log_window(log, service, Signal::EventCount, win, x, None, cfg);
                self.count.update(win.start_us, x, cfg.baseline_alpha, true);
                return;
            }
        };
        let p_high = dist.p_at_least(win.events);
        let p_low = dist.p_at_most(win.events);
        let (probability, direction) = if p_high <= p_low {
            (p_high, Direction::High)
        } else {
            (p_low, Direction::Low)
        };
        let big_enough = (x - forecast.mean).abs() >= cfg.min_count_change;
        let j = Judgement {
            probability,
            direction,
            anomalous: probability < cfg.p_threshold && big_enough,
            recovered: probability >= cfg.resolve_p_threshold || !big_enough,
            observed: x,
            expected: forecast.mean,
            model: Model::Count(dist),
        };
        log_window(log, service, Signal::EventCount, win, x, Some(&j), cfg);
        match step(
            &mut self.count_incident,
            service,
            Signal::EventCount,
            j,
            win,
            cfg,
            out,
        ) {
            BaselineAction::Update => self.count.update(win.start_us, x, cfg.baseline_alpha, true),
            BaselineAction::Keep => {}
            BaselineAction::Reset => self.count.reset(),
        }
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
            log_window(log, service, Signal::ErrorRatio, win, x, None, cfg);
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
        log_window(
            log,
            service,
            Signal::ErrorRatio,
            win,
            j.observed,
            Some(&j),
            cfg,
        );
        match step(
            &mut self.ratio_incident,
            service,
            Signal::ErrorRatio,
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

    fn retire(&mut self, service: &str, reason: &str, cfg: &DetectorConfig, out: &mut Vec<Alert>) {
        retire(
            &mut self.count_incident,
            service,
            Signal::EventCount,
            reason,
            cfg,
            out,
        );
        retire(
            &mut self.ratio_incident,
            service,
            Signal::ErrorRatio,
            reason,
            cfg,
            out,
        );
    }
}

/// Records one judged window when recording is on.
fn log_window(
    log: Option<&mut Vec<WindowScore>>,
    service: &str,
    signal: Signal,
    win: WindowCtx,
    observed: f64,
    j: Option<&Judgement>,
    cfg: &DetectorConfig,
) {
    let Some(log) = log else { return };
    let range = j.map(|j| j.model.range());
    log.push(WindowScore {
        service: service.to_string(),
        signal,
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
