//! Tail probabilities for window counts.
//!
//! Event counts: Poisson when the baseline variance does not exceed its
//! mean, negative binomial (same mean, the baseline variance) when it does.
//! Error counts given the window's event count: binomial, or beta-binomial
//! when the baseline shows extra-binomial dispersion. Every function is total:
//! parameters are clamped into the valid domain and a failed evaluation
//! yields a p-value of 1 ("no evidence"), never a panic.

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};
use statrs::function::beta::checked_beta_reg;
use statrs::function::gamma::ln_gamma;

/// Smallest Poisson mean used: a silent baseline still has some chance of a
/// stray record.
const MIN_MEAN: f64 = 1e-3;
/// Error-ratio clamp, so that neither a zero nor a one baseline is certain.
const MIN_RATIO: f64 = 1e-9;
/// Relative size under which further terms of a tail sum are dropped.
const TAIL_EPS: f64 = 1e-17;

/// The predictive distribution of a window's event count. Serialized by
/// its parameters (a checkpoint restores the same distribution).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "CountParams", try_from = "CountParams")]
pub enum CountDist {
    Poisson(Poisson),
    NegBinomial(NegativeBinomial),
}

/// The parameters of a [`CountDist`], its serialized form.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CountParams {
    Poisson { mean: f64 },
    NegBinomial { r: f64, p: f64 },
}

impl From<CountDist> for CountParams {
    fn from(d: CountDist) -> Self {
        match d {
            CountDist::Poisson(d) => CountParams::Poisson { mean: d.lambda() },
            CountDist::NegBinomial(d) => CountParams::NegBinomial { r: d.r(), p: d.p() },
        }
    }
}

impl TryFrom<CountParams> for CountDist {
    type Error = String;
    fn try_from(p: CountParams) -> Result<Self, String> {
        match p {
            CountParams::Poisson { mean } => Poisson::new(mean)
                .map(CountDist::Poisson)
                .map_err(|e| format!("poisson({mean}): {e}")),
            CountParams::NegBinomial { r, p } => NegativeBinomial::new(r, p)
                .map(CountDist::NegBinomial)
                .map_err(|e| format!("negative binomial({r}, {p}): {e}")),
        }
    }
}

impl CountDist {
    /// Poisson(mean) when `var <= mean`, else the negative binomial with
    /// that mean and variance.
    pub fn new(mean: f64, var: f64) -> Option<Self> {
        let mean = if mean.is_finite() {
            mean.max(MIN_MEAN)
        } else {
            return None;
        };
        let var = if var.is_finite() { var } else { mean };
        if var > mean * (1.0 + 1e-9) {
            // statrs parametrization: mean = r (1-p) / p, var = mean / p.
            let p = (mean / var).clamp(1e-12, 1.0 - 1e-12);
            let r = mean * mean / (var - mean);
            if r.is_finite() && r > 0.0 {
                return NegativeBinomial::new(r, p).ok().map(CountDist::NegBinomial);
            }
        }
        Poisson::new(mean).ok().map(CountDist::Poisson)
    }

    fn cdf(&self, x: u64) -> f64 {
        let v = match self {
            CountDist::Poisson(d) => d.cdf(x),
            CountDist::NegBinomial(d) => d.cdf(x),
        };
        finite_prob(v)
    }

    /// P(X > x).
    fn sf(&self, x: u64) -> f64 {
        let v = match self {
            CountDist::Poisson(d) => d.sf(x),
            CountDist::NegBinomial(d) => d.sf(x),
        };
        finite_prob(v)
    }

    /// P(X >= x): the upper tail, for surges.
    pub fn p_at_least(&self, x: u64) -> f64 {
        if x == 0 {
            1.0
        } else {
            self.sf(x - 1)
        }
    }

    /// P(X <= x): the lower tail, for drops.
    pub fn p_at_most(&self, x: u64) -> f64 {
        self.cdf(x)
    }

    /// Smallest x with P(X <= x) >= q.
    pub fn quantile(&self, q: f64) -> u64 {
        let (mean, var) = match self {
            CountDist::Poisson(d) => (d.lambda(), d.lambda()),
            CountDist::NegBinomial(d) => {
                let m = d.r() * (1.0 - d.p()) / d.p();
                (m, m / d.p())
            }
        };
        let mut hi = (mean + 20.0 * var.sqrt() + 20.0).min(u64::MAX as f64 / 4.0) as u64;
        for _ in 0..8 {
            if self.cdf(hi) >= q {
                break;
            }
            hi = hi.saturating_mul(2);
        }
        let mut lo = 0u64;
        if self.cdf(0) >= q {
            return 0;
        }
        // Invariant: cdf(lo) < q <= cdf(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.cdf(mid) >= q {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

/// The distribution of a window's error count given its event count `n`:
/// binomial with the baseline ratio, or beta-binomial with concentration
/// `phi` (variance inflated by `(phi + n) / (phi + 1)`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ErrorDist {
    n: u64,
    p: f64,
    phi: Option<f64>,
}

impl ErrorDist {
    pub fn new(n: u64, p: f64, phi: Option<f64>) -> Self {
        let p = if p.is_finite() {
            p.clamp(MIN_RATIO, 1.0 - MIN_RATIO)
        } else {
            0.5
        };
        let phi = phi.filter(|f| f.is_finite() && *f > 0.0);
        Self { n, p, phi }
    }

    fn ln_pmf(&self, k: u64) -> f64 {
        let n = self.n as f64;
        let k = k as f64;
        let ln_choose = ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0);
        match self.phi {
            None => ln_choose + k * self.p.ln() + (n - k) * (1.0 - self.p).ln(),
            Some(phi) => {
                let a = self.p * phi;
                let b = (1.0 - self.p) * phi;
                ln_choose + ln_beta(k + a, n - k + b) - ln_beta(a, b)
            }
        }
    }

    /// P(E >= k): the upper tail of the error count.
    pub fn p_at_least(&self, k: u64) -> f64 {
        if k == 0 {
            return 1.0;
        }
        if k > self.n {
            return 0.0;
        }
        if self.phi.is_none() {
            // Binomial: P(E >= k) = I_p(k, n - k + 1).
            let v = checked_beta_reg(k as f64, (self.n - k) as f64 + 1.0, self.p);
            return v.map(finite_prob).unwrap_or(1.0);
        }
        let mean = self.n as f64 * self.p;
        if (k as f64) <= mean {
            // Not in the upper tail: 1 - P(E < k), a short sum.
            let below: f64 = (0..k).map(|j| self.ln_pmf(j).exp()).sum();
            return finite_prob(1.0 - below);
        }
        // Past the mode the terms only shrink: stop once they stop mattering.
        let mut sum = 0.0;
        for j in k..=self.n {
            let t = self.ln_pmf(j).exp();
            sum += t;
            if t <= sum * TAIL_EPS {
                break;
            }
        }
        finite_prob(sum)
    }

    /// Smallest k with P(E <= k) >= q.
    pub fn quantile(&self, q: f64) -> u64 {
        let mut cum = 0.0;
        for k in 0..=self.n {
            cum += self.ln_pmf(k).exp();
            if cum >= q {
                return k;
            }
        }
        self.n
    }
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

fn finite_prob(v: f64) -> f64 {
    if v.is_nan() {
        1.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tails() {
        let Some(d) = CountDist::new(100.0, 50.0) else {
            panic!("valid parameters")
        };
        assert!(matches!(d, CountDist::Poisson(_)));
        assert!((d.p_at_least(0) - 1.0).abs() < 1e-12);
        assert!(d.p_at_least(100) > 0.4 && d.p_at_least(100) < 0.6);
        assert!(d.p_at_least(200) < 1e-15);
        assert!(d.p_at_most(50) < 1e-6);
        let q1 = d.quantile(0.01);
        let q99 = d.quantile(0.99);
        assert!((75..=79).contains(&q1), "{q1}");
        assert!((121..=125).contains(&q99), "{q99}");
    }

    #[test]
    fn negative_binomial_is_wider() {
        let (Some(p), Some(nb)) = (CountDist::new(100.0, 100.0), CountDist::new(100.0, 900.0))
        else {
            panic!("valid parameters")
        };
        assert!(matches!(nb, CountDist::NegBinomial(_)));
        assert!(nb.p_at_least(160) > p.p_at_least(160) * 1e3);
        assert!(nb.quantile(0.99) > p.quantile(0.99));
    }

    #[test]
    fn binomial_and_beta_binomial_tails() {
        let b = ErrorDist::new(300, 0.01, None);
        assert!(b.p_at_least(0) == 1.0);
        assert!(b.p_at_least(3) > 0.3);
        assert!(b.p_at_least(90) < 1e-30);
        let bb = ErrorDist::new(300, 0.01, Some(50.0));
        assert!(bb.p_at_least(15) > b.p_at_least(15));
        assert!(bb.p_at_least(1) > 0.5 && bb.p_at_least(1) <= 1.0);
        // Sum of the pmf is one.
        let total: f64 = (0..=300).map(|k| bb.ln_pmf(k).exp()).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert!(bb.quantile(0.99) >= b.quantile(0.99));
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        for (m, v) in [(0.0, 0.0), (f64::NAN, 1.0), (1e300, 1e301), (-5.0, 3.0)] {
            if let Some(d) = CountDist::new(m, v) {
                let _ = d.p_at_least(u64::MAX);
                let _ = d.p_at_most(u64::MAX);
                let _ = d.quantile(0.99);
            }
        }
        let e = ErrorDist::new(0, f64::NAN, Some(f64::INFINITY));
        assert_eq!(e.p_at_least(1), 0.0);
        assert_eq!(e.quantile(0.5), 0);
    }
}
