//! Metric-like records end to end on a real broker: one `queue_depth`
//! sample per second of event time, with one spike. `logwarden detect
//! --metric-field queue_depth` publishes exactly one `metric` alert for the
//! spike and counts the samples in its metrics; stopped (SIGTERM) and
//! restarted from its checkpoint, the scorer neither warms up again nor
//! fires again, and publishes the `resolved` alert of the same incident.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Samples in the stream, the spike's index, and the first sample of the
/// second run.
const SAMPLES: usize = 1500;
const SPIKE: usize = 1000;
const SPLIT: usize = 1010;

/// The JSON line of sample `i`: 2026-03-01T10:00:00Z plus `i` seconds, a
/// queue depth wobbling in [11.5, 12.5), 95 at the spike.
fn sample(i: usize) -> String {
    let secs = i % 60;
    let mins = i / 60;
    let depth = if i == SPIKE {
        95.0
    } else {
        // A fixed irregular wobble (multiplicative hash), no randomness.
        11.5 + ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0
    };
    format!(
        r#"{{"ts":"2026-03-01T10:{mins:02}:{secs:02}Z","service":"queue","level":"info","msg":"sample","queue_depth":{depth}}}"#
    )
}

fn produce(broker: &Broker, topic: &str, lines: impl Iterator<Item = String>) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    for line in lines {
        p.send(
            BaseRecord::<str, str>::to(topic)
                .payload(&line)
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// The alerts on `topic`: (key, alert JSON).
fn alerts(broker: &Broker, topic: &str) -> Vec<(String, serde_json::Value)> {
    broker
        .read_all(topic)
        .into_iter()
        .map(|(_, _, key, payload)| {
            let a = serde_json::from_slice(&payload).expect("alert JSON");
            (String::from_utf8_lossy(&key).into_owned(), a)
        })
        .collect()
}

fn detect(broker: &Broker, state: &std::path::Path) -> std::process::Command {
    let mut c = detect_kafka(broker, "metrics", "m", "alerts");
    c.args(["--metric-field", "queue_depth", "--state-dir"])
        .arg(state);
    c
}

/// The value of an unlabelled metric on `/metrics`, if served.
fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_metric_spike_gives_one_metric_alert_across_a_restart() {
    // The windowed signals see a steady 60 records a minute: they stay
    // quiet, so every alert on the topic is the metric signal's.
    let (broker, dir, _, _) = setup(&[("metrics", 1), ("alerts", 1)]);
    let state = dir.path().join("state");
    produce(&broker, "metrics", (0..SPLIT).map(sample));
    let port = free_port();
    let log = dir.path().join("detect-1.log");
    let mut child = Proc(
        detect(&broker, &state)
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("detect starts"),
    );
    wait_until("every sample scored and the alert published", WAIT, || {
        metric(port, "logwarden_detect_metric_records_total") == Some(SPLIT as f64)
            && broker.topic_count("alerts") == 1
    });
    assert_eq!(metric(port, "logwarden_detect_metric_series"), Some(1.0));
    assert_eq!(
        metric(port, "logwarden_detect_evicted_metric_series_total"),
        Some(0.0)
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("detect exits on SIGTERM");
    assert!(
        status.success(),
        "{status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let first = alerts(&broker, "alerts");
    assert_eq!(first.len(), 1, "{first:#?}");
    let (key, a) = &first[0];
    assert_eq!(key, "queue/metric/queue_depth");
    assert_eq!(a["status"], "firing");
    assert_eq!(a["schema_version"], "3");
    assert_eq!(a["series"]["service"], "queue");
    assert_eq!(a["series"]["signal"], "metric");
    assert_eq!(a["series"]["dimension"], "queue_depth");
    assert_eq!(a["series"]["direction"], "high");
    // 1000 s after 10:00:00: the spike's own time, start and end alike.
    assert_eq!(a["window_start"], "2026-03-01T10:16:40Z");
    assert_eq!(a["window_end"], "2026-03-01T10:16:40Z");
    assert_eq!(a["incident_start"], "2026-03-01T10:16:40Z");
    assert_eq!(a["window_events"], 1);
    assert_eq!(a["observed"].as_f64(), Some(95.0));
    let num = |f: &str| a[f].as_f64().unwrap_or_else(|| panic!("{f} in {a}"));
    assert!(
        num("expected_low") < num("expected") && num("expected") < num("expected_high"),
        "{a}"
    );
    assert!((11.5..12.5).contains(&num("expected")), "{a}");
    assert!(num("expected_high") < 95.0, "{a}");
    assert!(num("probability") < 1e-5, "{a}");
    assert!((0.5..=1.0).contains(&num("score")), "{a}");
    for field in ["alert_id", "fingerprint", "severity", "summary"] {
        assert!(a[field].is_string(), "alert lacks {field}: {a}");
    }
    assert_eq!(a["samples"], serde_json::json!(["sample"]));
    assert!(
        a["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("queue queue_depth 95 at 2026-03-01T10:16:40Z")),
        "{a}"
    );

    // The rest of the stream, read by a restarted detect: the incident
    // resolves once, nothing fires again.
    produce(&broker, "metrics", (SPLIT..SAMPLES).map(sample));
    let out = run_ok(detect(&broker, &state).arg("--stop-when-caught-up"));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("{} records", SAMPLES - SPLIT)),
        "{summary}"
    );
    let all = alerts(&broker, "alerts");
    assert_eq!(all.len(), 2, "{summary}\n{all:#?}");
    let (key, r) = &all[1];
    assert_eq!(key, "queue/metric/queue_depth");
    assert_eq!(r["status"], "resolved", "{r}");
    assert_eq!(r["fingerprint"], a["fingerprint"], "{r}");
    assert_ne!(r["alert_id"], a["alert_id"], "{r}");
    let resolved_at = r["window_start"].as_str().expect("window_start");
    assert!(
        ("2026-03-01T10:18:20Z".."2026-03-01T10:25:00Z").contains(&resolved_at),
        "at least quiet_rows (100) samples after the spike: {r}"
    );
}
