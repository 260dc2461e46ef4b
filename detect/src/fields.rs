//! Numeric fields per window (e.g. `duration_ms`): the mean and a high
//! quantile of each configured field, per service, judged against
//! exponentially weighted baselines of their logarithms (latencies are
//! closer to log-normal than normal, and a regression is a ratio).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

/// Log-histogram bucket ratio: quantiles are within about 5%.
const BUCKET_RATIO_LN: f64 = 0.0953; // ln(1.1)
/// Values at or below this fall in the lowest bucket.
const MIN_POSITIVE: f64 = 1e-6;
/// Smallest spread of a baseline, in natural-log units (2%): a perfectly
/// steady field must not make every wiggle infinitely surprising.
const MIN_SD_LN: f64 = 0.02;
/// Windows folded in before clipping starts.
const CLIP_MIN_WINDOWS: u32 = 5;
/// Normal windows are clipped to this many standard deviations.
const CLIP_SIGMAS: f64 = 4.0;

/// One field's values in one window: count, sum and a sparse log-bucket
/// histogram (at most a few hundred buckets whatever the volume).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FieldAcc {
    pub n: u64,
    pub sum: f64,
    hist: BTreeMap<i32, u64>,
}

impl FieldAcc {
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.n += 1;
        self.sum += v;
        let b = (v.max(MIN_POSITIVE).ln() / BUCKET_RATIO_LN).floor() as i32;
        *self.hist.entry(b).or_default() += 1;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// The `q` quantile: the upper edge of the bucket holding it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = (q * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.hist {
            seen += c;
            if seen >= rank {
                return Some((f64::from(*b + 1) * BUCKET_RATIO_LN).exp());
            }
        }
        None
    }
}

/// Exponentially weighted mean and variance of ln(value) per window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LogBaseline {
    windows: u32,
    mean: f64,
    var: f64,
}

impl LogBaseline {
    pub fn windows(&self) -> u32 {
        self.windows
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The expected value (geometric mean) and the spread in log units.
    pub fn expected(&self) -> (f64, f64) {
        (self.mean.exp(), self.var.sqrt().max(MIN_SD_LN))
    }

    /// Upper-tail probability of `x`.
    pub fn p_high(&self, x: f64) -> f64 {
        let (_, sd) = self.expected();
        let z = (x.max(MIN_POSITIVE).ln() - self.mean) / sd;
        let p = 0.5 * erfc(z / std::f64::consts::SQRT_2);
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    pub fn update(&mut self, x: f64, alpha: f64) {
        let mut l = x.max(MIN_POSITIVE).ln();
        if self.windows >= CLIP_MIN_WINDOWS {
            let sd = self.var.sqrt().max(MIN_SD_LN);
            l = l.clamp(self.mean - CLIP_SIGMAS * sd, self.mean + CLIP_SIGMAS * sd);
        }
        self.windows = self.windows.saturating_add(1);
        if self.windows == 1 {
            self.mean = l;
            return;
        }
        let d = l - self.mean;
        let w_var = (1.0 / f64::from(self.windows - 1)).max(alpha);
        self.var += w_var * (d * d - self.var);
        let w = (1.0 / f64::from(self.windows)).max(alpha);
        self.mean += w * d;
    }
}

/// Both statistics of one field of one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FieldSeries {
    pub mean: LogBaseline,
    pub mean_track: crate::incident::Track,
    pub high: LogBaseline,
    pub high_track: crate::incident::Track,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_within_ten_percent() {
        let mut a = FieldAcc::default();
        for i in 1..=1000 {
            a.add(f64::from(i));
        }
        let q = a.quantile(0.95).unwrap_or_default();
        assert!((950.0..=1045.0).contains(&q), "{q}");
        assert_eq!(a.mean(), Some(500.5));
        assert!(a.hist.len() < 80);
        a.add(f64::NAN);
        assert_eq!(a.n, 1000);
    }

    #[test]
    fn baseline_sees_a_doubling_not_a_wiggle() {
        let mut b = LogBaseline::default();
        for i in 0..50 {
            b.update(100.0 + f64::from(i % 5), 0.05);
        }
        assert!(b.p_high(104.0) > 0.01, "{}", b.p_high(104.0));
        assert!(b.p_high(200.0) < 1e-9, "{}", b.p_high(200.0));
        let (e, _) = b.expected();
        assert!((e - 102.0).abs() < 2.0, "{e}");
    }
}
