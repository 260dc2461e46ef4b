//! Online anomaly scoring of a numeric value series, one record at a time.
//!
//! Seam for a later "numeric series" signal (latency, queue depth, a parsed
//! metric). Two stages, both with no look-ahead:
//!
//! 1. Raw surprise: robust z-score of the value against the median and MAD
//!    of the recent history (the value itself excluded).
//! 2. Likelihood: the mean raw surprise of the last few records compared
//!    with the distribution of raw surprise over a longer span (the idea of
//!    Numenta's anomaly likelihood): a noisy series does not alarm on its
//!    usual noise, a quiet one alarms on a small departure.
//!
//! The tail probability is mapped to [0, 1] with the same surprise scale
//! as the alerts ([`crate::incident::score`]). After a high score the scorer
//! stays quiet for a while (one report per incident), which is also what
//! the NAB benchmark rewards.

use std::collections::VecDeque;

use serde::Deserialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::incident::score;

/// Default number of past values the robust centre and spread come from.
pub const DEFAULT_HISTORY: usize = 600;
/// Default number of recent records averaged in the likelihood stage.
pub const DEFAULT_SHORT: usize = 5;
/// Default span of raw surprises the likelihood stage compares against.
pub const DEFAULT_LONG: usize = 500;
/// Default records scored 0 while the history fills.
pub const DEFAULT_WARMUP: usize = 50;
/// Default p-value counted as an incident (score 0.5 there).
pub const DEFAULT_P_THRESHOLD: f64 = 1e-5;
/// Default records kept quiet after an incident was reported.
pub const DEFAULT_QUIET_ROWS: usize = 200;

/// Configuration of a [`NumericScorer`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Records after an incident during which scores are held at 0.
    pub quiet_rows: usize,
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
        }
    }
}

/// Online scorer of one numeric series.
#[derive(Debug, Clone)]
pub struct NumericScorer {
    cfg: NumericConfig,
    values: VecDeque<f64>,
    raw: VecDeque<f64>,
    quiet_left: usize,
    scratch: Vec<f64>,
    normal: Normal,
}

/// Smallest spread relative to the centre, so a flat line does not divide
/// by zero yet any change of it stands out.
const REL_SPREAD_FLOOR: f64 = 1e-6;
const ABS_SPREAD_FLOOR: f64 = 1e-9;
/// Raw surprises are capped so one wild value cannot dominate the reference.
const MAX_RAW: f64 = 50.0;

impl NumericScorer {
    pub fn new(cfg: NumericConfig) -> Self {
        let cfg = NumericConfig {
            history: cfg.history.max(3),
            short: cfg.short.max(1),
            long: cfg.long.max(cfg.short + 2),
            ..cfg
        };
        Self {
            values: VecDeque::with_capacity(cfg.history + 1),
            raw: VecDeque::with_capacity(cfg.long + 1),
            quiet_left: 0,
            scratch: Vec::with_capacity(cfg.history),
            // Mean 0, sd 1 is always valid; the fallback never runs.
            normal: Normal::standard(),
            cfg,
        }
    }

    /// Scores `value` against everything before it, then learns it.
    pub fn score(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let raw = self.raw_surprise(value);
        self.values.push_back(value);
        if self.values.len() > self.cfg.history {
            self.values.pop_front();
        }
        let Some(raw) = raw else { return 0.0 };

        // Likelihood stage: recent mean raw surprise vs the reference span.
        let reference = self.raw.len();
        let mut out = 0.0;
        if reference >= self.cfg.short + 2 && self.values.len() > self.cfg.warmup {
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
                .take(self.cfg.short - 1)
                .chain(std::iter::once(&raw));
            let k = self.cfg.short.min(reference + 1) as f64;
            let short_mean = recent.sum::<f64>() / k;
            // Standard error of a k-mean, so the test is about the mean.
            let z = (short_mean - mean) / (sd / k.sqrt());
            let p = self.normal.sf(z);
            out = score(p, self.cfg.p_threshold);
        }
        self.raw.push_back(raw);
        if self.raw.len() > self.cfg.long {
            self.raw.pop_front();
        }
        if self.quiet_left > 0 {
            self.quiet_left -= 1;
            return 0.0;
        }
        if out >= 0.5 {
            self.quiet_left = self.cfg.quiet_rows;
        }
        out
    }

    /// Robust |z| of `value` against the history, `None` while too short.
    fn raw_surprise(&mut self, value: f64) -> Option<f64> {
        if self.values.len() < 3 {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(self.values.iter().copied());
        let med = median(&mut self.scratch);
        for v in self.scratch.iter_mut() {
            *v = (*v - med).abs();
        }
        let mad = median(&mut self.scratch);
        let mean_abs = self.scratch.iter().sum::<f64>() / self.scratch.len() as f64;
        let spread = (1.4826 * mad)
            .max(1.2533 * mean_abs)
            .max(REL_SPREAD_FLOOR * med.abs())
            .max(ABS_SPREAD_FLOOR);
        Some(((value - med).abs() / spread).min(MAX_RAW))
    }
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
