//! Labelled synthetic incidents through the whole detect path (generator,
//! parser with template mining, detector): which incidents were found, how
//! late, and which alerts were false. `logwarden eval` prints the table
//! (`bench/incidents.sh`); a test holds a floor under it.
//!
//! An alert matches an incident when it fires for the incident's service
//! with an incident start between one window before the incident and five
//! minutes after its end. Incidents that must not alert (slow drift) and a
//! day of the generator's daily cycle make any alert a false one. Delay is
//! in event time: the end of the window the alert was decided on minus the
//! incident's start (the watermark adds `allowed_lateness_secs` to it in a
//! live run; `bench/alert_latency.sh` measures the wall-clock part).

use std::fmt::Write as _;

use anyhow::Context;
use clap::Args;

use logwarden_detect::{field_values, Alert, AlertStatus, Detector, DetectorConfig, Event};
use logwarden_ingest::parse::{ParseContext, Parser, ParserConfig};
use logwarden_ingest::record::LogRecord;

use crate::generate::{base_rate, Generator, GeneratorConfig, Incident};

/// 2026-03-02T00:00:00Z: scenarios start at midnight.
const START_US: i64 = 1_772_409_600_000_000;
/// Alerts starting this long after an incident's end still match it.
const MATCH_AFTER_US: i64 = 5 * 60 * 1_000_000;

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// Scale every scenario's event rate (lower is faster).
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

/// One labelled stream.
pub struct Scenario {
    pub name: &'static str,
    pub hours: f64,
    /// Events per second of event time, all services together.
    pub events_per_sec: f64,
    pub seed: u64,
    pub incidents: Vec<Incident>,
}

/// The standard scenario set: one incident kind each, starting at 02:00
/// after two hours of normal traffic, a slow drift, and three days of the
/// daily cycle with nothing injected (long enough for the count baselines
/// to learn the daily profile).
pub fn scenarios(rate_scale: f64) -> anyhow::Result<Vec<Scenario>> {
    let one = |name, seed, spec: &str| -> anyhow::Result<Scenario> {
        Ok(Scenario {
            name,
            hours: 3.0,
            events_per_sec: 10.0 * rate_scale,
            seed,
            incidents: vec![spec.parse().map_err(anyhow::Error::msg)?],
        })
    };
    Ok(vec![
        one("error burst", 101, "error-burst:payments@120m+6m")?,
        one("traffic drop", 102, "traffic-drop:checkout@120m+10m")?,
        one("new template", 103, "new-template:search@120m+10m")?,
        one("latency regression", 104, "latency:auth@120m+10m")?,
        one("slow drift", 105, "drift:frontend@20m+150m")?,
        Scenario {
            name: "daily cycle",
            hours: 72.0,
            events_per_sec: 2.0 * rate_scale,
            seed: 106,
            incidents: Vec::new(),
        },
    ])
}

/// The detector configuration of the evaluation: the defaults, with
/// `duration_ms` as a numeric field.
pub fn detector_config() -> DetectorConfig {
    DetectorConfig {
        fields: vec!["duration_ms".into()],
        ..DetectorConfig::default()
    }
}

/// What became of one incident.
#[derive(Debug, Clone)]
pub struct IncidentOutcome {
    pub scenario: &'static str,
    pub incident: String,
    pub should_alert: bool,
    /// Signals of the matching firing alerts.
    pub signals: Vec<String>,
    /// Event-time delay of the first matching alert, seconds.
    pub delay_secs: Option<f64>,
}

/// The evaluation's result.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    pub incidents: Vec<IncidentOutcome>,
    /// Firing alerts matching an incident that should alert.
    pub true_alerts: usize,
    /// Every other firing alert: (scenario, summary).
    pub false_alerts: Vec<(&'static str, String)>,
    /// Per scenario where nothing should alert, its closest call: the
    /// smallest tail probability of any judged window, and where.
    pub closest: Vec<(&'static str, f64, String)>,
    pub records: u64,
}

impl EvalReport {
    pub fn precision(&self) -> f64 {
        let all = self.true_alerts + self.false_alerts.len();
        if all == 0 {
            1.0
        } else {
            self.true_alerts as f64 / all as f64
        }
    }

    pub fn recall(&self) -> f64 {
        let due: Vec<&IncidentOutcome> = self.incidents.iter().filter(|i| i.should_alert).collect();
        if due.is_empty() {
            return 1.0;
        }
        due.iter().filter(|i| i.delay_secs.is_some()).count() as f64 / due.len() as f64
    }

    /// Delays of the detected incidents, ascending.
    pub fn delays(&self) -> Vec<f64> {
        let mut d: Vec<f64> = self
            .incidents
            .iter()
            .filter(|i| i.should_alert)
            .filter_map(|i| i.delay_secs)
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| scenario | incident | expected | detected by | delay (s) |\n|---|---|---|---|---|"
        );
        for i in &self.incidents {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                i.scenario,
                i.incident,
                if i.should_alert { "alert" } else { "no alert" },
                if i.signals.is_empty() {
                    "-".to_string()
                } else {
                    i.signals.join(", ")
                },
                i.delay_secs.map_or("-".into(), |d| format!("{d:.0}"))
            );
        }
        let d = self.delays();
        let median = d.get(d.len() / 2).copied();
        let _ = writeln!(
            s,
            "\nprecision {:.2} ({} true, {} false alerts), recall {:.2}, delay median {} s, max {} s, {} records",
            self.precision(),
            self.true_alerts,
            self.false_alerts.len(),
            self.recall(),
            median.map_or("-".into(), |m| format!("{m:.0}")),
            d.last().map_or("-".into(), |m| format!("{m:.0}")),
            self.records
        );
        for (sc, p, what) in &self.closest {
            let _ = writeln!(
                s,
                "closest call in {sc}: p={p:.1e} ({what}; alerts need p < {:.0e} and the absolute floors)",
                detector_config().p_threshold
            );
        }
        for (sc, summary) in &self.false_alerts {
            let _ = writeln!(s, "false alert in {sc}: {summary}");
        }
        s
    }
}

/// What one scenario gave.
struct ScenarioRun {
    /// The firing alerts.
    alerts: Vec<Alert>,
    records: u64,
    /// The smallest tail probability of a judged window: (p, window).
    closest: Option<(f64, String)>,
}

/// Runs one scenario.
fn run_scenario(sc: &Scenario, cfg: &DetectorConfig) -> anyhow::Result<ScenarioRun> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: sc.seed,
        start_us: START_US,
        rate_scale: sc.events_per_sec / base_rate(),
        json_share: 0.8,
        incidents: sc.incidents.clone(),
    });
    let end_us = START_US + (sc.hours * 3600e6) as i64;
    let mut parser = Parser::new(ParserConfig::default()).context("parser")?;
    let mut detector = Detector::new(cfg.clone()).context("detector")?;
    detector.record_windows(true);
    let mut closest: Option<(f64, String)> = None;
    let mut note = |d: &mut Detector| {
        for w in d.take_window_scores() {
            if w.expected.is_some() && closest.as_ref().is_none_or(|c| w.probability < c.0) {
                let key = logwarden_detect::alert::series_key(
                    &w.service,
                    w.signal,
                    w.dimension.as_deref(),
                );
                let what = format!(
                    "{key} at {}: {} vs {:.1} expected",
                    logwarden_detect::rfc3339_us(w.window_start_us),
                    w.observed,
                    w.expected.unwrap_or_default()
                );
                closest = Some((w.probability, what));
            }
        }
    };
    let mut rec = LogRecord::default();
    let mut values = Vec::new();
    let mut alerts = Vec::new();
    let mut records = 0u64;
    for g in generator.by_ref() {
        if g.event_time_us >= end_us {
            break;
        }
        let ctx = ParseContext {
            transport_time_us: Some(g.event_time_us),
            ingest_time_us: g.event_time_us,
        };
        parser.parse(Some(g.line.as_bytes()), &ctx, &mut rec);
        field_values(&cfg.fields, &rec, &mut values);
        alerts.extend(detector.observe(&Event {
            values: &values,
            ..Event::from_record(&rec)
        }));
        note(&mut detector);
        records += 1;
    }
    alerts.extend(detector.flush());
    note(&mut detector);
    alerts.retain(|a| a.status == AlertStatus::Firing);
    Ok(ScenarioRun {
        alerts,
        records,
        closest,
    })
}

/// Runs every scenario and scores the alerts.
pub fn evaluate(scenarios: &[Scenario], cfg: &DetectorConfig) -> anyhow::Result<EvalReport> {
    let mut report = EvalReport::default();
    let window_us = cfg.window_us();
    for sc in scenarios {
        let ScenarioRun {
            alerts,
            records,
            closest,
        } = run_scenario(sc, cfg)?;
        report.records += records;
        if sc.incidents.iter().all(|i| !i.kind.should_alert()) {
            if let Some((p, what)) = closest {
                report.closest.push((sc.name, p, what));
            }
        }
        let mut matched = vec![false; alerts.len()];
        for inc in &sc.incidents {
            let start_us = START_US + (inc.start_secs * 1e6) as i64;
            let end_us = start_us + (inc.duration_secs * 1e6) as i64;
            let mut outcome = IncidentOutcome {
                scenario: sc.name,
                incident: format!(
                    "{:?} {} at +{:.0} min",
                    inc.kind,
                    inc.service,
                    inc.start_secs / 60.0
                ),
                should_alert: inc.kind.should_alert(),
                signals: Vec::new(),
                delay_secs: None,
            };
            for (i, a) in alerts.iter().enumerate() {
                let hit = a.series.service == inc.service
                    && a.incident_start_us >= start_us - window_us
                    && a.incident_start_us <= end_us + MATCH_AFTER_US;
                if !hit {
                    continue;
                }
                outcome.signals.push(a.key());
                if outcome.should_alert {
                    matched[i] = true;
                    report.true_alerts += 1;
                    let delay = (a.window_end_us - start_us) as f64 / 1e6;
                    outcome.delay_secs = Some(outcome.delay_secs.map_or(delay, |d| d.min(delay)));
                }
            }
            report.incidents.push(outcome);
        }
        for (a, m) in alerts.iter().zip(&matched) {
            if !m {
                report.false_alerts.push((sc.name, a.summary.clone()));
            }
        }
    }
    Ok(report)
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let report = evaluate(&scenarios(args.rate_scale)?, &detector_config())?;
    print!("{}", report.table());
    eprintln!("eval done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The floor under detection quality on the labelled scenarios: every
    /// incident that should alert is found within 5 minutes of event time,
    /// the drift and the daily cycle raise nothing, no false alert at all.
    #[test]
    fn synthetic_incidents_meet_the_floor() {
        let report = evaluate(&scenarios(1.0).unwrap(), &detector_config()).unwrap();
        let table = report.table();
        println!("{table}");
        assert_eq!(report.recall(), 1.0, "{table}");
        assert!(report.precision() >= 0.9, "{table}");
        assert!(
            report
                .false_alerts
                .iter()
                .all(|(sc, _)| *sc != "slow drift" && *sc != "daily cycle"),
            "{table}"
        );
        assert!(report.delays().iter().all(|d| *d <= 300.0), "{table}");
        assert_eq!(report.incidents.len(), 5);
    }
}
