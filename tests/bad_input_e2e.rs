//! Bad input through the whole pipeline on a real broker: nothing crashes or
//! stalls; every message is archived, with a parse-error marker where it
//! could not be parsed cleanly, and counted.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn produce(broker: &Broker, topic: &str, payloads: &[Option<Vec<u8>>]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "20000000")
        .create()
        .expect("producer");
    for (i, payload) in payloads.iter().enumerate() {
        let key = i.to_string();
        let mut rec = BaseRecord::<str, [u8]>::to(topic).key(&key).partition(0);
        if let Some(b) = payload {
            rec = rec.payload(b);
        }
        p.send(rec).map_err(|(e, _)| e).expect("enqueue");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

#[test]
fn bad_input_is_archived_marked_and_counted() {
    let broker = Broker::start();
    broker.create_topic("bad", 1);
    let big = format!(
        "{{\"level\":\"info\",\"msg\":\"{}\"}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(Option<Vec<u8>>, Option<&str>)> = vec![
        (
            Some(b"\xff\xfe not utf-8 \xc3\x28".to_vec()),
            Some("invalid_utf8"),
        ),
        (Some(Vec::new()), Some("empty")),
        (None, Some("empty")),
        (
            Some(b"{\"level\": \"error\", \"msg\": unterminated".to_vec()),
            Some("malformed_json"),
        ),
        (
            Some(b"@@@ %%% \x01\x02 garbage \x00 with nul".to_vec()),
            None,
        ),
        (
            Some(
                br#"{"level":{"nested":true},"msg":42,"service":["a","b"],"ts":"not a time"}"#
                    .to_vec(),
            ),
            Some("field_type"),
        ),
        (Some(big.into_bytes()), Some("oversized")),
        (
            Some(
                br#"{"level":"warn","msg":"a good line after the bad ones","service":"ok"}"#
                    .to_vec(),
            ),
            None,
        ),
    ];
    let payloads: Vec<Option<Vec<u8>>> = cases.iter().map(|(p, _)| p.clone()).collect();
    produce(&broker, "bad", &payloads);
    assert_eq!(broker.topic_count("bad"), cases.len());

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let out = run_ok(
        logwarden()
            .args([
                "ingest",
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                "bad",
                "--group",
                "g",
            ])
            .args([
                "--session-timeout-ms",
                "6000",
                "--stop-when-caught-up",
                "--output",
            ])
            .arg(&archive),
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let expected_issues = cases.iter().filter(|(_, m)| m.is_some()).count();
    assert!(
        summary.contains(&format!("{} archived", cases.len())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{expected_issues} with parse issues")),
        "{summary}"
    );

    let rows = python_json(
        "read_rows.py",
        &[archive.to_str().expect("utf-8"), "SELECT kafka_offset, parse_error, length(message) AS len, raw IS NOT NULL AS has_raw, level, service, message FROM a ORDER BY kafka_offset"],
    );
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), cases.len(), "{rows:?}");
    for (i, (row, (_, marker))) in rows.iter().zip(&cases).enumerate() {
        assert_eq!(row["kafka_offset"], i as i64);
        assert_eq!(row["parse_error"].as_str(), *marker, "row {i}: {row}");
    }
    // Invalid UTF-8 keeps its original bytes; the oversized one is cut to 1 MiB.
    assert_eq!(rows[0]["has_raw"], true);
    assert!(
        rows[6]["len"].as_i64().expect("len") <= 1 << 20,
        "{}",
        rows[6]
    );
    assert!(rows[6]["len"].as_i64().expect("len") > 1000, "{}", rows[6]);
    assert_eq!(rows[7]["level"], "warn");
    assert_eq!(rows[7]["service"], "ok");
    assert_eq!(rows[7]["message"], "a good line after the bad ones");
}
