//! Alerts to a real Prometheus Alertmanager (the Debian package's binary):
//! detect, started while Alertmanager is still down, retries until it is up;
//! the firing alert then shows in `GET /api/v2/alerts` with its labels and
//! annotations, and disappears once a later run (restored from its
//! checkpoint) resolves it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn alertmanager_bin() -> PathBuf {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("prometheus-alertmanager not installed (scripts/test installs it)");
}

fn start_alertmanager(dir: &Path, port: u16) -> Proc {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("config");
    let child = Command::new(alertmanager_bin())
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("alertmanager.log")).expect("log"))
        .spawn()
        .expect("alertmanager starts");
    let am = Proc(child);
    wait_until("alertmanager ready", WAIT, || {
        http_get(port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    am
}

/// The alerts Alertmanager lists as not resolved.
fn listed(port: u16) -> Vec<serde_json::Value> {
    http_get(port, "/api/v2/alerts")
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, body)| serde_json::from_str::<Vec<serde_json::Value>>(&body).ok())
        .unwrap_or_default()
}

#[test]
fn alerts_reach_alertmanager_and_resolve() {
    let (broker, dir, _, _) = setup(&[("logs", 3), ("alerts", 1)]);
    let state = dir.path().join("state");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let gen = |start: &str, duration: &str, seed: &str, extra: &[&str]| {
        run_ok(
            logwarden()
                .args(["generate", "--count", "1000000", "--duration", duration])
                .args(["--seed", seed, "--events-per-sec", "20", "--start", start])
                .args(["--brokers", &broker.bootstrap(), "--topic", "logs"])
                .args(extra),
        );
    };
    // payments errors from 10:25 to the end of the data: the incident is
    // still open when the first run stops.
    gen(
        "2026-03-01T10:00:00Z",
        "30m",
        "41",
        &["--incident", "error-burst:payments@25m+10m"],
    );
    let log = dir.path().join("detect-1.log");
    let mut first = Proc(
        detect_kafka(&broker, "logs", "g", "alerts")
            .args(["--stop-when-caught-up", "--alertmanager-url", &url])
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("detect starts"),
    );
    wait_until("a failed post to the absent alertmanager", WAIT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("posting to alertmanager failed")
    });
    let _am = start_alertmanager(dir.path(), port);
    let status = wait_exit(&mut first, WAIT).expect("detect exits");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let payments = |alerts: &[serde_json::Value]| -> Option<serde_json::Value> {
        alerts
            .iter()
            .find(|a| a["labels"]["service"] == "payments")
            .cloned()
    };
    let mut got = None;
    wait_until("the alert listed by alertmanager", WAIT, || {
        got = payments(&listed(port));
        got.is_some()
    });
    let a = got.expect("listed");
    let kafka_alert: serde_json::Value = broker
        .read_all("alerts")
        .iter()
        .map(|(_, _, _, p)| serde_json::from_slice(p).expect("alert JSON"))
        .find(|a: &serde_json::Value| a["status"] == "firing")
        .expect("a firing alert on the topic");
    assert_eq!(a["labels"]["alertname"], "LogwardenAnomaly", "{a}");
    assert_eq!(a["labels"]["signal"], "error_ratio", "{a}");
    assert_eq!(
        a["labels"]["fingerprint"], kafka_alert["fingerprint"],
        "{a}"
    );
    assert_eq!(a["labels"]["severity"], kafka_alert["severity"], "{a}");
    assert_eq!(a["annotations"]["summary"], kafka_alert["summary"], "{a}");
    for k in ["observed", "expected", "range", "probability"] {
        assert!(a["annotations"][k].is_string(), "annotation {k}: {a}");
    }
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert!(
        a["startsAt"]
            .as_str()
            .is_some_and(|s| s.starts_with("2026-03-01T10:25:00")),
        "{a}"
    );
    assert_eq!(listed(port).len(), 1, "{:?}", listed(port));

    // Normal traffic after the burst: the restored detector resolves it.
    gen("2026-03-01T10:30:00Z", "10m", "42", &[]);
    let out = run_ok(
        detect_kafka(&broker, "logs", "g", "alerts")
            .args(["--stop-when-caught-up", "--alertmanager-url", &url])
            .arg("--state-dir")
            .arg(&state),
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let alerts_now: Vec<String> = broker
        .read_all("alerts")
        .iter()
        .map(|(_, _, k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(summary.contains(" 0 late records"), "{summary}");
    assert!(
        summary.contains(" 1 alerts"),
        "{summary} {alerts_now:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the alert resolved in alertmanager", WAIT, || {
        payments(&listed(port)).is_none()
    });
    let metrics_ok = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!metrics_ok.contains("refused the alerts"), "{metrics_ok}");
}
