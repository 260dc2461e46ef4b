//! `logwarden config check`: the example of docs/configuration.md is valid
//! and prints with its secret redacted; a bad file fails naming the key.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn documented_example_checks_and_secrets_are_redacted() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a TOML example in docs/configuration.md");
    assert!(example.contains("change-me"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logwarden.toml");
    std::fs::write(&file, example).unwrap();
    let out = run_ok(
        logwarden()
            .args(["config", "check"])
            .arg(&file)
            .env("LOGWARDEN_BROKERS", "from-env:9092")
            .args(["--set", "detect.model.window_secs=30"]),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("change-me"), "{printed}");
    assert!(
        printed.contains("\"sasl.password\" = \"<redacted>\""),
        "{printed}"
    );
    assert!(
        printed.contains("\"sasl.username\" = \"logwarden\""),
        "{printed}"
    );
    // Overrides are applied; defaults are filled in.
    assert!(printed.contains("brokers = \"from-env:9092\""), "{printed}");
    assert!(printed.contains("window_secs = 30"), "{printed}");
    assert!(printed.contains("max_rows = 1000000"), "{printed}");
    // What it prints is itself a valid file.
    std::fs::write(&file, printed.as_bytes()).unwrap();
    run_ok(logwarden().args(["config", "check"]).arg(&file));
}

#[test]
fn invalid_files_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (text, key) in [
        (
            "[kafka]\ntopics = [\"logs\"]\n[ingest]\nsegmnt = 1\n",
            "segmnt",
        ),
        (
            "[kafka]\ntopics = [\"logs\"]\n[telemetry]\ningest_listen = \"nowhere\"\n",
            "telemetry.ingest_listen",
        ),
        ("[kafka]\ntopics = []\n", "kafka.topics"),
        (
            "[kafka]\ntopics = [\"logs\"]\n[archive.parquet]\nzstd_level = 40\n",
            "archive.parquet.zstd_level: must be between 1 and 22",
        ),
        (
            "[kafka]\ntopics = [\"logs\"]\n[archive.parquet]\nzstd_level = 0\n",
            "archive.parquet.zstd_level: must be between 1 and 22",
        ),
        (
            "[kafka]\ntopics = [\"logs\"]\n[ingest.writer]\nretry_initial_ms = 0\n",
            "ingest.writer.retry_initial_ms: must be positive",
        ),
        (
            "[kafka]\ntopics = [\"logs\"]\n[ingest]\noutput = \"gs://bucket/x\"\n",
            "ingest.output `gs://bucket/x`: supported locations are",
        ),
        (
            "[kafka]\ntopics = [\"logs\"]\n[ingest]\noutput = \"s3://\"\n",
            "ingest.output `s3://`: no bucket name",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = logwarden()
            .args(["config", "check"])
            .arg(&file)
            .env_remove("LOGWARDEN_TOPICS")
            .env_remove("LOGWARDEN_METRICS_LISTEN")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
}

/// A SASL password given as `${env:…}` on the command line reaches
/// librdkafka (the broker speaks no SASL, so the handshake fails and the
/// failure is logged) but never the logs, with debug logging and
/// librdkafka's own configuration and security debug output turned on.
#[test]
fn kafka_secrets_never_reach_the_logs() {
    let broker = Broker::start();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let secret = format!("pw-{}-Zq9x", std::process::id());
    let mut cmd = logwarden();
    cmd.args([
        "ingest",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        "logs",
    ])
    .args(["--group", "g-secret", "--output"])
    .arg(dir.path().join("archive"))
    .args([
        "--set",
        "kafka.properties.\"security.protocol\"=\"SASL_PLAINTEXT\"",
        "--set",
        "kafka.properties.\"sasl.mechanism\"=\"SCRAM-SHA-512\"",
        "--set",
        "kafka.properties.\"sasl.username\"=\"logwarden\"",
        "--set",
        "kafka.properties.\"sasl.password\"=\"${env:LOGWARDEN_TEST_KAFKA_PASSWORD}\"",
        "--set",
        "kafka.properties.debug=\"conf,security,broker\"",
    ])
    .env("LOGWARDEN_TEST_KAFKA_PASSWORD", &secret)
    .env("RUST_LOG", "debug,rdkafka=debug")
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap());
    let child = Proc(cmd.spawn().unwrap());
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until("the failed SASL handshake in the log", WAIT, || {
        let log = read();
        log.contains("SASL") && log.contains("sasl.username")
    });
    drop(child);
    let log = read();
    assert!(!log.contains(&secret), "the password was logged:\n{log}");
}
