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
    };
    d.observe(&ev(5));
    d.observe(&ev(65)); // watermark 55 s: window [0, 60) still open
    d.observe(&ev(58)); // within lateness: counted in [0, 60)
    assert_eq!(d.late_records(), 0);
    assert_eq!(d.windows_closed(), 0);
    let open = d
        .series
        .get("a")
        .and_then(|s| s.open.get(&T0))
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
            .and_then(|s| s.open.get(&(T0 + MIN_US)))
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
            let _ = d.observe(&Event { event_time_us: *t, service: *s, level: *l, template_id: None, message: None, values: &[] });
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
fn a_warning_surge_fires_warn_count_with_context() {
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
    let warn = firing_of(&alerts, Signal::WarnCount);
    assert_eq!(warn.len(), 1, "{}", describe(&alerts));
    let a = warn[0];
    assert_eq!(a.window_start_us, T0 + 40 * MIN_US);
    assert_eq!(a.key(), "svc/warn_count");
    assert!(a.observed > 80.0 && a.expected < 10.0, "{a:?}");
    assert_eq!(a.top_templates[0].template_id, format!("{:016x}", 9));
    assert_eq!(a.top_templates[0].count, 80);
    assert_eq!(a.samples.len(), 3);
    // The surge also lifted the event count: both name each other.
    let count = firing_of(&alerts, Signal::EventCount);
    assert_eq!(count.len(), 1, "{}", describe(&alerts));
    assert_eq!(a.related, vec!["svc/event_count".to_string()]);
    assert_eq!(count[0].related, vec!["svc/warn_count".to_string()]);
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
