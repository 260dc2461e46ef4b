//! Online anomaly scoring of a numeric value series, one record at a time
//! (metric-like logs: queue depth, CPU percent, a latency sample), with no
//! windowing and no look-ahead.
//!
//! 1. Raw surprise, from one of two models:
//!    - plain: robust |z| of the value against the median and MAD of the
//!      last [`NumericConfig::history`] values;
//!    - seasonal (once a day of history exists and records carry a time):
//!      the value against the median of the values at the same time of day
//!      on up to seven previous days, the residual judged by the median and
//!      MAD of recent residuals.
//!
//!    The seasonal model is used only when the data has a daily cycle, that
//!    is when its residual spread is below [`NumericConfig::seasonal_gain`]
//!    times the plain spread.
//! 2. Likelihood: the mean raw surprise of the last
//!    [`NumericConfig::short`] records against the distribution of that
//!    model's raw surprises over the last [`NumericConfig::long`] records
//!    (the idea of Numenta's anomaly likelihood): a noisy series does not
//!    alarm on its usual noise, a quiet one alarms on a small departure.
//!
//! The tail probability is mapped to [0, 1] with the same surprise scale as
//! the alerts ([`crate::incident::score`]). A record scoring 0.5 or more
//! opens an incident and is the one alert of it; the scorer then stays
//! quiet for at least [`NumericConfig::quiet_rows`] records and until
//! [`NumericConfig::resolve_rows`] records in a row look normal again (or
//! [`NumericConfig::max_incident_rows`] passed: the new level is accepted).
//! Early, once per incident, quiet on normal variation: what on-call
//! engineers want, and what the NAB benchmark rewards.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use logwarden_ingest::options::InvalidOption;

use crate::incident::score;

/// Default number of past values the robust centre and spread come from.
pub const DEFAULT_HISTORY: usize = 600;
/// Default number of recent records averaged in the likelihood stage.
pub const DEFAULT_SHORT: usize = 1;
/// Default span of raw surprises the likelihood stage compares against.
pub const DEFAULT_LONG: usize = 2000;
/// Default records scored 0 while the history fills.
pub const DEFAULT_WARMUP: usize = 50;
/// Default p-value counted as an incident (score 0.5 there).
pub const DEFAULT_P_THRESHOLD: f64 = 1e-5;
/// Default records kept quiet after an incident was reported.
pub const DEFAULT_QUIET_ROWS: usize = 100;
/// Default p-value a record needs to count as normal again in an incident.
pub const DEFAULT_RESOLVE_P_THRESHOLD: f64 = 1e-2;
/// Default consecutive normal records that end an incident.
pub const DEFAULT_RESOLVE_ROWS: usize = 20;
/// Default incident length after which the new level is accepted.
pub const DEFAULT_MAX_INCIDENT_ROWS: usize = 1000;
/// Default records of (time, value) kept for the seasonal model.
pub const DEFAULT_SEASON_MEMORY: usize = 4096;
/// Default: the seasonal model is used when its residual spread is below
/// this share of the plain spread.
pub const DEFAULT_SEASONAL_GAIN: f64 = 0.6;

/// Configuration of a [`NumericScorer`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericConfig {
    /// Past values used for the robust centre and spread.
    pub history: usize,
    /// Recent records averaged before comparison.
    pub short: usize,
    /// Raw surprises forming the reference distribution.
    pub long: usize,
    /// Records scored 0 while the history fills.
    pub warmup: usize,
    /// p-value that maps to score 0.5 (and counts as an incident).
    pub p_threshold: f64,
    /// Records after an incident was reported during which scores are held
    /// at 0, whatever the data.
    pub quiet_rows: usize,
    /// While an incident is open, a record counts as normal again when its
    /// p-value is at least this.
    pub resolve_p_threshold: f64,
    /// Consecutive normal records (after `quiet_rows`) that end an incident.
    pub resolve_rows: usize,
    /// An incident lasting this many records ends anyway: the new level is
    /// accepted.
    pub max_incident_rows: usize,
    /// Records of (time, value) kept for the seasonal model (same time on
    /// the previous days).
    pub season_memory: usize,
    /// The seasonal model replaces the plain one when its residual spread is
    /// below this share of the plain spread.
    pub seasonal_gain: f64,
}

/// Largest accepted `history`, `long` and `season_memory`: each is a
/// per-series buffer, so a typo must not allocate gigabytes per series.
pub const MAX_MEMORY_ROWS: usize = 1_000_000;

impl NumericConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        let field = |name: &'static str, ok: bool, range: &str, value: String| {
            if ok {
                Ok(())
            } else {
                Err(InvalidOption::new(
                    name,
                    format!("must be in {range}, not {value}"),
                ))
            }
        };
        let rows = |name: &'static str, v: usize, min: usize| {
            field(
                name,
                (min..=MAX_MEMORY_ROWS).contains(&v),
                &format!("{min}..={MAX_MEMORY_ROWS}"),
                v.to_string(),
            )
        };
        rows("detect.metric.history", self.history, 3)?;
        rows("detect.metric.short", self.short, 1)?;
        field(
            "detect.metric.short",
            self.short <= self.history,
            "1..=history",
            self.short.to_string(),
        )?;
        rows("detect.metric.long", self.long, self.short + 2)?;
        field(
            "detect.metric.warmup",
            self.warmup < self.history,
            "0..history (a series must be able to warm up)",
            self.warmup.to_string(),
        )?;
        let unit =
            |name: &'static str, v: f64| field(name, v > 0.0 && v < 1.0, "(0, 1)", v.to_string());
        unit("detect.metric.p_threshold", self.p_threshold)?;
        unit(
            "detect.metric.resolve_p_threshold",
            self.resolve_p_threshold,
        )?;
        field(
            "detect.metric.resolve_p_threshold",
            self.resolve_p_threshold >= self.p_threshold,
            "[p_threshold, 1)",
            self.resolve_p_threshold.to_string(),
        )?;
        rows("detect.metric.resolve_rows", self.resolve_rows, 1)?;
        rows("detect.metric.max_incident_rows", self.max_incident_rows, 1)?;
        rows("detect.metric.season_memory", self.season_memory, 0)?;
        field(
            "detect.metric.seasonal_gain",
            (0.0..=1.0).contains(&self.seasonal_gain),
            "[0, 1]",
            self.seasonal_gain.to_string(),
        )?;
        Ok(())
    }
}

impl Default for NumericConfig {
    fn default() -> Self {
        Self {
            history: DEFAULT_HISTORY,
            short: DEFAULT_SHORT,
            long: DEFAULT_LONG,
            warmup: DEFAULT_WARMUP,
            p_threshold: DEFAULT_P_THRESHOLD,
            quiet_rows: DEFAULT_QUIET_ROWS,
            resolve_p_threshold: DEFAULT_RESOLVE_P_THRESHOLD,
            resolve_rows: DEFAULT_RESOLVE_ROWS,
            max_incident_rows: DEFAULT_MAX_INCIDENT_ROWS,
            season_memory: DEFAULT_SEASON_MEMORY,
            seasonal_gain: DEFAULT_SEASONAL_GAIN,
        }
    }
}

/// The verdict on one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericScore {
    /// Anomaly score in [0, 1] (0 while an incident is open).
    pub score: f64,
    /// The record opens an incident (at most one per incident).
    pub alert: bool,
    /// The model's expectation for this record and its expected range
    /// (centre +- [`BAND_SPREADS`] robust spreads), once it has one.
    pub expected: Option<Band>,
    /// The likelihood stage's tail probability of this record, once the
    /// reference span is long enough (reported even while warming up or in
    /// an incident).
    pub probability: Option<f64>,
    /// The record ended the open incident, and how.
    pub ended: Option<IncidentEnd>,
}

/// How an incident of a [`NumericScorer`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentEnd {
    /// `resolve_rows` normal records in a row, after `quiet_rows`.
    Healed,
    /// `max_incident_rows` passed: the new level is accepted.
    Accepted,
}

/// An expected value and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

/// Half-width of the reported expected range, in robust spreads.
pub const BAND_SPREADS: f64 = 3.0;

/// Microseconds since the epoch from `YYYY-MM-DD[ T]HH:MM:SS[.frac][Z]`, or
/// from a number of seconds (milliseconds when above 1e11) since the epoch.
pub fn parse_timestamp_us(s: &str) -> Option<i64> {
    let s = s.trim().trim_matches('"');
    if let Ok(n) = s.parse::<f64>() {
        if !n.is_finite() {
            return None;
        }
        let secs = if n.abs() > 1e11 { n / 1000.0 } else { n };
        return Some((secs * 1e6).round() as i64);
    }
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut micros = 0i64;
    if b.len() > 20 && b[19] == b'.' {
        let frac: String = s[20..]
            .chars()
            .take_while(char::is_ascii_digit)
            .take(6)
            .collect();
        if !frac.is_empty() {
            micros = frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32);
        }
    }
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000 + micros)
}

/// Online scorer of one numeric series.
///
/// Serializable (for checkpoints) without its configuration: a restored
/// scorer gets the current one with [`NumericScorer::set_config`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumericScorer {
    #[serde(skip)]
    cfg: NumericConfig,
    /// Recent values for the robust centre and spread.
    values: VecDeque<f64>,
    /// (time, value) of the last `season_memory` records, time-ordered, for
    /// the seasonal model.
    timed: VecDeque<(i64, f64)>,
    /// Recent residuals of the seasonal model.
    seasonal_resid: VecDeque<f64>,
    /// Raw surprises of each model, the likelihood stage's references.
    plain_ref: Reference,
    seasonal_ref: Reference,
    /// An incident was reported and has not healed yet.
    in_incident: bool,
    quiet_left: usize,
    normal_streak: usize,
    incident_rows: usize,
    #[serde(skip)]
    scratch: Vec<f64>,
    #[serde(skip, default = "Normal::standard")]
    normal: Normal,
}

/// Smallest spread relative to the centre, so a flat line does not divide
/// by zero yet any change of it stands out.
const REL_SPREAD_FLOOR: f64 = 1e-6;
const ABS_SPREAD_FLOOR: f64 = 1e-9;
/// Raw surprises are capped so one wild value cannot dominate the reference.
const MAX_RAW: f64 = 50.0;
/// One day and one week, in microseconds.
const DAY_US: i64 = 86_400_000_000;
/// Seasonal lags looked at: the same time 1..=7 days ago.
const SEASON_LAGS: i64 = 7;

impl NumericScorer {
    pub fn new(cfg: NumericConfig) -> Self {
        let cfg = Self::normalized(cfg);
        Self {
            values: VecDeque::with_capacity(cfg.history + 1),
            timed: VecDeque::new(),
            seasonal_resid: VecDeque::new(),
            plain_ref: Reference::default(),
            seasonal_ref: Reference::default(),
            in_incident: false,
            quiet_left: 0,
            normal_streak: 0,
            incident_rows: 0,
            scratch: Vec::with_capacity(cfg.history),
            normal: Normal::standard(),
            cfg,
        }
    }

    /// The configuration with the sizes the model needs at least.
    fn normalized(cfg: NumericConfig) -> NumericConfig {
        NumericConfig {
            history: cfg.history.max(3),
            short: cfg.short.max(1),
            long: cfg.long.max(cfg.short.saturating_add(2)),
            ..cfg
        }
    }

    /// Replaces the configuration (e.g. of a scorer restored from a
    /// checkpoint) and trims the kept history to the new sizes; what was
    /// learned stays.
    pub fn set_config(&mut self, cfg: NumericConfig) {
        self.cfg = Self::normalized(cfg);
        let (history, long, season) = (self.cfg.history, self.cfg.long, self.cfg.season_memory);
        trim_front(&mut self.values, history);
        trim_front(&mut self.seasonal_resid, history);
        trim_front(&mut self.timed, season);
        trim_front(&mut self.plain_ref.raw, long);
        trim_front(&mut self.seasonal_ref.raw, long);
        if self.in_incident {
            self.quiet_left = self.quiet_left.min(self.cfg.quiet_rows);
        }
    }

    /// An incident was reported and has not ended yet.
    pub fn in_incident(&self) -> bool {
        self.in_incident
    }

    /// Records learned so far, up to `history` (the scorer is warm past
    /// `warmup`).
    pub fn learned(&self) -> usize {
        self.values.len()
    }

    /// Scores `value` against everything before it, then learns it.
    pub fn score(&mut self, value: f64) -> f64 {
        self.score_at(None, value).score
    }

    /// Scores `value` (observed at `t_us`, when known: the seasonal model
    /// needs it) against everything before it, then learns it.
    pub fn score_at(&mut self, t_us: Option<i64>, value: f64) -> NumericScore {
        let mut quiet = NumericScore {
            score: 0.0,
            alert: false,
            expected: None,
            probability: None,
            ended: None,
        };
        if !value.is_finite() {
            return quiet;
        }
        let plain = self.plain_surprise(value);
        let seasonal = t_us.and_then(|t| self.seasonal_surprise(t, value));
        self.learn(t_us, value);
        // Each model's raw surprise is judged against that model's own
        // history of raw surprises, so switching models is not a surprise.
        let p_plain = plain.map(|(r, _, _)| self.plain_ref.likelihood(r, &self.cfg, &self.normal));
        let p_seasonal =
            seasonal.map(|(r, _, _)| self.seasonal_ref.likelihood(r, &self.cfg, &self.normal));
        let use_seasonal = matches!((plain, seasonal), (Some((_, sp, _)), Some((_, ss, _))) if ss < self.cfg.seasonal_gain * sp);
        let p = if use_seasonal { p_seasonal } else { p_plain }.flatten();
        let band = if use_seasonal { seasonal } else { plain }.map(|(_, spread, centre)| Band {
            expected: centre,
            low: centre - BAND_SPREADS * spread,
            high: centre + BAND_SPREADS * spread,
        });
        quiet.expected = band;
        quiet.probability = p;
        let warm = self.values.len() > self.cfg.warmup;
        let out = match p {
            Some(p) if warm => score(p, self.cfg.p_threshold),
            _ => 0.0,
        };
        if self.in_incident {
            self.quiet_left = self.quiet_left.saturating_sub(1);
            self.incident_rows += 1;
            if p.is_none_or(|p| p >= self.cfg.resolve_p_threshold) {
                self.normal_streak += 1;
            } else {
                self.normal_streak = 0;
            }
            let healed = self.quiet_left == 0 && self.normal_streak >= self.cfg.resolve_rows;
            let too_long = self.incident_rows >= self.cfg.max_incident_rows;
            if healed || too_long {
                self.in_incident = false;
                quiet.ended = Some(if healed {
                    IncidentEnd::Healed
                } else {
                    IncidentEnd::Accepted
                });
            }
            return quiet;
        }
        let alert = out >= 0.5;
        if alert {
            self.in_incident = true;
            self.quiet_left = self.cfg.quiet_rows;
            self.normal_streak = 0;
            self.incident_rows = 0;
        }
        NumericScore {
            score: out,
            alert,
            expected: band,
            probability: p,
            ended: None,
        }
    }

    fn learn(&mut self, t_us: Option<i64>, value: f64) {
        self.values.push_back(value);
        if self.values.len() > self.cfg.history {
            self.values.pop_front();
        }
        if let Some(t) = t_us {
            // Out-of-order times would break the lag search: keep order.
            if self.timed.back().is_none_or(|(last, _)| *last < t) {
                self.timed.push_back((t, value));
                while self.timed.len() > self.cfg.season_memory {
                    self.timed.pop_front();
                }
            }
        }
    }

    /// Robust |z| of `value` against the history, the spread and the centre
    /// used; `None` while too short.
    fn plain_surprise(&mut self, value: f64) -> Option<(f64, f64, f64)> {
        if self.values.len() < 3 {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(self.values.iter().copied());
        let (med, spread) = robust(&mut self.scratch);
        Some((((value - med).abs() / spread).min(MAX_RAW), spread, med))
    }

    /// Robust |z| of the residual against the same time on earlier days, and
    /// the residual spread and the expectation; `None` without a day of
    /// history.
    fn seasonal_surprise(&mut self, t: i64, value: f64) -> Option<(f64, f64, f64)> {
        let (first, _) = *self.timed.front()?;
        if t - first < DAY_US {
            return None;
        }
        // Tolerance: half the typical spacing of the records.
        let n = self.timed.len() as i64;
        let (last, _) = *self.timed.back()?;
        let tol = ((last - first) / n.max(2)).max(1) / 2 + 1;
        self.scratch.clear();
        for k in 1..=SEASON_LAGS {
            let want = t - k * DAY_US;
            if want < first - tol {
                break;
            }
            let i = self.timed.partition_point(|(ti, _)| *ti < want - tol);
            if let Some((ti, v)) = self.timed.get(i) {
                if (*ti - want).abs() <= tol {
                    self.scratch.push(*v);
                }
            }
        }
        if self.scratch.is_empty() {
            return None;
        }
        let pred = median(&mut self.scratch);
        let resid = value - pred;
        let out = if self.seasonal_resid.len() >= self.cfg.warmup {
            self.scratch.clear();
            self.scratch.extend(self.seasonal_resid.iter().copied());
            let (med, spread) = robust(&mut self.scratch);
            Some((
                ((resid - med).abs() / spread).min(MAX_RAW),
                spread,
                pred + med,
            ))
        } else {
            None
        };
        self.seasonal_resid.push_back(resid);
        if self.seasonal_resid.len() > self.cfg.history {
            self.seasonal_resid.pop_front();
        }
        out
    }
}

/// Drops the oldest entries of `q` beyond `max`.
fn trim_front<T>(q: &mut VecDeque<T>, max: usize) {
    let excess = q.len().saturating_sub(max);
    q.drain(..excess);
}

/// The likelihood stage of one model: its recent raw surprises.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct Reference {
    raw: VecDeque<f64>,
}

impl Reference {
    /// The tail probability of the mean of the last `short` raw surprises
    /// (`raw` the newest) under the distribution of the reference span, then
    /// remembers `raw`. `None` while the span is too short.
    fn likelihood(&mut self, raw: f64, cfg: &NumericConfig, normal: &Normal) -> Option<f64> {
        let reference = self.raw.len();
        let mut out = None;
        if reference >= cfg.short + 2 {
            let n = reference as f64;
            let mean = self.raw.iter().sum::<f64>() / n;
            let var = self
                .raw
                .iter()
                .map(|r| (r - mean) * (r - mean))
                .sum::<f64>()
                / (n - 1.0);
            let sd = var.sqrt().max(1e-3);
            let recent = self
                .raw
                .iter()
                .rev()
                .take(cfg.short - 1)
                .chain(std::iter::once(&raw));
            let k = cfg.short.min(reference + 1) as f64;
            let short_mean = recent.sum::<f64>() / k;
            // Standard error of a k-mean, so the test is about the mean.
            let z = (short_mean - mean) / (sd / k.sqrt());
            out = Some(normal.sf(z));
        }
        self.raw.push_back(raw);
        if self.raw.len() > cfg.long {
            self.raw.pop_front();
        }
        out
    }
}

/// Median and robust spread of `v` (reordered in place).
fn robust(v: &mut [f64]) -> (f64, f64) {
    let med = median(v);
    for x in v.iter_mut() {
        *x = (*x - med).abs();
    }
    let mad = median(v);
    let mean_abs = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let spread = (1.4826 * mad)
        .max(1.2533 * mean_abs)
        .max(REL_SPREAD_FLOOR * med.abs())
        .max(ABS_SPREAD_FLOOR);
    (med, spread)
}

fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_name() {
        assert_eq!(NumericConfig::default().validate(), Ok(()));
        type Spoil = fn(&mut NumericConfig);
        let bad: [(&str, Spoil); 8] = [
            ("history", |c| c.history = 2),
            ("history", |c| c.history = usize::MAX),
            ("long", |c| c.long = c.short + 1),
            ("warmup", |c| c.warmup = c.history),
            ("p_threshold", |c| c.p_threshold = f64::NAN),
            ("resolve_p_threshold", |c| {
                c.resolve_p_threshold = c.p_threshold / 2.0
            }),
            ("resolve_rows", |c| c.resolve_rows = 0),
            ("seasonal_gain", |c| c.seasonal_gain = 1.5),
        ];
        for (name, spoil) in bad {
            let mut c = NumericConfig::default();
            spoil(&mut c);
            let err = c.validate().expect_err(name);
            assert_eq!(err.option, format!("detect.metric.{name}"), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("detect.metric.{name}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn flat_then_spike_scores_high_once() {
        let mut s = NumericScorer::new(NumericConfig::default());
        let mut scores = Vec::new();
        for i in 0..1000 {
            let v = if i == 800 {
                100.0
            } else {
                10.0 + (i % 7) as f64 * 0.1
            };
            scores.push(s.score(v));
        }
        assert!(scores[..800].iter().all(|x| *x < 0.5), "quiet on noise");
        assert!(scores[800] >= 0.5);
        assert!(scores[801..].iter().all(|x| *x < 0.5), "once per incident");
    }

    #[test]
    fn a_saved_scorer_carries_on_exactly() {
        let values: Vec<f64> = (0..900).map(|i| 10.0 + (i % 7) as f64 * 0.1).collect();
        let mut whole = NumericScorer::new(NumericConfig::default());
        let mut cut = NumericScorer::new(NumericConfig::default());
        for v in &values[..700] {
            whole.score(*v);
            cut.score(*v);
        }
        let json = serde_json::to_string(&cut).expect("serializes");
        let mut back: NumericScorer = serde_json::from_str(&json).expect("parses");
        back.set_config(NumericConfig::default());
        assert_eq!(back.learned(), DEFAULT_HISTORY);
        for (i, v) in values[700..].iter().enumerate() {
            let v = if i == 50 { 100.0 } else { *v };
            // JSON keeps floats to the last bit or so: compare decisions
            // exactly, scores closely.
            let (got, want) = (back.score_at(None, v), whole.score_at(None, v));
            assert_eq!(got.alert, want.alert, "record {i}");
            assert_eq!(got.ended, want.ended, "record {i}");
            assert!((got.score - want.score).abs() < 1e-9, "record {i}");
        }
        // A smaller configuration trims what was kept.
        back.set_config(NumericConfig {
            history: 10,
            long: 20,
            ..NumericConfig::default()
        });
        assert_eq!(back.learned(), 10);
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut s = NumericScorer::new(NumericConfig::default());
        for v in [
            f64::NAN,
            f64::INFINITY,
            1.0,
            f64::NEG_INFINITY,
            1e308,
            -1e308,
        ] {
            let x = s.score(v);
            assert!((0.0..=1.0).contains(&x));
        }
    }
}
