//! Rolling baselines: what a series' next window is expected to look like.
//!
//! Both baselines are exponentially weighted with weight
//! `max(1 / n, alpha)` for the n-th window, so the warm-up is a plain average
//! and afterwards old windows fade. The caller feeds only windows it judged
//! normal, so an incident does not poison its own baseline.
//!
//! Seasonality seam: [`CountBaseline::predict`] and `update` take the
//! window's start time. A daily/weekly model would keep a multiplicative
//! profile per slot (hour of day, hour of week) next to the level, predict
//! `level * profile[slot(t)]` and update both from the residual; callers need
//! not change.

use serde::{Deserialize, Serialize};

use crate::stats::{CountDist, ErrorDist};

/// Normal windows are clipped to this many standard deviations before they
/// update a count baseline (a Huber-style guard against near-misses).
const CLIP_SIGMAS: f64 = 4.0;
/// Clipping starts once this many windows have been folded in, warm-up
/// included, so one burst early in the warm-up cannot poison the baseline.
const CLIP_MIN_WINDOWS: u32 = 5;
/// Squared standardized residuals above this are clipped before they update
/// the error dispersion.
const MAX_DISPERSION_SAMPLE: f64 = 25.0;
/// Below this variance inflation the error count is treated as binomial.
const MIN_OVERDISPERSION: f64 = 1.1;

/// The baseline's forecast for one window's event count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountForecast {
    pub mean: f64,
    /// Variance of the one-step-ahead error, never below `mean` (Poisson).
    pub var: f64,
}

impl CountForecast {
    pub fn dist(&self) -> Option<CountDist> {
        CountDist::new(self.mean, self.var)
    }
}

/// Exponentially weighted level and one-step-ahead error variance of a count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountBaseline {
    windows: u32,
    level: f64,
    /// EW mean of squared residuals against the forecast made before the
    /// window: it includes the lag of the level under slow drift, which
    /// keeps the test honest when the rate moves.
    err_var: f64,
}

impl CountBaseline {
    /// Number of windows folded in so far.
    pub fn windows(&self) -> u32 {
        self.windows
    }

    /// Forgets everything: the next windows are a new warm-up.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The forecast for the window starting at `_window_start_us`.
    pub fn predict(&self, _window_start_us: i64) -> CountForecast {
        let mean = self.level.max(0.0);
        CountForecast {
            mean,
            var: self.err_var.max(mean),
        }
    }

    /// Folds in a window judged normal (or a warm-up window).
    pub fn update(&mut self, window_start_us: i64, count: f64, alpha: f64, clip: bool) {
        let f = self.predict(window_start_us);
        let x = if clip && self.windows >= CLIP_MIN_WINDOWS {
            let sd = f.var.sqrt();
            count.clamp(f.mean - CLIP_SIGMAS * sd, f.mean + CLIP_SIGMAS * sd)
        } else {
            count
        };
        self.windows = self.windows.saturating_add(1);
        if self.windows == 1 {
            self.level = x;
            return;
        }
        let resid = x - self.level;
        // Residual samples are one fewer than windows.
        let w_var = (1.0 / f64::from(self.windows - 1)).max(alpha);
        self.err_var += w_var * (resid * resid - self.err_var);
        let w = (1.0 / f64::from(self.windows)).max(alpha);
        self.level += w * resid;
    }
}

/// Exponentially weighted error ratio and dispersion of a series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RatioBaseline {
    windows: u32,
    /// EW mean events and errors per window (non-empty windows only).
    events: f64,
    errors: f64,
    /// EW mean of the squared standardized error-count residual: 1 for a
    /// binomial, larger when errors come in bursts.
    dispersion: f64,
}

impl RatioBaseline {
    pub fn windows(&self) -> u32 {
        self.windows
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The baseline error ratio, shrunk towards the prior.
    pub fn ratio(&self, alpha: f64, prior_ratio: f64, prior_events: f64) -> f64 {
        // Scale the EW means back to counts over the effective memory.
        let memory = if self.windows == 0 {
            0.0
        } else {
            (f64::from(self.windows)).min(1.0 / alpha)
        };
        let e = self.errors * memory + prior_ratio * prior_events;
        let n = self.events * memory + prior_events;
        if n > 0.0 {
            e / n
        } else {
            prior_ratio
        }
    }

    /// The beta-binomial concentration, or `None` for a binomial.
    pub fn concentration(&self) -> Option<f64> {
        let d = self.dispersion;
        if self.windows < 2 || d < MIN_OVERDISPERSION {
            return None;
        }
        // Inflation at the typical window size n: (phi + n) / (phi + 1) = d.
        let n = self.events.max(1.0);
        if d >= n {
            return Some(1.0);
        }
        Some(((n - d) / (d - 1.0)).max(1.0))
    }

    /// The error-count distribution of a window with `n` events.
    pub fn dist(&self, n: u64, alpha: f64, prior_ratio: f64, prior_events: f64) -> ErrorDist {
        ErrorDist::new(
            n,
            self.ratio(alpha, prior_ratio, prior_events),
            self.concentration(),
        )
    }

    /// Folds in a non-empty window judged normal.
    pub fn update(
        &mut self,
        events: u64,
        errors: u64,
        alpha: f64,
        prior_ratio: f64,
        prior_events: f64,
    ) {
        if events == 0 {
            return;
        }
        let n = events as f64;
        let p = self
            .ratio(alpha, prior_ratio, prior_events)
            .clamp(1e-6, 1.0 - 1e-6);
        let sd = (n * p * (1.0 - p)).sqrt();
        // Same guard as the counts: a burst inside the warm-up is clipped.
        let errors = if self.windows >= CLIP_MIN_WINDOWS {
            (errors as f64).min(n * p + CLIP_SIGMAS * sd * self.dispersion.max(1.0).sqrt())
        } else {
            errors as f64
        };
        let z = (errors - n * p) / sd;
        let z2 = (z * z).min(MAX_DISPERSION_SAMPLE);
        self.windows = self.windows.saturating_add(1);
        let w = (1.0 / f64::from(self.windows)).max(alpha);
        if self.windows == 1 {
            self.dispersion = 1.0;
        } else {
            self.dispersion += w * (z2 - self.dispersion);
        }
        self.events += w * (n - self.events);
        self.errors += w * (errors - self.errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_baseline_warms_up_to_the_mean() {
        let mut b = CountBaseline::default();
        for (i, x) in [10.0, 12.0, 8.0, 10.0].iter().enumerate() {
            b.update(i as i64, *x, 0.05, true);
        }
        let f = b.predict(0);
        assert!((f.mean - 10.0).abs() < 1e-9);
        assert!(f.var >= f.mean);
        assert_eq!(b.windows(), 4);
    }

    #[test]
    fn ratio_prior_keeps_zero_baselines_humble() {
        let mut b = RatioBaseline::default();
        for _ in 0..20 {
            b.update(100, 0, 0.05, 0.01, 100.0);
        }
        let r = b.ratio(0.05, 0.01, 100.0);
        assert!(r > 0.0 && r < 0.01, "{r}");
        assert!(b.concentration().is_none());
    }
}
