//! docker-compose.yml is valid for Docker Compose (checked with Debian's
//! `docker-compose config`) and wires Kafka, ingest and detect together.

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
    ] {
        assert!(
            cfg.contains(needle),
            "effective compose config lacks `{needle}`:\n{cfg}"
        );
    }
    assert!(root.join("Dockerfile").exists());
}
