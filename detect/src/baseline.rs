//! Rolling baselines: what a series' next window is expected to look like.
//!
//! Both baselines are exponentially weighted with weight
//! `max(1 / n, alpha)` for the n-th window, so the warm-up is a plain average
//! and afterwards old windows fade. The caller feeds only windows it judged
//! normal, so an incident does not poison its own baseline.
//!
//! Seasonality ([`Season`]): a count baseline also learns the mean count per
//! window of every hour of the day (UTC) and of every day of the week, and
//! keeps a second, deseasonalized level next to the plain one. Its forecast
//! `level * profile(hour) * factor(weekday)` replaces the plain one once each
//! hour has been seen on at least 2 days and the seasonal forecast has made
//! clearly smaller errors than the plain one on the same windows (the data
//! has a daily shape); weekday factors join once every weekday was seen in
//! 2 weeks.

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

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;
const WEEK_US: i64 = 7 * DAY_US;
/// Days an hour of the day must have been seen on before the profile is
/// used for it.
const SEASON_MIN_DAYS: u8 = 2;
/// Weeks every weekday must have been seen in before weekday factors are
/// used.
const SEASON_MIN_WEEKS: u8 = 2;
/// A day folded into an hour's mean weighs at least 1 / this: the profile
/// remembers about this many days.
const HOUR_MEMORY_DAYS: f32 = 5.0;
/// Likewise for a weekday's mean, in weeks.
const WEEKDAY_MEMORY_WEEKS: f32 = 4.0;
/// Once an hour (weekday) is established, a new day (week) moves its mean
/// by at most this factor: a robust update.
const FOLD_CLIP: f32 = 2.0;
/// The seasonal forecast is used when its mean squared error is below this
/// share of the plain forecast's, over the same windows (the last week).
const SEASON_GAIN: f64 = 0.8;
/// Windows the seasonal forecast must have been scored on first.
const SEASON_MIN_WINDOWS: u32 = 120;
/// Smallest profile factor: an hour that was always silent still gets a
/// small share of the level.
const MIN_FACTOR: f64 = 0.02;
/// Neighbouring hours whose means differ by more than this factor are a
/// step, not a curve: the profile is not interpolated across it.
const STEP_RATIO: f64 = 1.5;

/// What a count baseline's update needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountParams {
    /// Weight of the newest window (`baseline_alpha`).
    pub alpha: f64,
    /// The window length: seasonality needs windows of at most an hour.
    pub window_us: i64,
    /// Learn and use the daily/weekly profile (`seasonality`).
    pub seasonal: bool,
}

impl CountParams {
    fn seasonal(&self) -> bool {
        self.seasonal && self.window_us > 0 && self.window_us <= HOUR_US
    }
}

/// The baseline's forecast for one window's event count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountForecast {
    pub mean: f64,
    /// Variance of the one-step-ahead error, never below `mean` (Poisson).
    pub var: f64,
    /// Made by the seasonal model.
    pub seasonal: bool,
}

impl CountForecast {
    pub fn dist(&self) -> Option<CountDist> {
        CountDist::new(self.mean, self.var)
    }

    /// The forecast with mean and variance times `factor` (the same
    /// variance-to-mean ratio).
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            mean: self.mean * factor,
            var: self.var * factor,
            ..self
        }
    }
}

/// Exponentially weighted level and one-step-ahead error variance of a
/// count, and its seasonal profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountBaseline {
    windows: u32,
    level: f64,
    /// EW mean of squared residuals against the forecast made before the
    /// window: it includes the lag of the level under slow drift, which
    /// keeps the test honest when the rate moves.
    err_var: f64,
    /// Allocated with the first window when seasonality is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    season: Option<Box<Season>>,
}

impl CountBaseline {
    /// Number of windows folded in so far.
    pub fn windows(&self) -> u32 {
        self.windows
    }

    /// Forgets the levels: the next windows are a new warm-up. The daily
    /// and weekly profile stays (a new level has the same shape).
    pub fn reset(&mut self) {
        let season = self.season.take().map(|mut s| {
            s.reset_level();
            s
        });
        *self = Self {
            season,
            ..Self::default()
        };
    }

    /// The plain forecast: the level, whatever the time.
    fn plain(&self) -> CountForecast {
        let mean = self.level.max(0.0);
        CountForecast {
            mean,
            var: self.err_var.max(mean),
            seasonal: false,
        }
    }

    /// The forecast for the window starting at `window_start_us`.
    pub fn predict(&self, window_start_us: i64) -> CountForecast {
        self.season
            .as_deref()
            .and_then(|s| s.forecast(window_start_us))
            .unwrap_or_else(|| self.plain())
    }

    /// Folds in a window judged normal (or a warm-up window).
    pub fn update(&mut self, window_start_us: i64, count: f64, p: &CountParams, clip: bool) {
        let f = self.predict(window_start_us);
        let x = if clip && self.windows >= CLIP_MIN_WINDOWS {
            let sd = f.var.sqrt();
            count.clamp(f.mean - CLIP_SIGMAS * sd, f.mean + CLIP_SIGMAS * sd)
        } else {
            count
        };
        if p.seasonal() {
            let plain = self.plain().mean;
            let s = self.season.get_or_insert_with(Box::default);
            s.score(window_start_us, count, plain, p.window_us);
            s.observe(window_start_us, count, x, true, p.window_us);
            s.fold_level(window_start_us, x, p.alpha);
        }
        self.windows = self.windows.saturating_add(1);
        if self.windows == 1 {
            self.level = x;
            return;
        }
        let resid = x - self.level;
        // Residual samples are one fewer than windows.
        let w_var = (1.0 / f64::from(self.windows - 1)).max(p.alpha);
        self.err_var += w_var * (resid * resid - self.err_var);
        let w = (1.0 / f64::from(self.windows)).max(p.alpha);
        self.level += w * resid;
    }

    /// A window not folded in (judged anomalous): the profile still learns
    /// from it while it is young, so that a daily pattern the plain
    /// baseline calls anomalous can be learned at all.
    pub fn skip(&mut self, window_start_us: i64, count: f64, p: &CountParams) {
        if p.seasonal() {
            let plain = self.plain().mean;
            let s = self.season.get_or_insert_with(Box::default);
            s.score(window_start_us, count, plain, p.window_us);
            s.observe(window_start_us, count, count, false, p.window_us);
        }
    }

    /// The daily profile's factor for the window starting at `t`, when
    /// established (for tests and diagnostics).
    pub fn season_factor(&self, window_start_us: i64) -> Option<f64> {
        self.season
            .as_deref()
            .and_then(|s| s.factor(window_start_us))
    }
}

/// The daily and weekly shape of a count series (232 bytes,
/// allocated per count series once it has a window).
///
/// Every hour of the day has the mean count per window over the last days
/// (`hour`), updated once per day from the hour's windows, and every day of
/// the week the mean over the last weeks (`weekday`); both normalized to a
/// mean of 1 they give the multiplicative profile. Until an hour is
/// established, every window of it is learned (so that a recurring pattern
/// the plain baseline flags is learned too); afterwards only normal windows,
/// and a day moves an hour's mean by at most a factor of 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Season {
    /// Mean count per window of each hour of the day (UTC), weekday
    /// factors divided out once they are used.
    hour: [f32; 24],
    /// Days folded into each hour (saturating).
    hour_days: [u8; 24],
    /// Mean count per window of each day of the week (Monday first), the
    /// hourly profile divided out once it is used.
    weekday: [f32; 7],
    weekday_weeks: [u8; 7],
    /// The hour being accumulated (hours since the epoch), its sum and
    /// windows.
    acc_hour: i64,
    acc_hour_sum: f32,
    acc_hour_n: u32,
    /// The day being accumulated (days since the epoch), likewise.
    acc_day: i64,
    acc_day_sum: f32,
    acc_day_n: u32,
    /// Deseasonalized level and the normal windows folded into it.
    windows: u32,
    level: f64,
    /// Windows both forecasts were scored on (normal or not: a daily spike
    /// is where the plain forecast fails), and the EW squared error of the
    /// seasonal and of the plain forecast over them.
    scored: u32,
    err_sq: f64,
    plain_err_sq: f64,
    /// The seasonal error's variance-to-mean ratio on normal windows.
    dispersion: f64,
}

impl Default for Season {
    fn default() -> Self {
        Self {
            hour: [0.0; 24],
            hour_days: [0; 24],
            weekday: [0.0; 7],
            weekday_weeks: [0; 7],
            acc_hour: i64::MIN,
            acc_hour_sum: 0.0,
            acc_hour_n: 0,
            acc_day: i64::MIN,
            acc_day_sum: 0.0,
            acc_day_n: 0,
            windows: 0,
            level: 0.0,
            scored: 0,
            err_sq: 0.0,
            plain_err_sq: 0.0,
            dispersion: 1.0,
        }
    }
}

fn hour_of_day(t: i64) -> usize {
    t.div_euclid(HOUR_US).rem_euclid(24) as usize
}

/// Monday = 0 (1970-01-01 was a Thursday).
fn weekday_of(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Folds one period's mean `m` into a slot seen `n` times before.
fn fold(slot: &mut f32, n: &mut u8, m: f32, min_n: u8, memory: f32) {
    let m = if *n >= min_n {
        m.clamp(*slot / FOLD_CLIP, *slot * FOLD_CLIP + 1.0)
    } else {
        m
    };
    *n = n.saturating_add(1);
    let w = (1.0 / f32::from(*n)).max(1.0 / memory);
    *slot += w * (m - *slot);
}

impl Season {
    fn reset_level(&mut self) {
        self.windows = 0;
        self.level = 0.0;
        self.scored = 0;
        self.err_sq = 0.0;
        self.plain_err_sq = 0.0;
        self.dispersion = 1.0;
    }

    fn weekly_ready(&self) -> bool {
        self.weekday_weeks.iter().all(|n| *n >= SEASON_MIN_WEEKS)
    }

    /// The weekday factor of day `day`, 1 until weekdays are established.
    fn weekday_factor(&self, day: i64) -> f64 {
        if !self.weekly_ready() {
            return 1.0;
        }
        let mean = self.weekday.iter().map(|v| f64::from(*v)).sum::<f64>() / 7.0;
        if mean > 0.0 {
            (f64::from(self.weekday[weekday_of(day)]) / mean).max(MIN_FACTOR)
        } else {
            1.0
        }
    }

    /// The hourly profile's factor at `t`, when its hour is established:
    /// interpolated linearly between the centres of neighbouring hours (a
    /// smooth daily curve), unless they differ by more than
    /// `STEP_RATIO` (a step, such as a job starting on the hour).
    fn hour_factor(&self, t: i64) -> Option<f64> {
        let h = hour_of_day(t);
        if self.hour_days[h] < SEASON_MIN_DAYS {
            return None;
        }
        let (sum, n) = self
            .hour
            .iter()
            .zip(self.hour_days)
            .filter(|(_, d)| *d >= SEASON_MIN_DAYS)
            .fold((0.0, 0u32), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
        let mean = sum / f64::from(n.max(1));
        if mean <= 0.0 {
            return None;
        }
        let at = f64::from(self.hour[h]);
        // Position in the hour, -0.5 (start) to 0.5 (end), from its centre.
        let off = t.rem_euclid(HOUR_US) as f64 / HOUR_US as f64 - 0.5;
        let nb = (h as i64 + if off < 0.0 { -1 } else { 1 }).rem_euclid(24) as usize;
        let other = f64::from(self.hour[nb]);
        let smooth = self.hour_days[nb] >= SEASON_MIN_DAYS
            && at.min(other) > 0.0
            && at.max(other) <= STEP_RATIO * at.min(other);
        let v = if smooth {
            at + off.abs() * (other - at)
        } else {
            at
        };
        Some((v / mean).max(MIN_FACTOR))
    }

    /// The seasonal factor of the window starting at `t` (hourly profile
    /// times weekday factor), when its hour is established.
    pub fn factor(&self, t: i64) -> Option<f64> {
        self.hour_factor(t)
            .map(|f| f * self.weekday_factor(t.div_euclid(DAY_US)))
    }

    /// The seasonal forecast, when it applies to `t` and has proven better
    /// than the plain one.
    fn forecast(&self, t: i64) -> Option<CountForecast> {
        let f = self.factor(t)?;
        if self.scored < SEASON_MIN_WINDOWS || self.err_sq >= SEASON_GAIN * self.plain_err_sq {
            return None;
        }
        let mean = (self.level * f).max(0.0);
        Some(CountForecast {
            mean,
            var: mean * self.dispersion.max(1.0),
            seasonal: true,
        })
    }

    /// Accumulates one window into its hour and day, folding the previous
    /// hour or day when the window starts a new one. `raw` is the count,
    /// `clipped` the count after the baseline's outlier clip.
    fn observe(&mut self, t: i64, raw: f64, clipped: f64, normal: bool, window_us: i64) {
        let hour = t.div_euclid(HOUR_US);
        let day = t.div_euclid(DAY_US);
        let per_hour = (HOUR_US / window_us.max(1)).max(1);
        if hour != self.acc_hour {
            if self.acc_hour != i64::MIN && i64::from(self.acc_hour_n) * 2 >= per_hour {
                let h = hour_of_day(self.acc_hour * HOUR_US);
                let m = self.acc_hour_sum / self.acc_hour_n as f32;
                fold(
                    &mut self.hour[h],
                    &mut self.hour_days[h],
                    m,
                    SEASON_MIN_DAYS,
                    HOUR_MEMORY_DAYS,
                );
            }
            self.acc_hour = hour;
            self.acc_hour_sum = 0.0;
            self.acc_hour_n = 0;
        }
        if day != self.acc_day {
            if self.acc_day != i64::MIN && i64::from(self.acc_day_n) * 2 >= per_hour * 24 {
                let w = weekday_of(self.acc_day);
                let m = self.acc_day_sum / self.acc_day_n as f32;
                fold(
                    &mut self.weekday[w],
                    &mut self.weekday_weeks[w],
                    m,
                    SEASON_MIN_WEEKS,
                    WEEKDAY_MEMORY_WEEKS,
                );
            }
            self.acc_day = day;
            self.acc_day_sum = 0.0;
            self.acc_day_n = 0;
        }
        let h = hour_of_day(t);
        let young = self.hour_days[h] < SEASON_MIN_DAYS;
        if !(normal || young) {
            return;
        }
        // Young hours learn the raw count: a recurring spike must not be
        // clipped to the plain baseline's idea of normal.
        let x = if young { raw } else { clipped };
        self.acc_hour_sum += (x / self.weekday_factor(day)) as f32;
        self.acc_hour_n = self.acc_hour_n.saturating_add(1);
        self.acc_day_sum += (x / self.hour_factor(t).unwrap_or(1.0)) as f32;
        self.acc_day_n = self.acc_day_n.saturating_add(1);
    }

    /// Scores the seasonal and the plain forecast (mean `plain_mean`) on a
    /// window with count `x`. The comparison remembers about a week: a
    /// daily spike, or a weekend, weighs in until it comes again.
    fn score(&mut self, t: i64, x: f64, plain_mean: f64, window_us: i64) {
        let Some(f) = self.factor(t) else { return };
        if self.windows == 0 {
            return;
        }
        let pred = (self.level * f).max(0.0);
        let (e, ep) = (x - pred, x - plain_mean);
        self.scored = self.scored.saturating_add(1);
        let w = (1.0 / f64::from(self.scored)).max(window_us as f64 / WEEK_US as f64);
        self.err_sq += w * (e * e - self.err_sq);
        self.plain_err_sq += w * (ep * ep - self.plain_err_sq);
    }

    /// Folds a normal window into the deseasonalized level and the
    /// dispersion.
    fn fold_level(&mut self, t: i64, x: f64, alpha: f64) {
        let Some(f) = self.factor(t) else { return };
        if self.windows > 0 {
            let pred = (self.level * f).max(0.0);
            let e = x - pred;
            let d = (e * e / pred.max(1.0)).min(MAX_DISPERSION_SAMPLE * 4.0);
            let w = (1.0 / f64::from(self.windows)).max(alpha);
            self.dispersion += w * (d - self.dispersion);
        }
        self.windows = self.windows.saturating_add(1);
        let w = (1.0 / f64::from(self.windows)).max(alpha);
        self.level += w * (x / f - self.level);
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

    const PARAMS: CountParams = CountParams {
        alpha: 0.05,
        window_us: 60_000_000,
        seasonal: true,
    };

    #[test]
    fn count_baseline_warms_up_to_the_mean() {
        let mut b = CountBaseline::default();
        for (i, x) in [10.0, 12.0, 8.0, 10.0].iter().enumerate() {
            b.update(i as i64, *x, &PARAMS, true);
        }
        let f = b.predict(0);
        assert!((f.mean - 10.0).abs() < 1e-9);
        assert!(f.var >= f.mean);
        assert_eq!(b.windows(), 4);
    }

    /// 2024-04-29T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_714_348_800_000_000;
    const MIN_US: i64 = 60_000_000;

    /// Feeds `minutes` windows of `rate(minute)` (plus a small deterministic
    /// wiggle) to a seasonal and a plain baseline.
    fn feed(minutes: i64, rate: impl Fn(i64) -> f64) -> (CountBaseline, CountBaseline) {
        let plain_params = CountParams {
            seasonal: false,
            ..PARAMS
        };
        let (mut seasonal, mut plain) = (CountBaseline::default(), CountBaseline::default());
        for m in 0..minutes {
            let x = (rate(m) * (1.0 + 0.01 * ((m * 7919) % 13 - 6) as f64 / 6.0)).round();
            let t = MONDAY + m * MIN_US;
            seasonal.update(t, x, &PARAMS, true);
            plain.update(t, x, &plain_params, true);
        }
        (seasonal, plain)
    }

    #[test]
    fn a_smooth_daily_curve_is_followed_once_learned() {
        let day = 1440.0;
        let rate = |m: i64| 1000.0 * (1.0 + 0.5 * (std::f64::consts::TAU * m as f64 / day).sin());
        let (seasonal, plain) = feed(4 * 1440, rate);
        // Where the curve is steepest (midnight, rising), the plain level lags.
        let m = 4 * 1440;
        let t = MONDAY + m * MIN_US;
        let (s, p) = (seasonal.predict(t), plain.predict(t));
        assert!(s.seasonal && !p.seasonal);
        let truth = rate(m);
        assert!((s.mean - truth).abs() < 0.02 * truth, "{s:?} vs {truth}");
        assert!((p.mean - truth).abs() > 0.03 * truth, "{p:?} vs {truth}");
        assert!(s.var < p.var, "{s:?} {p:?}");
        // The profile: 1.5 at 06:00, 0.5 at 18:00, interpolated between hours.
        let f = |h: f64| seasonal.season_factor(MONDAY + (h * 60.0) as i64 * MIN_US);
        assert!(
            f(6.0).is_some_and(|v| (v - 1.5).abs() < 0.03),
            "{:?}",
            f(6.0)
        );
        assert!(
            f(18.0).is_some_and(|v| (v - 0.5).abs() < 0.03),
            "{:?}",
            f(18.0)
        );
        // A reset (a new level accepted) keeps the profile.
        let mut reset = seasonal.clone();
        reset.reset();
        assert_eq!(reset.windows(), 0);
        assert_eq!(reset.season_factor(t), seasonal.season_factor(t));
    }

    #[test]
    fn a_step_on_the_hour_is_not_smoothed_away() {
        // 10 a minute, 100 from 02:00 to 03:00.
        let rate = |m: i64| if m % 1440 / 60 == 2 { 100.0 } else { 10.0 };
        let (seasonal, plain) = feed(3 * 1440 + 120, rate);
        let at = |h: i64, min: i64| MONDAY + (3 * 1440 + h * 60 + min) * MIN_US;
        for (h, min, want) in [(2, 0, 100.0), (2, 59, 100.0), (1, 59, 10.0), (3, 0, 10.0)] {
            let f = seasonal.predict(at(h, min));
            assert!(f.seasonal, "{h}:{min} {f:?}");
            assert!((f.mean - want).abs() < 0.1 * want, "{h}:{min} {f:?}");
        }
        // The plain baseline expects the night at 02:00.
        assert!(plain.predict(at(2, 0)).mean < 20.0);
    }

    #[test]
    fn weekday_factors_join_after_two_weeks() {
        // 100 a minute on weekdays, 30 at weekends.
        let rate = |m: i64| if m / 1440 % 7 >= 5 { 30.0 } else { 100.0 };
        let sat = |week: i64| MONDAY + (week * 7 + 5) * 1440 * MIN_US;
        let mon = |week: i64| MONDAY + week * 7 * 1440 * MIN_US;
        // After a week and a half: no weekday factors yet.
        let (seasonal, _) = feed(12 * 1440, rate);
        assert!(seasonal.predict(sat(1)).mean > 90.0);
        // Through Friday of the fourth week: Saturday is expected quiet,
        // and after the weekend Monday busy again.
        let (seasonal, plain) = feed(26 * 1440, rate);
        let f = seasonal.predict(sat(3));
        assert!(f.seasonal && (f.mean - 30.0).abs() < 3.0, "{f:?}");
        assert!(plain.predict(sat(3)).mean > 90.0);
        let (seasonal, _) = feed(28 * 1440, rate);
        let f = seasonal.predict(mon(4));
        assert!(f.seasonal && (f.mean - 100.0).abs() < 10.0, "{f:?}");
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
