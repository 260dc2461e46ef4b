//! End to end against a real broker process: generated logs in Kafka, the
//! `logwarden ingest` binary, and the archive read back with DuckDB.

mod common;

use common::*;

/// 100,000 generated records over 3 partitions: all archived exactly once,
/// fields intact, in the right Hive partition, as microsecond timestamps.
#[test]
fn archives_every_record_exactly_once() {
    let broker = Broker::start();
    broker.create_topic("logs", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.jsonl");
    let archive = dir.path().join("archive");
    generate(&broker, "logs", 100_000, 1, &truth, &[]);
    assert_eq!(broker.topic_count("logs"), 100_000);

    let out = run_ok(ingest_kafka(&broker, "logs", "g1", &archive).arg("--stop-when-caught-up"));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("100000 archived"), "{summary}");

    let r = assert_exactly_once(&archive, &truth, 100_000);
    let ty = r["event_time_type"].as_str().expect("event_time type");
    assert!(
        ty.contains("isAdjustedToUTC=1") && ty.contains("MICROS=MicroSeconds()"),
        "{ty}"
    );

    // Running again with the same group finds nothing new: offsets were committed.
    let out = run_ok(ingest_kafka(&broker, "logs", "g1", &archive).arg("--stop-when-caught-up"));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(" 0 archived"), "{summary}");
    assert_exactly_once(&archive, &truth, 100_000);
}

/// Backfill from a file writes the same records; running it twice replaces
/// the files instead of duplicating rows.
#[test]
fn backfill_from_file_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = dir.path().join("old.log");
    let truth = dir.path().join("truth.jsonl");
    let archive = dir.path().join("archive");
    generate_file(&lines, 20_000, 3, &truth);
    for _ in 0..2 {
        run_ok(
            logwarden()
                .args(["ingest", "--input"])
                .arg(&lines)
                .args(["--segment-max-rows", "7000", "--output"])
                .arg(&archive),
        );
    }
    assert_exactly_once(&archive, &truth, 20_000);

    // Each line's template id in the archive is the one `logwarden
    // templates --ids` assigns it online, in input order.
    let out = run_ok(
        logwarden()
            .args(["templates", "--ids", "--input"])
            .arg(&lines),
    );
    let online: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(online.len(), 20_000);
    // A reader that stops early (`| head -1`) is no failure.
    let mut head = logwarden()
        .args(["templates", "--ids", "--input"])
        .arg(&lines)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("templates starts");
    let mut first = [0u8; 17];
    std::io::Read::read_exact(head.stdout.as_mut().expect("stdout"), &mut first).expect("a line");
    drop(head.stdout.take());
    let out = head.wait_with_output().expect("templates ends");
    assert_eq!(String::from_utf8_lossy(&first).trim(), online[0]);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT coalesce(template_id, '-') AS id, template FROM a ORDER BY kafka_offset",
        ],
    );
    let archived: Vec<String> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(archived.len(), online.len());
    let differ = archived.iter().zip(&online).filter(|(a, o)| a != o).count();
    assert_eq!(differ, 0, "template ids differing from the online ones");
    let distinct: std::collections::BTreeSet<&String> = archived.iter().collect();
    assert!(
        distinct.len() > 5 && distinct.len() < 500,
        "{} templates for 20,000 generated lines",
        distinct.len()
    );
    assert!(rows
        .as_array()
        .expect("rows")
        .iter()
        .all(|r| r["id"] == "-" || r["template"].as_str().is_some_and(|t| !t.is_empty())));

    // Another input under its own source name lands beside, not over, it.
    let other = dir.path().join("other.log");
    generate_file(&other, 5000, 4, &dir.path().join("other-truth.jsonl"));
    run_ok(
        logwarden()
            .args(["ingest", "--input"])
            .arg(&other)
            .args(["--source-name", "host-b/old.log", "--output"])
            .arg(&archive),
    );
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_topic, count(*) AS n FROM a GROUP BY ALL ORDER BY ALL",
        ],
    );
    assert_eq!(rows[0]["kafka_topic"], "host-b/old.log", "{rows}");
    assert_eq!(rows[0]["n"], 5000, "{rows}");
    assert_eq!(rows[1]["kafka_topic"], "old.log", "{rows}");
    assert_eq!(rows[1]["n"], 20_000, "{rows}");
}

/// A backfill of a Java and a Python log archives each stack trace with
/// the line that logged it: one record, its message the line's message and
/// the trace under it, its template mined from the first line only. DuckDB
/// reads the records back in input order, with contiguous offsets.
#[test]
fn a_stack_trace_in_a_backfill_is_one_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("app.log");
    let archive = dir.path().join("archive");
    std::fs::write(
        &input,
        "2024-05-01 10:00:00,001 ERROR [main] c.e.Service - request 7 failed\n\
         java.lang.IllegalStateException: pool exhausted\n\
         \tat com.example.Pool.take(Pool.java:42)\r\n\
         Caused by: java.util.concurrent.TimeoutException\n\
         \t... 3 more\n\
         2024-05-01 10:00:01,000 INFO [main] c.e.Service - request 8 served\n\
         2024-05-01 10:00:02,000 ERROR [main] c.e.Service - request 9 failed\n\
         Traceback (most recent call last):\n\
         \x20 File \"app.py\", line 3, in <module>\n\
         ValueError: bad\n\
         retry scheduled\n",
    )
    .expect("write");
    let out = run_ok(
        logwarden()
            .args(["ingest", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&archive),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 records consumed, 4 archived"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_offset AS o, level, message, template, time_source FROM a ORDER BY o",
        ],
    );
    let rows = rows.as_array().expect("rows");
    let field = |r: usize, k: &str| rows[r][k].as_str().unwrap_or_default().to_string();
    assert_eq!(
        rows.iter().map(|r| r["o"].as_i64()).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2), Some(3)]
    );
    assert_eq!(
        field(0, "message"),
        "request 7 failed\n\
         java.lang.IllegalStateException: pool exhausted\n\
         \tat com.example.Pool.take(Pool.java:42)\n\
         Caused by: java.util.concurrent.TimeoutException\n\
         \t... 3 more"
    );
    assert_eq!(field(0, "level"), "error");
    assert!(field(2, "message").ends_with("in <module>\nValueError: bad"));
    assert_eq!(field(3, "message"), "retry scheduled");
    assert_eq!(field(3, "time_source"), "previous");
    // Same template for both failures: the traces below them differ.
    assert_eq!(field(0, "template"), field(2, "template"));
    assert!(!field(0, "template").contains('\n'));
}
