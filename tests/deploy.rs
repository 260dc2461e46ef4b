//! The examples under deploy/: Prometheus rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`), the Prometheus
//! configuration of docker-compose.yml passes `promtool check config`, the
//! Grafana dashboard is JSON whose queries parse, and the Kubernetes
//! manifests probe the health endpoints on the ports the ConfigMap sets.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
        .expect("promtool is installed (./scripts/test installs prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn prometheus_rules_check_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "logwarden-rules.yml"]);
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    promtool(&["test", "rules", "logwarden-rules.test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn grafana_dashboard_queries_are_valid_promql() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/logwarden.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 15, "{}", exprs.len());
    // Check each query as a recording rule: promtool parses its PromQL
    // (Grafana's variables replaced by what they stand for).
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
}

#[test]
fn kubernetes_probes_hit_the_configured_ports() {
    let k = root().join("deploy/kubernetes");
    let config = std::fs::read_to_string(k.join("configmap.yaml")).unwrap();
    for (file, port) in [("ingest.yaml", "9464"), ("detect.yaml", "9465")] {
        let m = std::fs::read_to_string(k.join(file)).unwrap();
        assert!(config.contains(&format!("0.0.0.0:{port}")), "{file}");
        assert!(m.contains(&format!("containerPort: {port}")), "{file}");
        assert!(m.contains("path: /healthz"), "{file}");
        assert!(m.contains("path: /readyz"), "{file}");
        assert!(m.contains("/etc/logwarden/logwarden.toml"), "{file}");
    }
    // The ConfigMap's configuration is one logwarden accepts.
    let toml_text: String = config
        .split("logwarden.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logwarden.toml");
    std::fs::write(&file, toml_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logwarden"))
        .args(["config", "check"])
        .arg(&file)
        .env_remove("LOGWARDEN_METRICS_LISTEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
