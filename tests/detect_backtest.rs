//! `logwarden backtest` end to end: the metric mode writes one row per input
//! record with no look-ahead; the logs mode finds an injected incident in a
//! generated file, and replaying the Parquet archive of the same lines gives
//! the same alerts.

mod common;

use std::path::Path;

use common::*;

/// A metric series: 3000 samples 5 minutes apart, noisy around 50, with a
/// jump to 90 at record 2000, and a few lines that are not usable samples.
fn write_series(path: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..3000u64 {
        // xorshift noise in [-5, 5).
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = (x % 1000) as f64 / 100.0 - 5.0;
        let v = if i >= 2000 { 90.0 } else { 50.0 } + noise;
        let mins = i * 5;
        let ts = format!(
            "2024-01-{:02} {:02}:{:02}:00",
            1 + mins / 1440,
            mins / 60 % 24,
            mins % 60
        );
        lines.push(match i {
            100 => "not json at all".to_string(),
            101 => format!("{{\"timestamp\":\"{ts}\"}}"),
            102 => format!("{{\"timestamp\":\"{ts}\",\"value\":\"oops\"}}"),
            _ => format!("{{\"timestamp\":\"{ts}\",\"value\":{v}}}"),
        });
    }
    std::fs::write(path, lines.join("\n") + "\n").expect("write series");
    lines
}

fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("scores file");
    let mut it = text.lines();
    assert_eq!(it.next(), Some("timestamp,value,anomaly_score,alert"));
    it.map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn metric_backtest_writes_one_row_per_record_without_look_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = dir.path().join("full.jsonl");
    let lines = write_series(&full);
    let prefix = dir.path().join("prefix.jsonl");
    std::fs::write(&prefix, lines[..2100].join("\n") + "\n").expect("write prefix");

    let out_full = dir.path().join("full.csv");
    let out_prefix = dir.path().join("prefix.csv");
    let plot = dir.path().join("plot.svg");
    for (input, out) in [(&full, &out_full), (&prefix, &out_prefix)] {
        run_ok(
            logwarden()
                .args(["backtest", "--field", "value", "--input"])
                .arg(input)
                .arg("--scores-out")
                .arg(out)
                .arg("--plot")
                .arg(&plot),
        );
    }
    let rows = read_rows(&out_full);
    assert_eq!(rows.len(), 3000, "one row per input record");
    // Scores of a record depend only on the records before it.
    let rows_prefix = read_rows(&out_prefix);
    assert_eq!(rows_prefix.len(), 2100);
    assert_eq!(rows[..2100], rows_prefix[..]);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), 4, "row {i}: {r:?}");
        let score: f64 = r[2].parse().expect("score");
        assert!((0.0..=1.0).contains(&score), "row {i}: {r:?}");
        assert!(r[3] == "0" || r[3] == "1", "row {i}: {r:?}");
    }
    // Unusable samples keep their row, with no value and score 0.
    assert_eq!(rows[100][..], ["", "", "0", "0"]);
    assert_eq!(rows[101][1..], ["", "0", "0"]);
    assert_eq!(rows[102][1..], ["", "0", "0"]);
    assert_eq!(rows[5][0], "2024-01-01 00:25:00");
    let alerts: Vec<usize> = (0..rows.len()).filter(|i| rows[*i][3] == "1").collect();
    assert_eq!(
        alerts.len(),
        1,
        "one alert for the one level shift: {alerts:?}"
    );
    assert!((2000..2005).contains(&alerts[0]), "{alerts:?}");
    let svg = std::fs::read_to_string(&plot).expect("plot");
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
}

/// Generated logs with an error burst of `payments`, as a file.
fn generated_file(dir: &Path) -> std::path::PathBuf {
    let lines = dir.join("logs.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run_ok(
        generate_cmd(144_000, 12, &truth)
            .args(["--events-per-sec", "10"])
            .args(["--incident", "error-burst:payments@150m+6m"]),
    );
    std::fs::write(&lines, &out.stdout).expect("write logs");
    lines
}

fn backtest_logs(input: &Path, scores: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(
        logwarden()
            .args(["backtest", "--json", "--input"])
            .arg(input)
            .arg("--scores-out")
            .arg(scores),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect()
}

#[test]
fn log_backtest_finds_the_burst_and_the_archive_replays_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = generated_file(dir.path());
    let scores = dir.path().join("windows.csv");
    let alerts = backtest_logs(&lines, &scores);
    let firing: Vec<&serde_json::Value> =
        alerts.iter().filter(|a| a["status"] == "firing").collect();
    assert_eq!(firing.len(), 1, "{alerts:#?}");
    assert_eq!(firing[0]["series"]["service"], "payments");
    assert_eq!(firing[0]["series"]["signal"], "error_ratio");
    let start = firing[0]["window_start"].as_str().expect("window_start");
    assert!(
        ("2026-03-01T12:30:00".."2026-03-01T12:36:00").contains(&start),
        "{start}"
    );

    // Per-window scores: a header, then rows for every service and signal.
    let text = std::fs::read_to_string(&scores).expect("scores");
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("window_start,window_end,service,signal,observed,expected,expected_low,expected_high,probability,score,anomalous,dimension")
    );
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 12));
    // Level series carry their level as the dimension.
    assert!(rows
        .iter()
        .any(|r| r[2] == "payments" && r[3] == "level_count" && r[11] == "error"));
    let burst: Vec<&Vec<&str>> = rows
        .iter()
        .filter(|r| r[2] == "payments" && r[3] == "error_ratio" && r[10] == "1")
        .collect();
    assert!(!burst.is_empty() && burst.len() <= 7, "{burst:?}");
    for service in ["checkout", "search", "frontend"] {
        assert!(rows
            .iter()
            .any(|r| r[2] == service && r[3] == "event_count"));
    }

    // The same lines archived as Parquet replay to the same alerts.
    let archive = dir.path().join("archive");
    run_ok(
        logwarden()
            .args(["ingest", "--input"])
            .arg(&lines)
            .arg("--output")
            .arg(&archive),
    );
    // The archive replay reads no messages: its alerts carry no samples.
    let no_samples = |mut v: Vec<serde_json::Value>| {
        for a in &mut v {
            a["samples"] = serde_json::json!([]);
        }
        v
    };
    let replay = backtest_logs(&archive, &dir.path().join("archive.csv"));
    assert!(replay.iter().all(|a| a["samples"] == serde_json::json!([])));
    assert_eq!(no_samples(replay), no_samples(alerts));
}

/// A stack trace in a file (lines without a timestamp) joins the line
/// before it, as a backfill joins it: one record, which keeps that line's
/// time, so the backtest's clock does not jump to the present, the records
/// after it are not dropped as late, and the alerts are those of the file
/// without it.
#[test]
fn a_stack_trace_in_the_file_changes_no_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = generated_file(dir.path());
    let alerts = backtest_logs(&lines, &dir.path().join("plain.csv"));
    let text = std::fs::read_to_string(&lines).expect("logs");
    let mut traced = String::new();
    let mut placed = false;
    for (i, line) in text.lines().enumerate() {
        traced.push_str(line);
        traced.push('\n');
        // After a plain line: no line continues a JSON one.
        if i >= 2_000 && !placed && !line.starts_with('{') {
            placed = true;
            traced.push_str("java.lang.IllegalStateException: pool exhausted\n");
            traced.push_str("\tat com.example.Pool.take(Pool.java:42)\n");
            traced.push_str("Caused by: java.util.concurrent.TimeoutException\n");
        }
    }
    let with_trace = dir.path().join("traced.log");
    std::fs::write(&with_trace, traced).expect("write");
    let out = run_ok(
        logwarden()
            .args(["backtest", "--json", "--input"])
            .arg(&with_trace),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        placed && stderr.contains("144000 records (0 too late for their window)"),
        "every record counted, none late: {stderr}"
    );
    let traced_alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    let key = |v: &[serde_json::Value]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|a| {
                (
                    a["status"].to_string(),
                    a["series"].to_string(),
                    a["window_start"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(key(&traced_alerts), key(&alerts));
}
