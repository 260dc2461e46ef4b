//! docker-compose.yml is valid for Docker Compose (checked with Debian's
//! `docker-compose config`) and wires Kafka, ingest, detect, the
//! S3-compatible store, Prometheus and Alertmanager together.

use std::path::Path;
use std::process::Command;

#[test]
fn compose_file_is_valid_and_wired() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(root)
        .output()
        .expect("docker-compose is installed (./scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "apache/kafka",
        "KAFKA_PROCESS_ROLES: broker,controller",
        "LOGWARDEN_BROKERS: kafka:29092",
        "LOGWARDEN_ALERTS_TOPIC",
        "- ingest",
        "- detect",
        "LOGWARDEN_OUTPUT: s3://logwarden/archive",
        "AWS_ENDPOINT_URL: http://minio:9000",
        "AWS_ALLOW_HTTP: \"true\"",
        "minio/minio",
        "local/logwarden",
        "LOGWARDEN_METRICS_LISTEN: 0.0.0.0:9464",
        "LOGWARDEN_METRICS_LISTEN: 0.0.0.0:9465",
        "prom/prometheus",
        "prom/alertmanager",
        "/etc/prometheus/logwarden-rules.yml",
    ] {
        assert!(
            cfg.contains(needle),
            "effective compose config lacks `{needle}`:\n{cfg}"
        );
    }
    assert!(root.join("Dockerfile").exists());
    // The files the services mount exist, and Prometheus scrapes the
    // services on the ports they listen on.
    for f in [
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/logwarden-rules.yml",
        "deploy/alertmanager/alertmanager.yml",
    ] {
        assert!(root.join(f).exists(), "{f}");
    }
    let prom = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    for needle in ["ingest:9464", "detect:9465", "alertmanager:9093"] {
        assert!(prom.contains(needle), "prometheus.yml lacks {needle}");
    }
}
