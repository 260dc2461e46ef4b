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

/// One message as read back: key, payload (`None` for none) and headers.
struct Read {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Read {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Every message of partition 0 of `topic`, in order, with its headers.
fn read_with_headers(broker: &Broker, topic: &str) -> Vec<Read> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "dlq-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Read {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_owned(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    out
}

fn ingest_strict(
    broker: &Broker,
    topic: &str,
    archive: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    logwarden()
        .args([
            "ingest",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--group",
            "g",
        ])
        .args([
            "--session-timeout-ms",
            "6000",
            "--stop-when-caught-up",
            "--set",
            "parse.mode=\"strict\"",
        ])
        .args(extra)
        .arg("--output")
        .arg(archive)
        .output()
        .expect("ingest starts")
}

#[test]
fn strict_mode_sends_unparseable_messages_to_the_dead_letter_topic() {
    use rdkafka::message::{Header, OwnedHeaders};
    let broker = Broker::start();
    broker.create_topic("strict", 1);
    broker.create_topic("strict.dlq", 1);
    // (key, payload, dead-lettered with this error)
    type Case<'a> = (Option<&'a str>, Option<&'a [u8]>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            Some("0"),
            Some(br#"{"level":"info","msg":"first good"}"#),
            None,
        ),
        (
            Some("k1"),
            Some(b"\xff\xfe not utf-8"),
            Some("invalid_utf8"),
        ),
        (None, Some(b"level=warn msg=\"second good\""), None),
        (Some("3"), Some(b"{\"msg\": broken"), Some("malformed_json")),
        (Some("4"), None, Some("empty")),
        (
            Some("5"),
            Some(b"2024-05-01 10:00:00 ERROR third good"),
            None,
        ),
        (
            Some("6"),
            Some(br#"{"level":{"x":1},"msg":"wrong type, still parsed"}"#),
            None,
        ),
        (Some("7"), Some(b"{\"trailing\": "), Some("malformed_json")),
    ];
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    for (i, (key, payload, _)) in cases.iter().enumerate() {
        let mut rec = BaseRecord::<[u8], [u8]>::to("strict").partition(0);
        if let Some(k) = key {
            rec = rec.key(k.as_bytes());
        }
        if let Some(b) = payload {
            rec = rec.payload(*b);
        }
        if i == 1 {
            rec = rec.headers(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some("abc"),
            }));
        }
        p.send(rec).map_err(|(e, _)| e).expect("enqueue");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let out = ingest_strict(&broker, "strict", &archive, &[]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dead: Vec<(usize, &str)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.2.map(|e| (i, e)))
        .collect();
    assert!(
        summary.contains(&format!("{} records consumed", cases.len())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{} archived", cases.len() - dead.len())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{} dead-lettered", dead.len())),
        "{summary}"
    );

    // The dead letters: original key, bytes and headers, plus why and whence.
    let dlq = read_with_headers(&broker, "strict.dlq");
    assert_eq!(dlq.len(), dead.len());
    for (m, (i, error)) in dlq.iter().zip(&dead) {
        let (key, payload, _) = cases[*i];
        assert_eq!(m.key.as_deref(), key.map(str::as_bytes), "message {i}");
        assert_eq!(m.payload.as_deref(), payload, "message {i}");
        assert_eq!(m.header("logwarden.error"), Some(*error), "message {i}");
        assert_eq!(m.header("logwarden.source.topic"), Some("strict"));
        assert_eq!(m.header("logwarden.source.partition"), Some("0"));
        assert_eq!(
            m.header("logwarden.source.offset"),
            Some(i.to_string().as_str())
        );
    }
    assert_eq!(dlq[0].header("trace"), Some("abc"));

    // The archive holds exactly the others, with the field-type marker kept.
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_offset, parse_error, template_id FROM a ORDER BY kafka_offset",
        ],
    );
    let rows = rows.as_array().expect("rows");
    let offsets: Vec<i64> = rows
        .iter()
        .map(|r| r["kafka_offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![0, 2, 5, 6]);
    assert_eq!(rows[3]["parse_error"], "field_type");
    // Strict mode mines templates as lenient mode does.
    for r in rows {
        assert!(r["template_id"].is_string(), "no template: {r}");
    }

    // Every offset was committed, the trailing dead letter's too: a second
    // run of the same group finds nothing to do and dead-letters nothing again.
    let out = ingest_strict(&broker, "strict", &archive, &[]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("0 records consumed"), "{summary}");
    assert_eq!(read_with_headers(&broker, "strict.dlq").len(), dead.len());
}

#[test]
fn strict_mode_commits_nothing_past_an_undelivered_dead_letter() {
    let broker = Broker::start();
    broker.create_topic("held", 1);
    let payloads: Vec<Option<Vec<u8>>> = vec![
        Some(b"good one".to_vec()),
        Some(b"{\"broken".to_vec()),
        Some(b"good two".to_vec()),
    ];
    produce(&broker, "held", &payloads);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let config = dir.path().join("logwarden.toml");
    // No dead-letter topic exists yet: the delivery fails (quickly, with a
    // short message timeout) and ingest must stop without committing.
    std::fs::write(
        &config,
        "[kafka.properties]\n\"message.timeout.ms\" = \"3000\"\n\"allow.auto.create.topics\" = \"false\"\n",
    )
    .expect("config");
    let cfg = config.to_str().expect("utf-8");
    let out = ingest_strict(&broker, "held", &archive, &["--config", cfg]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dead letter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the topic exists, the next run replays from before the dead
    // letter: it is delivered, and every message is accounted for.
    broker.create_topic("held.dlq", 1);
    let out = ingest_strict(&broker, "held", &archive, &["--config", cfg]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dlq = read_with_headers(&broker, "held.dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].payload.as_deref(), Some(&b"{\"broken"[..]));
    assert_eq!(dlq[0].header("logwarden.source.offset"), Some("1"));
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_offset FROM a ORDER BY kafka_offset",
        ],
    );
    let offsets: Vec<i64> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["kafka_offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![0, 2]);
}
