//! End to end against a real broker process: `logwarden detect` on steady
//! generated traffic publishes nothing; on an injected error burst it
//! publishes exactly one firing alert for the right series.

mod common;

use common::*;

/// The alerts on a topic: (key, alert JSON).
fn read_alerts(broker: &Broker, topic: &str) -> Vec<(String, serde_json::Value)> {
    broker
        .read_all(topic)
        .into_iter()
        .map(|(_, _, key, payload)| {
            let alert = serde_json::from_slice(&payload).expect("alert JSON");
            (String::from_utf8_lossy(&key).into_owned(), alert)
        })
        .collect()
}

fn detect(broker: &Broker, group: &str) -> String {
    let out = run_ok(detect_kafka(broker, "logs", group, "alerts").arg("--stop-when-caught-up"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A broker with a 3-partition log topic holding 288,000 generated lines
/// (about three hours of event time from 2026-03-01T10:00Z at a nominal 20
/// events/s, following the daily curve) and an empty alert topic.
fn broker_with_logs(seed: u64, extra: &[&str]) -> Broker {
    let broker = Broker::start();
    broker.create_topic("logs", 3);
    broker.create_topic("alerts", 1);
    let truth = broker.workdir.path().join("truth.jsonl");
    let mut args = vec!["--events-per-sec", "20"];
    args.extend_from_slice(extra);
    generate(&broker, "logs", 288_000, seed, &truth, &args);
    broker
}

#[test]
fn steady_traffic_gives_no_alert() {
    let broker = broker_with_logs(11, &[]);
    let summary = detect(&broker, "d1");
    assert!(summary.contains("288000 records"), "{summary}");
    assert!(summary.contains(" 0 alerts"), "{summary}");
    assert!(summary.contains(" 0 late records"), "{summary}");
    assert_eq!(broker.topic_count("alerts"), 0);
}

#[test]
fn error_burst_gives_exactly_one_alert() {
    let broker = broker_with_logs(12, &["--incident", "error-burst:payments@150m+6m"]);
    // `logwarden alerts --follow` prints them as they come.
    let mut follow = Proc(
        logwarden()
            .args([
                "alerts",
                "--brokers",
                &broker.bootstrap(),
                "--alerts-topic",
                "alerts",
            ])
            .args(["--follow", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("alerts starts"),
    );
    let followed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stdout = follow.stdout.take().expect("stdout");
    let sink = followed.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().expect("lock").push(line);
        }
    });
    let summary = detect(&broker, "d2");
    assert!(summary.contains(" 0 late records"), "{summary}");
    let alerts = read_alerts(&broker, "alerts");
    let firing: Vec<&(String, serde_json::Value)> = alerts
        .iter()
        .filter(|(_, a)| a["status"] == "firing")
        .collect();
    assert_eq!(firing.len(), 1, "{summary}\n{alerts:#?}");
    let (key, a) = firing[0];
    assert_eq!(key, "payments/error_ratio");
    assert_eq!(a["series"]["service"], "payments");
    assert_eq!(a["series"]["signal"], "error_ratio");
    assert_eq!(a["schema_version"], "3");
    for field in [
        "alert_id",
        "fingerprint",
        "window_start",
        "window_end",
        "observed",
        "expected",
        "expected_low",
        "expected_high",
        "probability",
        "score",
        "severity",
        "summary",
    ] {
        assert!(!a[field].is_null(), "alert lacks {field}: {a}");
    }
    // The burst starts 150 minutes after 2026-03-01T10:00:00Z.
    let start = a["window_start"].as_str().expect("window_start");
    assert!(
        ("2026-03-01T12:30:00".."2026-03-01T12:36:00").contains(&start),
        "{start}"
    );
    assert!(a["probability"].as_f64().expect("p") < 1e-6, "{a}");
    assert!(
        a["observed"].as_f64().expect("obs") > a["expected_high"].as_f64().expect("hi"),
        "{a}"
    );
    // `logwarden alerts`: one readable line per alert, or the JSON itself.
    let text = run_ok(logwarden().args([
        "alerts",
        "--brokers",
        &broker.bootstrap(),
        "--alerts-topic",
        "alerts",
    ]));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), alerts.len(), "{text}");
    assert!(
        lines[0].contains("FIRING") && lines[0].contains("payments/error_ratio"),
        "{text}"
    );
    assert!(
        lines[0].contains(a["summary"].as_str().expect("summary")),
        "{text}"
    );
    let json = run_ok(logwarden().args([
        "alerts",
        "--brokers",
        &broker.bootstrap(),
        "--alerts-topic",
        "alerts",
        "--json",
    ]));
    let parsed: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let on_topic: Vec<&serde_json::Value> = alerts.iter().map(|(_, a)| a).collect();
    assert_eq!(parsed.iter().collect::<Vec<_>>(), on_topic);
    let none = run_ok(logwarden().args([
        "alerts",
        "--brokers",
        &broker.bootstrap(),
        "--alerts-topic",
        "alerts",
        "--service",
        "search",
    ]));
    assert!(
        none.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&none.stdout)
    );
    wait_until("--follow printed every alert", WAIT, || {
        followed.lock().expect("lock").len() == alerts.len()
    });
    let followed: Vec<serde_json::Value> = followed
        .lock()
        .expect("lock")
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(followed.iter().collect::<Vec<_>>(), on_topic);
    let _ = follow.kill();
    // Anything else on the topic is the same incident resolving.
    for (_, other) in alerts.iter().filter(|(_, a)| a["status"] != "firing") {
        assert_eq!(other["status"], "resolved", "{other}");
        assert_eq!(other["fingerprint"], a["fingerprint"], "{other}");
    }
}
