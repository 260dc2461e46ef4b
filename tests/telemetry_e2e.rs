//! End to end with a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/test`): a running `logwarden ingest` and `logwarden detect`
//! serve /metrics, /healthz and /readyz; Prometheus scrapes both, loads the
//! example alerting rules, and PromQL over its HTTP API returns the counts
//! the run really has (records produced, archive files on disk).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const RECORDS: u64 = 20_000;

fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting logwarden"),
    )
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant PromQL query, when it has one.
fn query(prom: u16, q: &str) -> Option<f64> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", encode(q)))?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// `logwarden_*` and `process_*` metric names in a text.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["logwarden_", "process_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            out.push(name);
        }
    }
    out
}

fn wait_for_value(prom: u16, q: &str, want: f64) {
    let mut last = None;
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(&format!("`{q}` == {want}"), WAIT, || {
            last = query(prom, q);
            last == Some(want)
        })
    }));
    if waited.is_err() {
        panic!("PromQL `{q}`: wanted {want}, last answer {last:?}");
    }
}

#[test]
fn prometheus_scrapes_ingest_and_detect() {
    let broker = Broker::start();
    broker.create_topic("logs", 2);
    broker.create_topic("alerts", 1);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("archive");
    let truth = work.path().join("truth.jsonl");
    generate(&broker, "logs", RECORDS, 5, &truth, &[]);

    let (ingest_port, detect_port, prom_port) = (free_port(), free_port(), free_port());
    let _ingest = spawn(
        logwarden()
            .args([
                "ingest",
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                "logs",
            ])
            .args(["--group", "metrics-ingest", "--output"])
            .arg(&archive)
            .args([
                "--segment-max-age-secs",
                "1",
                "--session-timeout-ms",
                "6000",
            ])
            .args(["--metrics-listen", &format!("127.0.0.1:{ingest_port}")]),
        &work.path().join("ingest.log"),
    );
    let _detect = spawn(
        logwarden()
            .args([
                "detect",
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                "logs",
            ])
            .args(["--group", "metrics-detect", "--alerts-topic", "alerts"])
            .args(["--session-timeout-ms", "6000"])
            .args(["--metrics-listen", &format!("127.0.0.1:{detect_port}")]),
        &work.path().join("detect.log"),
    );

    // Alive at once; ready once connected with partitions assigned.
    for port in [ingest_port, detect_port] {
        wait_until("/healthz", WAIT, || {
            http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
        });
        wait_until("/readyz", WAIT, || {
            http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
        });
    }

    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/logwarden-rules.yml");
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n\
             \x20 - job_name: logwarden-ingest\n    static_configs:\n      - targets: ['127.0.0.1:{ingest_port}']\n\
             \x20 - job_name: logwarden-detect\n    static_configs:\n      - targets: ['127.0.0.1:{detect_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let _prometheus = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is installed (./scripts/test installs it)"),
    );
    wait_until("prometheus ready", WAIT, || {
        http_get(prom_port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });

    let n = RECORDS as f64;
    wait_for_value(prom_port, "sum(up{job=~\"logwarden-.*\"})", 2.0);
    wait_for_value(
        prom_port,
        "sum(logwarden_ingest_records_archived_total{job=\"logwarden-ingest\"})",
        n,
    );
    // Per source topic: every record counted under the topic it came from.
    wait_for_value(
        prom_port,
        "logwarden_ingest_records_consumed_total{job=\"logwarden-ingest\",topic=\"logs\"}",
        n,
    );
    wait_for_value(
        prom_port,
        "sum(logwarden_ingest_parse_errors_total{job=\"logwarden-ingest\",topic=\"logs\"}) + sum(logwarden_ingest_records_parsed_total{topic=\"logs\"})",
        n,
    );
    wait_for_value(
        prom_port,
        "sum(logwarden_detect_records_total{job=\"logwarden-detect\"})",
        n,
    );
    // Every archived record is in a file on disk, and the file count
    // Prometheus holds is the one on disk.
    let files = parquet_files(&archive);
    assert!(files > 0);
    wait_for_value(
        prom_port,
        "sum(logwarden_ingest_files_written_total)",
        files as f64,
    );
    // Committed everything: no lag left on either partition.
    wait_for_value(
        prom_port,
        "count(logwarden_kafka_consumer_lag{job=\"logwarden-ingest\"} == 0)",
        2.0,
    );
    wait_for_value(
        prom_port,
        "sum(logwarden_kafka_assigned_partitions{job=\"logwarden-ingest\"})",
        2.0,
    );
    wait_for_value(prom_port, "sum(logwarden_errors_total)", 0.0);
    assert!(
        query(
            prom_port,
            "sum(logwarden_ingest_commit_duration_seconds_count)"
        )
        .is_some_and(|c| c >= 1.0),
        "offset commits are timed"
    );
    // Every metric the dashboard and the rules use is one the processes
    // expose.
    let mut exposed = String::new();
    for port in [ingest_port, detect_port] {
        exposed.push_str(&http_get(port, "/metrics").unwrap().1);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "deploy/grafana/logwarden.json",
        "deploy/prometheus/logwarden-rules.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for name in metric_names(&text) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            // A family may have no sample yet (no alert so far): its TYPE
            // line still names it.
            let family = base.strip_suffix("_total").unwrap_or(base);
            assert!(
                exposed.contains(&format!("\n{base}"))
                    || exposed.contains(&format!("# TYPE {family} ")),
                "{file} uses `{name}`, which no process exposes"
            );
        }
    }
    // The example rules loaded, and none fires on this healthy pipeline.
    let (_, rules) = http_get(prom_port, "/api/v1/rules").unwrap();
    assert!(rules.contains("LogwardenNoFilesWritten"), "{rules}");
    let (_, alerts) = http_get(prom_port, "/api/v1/alerts").unwrap();
    assert!(alerts.contains("\"alerts\":[]"), "{alerts}");
}

#[test]
fn readyz_says_why_when_not_ready() {
    let work = tempfile::tempdir().unwrap();
    // A port with no broker behind it.
    let dead = free_port();
    let port = free_port();
    let _ingest = spawn(
        logwarden()
            .args(["ingest", "--brokers", &format!("127.0.0.1:{dead}")])
            .args(["--topic", "logs", "--output"])
            .arg(work.path().join("archive"))
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")]),
        &work.path().join("ingest.log"),
    );
    wait_until("/healthz", WAIT, || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    let mut last = None;
    wait_until("a 503 naming the broker", WAIT, || {
        last = http_get(port, "/readyz");
        last.as_ref()
            .is_some_and(|(s, b)| *s == 503 && b.contains("not connected to any Kafka broker"))
    });
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("logwarden_kafka_brokers_up 0"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[test]
fn a_taken_metrics_port_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    let out = logwarden()
        .args(["ingest", "--input", "-", "--output"])
        .arg(work.path().join("archive"))
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
