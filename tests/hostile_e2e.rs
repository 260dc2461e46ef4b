//! Hostile input through the full pipeline on a real broker: the corpus
//! under `tests/corpus/` (one message per file) plus generated giants — a
//! 100 MB message, JSON nested 100,000 deep, a 50,000-key object. Ingest
//! archives every message (partitioned by service, so hostile service names
//! reach the path builder) and counts its issues; detect consumes the same
//! topic without failing. Nothing may be written outside the archive.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The corpus files, sorted by name: (name, bytes).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("tests/corpus")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("corpus file"))
        })
        .collect();
    out.sort();
    out
}

/// Messages too big to commit to the repository, made here.
fn giants() -> Vec<(String, Vec<u8>)> {
    let hundred_mb = {
        let mut m = br#"{"level":"error","service":"giant","msg":""#.to_vec();
        m.resize(m.len() + 100 * 1024 * 1024, b'x');
        m.extend_from_slice(br#""}"#);
        m
    };
    let deep = {
        let n = 100_000;
        let mut m = br#"{"msg":"deep","x":"#.to_vec();
        m.extend(std::iter::repeat_n(b"{\"a\":".as_slice(), n).flatten());
        m.push(b'1');
        m.extend(std::iter::repeat_n(b'}', n + 1));
        m
    };
    let wide = {
        let fields: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":\"v{i}\"")).collect();
        format!("{{\"msg\":\"wide\",{}}}", fields.join(",")).into_bytes()
    };
    let long_service = format!(
        "{{\"ts\":\"2026-03-01T10:00:00Z\",\"service\":\"{}\",\"msg\":\"10 KB service name\"}}",
        "s".repeat(10 * 1024)
    )
    .into_bytes();
    vec![
        ("giant-100mb".into(), hundred_mb),
        ("deep-100k".into(), deep),
        ("wide-50k-keys".into(), wide),
        ("service-10kb".into(), long_service),
    ]
}

fn produce(broker: &Broker, topic: &str, payloads: &[&[u8]]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "200000000")
        .set("compression.codec", "lz4")
        .create()
        .expect("producer");
    for (i, payload) in payloads.iter().enumerate() {
        let key = i.to_string();
        let rec = BaseRecord::<str, [u8]>::to(topic)
            .key(&key)
            .partition(0)
            .payload(*payload);
        p.send(rec).map_err(|(e, _)| e).expect("enqueue");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(120)).expect("flush");
}

/// Every directory below `root`, as paths relative to it.
fn dirs_below(root: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.push(
                    e.path()
                        .strip_prefix(root)
                        .expect("below")
                        .display()
                        .to_string(),
                );
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn hostile_corpus_is_archived_and_counted() {
    let broker = Broker::start();
    broker.create_topic("hostile", 1);
    broker.create_topic("alerts", 1);
    let mut cases = corpus();
    assert!(cases.len() >= 30, "the corpus is missing files");
    cases.extend(giants());
    let payloads: Vec<&[u8]> = cases.iter().map(|(_, b)| b.as_slice()).collect();
    produce(&broker, "hostile", &payloads);

    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("deep/inside/archive");
    let out = run_ok(
        ingest_kafka(&broker, "hostile", "g-hostile", &archive)
            .args(["--set", r#"archive.partition_by=["dt","hour","service"]"#])
            .arg("--stop-when-caught-up"),
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!(" {} archived", cases.len())),
        "{summary}"
    );

    // Nothing escaped the archive: the only directories beside it are its own.
    let outside = dirs_below(dir.path());
    assert!(
        outside
            .iter()
            .all(|d| d == "deep" || d == "deep/inside" || d.starts_with("deep/inside/archive")),
        "{outside:?}"
    );
    // Every partition directory is one plain `key=value` path component.
    for d in dirs_below(&archive) {
        for part in d.split('/') {
            assert!(
                part == "_logwarden" || part == "inflight" || part.contains('='),
                "{d}"
            );
            assert!(part.len() <= 255, "{d}");
            assert!(
                !part.contains(['\\', '\0']) && part != ".." && part != ".",
                "{d}"
            );
        }
    }

    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_offset, parse_error, service, length(message) AS len, cardinality(attributes) AS attrs, year(event_time) AS y FROM a ORDER BY kafka_offset",
        ],
    );
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), cases.len(), "{rows:?}");
    let by_name = |name: &str| {
        let i = cases.iter().position(|(n, _)| n == name).expect("case");
        &rows[i]
    };
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["kafka_offset"], i as i64, "{row}");
    }
    assert_eq!(by_name("giant-100mb")["parse_error"], "oversized");
    assert!(by_name("giant-100mb")["len"].as_i64().expect("len") <= 1 << 20);
    assert_eq!(by_name("invalid-utf8.txt")["parse_error"], "invalid_utf8");
    assert_eq!(
        by_name("truncated-json.txt")["parse_error"],
        "malformed_json"
    );
    let wide = by_name("wide-50k-keys");
    assert!(wide["attrs"].as_i64().expect("attrs") <= 257, "{wide}");
    // Out-of-range times fall back to the transport time, never a bogus year.
    for name in ["far-past.txt", "far-future.txt", "epoch-overflow.txt"] {
        let y = by_name(name)["y"].as_i64().expect("year");
        assert!((2000..2200).contains(&y), "{name}: {}", by_name(name));
    }

    // detect reads the same topic to its end without failing.
    let out = run_ok(
        logwarden()
            .args([
                "detect",
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                "hostile",
            ])
            .args(["--group", "d-hostile", "--alerts-topic", "alerts"])
            .args(["--session-timeout-ms", "6000", "--stop-when-caught-up"]),
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("{} records", cases.len())),
        "{summary}"
    );
}
