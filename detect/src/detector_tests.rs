//! Detector tests on simulated traffic: a deterministic generator, several
//! services with Poisson traffic and a slow daily-like rate variation.

use super::*;
use crate::alert::AlertStatus;
use proptest::prelude::*;

const MIN_US: i64 = 60_000_000;
/// 2024-05-01T10:00:00Z.
const T0: i64 = 1_714_557_600_000_000;

/// xorshift64*: tiny, deterministic, good enough for traffic.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

#[derive(Clone)]
struct Svc {
    name: &'static str,
    /// Mean records per minute.
    rate: f64,
    error_ratio: f64,
    /// Phase of the daily cycle, in radians.
    phase: f64,
}

/// A change injected into one service for minutes [from, to).
#[derive(Clone, Copy)]
enum Inject {
    ErrorRatio(f64),
    RateFactor(f64),
}

fn services() -> Vec<Svc> {
    vec![
        Svc {
            name: "checkout",
            rate: 300.0,
            error_ratio: 0.012,
            phase: 0.0,
        },
        Svc {
            name: "search",
            rate: 500.0,
            error_ratio: 0.005,
            phase: 1.0,
        },
        Svc {
            name: "auth",
            rate: 120.0,
            error_ratio: 0.02,
            phase: 2.0,
        },
        Svc {
            name: "billing",
            rate: 50.0,
            error_ratio: 0.01,
            phase: 3.0,
        },
        Svc {
            name: "catalog",
            rate: 220.0,
            error_ratio: 0.008,
            phase: 4.5,
        },
    ]
}

/// Records of `svcs` over `minutes` minutes, with up to 3 s of disorder;
/// `inject` = (service, first minute, end minute, change).
fn simulate(
    seed: u64,
    svcs: &[Svc],
    minutes: i64,
    inject: &[(&'static str, i64, i64, Inject)],
) -> Vec<(i64, &'static str, Level)> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for svc in svcs {
        let mut t = T0 as f64;
        let end = (T0 + minutes * MIN_US) as f64;
        loop {
            let minute = ((t as i64 - T0) / MIN_US).max(0);
            let day = 2.0 * std::f64::consts::PI * (t - T0 as f64) / (24.0 * 60.0 * MIN_US as f64);
            let mut rate = svc.rate * (1.0 + 0.4 * (day + svc.phase).sin());
            let mut ratio = svc.error_ratio;
            for (name, from, to, change) in inject {
                if *name == svc.name && (*from..*to).contains(&minute) {
                    match change {
                        Inject::ErrorRatio(r) => ratio = *r,
                        Inject::RateFactor(f) => rate *= f,
                    }
                }
            }
            if rate <= 0.0 {
                // Silent: skip to the next minute.
                t = (T0 + (minute + 1) * MIN_US) as f64;
                continue;
            }
            // Exponential gap at the current rate (per microsecond).
            t += -rng.unit().ln() / (rate / MIN_US as f64);
            if t >= end {
                break;
            }
            let level = if rng.unit() < ratio {
                Level::Error
            } else {
                Level::Info
            };
            let jitter = (rng.unit() * 3_000_000.0) as i64;
            out.push((t as i64, svc.name, level, jitter));
        }
    }
    // Arrival order: by time plus jitter, so records arrive up to 3 s late.
    out.sort_by_key(|(t, _, _, j)| t + j);
    out.into_iter().map(|(t, s, l, _)| (t, s, l)).collect()
}

fn run(cfg: DetectorConfig, records: &[(i64, &str, Level)]) -> (Vec<Alert>, Detector) {
    let Ok(mut d) = Detector::new(cfg) else {
        panic!("valid config")
    };
    let mut alerts = Vec::new();
    for (t, s, l) in records {
        alerts.extend(d.observe(&Event {
            event_time_us: *t,
            service: Some(s),
            level: *l,
            template_id: None,
            message: None,
            values: &[],
            metrics: &[],
        }));
    }
    alerts.extend(d.flush());
    (alerts, d)
}

fn describe(alerts: &[Alert]) -> String {
    alerts
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn steady_traffic_gives_no_alert() {
    for seed in [1, 7, 42] {
        let recs = simulate(seed, &services(), 360, &[]);
        let (alerts, d) = run(DetectorConfig::default(), &recs);
        assert!(alerts.is_empty(), "seed {seed}:\n{}", describe(&alerts));
        assert_eq!(d.late_records(), 0);
        assert_eq!(d.series_count(), 5);
        // 5 series, 360 minutes, the last one left open by flush.
        assert_eq!(d.windows_closed(), 5 * 359);
    }
}

#[test]
fn error_burst_fires_once_then_resolves() {
    let inject = [("checkout", 200, 205, Inject::ErrorRatio(0.30))];
    let recs = simulate(3, &services(), 300, &inject);
    let (alerts, _) = run(DetectorConfig::default(), &recs);
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
    let (fire, res) = (&alerts[0], &alerts[1]);
    assert_eq!(fire.status, AlertStatus::Firing);
    assert_eq!(fire.series.service, "checkout");
    assert_eq!(fire.series.signal, Signal::ErrorRatio);
    assert_eq!(fire.series.direction, Direction::High);
    assert_eq!(
        fire.window_start_us,
        T0 + 200 * MIN_US,
        "detected in the first window"
    );
    assert!(fire.observed > 0.2 && fire.expected < 0.03);
    assert!(fire.probability < 1e-6 && fire.score > 0.5);
    assert_eq!(fire.severity, crate::Severity::Critical);
    assert_eq!(res.status, AlertStatus::Resolved);
    assert_eq!(res.fingerprint, fire.fingerprint);
    assert_ne!(res.alert_id, fire.alert_id);
    assert_eq!(res.window_start_us, T0 + 207 * MIN_US, "3 normal windows");
    assert_eq!(fire.key(), "checkout/error_ratio");
}

#[test]
fn traffic_drop_fires_once_low() {
    let inject = [("search", 150, 160, Inject::RateFactor(0.05))];
    let recs = simulate(5, &services(), 240, &inject);
    let (alerts, _) = run(DetectorConfig::default(), &recs);
    let firing: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    assert_eq!(firing.len(), 1, "{}", describe(&alerts));
    let f = firing[0];
    assert_eq!(f.series.service, "search");
    assert_eq!(f.series.signal, Signal::EventCount);
    assert_eq!(f.series.direction, Direction::Low);
    assert_eq!(f.window_start_us, T0 + 150 * MIN_US);
    assert!(f.expected_low > f.observed);
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
    assert_eq!(alerts[1].window_start_us, T0 + 162 * MIN_US);
}

#[test]
fn silent_service_produces_empty_windows_and_a_drop() {
    // billing stops logging at minute 100: its empty windows must close.
    let mut recs = simulate(11, &services(), 200, &[]);
    recs.retain(|(t, s, _)| !(*s == "billing" && *t >= T0 + 100 * MIN_US));
    let (alerts, d) = run(DetectorConfig::default(), &recs);
    assert_eq!(d.windows_closed(), 5 * 199);
    let fire: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    assert_eq!(fire.len(), 1, "{}", describe(&alerts));
    assert_eq!(fire[0].series.service, "billing");
    assert_eq!(fire[0].series.direction, Direction::Low);
    assert_eq!(fire[0].observed, 0.0);
}

#[test]
fn silence_is_bounded_and_series_are_forgotten() {
    let cfg = DetectorConfig {
        max_silent_windows: 30,
        forget_after_windows: 60,
        ..DetectorConfig::default()
    };
    let Ok(mut d) = Detector::new(cfg) else {
        panic!("valid config")
    };
    let ev = |t: i64, s: &'static str| Event {
        event_time_us: t,
        service: Some(s),
        level: Level::Info,
        template_id: None,
        message: None,
        values: &[],
        metrics: &[],
    };
    d.observe(&ev(T0, "a"));
    d.observe(&ev(T0, "b"));
    // b keeps logging for 10 days of event time, a is silent.
    for m in 1..(10 * 1440) {
        d.observe(&ev(T0 + m * MIN_US, "b"));
    }
    assert_eq!(d.series_count(), 1, "{:?}", d.stats());
    // a: 1 data window + 30 empty ones, then nothing more.
    let before = d.windows_closed();
    let _ = d.flush();
    assert_eq!(d.windows_closed(), 31 + (10 * 1440 - 1), "{before}");
    assert_eq!(d.stats().forgotten_series, 1);
}

#[test]
fn replay_gives_identical_alerts() {
    let inject = [
        ("checkout", 100, 105, Inject::ErrorRatio(0.30)),
        ("auth", 120, 130, Inject::RateFactor(0.05)),
    ];
    let recs = simulate(9, &services(), 200, &inject);
    let (a, _) = run(DetectorConfig::default(), &recs);
    let (b, _) = run(DetectorConfig::default(), &recs);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let ids: std::collections::BTreeSet<_> = a.iter().map(|x| x.alert_id.clone()).collect();
    assert_eq!(ids.len(), a.len(), "ids are unique");
}

#[test]
fn out_of_order_within_lateness_and_late_records() {
    let Ok(mut d) = Detector::new(DetectorConfig::default()) else {
        panic!("valid config")
    };
    let ev = |t: i64| Event {
        event_time_us: T0 + t * 1_000_000,
        service: Some("a"),
        level: Level::Info,
        template_id: None,
        message: None,
        values: &[],
        metrics: &[],
    };
    d.observe(&ev(5));
    d.observe(&ev(65)); // watermark 55 s: window [0, 60) still open
    d.observe(&ev(58)); // within lateness: counted in [0, 60)
    assert_eq!(d.late_records(), 0);
    assert_eq!(d.windows_closed(), 0);
    let open = d
        .series
        .get("a")
        .and_then(|s| s.open.get(T0))
        .map(|c| (c.events, c.errors));
    assert_eq!(open, Some((2, 0)));
    d.observe(&ev(71)); // watermark 61 s: [0, 60) closes
    assert_eq!(d.windows_closed(), 1);
    d.observe(&ev(59)); // too late
    assert_eq!(d.late_records(), 1);
    d.observe(&ev(60)); // next window, still open
    assert_eq!(d.late_records(), 1);
    assert_eq!(
        d.series
            .get("a")
            .and_then(|s| s.open.get(T0 + MIN_US))
            .map(|c| (c.events, c.errors)),
        Some((3, 0))
    );
}

#[test]
fn a_new_service_needs_its_own_warmup() {
    // "newbie" starts at minute 100 with 200/min; at its 5th window it
    // surges tenfold (no alert: still warming up), at its 40th it surges
    // again (alert).
    let newbie = Svc {
        name: "newbie",
        rate: 200.0,
        error_ratio: 0.01,
        phase: 0.0,
    };
    let inject = [
        ("newbie", 0, 100, Inject::RateFactor(0.0)),
        ("newbie", 105, 106, Inject::RateFactor(10.0)),
        ("newbie", 140, 141, Inject::RateFactor(10.0)),
    ];
    let mut svcs = services();
    svcs.push(newbie);
    let recs: Vec<_> = simulate(13, &svcs, 180, &inject);
    let (alerts, _) = run(DetectorConfig::default(), &recs);
    let fire: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect();
    assert_eq!(fire.len(), 1, "{}", describe(&alerts));
    assert_eq!(fire[0].series.service, "newbie");
    assert_eq!(fire[0].series.direction, Direction::High);
    assert_eq!(fire[0].window_start_us, T0 + 140 * MIN_US);
}

#[test]
fn missing_service_is_unknown_and_max_series_evicts() {
    let cfg = DetectorConfig {
        max_series: 2,
        ..DetectorConfig::default()
    };
    let Ok(mut d) = Detector::new(cfg) else {
        panic!("valid config")
    };
    for (i, s) in [None, Some("a"), Some("b")].into_iter().enumerate() {
        d.observe(&Event {
            event_time_us: T0 + i as i64,
            service: s,
            level: Level::Warn,
            template_id: None,
            message: None,
            values: &[],
            metrics: &[],
        });
    }
    assert_eq!(d.series_count(), 2);
    assert!(
        !d.series.contains_key(UNKNOWN_SERVICE),
        "least recent evicted"
    );
    assert_eq!(d.stats().evicted_series, 1);
}

/// Prints the alerts of the error-burst scenario as JSON; the example in
/// `docs/alerts.md` is this output (`cargo test -p logwarden-detect
/// print_example_alert -- --nocapture`).
#[test]
fn print_example_alert() {
    let inject = [("checkout", 200, 205, Inject::ErrorRatio(0.30))];
    let recs = simulate(3, &services(), 300, &inject);
    // Messages and templates, so that the alert shows its context.
    let lines: Vec<(Option<u64>, String)> = recs
        .iter()
        .enumerate()
        .map(|(i, (_, _, l))| match (l.is_error(), i % 3) {
            (true, 0) => (Some(0xe1), format!("payment {i} declined: card expired")),
            (true, _) => (
                Some(0xe2),
                format!("acquirer timeout after {}ms", 700 + i % 300),
            ),
            (false, k) => (
                Some(k as u64 + 1),
                format!("GET /cart/{i} 200 in {}ms", i % 90),
            ),
        })
        .collect();
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    let mut alerts = Vec::new();
    for ((t, s, l), (tpl, msg)) in recs.iter().zip(&lines) {
        alerts.extend(d.observe(&Event {
            event_time_us: *t,
            service: Some(s),
            level: *l,
            template_id: *tpl,
            message: Some(msg),
            values: &[],
            metrics: &[],
        }));
    }
    alerts.extend(d.flush());
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].top_templates.len(), 5);
    assert!(alerts[0].samples[0].contains("declined") || alerts[0].samples[0].contains("timeout"));
    for a in &alerts {
        let json = serde_json::to_string_pretty(a).unwrap_or_default();
        println!("{json}");
        // serde_json (without `float_roundtrip`) may parse a float one ulp
        // off: compare floats with a tolerance, everything else exactly.
        let Ok(mut back) = serde_json::from_str::<Alert>(&json) else {
            panic!("alert JSON parses back")
        };
        for (x, y) in [
            (&mut back.observed, a.observed),
            (&mut back.expected, a.expected),
            (&mut back.expected_low, a.expected_low),
            (&mut back.expected_high, a.expected_high),
            (&mut back.probability, a.probability),
            (&mut back.score, a.score),
        ] {
            assert!((*x - y).abs() <= 1e-12 * y.abs().max(1e-300));
            *x = y;
        }
        assert_eq!(&back, a);
    }
}

fn level_strategy() -> impl Strategy<Value = Level> {
    prop::sample::select(Level::ALL.to_vec())
}

proptest! {
    #[test]
    fn observe_never_panics(
        events in prop::collection::vec(
            (
                prop_oneof![
                    Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64),
                    Just(MAX_EVENT_TIME_US - 1), Just(MAX_EVENT_TIME_US),
                    any::<i64>(),
                    (T0..T0 + 3_600_000_000i64),
                ],
                prop::option::of(prop::sample::select(vec!["a", "b", "", "unknown"])),
                level_strategy(),
            ),
            0..200,
        ),
        lateness in 0u64..120,
        window in 1u64..600,
    ) {
        let cfg = DetectorConfig {
            window_secs: window,
            allowed_lateness_secs: lateness,
            warmup_windows: 2,
            max_series: 3,
            ..DetectorConfig::default()
        };
        let Ok(mut d) = Detector::new(cfg) else { panic!("valid config") };
        for (t, s, l) in &events {
            let _ = d.observe(&Event { event_time_us: *t, service: *s, level: *l, template_id: None, message: None, values: &[], metrics: &[] });
        }
        let _ = d.advance_to(i64::MAX);
        let _ = d.flush();
        prop_assert!(d.series_count() <= 3);
    }
}

/// Saves the detector as JSON and builds a new one from it, as a restart
/// with a checkpoint does.
fn round_trip(d: &Detector, cfg: DetectorConfig) -> Detector {
    let json = serde_json::to_string(&d.state()).expect("state serializes");
    let state: DetectorState = serde_json::from_str(&json).expect("state parses");
    Detector::from_state(cfg, state).expect("state restores")
}

#[test]
fn restored_state_carries_on_like_an_uninterrupted_run() {
    // A burst that starts before the save and ends after it, and a second
    // one later: the restored detector fires neither twice nor late.
    let inject = [
        ("checkout", 200, 206, Inject::ErrorRatio(0.30)),
        ("auth", 240, 244, Inject::ErrorRatio(0.40)),
    ];
    let recs = simulate(9, &services(), 300, &inject);
    let (whole, _) = run(DetectorConfig::default(), &recs);
    for cut_minute in [20, 203, 230] {
        let cut = recs
            .iter()
            .position(|(t, _, _)| *t >= T0 + cut_minute * MIN_US)
            .expect("cut inside the records");
        let mut d = Detector::new(DetectorConfig::default()).expect("valid");
        let mut alerts = Vec::new();
        let feed = |d: &mut Detector, recs: &[(i64, &str, Level)], out: &mut Vec<Alert>| {
            for (t, s, l) in recs {
                out.extend(d.observe(&Event {
                    event_time_us: *t,
                    service: Some(s),
                    level: *l,
                    template_id: None,
                    message: None,
                    values: &[],
                    metrics: &[],
                }));
            }
        };
        feed(&mut d, &recs[..cut], &mut alerts);
        let mut d = round_trip(&d, DetectorConfig::default());
        let open = d.open_incidents();
        if cut_minute == 203 {
            assert_eq!(open.len(), 1, "{}", describe(&open));
            assert_eq!(open[0].alert_id, whole[0].alert_id);
            assert_eq!(open[0].status, AlertStatus::Firing);
        } else {
            assert!(open.is_empty(), "{}", describe(&open));
        }
        feed(&mut d, &recs[cut..], &mut alerts);
        alerts.extend(d.flush());
        assert_eq!(
            describe(&alerts),
            describe(&whole),
            "cut at minute {cut_minute}"
        );
        assert_eq!(alerts.len(), 4, "{}", describe(&alerts));
    }
}

#[test]
fn a_fresh_detector_would_still_be_warming_up() {
    // The contrast that makes the test above meaningful: without the saved
    // state, a burst right after the cut goes unseen.
    let inject = [("auth", 62, 66, Inject::ErrorRatio(0.40))];
    let recs = simulate(4, &services(), 90, &inject);
    let cut = recs
        .iter()
        .position(|(t, _, _)| *t >= T0 + 60 * MIN_US)
        .expect("cut");
    let (before, d) = run(DetectorConfig::default(), &recs[..cut]);
    assert!(before.is_empty(), "{}", describe(&before));
    let restored = round_trip(&d, DetectorConfig::default());
    let fresh = Detector::new(DetectorConfig::default()).expect("valid");
    let mut got = Vec::new();
    for mut d in [restored, fresh] {
        let mut alerts = Vec::new();
        for (t, s, l) in &recs[cut..] {
            alerts.extend(d.observe(&Event {
                event_time_us: *t,
                service: Some(s),
                level: *l,
                template_id: None,
                message: None,
                values: &[],
                metrics: &[],
            }));
        }
        got.push(alerts);
    }
    let firing = |a: &[Alert]| a.iter().filter(|a| a.status == AlertStatus::Firing).count();
    assert_eq!(firing(&got[0]), 1, "restored: {}", describe(&got[0]));
    assert_eq!(got[0][0].series.service, "auth");
    assert_eq!(firing(&got[1]), 0, "fresh: {}", describe(&got[1]));
}

#[test]
fn a_state_with_another_window_or_format_is_refused() {
    let recs = simulate(2, &services(), 30, &[]);
    let (_, d) = run(DetectorConfig::default(), &recs);
    let json = serde_json::to_string(&d.state()).expect("serializes");
    let other = DetectorConfig {
        window_secs: 30,
        ..DetectorConfig::default()
    };
    let state: DetectorState = serde_json::from_str(&json).expect("parses");
    assert!(matches!(
        Detector::from_state(other, state),
        Err(StateError::WindowChanged { saved: 60, now: 30 })
    ));
    let bumped = json.replacen(
        &format!("\"format\":{STATE_FORMAT_VERSION}"),
        "\"format\":99",
        1,
    );
    let state: DetectorState = serde_json::from_str(&bumped).expect("parses");
    assert!(matches!(
        Detector::from_state(DetectorConfig::default(), state),
        Err(StateError::Format { found: 99, .. })
    ));
}

/// One record of a hand-made stream: minute, level, template, message.
type Line = (i64, Level, Option<u64>, String);

/// Feeds lines (spread evenly inside their minute) to `d` for service
/// `svc`, then advances past the last minute; returns the alerts.
fn feed_lines(d: &mut Detector, svc: &str, lines: &[Line]) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut per_minute: BTreeMap<i64, Vec<&Line>> = BTreeMap::new();
    for l in lines {
        per_minute.entry(l.0).or_default().push(l);
    }
    for (minute, ls) in &per_minute {
        let n = ls.len() as i64;
        for (i, (_, level, template, message)) in ls.iter().enumerate() {
            let t = T0 + minute * MIN_US + (i as i64) * (MIN_US / n.max(1));
            out.extend(d.observe(&Event {
                event_time_us: t,
                service: Some(svc),
                level: *level,
                template_id: *template,
                message: Some(message),
                values: &[],
                metrics: &[],
            }));
        }
    }
    if let Some(last) = per_minute.keys().last() {
        out.extend(d.advance_to(T0 + (last + 2) * MIN_US));
    }
    out
}

/// `per_minute` records a minute over `minutes`: mostly info lines of five
/// templates, `warn_every`-th a warning, `error_every`-th an error.
fn steady_lines(
    minutes: std::ops::Range<i64>,
    per_minute: i64,
    warn_every: i64,
    error_every: i64,
) -> Vec<Line> {
    let mut v = Vec::new();
    for m in minutes {
        for i in 0..per_minute {
            let k = m * per_minute + i;
            let level = if k % error_every == 0 {
                Level::Error
            } else if k % warn_every == 0 {
                Level::Warn
            } else {
                Level::Info
            };
            let tpl = (k % 5) as u64 + 1;
            v.push((
                m,
                level,
                Some(tpl),
                format!("steady line {k} of template {tpl}"),
            ));
        }
    }
    v
}

fn firing_of(alerts: &[Alert], signal: Signal) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing && a.series.signal == signal)
        .collect()
}

#[test]
fn a_warning_surge_fires_the_warn_level_with_context() {
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    let mut lines = steady_lines(0..40, 200, 50, 97);
    // Minute 40: 80 extra warnings of a new kind.
    lines.extend(steady_lines(40..41, 200, 50, 97));
    for i in 0..80 {
        lines.push((
            40,
            Level::Warn,
            Some(9),
            format!("pool exhausted, waited {i} ms"),
        ));
    }
    lines.extend(steady_lines(41..50, 200, 50, 97));
    let alerts = feed_lines(&mut d, "svc", &lines);
    let warn = firing_of(&alerts, Signal::LevelCount);
    assert_eq!(warn.len(), 1, "{}", describe(&alerts));
    let a = warn[0];
    assert_eq!(a.window_start_us, T0 + 40 * MIN_US);
    assert_eq!(a.key(), "svc/level_count/warn");
    assert_eq!(a.series.dimension.as_deref(), Some("warn"));
    assert!(a.observed > 80.0 && a.expected < 10.0, "{a:?}");
    assert_eq!(a.top_templates[0].template_id, format!("{:016x}", 9));
    assert_eq!(a.top_templates[0].count, 80);
    assert_eq!(a.samples.len(), 3);
    // The surge also lifted the event count: both name each other.
    let count = firing_of(&alerts, Signal::EventCount);
    assert_eq!(count.len(), 1, "{}", describe(&alerts));
    assert_eq!(a.related, vec!["svc/event_count".to_string()]);
    assert_eq!(count[0].related, vec!["svc/level_count/warn".to_string()]);
    // The error ratio did not move: no alert, and the steady stream
    // raised nothing else.
    assert!(firing_of(&alerts, Signal::ErrorRatio).is_empty());
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count(),
        2,
        "{}",
        describe(&alerts)
    );
}

#[test]
fn new_templates_fire_once_grouped_and_rate_limited() {
    let cfg = DetectorConfig {
        new_template_warmup_windows: 30,
        cooldown_windows: 10,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg).expect("valid");
    let new_kind = |m: i64, tpl: u64, n: usize| -> Vec<Line> {
        (0..n)
            .map(|i| {
                (
                    m,
                    Level::Error,
                    Some(tpl),
                    format!("new failure {tpl} #{i}"),
                )
            })
            .collect()
    };
    let mut lines = steady_lines(0..40, 100, 50, 97);
    // Unknown templates during the learning windows are learned silently.
    lines.extend(new_kind(10, 100, 20));
    // After warm-up: template 200 at minute 40, 201 at minute 41 (grouped
    // into the open incident), 202 with only 2 records (below the minimum).
    lines.extend(steady_lines(40..60, 100, 50, 97));
    lines.extend(new_kind(40, 200, 20));
    lines.extend(new_kind(41, 201, 20));
    lines.extend(new_kind(42, 202, 2));
    // Resolved at 45 (42-44 without a new template): 203 at minute 50
    // falls in the cool-down, 204 at minute 58 is after it.
    lines.extend(new_kind(50, 203, 20));
    lines.extend(new_kind(58, 204, 20));
    lines.extend(new_kind(58, 100, 20)); // known since minute 10
    let alerts = feed_lines(&mut d, "svc", &lines);
    let fired = firing_of(&alerts, Signal::NewTemplate);
    assert_eq!(fired.len(), 2, "{}", describe(&alerts));
    assert_eq!(fired[0].window_start_us, T0 + 40 * MIN_US);
    assert_eq!(fired[0].top_templates.len(), 1);
    assert_eq!(
        fired[0].top_templates[0].template_id,
        format!("{:016x}", 200)
    );
    assert_eq!(fired[0].samples, vec!["new failure 200 #0".to_string()]);
    assert_eq!(fired[1].window_start_us, T0 + 58 * MIN_US);
    let ids: Vec<&str> = fired[1]
        .top_templates
        .iter()
        .map(|t| t.template_id.as_str())
        .collect();
    assert_eq!(ids, [format!("{:016x}", 204)], "template 100 is known");
    let resolved: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Resolved && a.series.signal == Signal::NewTemplate)
        .collect();
    assert_eq!(
        resolved[0].window_start_us,
        T0 + 44 * MIN_US,
        "{}",
        describe(&alerts)
    );
}

#[test]
fn relearning_templates_keeps_templates_under_new_ids_quiet() {
    let cfg = DetectorConfig {
        new_template_warmup_windows: 30,
        cooldown_windows: 10,
        ..DetectorConfig::default()
    };
    // The new-template alerts of a service that logs the same traffic under
    // new template ids from minute 42 on (as after the miner mined afresh
    // with other rules), and a truly new template at minute 90.
    let run = |relearn: bool| -> Vec<(i64, Vec<String>)> {
        let mut d = Detector::new(cfg.clone()).expect("valid");
        let mut alerts = feed_lines(&mut d, "svc", &steady_lines(0..40, 100, 50, 97));
        if relearn {
            d.relearn_templates();
        }
        let mut lines: Vec<Line> = steady_lines(42..100, 100, 50, 97)
            .into_iter()
            .map(|(m, level, t, msg)| (m, level, t.map(|t| t + 1000), msg))
            .collect();
        lines.extend((0..20).map(|i| (90, Level::Error, Some(500), format!("new failure #{i}"))));
        alerts.extend(feed_lines(&mut d, "svc", &lines));
        firing_of(&alerts, Signal::NewTemplate)
            .into_iter()
            .map(|a| {
                let ids = a
                    .top_templates
                    .iter()
                    .map(|t| t.template_id.clone())
                    .collect();
                ((a.window_start_us - T0) / MIN_US, ids)
            })
            .collect()
    };
    let renamed = run(false);
    assert_eq!(renamed.len(), 2, "{renamed:?}");
    assert_eq!(
        renamed[0].0, 42,
        "the renamed templates look new: {renamed:?}"
    );
    let relearned = run(true);
    assert_eq!(
        relearned,
        vec![(90, vec![format!("{:016x}", 500)])],
        "only the truly new template fires"
    );
}

#[test]
fn threshold_rules_need_their_windows_and_resolve() {
    let rule = crate::config::ThresholdRule {
        name: "too-many-errors".into(),
        service: "svc".into(),
        signal: RuleSignal::ErrorCount,
        op: RuleOp::Above,
        value: 15.0,
        for_windows: 2,
        severity: crate::Severity::Critical,
    };
    let other = crate::config::ThresholdRule {
        name: "other-service".into(),
        service: "elsewhere".into(),
        ..rule.clone()
    };
    let cfg = DetectorConfig {
        rules: vec![rule, other],
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg).expect("valid");
    let errors = |m: i64, n: usize| -> Vec<Line> {
        (0..n)
            .map(|i| (m, Level::Error, Some(7), format!("boom {i}")))
            .collect()
    };
    // 100 lines a minute, ~1 error. Minute 3: 20 errors (one window, not
    // enough); minutes 6-8: 20 errors each (fires at 7); then normal.
    let mut lines = steady_lines(0..20, 100, 50, 97);
    lines.extend(errors(3, 20));
    for m in 6..9 {
        lines.extend(errors(m, 20));
    }
    let alerts = feed_lines(&mut d, "svc", &lines);
    let fired = firing_of(&alerts, Signal::Threshold);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    let a = fired[0];
    assert_eq!(a.key(), "svc/threshold/too-many-errors");
    assert_eq!(a.series.dimension.as_deref(), Some("too-many-errors"));
    assert_eq!(a.window_start_us, T0 + 7 * MIN_US);
    assert_eq!(a.severity, crate::Severity::Critical);
    assert!(a.observed > 15.0 && a.expected == 15.0, "{a:?}");
    // Error lines first: the window's first errors.
    assert_eq!(a.samples.len(), 3);
    assert!(a.samples.contains(&"boom 0".to_string()), "{:?}", a.samples);
    let resolved = alerts
        .iter()
        .find(|a| a.status == AlertStatus::Resolved && a.series.signal == Signal::Threshold)
        .expect("resolved");
    assert_eq!(
        resolved.window_start_us,
        T0 + 11 * MIN_US,
        "3 normal windows"
    );
    assert_eq!(resolved.fingerprint, a.fingerprint);
}

#[test]
fn a_series_in_cool_down_does_not_fire_again() {
    for (cooldown, expected) in [(0, 2), (10, 1)] {
        let cfg = DetectorConfig {
            cooldown_windows: cooldown,
            ..DetectorConfig::default()
        };
        // Two error bursts 6 minutes apart: the second starts 2 windows
        // after the first resolved.
        let inject = [
            ("checkout", 200, 203, Inject::ErrorRatio(0.30)),
            ("checkout", 208, 211, Inject::ErrorRatio(0.30)),
        ];
        let recs = simulate(3, &services(), 240, &inject);
        let (alerts, _) = run(cfg, &recs);
        let fired = firing_of(&alerts, Signal::ErrorRatio);
        assert_eq!(
            fired.len(),
            expected,
            "cooldown {cooldown}: {}",
            describe(&alerts)
        );
    }
}

#[test]
fn rule_validation_names_the_rule() {
    let bad = DetectorConfig {
        rules: vec![crate::config::ThresholdRule {
            name: "r".into(),
            service: String::new(),
            signal: RuleSignal::ErrorRatio,
            op: RuleOp::Above,
            value: 2.0,
            for_windows: 1,
            severity: crate::Severity::Warning,
        }],
        ..DetectorConfig::default()
    };
    let err = bad.validate().expect_err("invalid");
    assert!(err.to_string().contains("rule `r`"), "{err}");
}

#[test]
fn a_latency_regression_fires_field_signals_and_steady_latency_does_not() {
    let cfg = DetectorConfig {
        fields: vec!["duration_ms".into()],
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg).expect("valid");
    let mut alerts = Vec::new();
    for m in 0..60i64 {
        for i in 0..100i64 {
            let k = m * 100 + i;
            // 40-140 ms, a few slow outliers; tripled in minutes 40-44.
            let mut ms = 40.0 + ((k * 37) % 100) as f64 + if k % 50 == 0 { 400.0 } else { 0.0 };
            if (40..45).contains(&m) {
                ms *= 3.0;
            }
            let values = [Some(ms)];
            alerts.extend(d.observe(&Event {
                event_time_us: T0 + m * MIN_US + i * (MIN_US / 100),
                service: Some("api"),
                level: Level::Info,
                template_id: None,
                message: None,
                values: &values,
                metrics: &[],
            }));
        }
    }
    alerts.extend(d.flush());
    let mean = firing_of(&alerts, Signal::FieldMean);
    let high = firing_of(&alerts, Signal::FieldHigh);
    assert_eq!(mean.len(), 1, "{}", describe(&alerts));
    assert_eq!(high.len(), 1, "{}", describe(&alerts));
    assert_eq!(mean[0].window_start_us, T0 + 40 * MIN_US);
    assert_eq!(mean[0].key(), "api/field_mean/duration_ms");
    assert!(mean[0].observed > 2.5 * mean[0].expected, "{:?}", mean[0]);
    assert_eq!(
        mean[0].related,
        vec!["api/field_high/duration_ms".to_string()]
    );
    // Nothing else fired, and both resolved.
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count(),
        2,
        "{}",
        describe(&alerts)
    );
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
            .count(),
        2,
        "{}",
        describe(&alerts)
    );
}

impl Rng {
    /// Poisson(mean) by multiplying uniforms (fine for small means).
    fn poisson(&mut self, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.unit();
        while p > limit {
            k += 1;
            p *= self.unit();
        }
        k
    }
}

/// 2024-05-01T00:00:00Z (a Wednesday).
const MIDNIGHT: i64 = T0 - 10 * 60 * MIN_US;

/// Feeds `days` of one service ("batch") whose rate in minute `m` (since
/// the first midnight) is `rate(m)`, Poisson, records evenly spread in
/// their minute; returns the alerts.
fn daily_traffic(cfg: DetectorConfig, days: i64, rate: impl Fn(i64) -> f64) -> Vec<Alert> {
    let mut d = Detector::new(cfg).expect("valid");
    let mut rng = Rng(99);
    let mut alerts = Vec::new();
    for m in 0..days * 1440 {
        let n = rng.poisson(rate(m));
        for i in 0..n {
            alerts.extend(d.observe(&Event {
                event_time_us: MIDNIGHT + m * MIN_US + (i as i64) * (MIN_US / n as i64),
                service: Some("batch"),
                level: Level::Info,
                template_id: None,
                message: None,
                values: &[],
                metrics: &[],
            }));
        }
    }
    alerts.extend(d.flush());
    alerts
}

#[test]
fn a_daily_pattern_alerts_without_seasonality_and_not_with_it() {
    // Quiet nights (10 a minute), a nightly batch job at 02:00-03:00 (100 a
    // minute), office hours 09:00-17:00 (40 a minute): sharp steps a plain
    // baseline flags every day.
    let rate = |minute: i64| match minute % 1440 / 60 {
        2 => 100.0,
        9..=16 => 40.0,
        _ => 10.0,
    };
    let days = 6;
    let learned = MIDNIGHT + 3 * 1440 * MIN_US;
    let after_learning = |alerts: &[Alert]| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing && a.incident_start_us >= learned)
            .map(|a| a.to_string())
            .collect()
    };
    let plain = daily_traffic(
        DetectorConfig {
            seasonality: false,
            ..DetectorConfig::default()
        },
        days,
        rate,
    );
    let plain_late = after_learning(&plain);
    // At least the batch job, every day.
    assert!(plain_late.len() >= 3, "{}", plain_late.join("\n"));
    let seasonal = daily_traffic(DetectorConfig::default(), days, rate);
    let seasonal_late = after_learning(&seasonal);
    assert!(seasonal_late.is_empty(), "{}", seasonal_late.join("\n"));
    // Before the profile was learned, the seasonal run alerted like the
    // plain one: the quiet days are the profile's doing.
    assert!(
        firing_of(&seasonal, Signal::EventCount).len() > seasonal_late.len(),
        "{}",
        describe(&seasonal)
    );
}

#[test]
fn a_burst_after_the_daily_pattern_was_learned_still_fires() {
    // The profile does not hide a real change: 3x the usual at 12:00 on
    // day 4, and nothing at all at 14:00.
    let rate = |minute: i64| match minute % 1440 / 60 {
        2 => 100.0,
        9..=16 => 40.0,
        _ => 10.0,
    };
    let day4 = 4 * 1440;
    let alerts = daily_traffic(DetectorConfig::default(), 5, |m| {
        if (day4 + 12 * 60..day4 + 12 * 60 + 5).contains(&m) {
            3.0 * rate(m)
        } else if (day4 + 14 * 60..day4 + 14 * 60 + 30).contains(&m) {
            0.0
        } else {
            rate(m)
        }
    });
    let late: Vec<&Alert> = alerts
        .iter()
        .filter(|a| {
            a.status == AlertStatus::Firing && a.incident_start_us >= MIDNIGHT + 3 * 1440 * MIN_US
        })
        .collect();
    assert_eq!(late.len(), 2, "{}", describe(&alerts));
    assert_eq!(
        late[0].incident_start_us,
        MIDNIGHT + (day4 + 12 * 60) * MIN_US
    );
    assert_eq!(late[0].series.direction, Direction::High);
    assert_eq!(late[1].series.direction, Direction::Low);
}

/// `n` lines of template `tpl` at `level` in minute `m`.
fn lines_of(m: i64, level: Level, tpl: u64, n: usize) -> Vec<Line> {
    (0..n)
        .map(|i| (m, level, Some(tpl), format!("line {i} of template {tpl}")))
        .collect()
}

fn all_firing(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .collect()
}

#[test]
fn a_burst_of_one_template_fires_its_template_series() {
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    // 200 lines a minute of five info templates (40 each); in minute 40,
    // template 3 logs 100 lines and templates 1 and 2 30 fewer: the same
    // traffic, the same levels, one template surging.
    let mut lines = Vec::new();
    for m in 0..50 {
        for tpl in 1..=5u64 {
            let n = match (m, tpl) {
                (40, 3) => 100,
                (40, 1 | 2) => 10,
                _ => 40,
            };
            lines.extend(lines_of(m, Level::Info, tpl, n));
        }
    }
    let alerts = feed_lines(&mut d, "svc", &lines);
    let fired = all_firing(&alerts);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    let a = fired[0];
    let id = format!("{:016x}", 3);
    assert_eq!(a.series.signal, Signal::TemplateCount);
    assert_eq!(a.series.dimension.as_deref(), Some(id.as_str()));
    assert_eq!(a.key(), format!("svc/template_count/{id}"));
    assert_eq!(a.window_start_us, T0 + 40 * MIN_US);
    assert!(a.observed == 100.0 && a.expected < 45.0, "{a:?}");
    assert!(
        a.summary
            .contains(&format!("template {id} logged 100 times")),
        "{}",
        a.summary
    );
    // The template first in the context, with its line.
    assert_eq!(a.top_templates[0].template_id, id);
    assert_eq!(a.top_templates[0].count, 100);
    assert_eq!(a.samples, vec!["line 0 of template 3".to_string()]);
    // The publisher names the template: in `top_templates` and the summary.
    let mut named = a.clone();
    named.name_templates(|t| (t == 3).then(|| "user <*> logged in".to_string()));
    assert_eq!(
        named.top_templates[0].template.as_deref(),
        Some("user <*> logged in")
    );
    assert!(
        named.summary.contains(&format!(
            "template {id} \"user <*> logged in\" logged 100 times"
        )),
        "{}",
        named.summary
    );
}

#[test]
fn a_traffic_surge_alerts_once_not_per_level_and_template() {
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    // Five templates, three levels; everything triples in minutes 40-42.
    let mut lines = Vec::new();
    for m in 0..50 {
        let k = if (40..43).contains(&m) { 3 } else { 1 };
        for tpl in 1..=4u64 {
            lines.extend(lines_of(m, Level::Info, tpl, 40 * k));
        }
        lines.extend(lines_of(m, Level::Debug, 5, 20 * k));
        lines.extend(lines_of(m, Level::Warn, 6, 10 * k));
    }
    let alerts = feed_lines(&mut d, "svc", &lines);
    let fired = all_firing(&alerts);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    assert_eq!(fired[0].key(), "svc/event_count");
    // The level and template series exist, and were judged.
    let s = &d.series["svc"];
    assert_eq!(s.levels.len(), 3);
    assert_eq!(s.templates.len(), 6);
}

/// 200 lines a minute: four info templates (45 each) and 20 errors, of
/// `kinds` templates from 100 up; minute 40 has `burst` errors instead of
/// 20, and as many fewer info lines.
fn error_burst_lines(burst: usize, kinds: u64) -> Vec<Line> {
    let mut lines = Vec::new();
    for m in 0..50 {
        let errors = if m == 40 { burst } else { 20 };
        let info = (180 - (errors - 20)) / 4;
        for tpl in 1..=4u64 {
            lines.extend(lines_of(m, Level::Info, tpl, info));
        }
        for i in 0..errors {
            let tpl = 100 + i as u64 % kinds;
            lines.push((
                m,
                Level::Error,
                Some(tpl),
                format!("error {i} of template {tpl}"),
            ));
        }
    }
    lines
}

#[test]
fn an_error_burst_alerts_on_the_error_ratio_alone() {
    // The error level and the error template surge too, but the error
    // ratio explains them: they open silent incidents, no alerts.
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    let alerts = feed_lines(&mut d, "svc", &error_burst_lines(100, 1));
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
    assert_eq!(alerts[0].key(), "svc/error_ratio");
    assert_eq!(alerts[0].status, AlertStatus::Firing);
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
    assert!(d.series["svc"].templates.contains_key(&100));
    assert!(d.open_incidents().is_empty());
}

#[test]
fn an_error_level_surge_fires_the_level_series() {
    // With the error ratio unable to alert (a floor no window reaches), a
    // burst of errors of 20 rare templates is reported by the error
    // level's count.
    let cfg = DetectorConfig {
        min_errors: 1_000_000,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg.clone()).expect("valid");
    let alerts = feed_lines(&mut d, "svc", &error_burst_lines(100, 20));
    let fired = all_firing(&alerts);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    let a = fired[0];
    assert_eq!(a.key(), "svc/level_count/error");
    assert_eq!(a.window_start_us, T0 + 40 * MIN_US);
    assert!(a.observed == 100.0 && a.expected < 25.0, "{a:?}");
    assert!(
        a.summary.starts_with("svc error records 100"),
        "{}",
        a.summary
    );
    // Error lines first.
    assert!(a.samples[0].starts_with("error 0"), "{:?}", a.samples);
    // When one tracked template carries the burst, the template is the
    // more precise alert and the level is explained by it.
    let mut d = Detector::new(cfg).expect("valid");
    let alerts = feed_lines(&mut d, "svc", &error_burst_lines(100, 1));
    let fired = all_firing(&alerts);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    assert_eq!(fired[0].key(), format!("svc/template_count/{:016x}", 100));
}

#[test]
fn a_fatal_surge_the_error_ratio_misses_fires_the_fatal_level() {
    // 1000 lines a minute, 10% errors, a fatal every other minute; in
    // minute 40, 30 fatals replace 30 errors: the error ratio (errors and
    // fatals) does not move, the fatal count does.
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    let mut lines = Vec::new();
    for m in 0..50i64 {
        let fatal = match m {
            40 => 30,
            _ if m % 2 == 0 => 1,
            _ => 0,
        };
        for tpl in 1..=4u64 {
            lines.extend(lines_of(m, Level::Info, tpl, 225));
        }
        lines.extend(lines_of(m, Level::Error, 7, 100 - fatal));
        lines.extend(lines_of(m, Level::Fatal, 8, fatal));
    }
    let alerts = feed_lines(&mut d, "svc", &lines);
    let fired = all_firing(&alerts);
    assert_eq!(fired.len(), 1, "{}", describe(&alerts));
    assert_eq!(fired[0].key(), "svc/level_count/fatal");
    assert_eq!(fired[0].series.dimension.as_deref(), Some("fatal"));
    assert_eq!(fired[0].window_start_us, T0 + 40 * MIN_US);
}

#[test]
fn tracked_templates_are_the_most_frequent_and_bounded() {
    let cfg = DetectorConfig {
        tracked_templates: 5,
        new_template_warmup_windows: 0,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(cfg).expect("valid");
    // Templates 1-12 at 48, 44, ..., 4 lines a minute for an hour, then
    // templates 21-32 likewise for two hours, and 1500 one-off templates.
    let minute = |m: i64, first: u64| -> Vec<Line> {
        let mut v = Vec::new();
        for i in 0..12u64 {
            v.extend(lines_of(m, Level::Info, first + i, (48 - 4 * i) as usize));
        }
        v
    };
    let mut alerts = Vec::new();
    let mut max_tracked = 0;
    for m in 0..180 {
        let mut lines = minute(m, if m < 60 { 1 } else { 21 });
        if (100..150).contains(&m) {
            for t in 0..30u64 {
                lines.extend(lines_of(m, Level::Info, 1000 + t + 30 * m as u64, 1));
            }
        }
        alerts.extend(feed_lines(&mut d, "svc", &lines));
        let s = &d.series["svc"];
        max_tracked = max_tracked.max(s.templates.len());
        if m == 59 {
            let ids: Vec<u64> = s.templates.keys().copied().collect();
            assert_eq!(ids, [1, 2, 3, 4, 5]);
        }
    }
    let s = &d.series["svc"];
    assert_eq!(max_tracked, 5);
    let ids: Vec<u64> = s.templates.keys().copied().collect();
    assert_eq!(ids, [21, 22, 23, 24, 25], "the old ones are forgotten");
    assert!(s.known_templates.len() <= MAX_KNOWN_TEMPLATES);
    // Templates dying out and new ones warming up raise nothing.
    assert!(alerts.is_empty(), "{}", describe(&alerts));
}

#[test]
fn a_format_2_state_is_restored_with_its_warning_series() {
    // A state as format 2 wrote it: `warn`/`warn_track` per series, no
    // level or template series, known templates as bare windows, `warns`
    // in the open windows.
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    feed_lines(&mut d, "svc", &steady_lines(0..30, 100, 10, 97));
    let mut v = serde_json::to_value(d.state()).expect("state");
    v["format"] = 2.into();
    let s = &mut v["series"]["svc"];
    let levels = s["levels"].as_array().cloned().unwrap_or_default();
    let warn = levels
        .iter()
        .find(|l| l["level"] == 3)
        .expect("a warn series")
        .clone();
    let windows = warn["baseline"]["windows"].clone();
    assert!(windows.as_u64().is_some_and(|w| w > 20), "{warn}");
    let obj = s.as_object_mut().expect("series object");
    obj.remove("levels");
    obj.remove("templates");
    obj.insert("warn".into(), warn["baseline"].clone());
    obj.insert("warn_track".into(), warn["track"].clone());
    for k in obj["known_templates"]
        .as_object_mut()
        .expect("known")
        .values_mut()
    {
        *k = k["last_us"].clone();
    }
    for w in obj["open"].as_object_mut().expect("open").values_mut() {
        let warns = w["levels"][3].clone();
        let w = w.as_object_mut().expect("window");
        w.remove("levels");
        w.insert("warns".into(), warns);
    }
    let json = serde_json::to_string(&v).expect("json");
    assert!(!json.contains("\"levels\""));
    let state: DetectorState = serde_json::from_str(&json).expect("a format 2 state parses");
    let back = Detector::from_state(DetectorConfig::default(), state).expect("restores");
    let s = &back.series["svc"];
    let warn = s
        .levels
        .iter()
        .find(|l| level_at(l.level) == Level::Warn)
        .expect("warnings became the warn level series");
    assert_eq!(
        u64::from(warn.series.baseline.windows()),
        windows.as_u64().unwrap_or_default()
    );
    assert!(s
        .known_templates
        .values()
        .all(|k| k.rate == 0.0 && k.last_us > 0));
    assert!(s
        .open
        .0
        .iter()
        .all(|(_, c)| c.levels[3] > 0 && c.legacy_warns == 0));
}

// ------------------------------------------------------------ metric series

const SEC_US: i64 = 1_000_000;

/// `n` samples of a queue depth: uniform noise in [11.5, 12.5), with
/// `(index, value)` replacing some.
fn queue_depths(seed: u64, n: usize, spikes: &[(usize, f64)]) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let noise = 11.5 + rng.unit();
            spikes
                .iter()
                .find(|(at, _)| *at == i)
                .map_or(noise, |(_, v)| *v)
        })
        .collect()
}

fn metric_cfg() -> DetectorConfig {
    DetectorConfig {
        metric_fields: vec!["queue_depth".to_string()],
        ..DetectorConfig::default()
    }
}

/// Feeds one metric-like record per second of event time to `d` for
/// `svc`, the first at second `from`; returns the alerts.
fn feed_metric(d: &mut Detector, svc: &str, from: usize, depths: &[f64]) -> Vec<Alert> {
    let mut out = Vec::new();
    for (i, v) in depths.iter().enumerate() {
        out.extend(d.observe(&Event {
            event_time_us: T0 + (from + i) as i64 * SEC_US,
            service: Some(svc),
            level: Level::Info,
            template_id: Some(7),
            message: Some("sample"),
            values: &[],
            metrics: &[Some(*v)],
        }));
    }
    out
}

#[test]
fn a_steady_metric_series_gives_no_alert() {
    let mut d = Detector::new(metric_cfg()).expect("valid");
    let alerts = feed_metric(&mut d, "queue", 0, &queue_depths(3, 3000, &[]));
    assert!(alerts.is_empty(), "{}", describe(&alerts));
    let stats = d.stats();
    assert_eq!((stats.metric_records, stats.metric_series), (3000, 1));
    // Without the field configured, no sample is scored.
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    feed_metric(&mut d, "queue", 0, &queue_depths(3, 100, &[]));
    assert_eq!((d.stats().metric_records, d.stats().metric_series), (0, 0));
}

#[test]
fn a_metric_spike_fires_once_then_resolves() {
    let depths = queue_depths(5, 1500, &[(1000, 95.0)]);
    let mut d = Detector::new(metric_cfg()).expect("valid");
    let alerts = feed_metric(&mut d, "queue", 0, &depths);
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
    let (f, r) = (&alerts[0], &alerts[1]);
    assert_eq!(f.status, AlertStatus::Firing);
    assert_eq!(f.series.signal, Signal::Metric);
    assert_eq!(f.series.direction, Direction::High);
    assert_eq!(f.series.dimension.as_deref(), Some("queue_depth"));
    assert_eq!(f.key(), "queue/metric/queue_depth");
    assert_eq!(f.window_start_us, T0 + 1000 * SEC_US);
    assert_eq!(f.window_end_us, f.window_start_us);
    assert_eq!(f.incident_start_us, f.window_start_us);
    assert_eq!(f.observed, 95.0);
    assert!(
        f.expected_low < f.expected && f.expected < f.expected_high,
        "{f:?}"
    );
    assert!(
        (11.5..12.5).contains(&f.expected) && f.expected_high < 95.0,
        "{f:?}"
    );
    let model = NumericConfig::default();
    assert!(f.probability < model.p_threshold, "{f:?}");
    assert!(f.score >= 0.5 && f.score <= 1.0, "{f:?}");
    assert_eq!(f.severity, crate::Severity::Critical);
    assert_eq!(f.samples, ["sample"]);
    assert_eq!(f.top_templates.len(), 1);
    assert!(f
        .summary
        .contains("queue queue_depth 95 at 2024-05-01T10:16:40Z"));
    // The same sample a standalone scorer (`backtest --field`) alerts on,
    // with the same score.
    let mut scorer = NumericScorer::new(model.clone());
    let verdicts: Vec<_> = depths
        .iter()
        .enumerate()
        .map(|(i, v)| scorer.score_at(Some(T0 + i as i64 * SEC_US), *v))
        .collect();
    let alerting: Vec<usize> = (0..depths.len()).filter(|i| verdicts[*i].alert).collect();
    assert_eq!(alerting, [1000]);
    assert_eq!(f.score, verdicts[1000].score);
    // Resolved by the scorer: quiet_rows, then resolve_rows normal samples.
    assert_eq!(r.status, AlertStatus::Resolved);
    assert_eq!(r.fingerprint, f.fingerprint);
    assert_ne!(r.alert_id, f.alert_id);
    let ended = (1000..depths.len())
        .find(|i| verdicts[*i].ended.is_some())
        .expect("the incident ends");
    assert!(ended >= 1000 + model.quiet_rows, "{ended}");
    assert_eq!(r.window_start_us, T0 + ended as i64 * SEC_US);
    assert!(r.summary.starts_with("resolved after "), "{}", r.summary);
    assert!(r.summary.contains(" samples "), "{}", r.summary);
    assert!(d.open_incidents().is_empty());
}

#[test]
fn a_metric_series_in_cool_down_does_not_fire_again() {
    // A second spike right after the first incident resolved is inside
    // cooldown_windows (10 minutes of event time): no second incident.
    let mut d = Detector::new(metric_cfg()).expect("valid");
    let depths = queue_depths(6, 1400, &[(1000, 95.0), (1200, 95.0)]);
    let mut scorer = NumericScorer::new(NumericConfig::default());
    let alerting: Vec<usize> = (0..depths.len())
        .filter(|i| scorer.score_at(None, depths[*i]).alert)
        .collect();
    assert_eq!(alerting, [1000, 1200], "the scorer alone fires twice");
    let alerts = feed_metric(&mut d, "queue", 0, &depths);
    let firing = firing_of(&alerts, Signal::Metric);
    assert_eq!(firing.len(), 1, "{}", describe(&alerts));
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
}

#[test]
fn metric_series_are_capped_and_the_least_recent_evicted() {
    let cfg = DetectorConfig {
        max_metric_series: 2,
        ..metric_cfg()
    };
    let mut d = Detector::new(cfg).expect("valid");
    // `a` is warm and in an incident when it becomes the least recent.
    let mut alerts = feed_metric(&mut d, "a", 0, &queue_depths(7, 301, &[(300, 95.0)]));
    assert_eq!(firing_of(&alerts, Signal::Metric).len(), 1);
    alerts.extend(feed_metric(&mut d, "b", 301, &[12.0]));
    assert_eq!(d.stats().evicted_metric_series, 0);
    alerts.extend(feed_metric(&mut d, "c", 302, &[12.0]));
    let stats = d.stats();
    assert_eq!((stats.evicted_metric_series, stats.metric_series), (1, 2));
    let last = alerts.last().expect("the evicted incident resolves");
    assert_eq!(last.status, AlertStatus::Resolved);
    assert_eq!(last.key(), "a/metric/queue_depth");
    assert!(
        last.summary.contains("max_metric_series"),
        "{}",
        last.summary
    );
    // `a` again: a new series (warming up), `b` is now the least recent.
    feed_metric(&mut d, "a", 303, &[12.0]);
    feed_metric(&mut d, "c", 304, &[12.0]);
    let stats = d.stats();
    assert_eq!((stats.evicted_metric_series, stats.metric_series), (2, 2));
    let keys: Vec<String> = d
        .metric_series
        .iter()
        .flat_map(|(s, m)| m.keys().map(move |f| format!("{s}/{f}")))
        .collect();
    assert_eq!(keys, ["a/queue_depth", "c/queue_depth"]);
    assert_eq!(d.metric_series["a"]["queue_depth"].scorer.learned(), 1);
}

#[test]
fn a_silent_metric_series_is_forgotten() {
    let cfg = DetectorConfig {
        max_silent_windows: 5,
        forget_after_windows: 10,
        ..metric_cfg()
    };
    let mut d = Detector::new(cfg).expect("valid");
    feed_metric(&mut d, "a", 0, &queue_depths(8, 120, &[]));
    feed_metric(&mut d, "b", 0, &queue_depths(8, 1200, &[]));
    let stats = d.stats();
    assert_eq!((stats.forgotten_metric_series, stats.metric_series), (1, 1));
}

#[test]
fn a_restored_metric_series_neither_warms_up_again_nor_alerts_twice() {
    // A spike 20 samples after the cut (inside the warm-up a new scorer
    // would need), and a cut inside the incident it opens: the restored
    // detector gives exactly the uninterrupted run's alerts.
    let depths = queue_depths(9, 1400, &[(1020, 95.0)]);
    let mut whole = Detector::new(metric_cfg()).expect("valid");
    let all = feed_metric(&mut whole, "queue", 0, &depths);
    assert_eq!(all.len(), 2, "{}", describe(&all));
    for cut in [1000, 1030] {
        let mut d = Detector::new(metric_cfg()).expect("valid");
        let mut alerts = feed_metric(&mut d, "queue", 0, &depths[..cut]);
        let mut d = round_trip(&d, metric_cfg());
        assert_eq!(d.stats().metric_series, 1);
        assert_eq!(
            d.metric_series["queue"]["queue_depth"].scorer.learned(),
            NumericConfig::default().history
        );
        let open = d.open_incidents();
        if cut == 1030 {
            assert_eq!(open.len(), 1, "{}", describe(&open));
            assert_eq!(open[0].alert_id, all[0].alert_id);
        } else {
            assert!(open.is_empty(), "{}", describe(&open));
        }
        alerts.extend(feed_metric(&mut d, "queue", cut, &depths[cut..]));
        assert_eq!(describe(&alerts), describe(&all), "cut at {cut}");
        assert_eq!(
            alerts.iter().map(|a| &a.alert_id).collect::<Vec<_>>(),
            all.iter().map(|a| &a.alert_id).collect::<Vec<_>>()
        );
    }
    // A fresh detector at the same cut would still be warming up.
    let mut fresh = Detector::new(metric_cfg()).expect("valid");
    let missed = feed_metric(&mut fresh, "queue", 1000, &depths[1000..]);
    assert!(
        firing_of(&missed, Signal::Metric).is_empty(),
        "{}",
        describe(&missed)
    );
}

#[test]
fn a_state_saved_without_metric_series_restores() {
    let mut d = Detector::new(DetectorConfig::default()).expect("valid");
    feed_lines(&mut d, "svc", &steady_lines(0..20, 50, 5, 3));
    let mut v = serde_json::to_value(d.state()).expect("state");
    let obj = v.as_object_mut().expect("state object");
    assert!(obj.remove("metric_series").is_some());
    for k in ["metric_records", "metric_series", "evicted_metric_series"] {
        obj["stats"]
            .as_object_mut()
            .expect("stats object")
            .remove(k);
    }
    let state: DetectorState = serde_json::from_value(v).expect("parses");
    let mut back = Detector::from_state(metric_cfg(), state).expect("restores");
    assert_eq!(back.stats().metric_series, 0);
    feed_metric(&mut back, "queue", 20 * 60, &[12.0, 12.5]);
    assert_eq!(back.stats().metric_series, 1);
}

/// Prints the alerts of a queue-depth spike as JSON; the `metric` example
/// in `docs/alerts.md` is this output (`cargo test -p logwarden-detect
/// print_example_metric_alert -- --nocapture`).
#[test]
fn print_example_metric_alert() {
    let mut d = Detector::new(metric_cfg()).expect("valid");
    let depths = queue_depths(5, 1500, &[(1000, 95.0)]);
    let mut alerts = Vec::new();
    for (i, v) in depths.iter().enumerate() {
        let msg = format!("queue depth sample {i}");
        alerts.extend(d.observe(&Event {
            event_time_us: T0 + i as i64 * SEC_US,
            service: Some("queue"),
            level: Level::Info,
            template_id: Some(0x5a),
            message: Some(&msg),
            values: &[],
            metrics: &[Some(*v)],
        }));
    }
    assert_eq!(alerts.len(), 2, "{}", describe(&alerts));
    for a in &alerts {
        println!("{}", serde_json::to_string_pretty(a).unwrap_or_default());
        assert!(
            serde_json::from_str::<Alert>(&serde_json::to_string(a).unwrap_or_default()).is_ok()
        );
    }
}
