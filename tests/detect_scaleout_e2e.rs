//! detect scales out on Kafka's consumer groups: with records keyed by
//! service (every series in one partition), two instances in one group
//! publish the same alerts as one instance on the same input.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn detect(broker: &Broker, group: &str, alerts: &str, log: &Path) -> Proc {
    logwarden()
        .args([
            "detect",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            "logs",
        ])
        .args(["--group", group, "--alerts-topic", alerts])
        .args(["--session-timeout-ms", "6000", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .map(Proc)
        .expect("detect starts")
}

/// The alerts of a topic as comparable tuples, sorted.
fn alerts(broker: &Broker, topic: &str) -> Vec<(String, String, String, String, String)> {
    let mut out: Vec<_> = broker
        .read_all(topic)
        .into_iter()
        .map(|(_, _, key, payload)| {
            let a: serde_json::Value = serde_json::from_slice(&payload).expect("alert JSON");
            (
                String::from_utf8_lossy(&key).into_owned(),
                a["status"].to_string(),
                a["window_start"].to_string(),
                a["observed"].to_string(),
                a["fingerprint"].to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn two_detect_instances_alert_like_one() {
    let broker = Broker::start();
    broker.create_topic("logs", 3);
    broker.create_topic("alerts-one", 1);
    broker.create_topic("alerts-two", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("d{i}.log")))
        .collect();

    // The two-instance group settles before any record exists, so that no
    // partition moves (with its series' state) mid-stream.
    let mut two = [
        detect(&broker, "d-two", "alerts-two", &logs[0]),
        detect(&broker, "d-two", "alerts-two", &logs[1]),
    ];
    wait_until("both instances hold partitions", WAIT, || {
        let held: Vec<Option<u64>> = logs[..2].iter().map(|l| held_partitions(l)).collect();
        held.iter().all(|h| h.is_some_and(|n| n > 0)) && held.iter().flatten().sum::<u64>() == 3
    });
    let mut one = detect(&broker, "d-one", "alerts-one", &logs[2]);
    wait_until("the single instance holds every partition", WAIT, || {
        held_partitions(&logs[2]) == Some(3)
    });

    let truth = dir.path().join("truth.jsonl");
    let total = 288_000u64;
    generate(
        &broker,
        "logs",
        total,
        13,
        &truth,
        &[
            "--events-per-sec",
            "20",
            "--incident",
            "error-burst:payments@150m+6m",
        ],
    );
    for group in ["d-two", "d-one"] {
        wait_until("detect commits every record", WAIT, || {
            broker.committed_total(group, "logs") == total as i64
        });
    }
    for p in two.iter_mut().chain([&mut one]) {
        signal(p, "TERM");
        assert!(wait_exit(p, Duration::from_secs(60))
            .expect("exits")
            .success());
    }
    let (a1, a2) = (alerts(&broker, "alerts-one"), alerts(&broker, "alerts-two"));
    assert!(
        a1.iter()
            .any(|a| a.0 == "payments/error_ratio" && a.1 == "\"firing\""),
        "the burst was not detected: {a1:#?}"
    );
    assert_eq!(a1, a2, "one instance and two instances disagree");
}
