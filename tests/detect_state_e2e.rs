//! Detector checkpoints end to end on a real broker: `logwarden detect` with
//! a state directory is stopped (SIGTERM) between two halves of a stream and
//! started again. It neither warms up again nor alerts twice: the incident
//! open at the stop resolves once, and a burst right after the restart, which
//! a detector without the checkpoint would still be warming up for, fires
//! exactly once. A group whose committed offsets lag the checkpoint skips
//! the records the checkpoint holds instead of counting them twice.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// (status, service, signal, fingerprint) of the alerts on `topic`.
fn alerts(broker: &Broker, topic: &str) -> Vec<(String, String, String, String)> {
    broker
        .read_all(topic)
        .into_iter()
        .map(|(_, _, _, payload)| {
            let a: serde_json::Value = serde_json::from_slice(&payload).expect("alert JSON");
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&a["status"]),
                s(&a["series"]["service"]),
                s(&a["series"]["signal"]),
                s(&a["fingerprint"]),
            )
        })
        .collect()
}

fn count(alerts: &[(String, String, String, String)], status: &str, service: &str) -> usize {
    alerts
        .iter()
        .filter(|a| a.0 == status && a.1 == service)
        .count()
}

fn detect_cmd(
    broker: &Broker,
    group: &str,
    alerts: &str,
    state: Option<&Path>,
) -> std::process::Command {
    let mut c = detect_kafka(broker, "logs", group, alerts);
    if let Some(dir) = state {
        c.arg("--state-dir").arg(dir);
    }
    c
}

/// Commits offset 0 on every partition of `logs` for `group` (which must
/// have no running member): the group replays everything.
fn rewind(broker: &Broker, group: &str) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("client");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("logs", p, Offset::Offset(0))
            .expect("partition");
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit offsets");
    wait_until("the rewind to show", WAIT, || {
        broker.committed_total(group, "logs") == 0
    });
}

#[test]
fn restarted_detect_neither_warms_up_again_nor_alerts_twice() {
    let (broker, dir, _, _) = setup(&[("logs", 3), ("alerts-a", 1), ("alerts-b", 1)]);
    let state = dir.path().join("state-a");
    let gen = |start: &str, seed: u64, incident: &str| {
        run_ok(
            logwarden()
                .args(["generate", "--count", "1000000", "--duration", "30m"])
                .args(["--seed", &seed.to_string()])
                .args(["--brokers", &broker.bootstrap(), "--topic", "logs"])
                .args(["--events-per-sec", "20", "--start", start])
                .args(["--incident", incident]),
        );
    };
    // First half, 10:00-10:30: payments errors from 10:25 to 10:29, so its
    // incident is still open (not yet resolved) when detect stops.
    gen("2026-03-01T10:00:00Z", 31, "error-burst:payments@25m+4m");
    let first = broker.topic_count("logs") as i64;

    // "a" keeps a checkpoint, "b" does not; both run until they have
    // committed the whole first half, then get SIGTERM.
    let mut runs = Vec::new();
    for (group, topic, st) in [
        ("a", "alerts-a", Some(state.as_path())),
        ("b", "alerts-b", None),
    ] {
        let log = dir.path().join(format!("{group}-1.log"));
        let child = detect_cmd(&broker, group, topic, st)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("detect starts");
        runs.push((group, topic, Proc(child)));
    }
    for (group, topic, child) in &mut runs {
        let deadline = std::time::Instant::now() + WAIT;
        while !(broker.committed_total(group, "logs") == first
            && count(&alerts(&broker, topic), "firing", "payments") == 1)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{group}: committed {}, alerts {:?}, log:\n{}",
                broker.committed_total(group, "logs"),
                alerts(&broker, topic),
                std::fs::read_to_string(dir.path().join(format!("{group}-1.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        signal(child, "TERM");
        let status = wait_exit(child, WAIT).expect("detect exits on SIGTERM");
        assert!(status.success(), "{group}: {status}");
    }
    assert!(
        state.join("detect-checkpoint.json").exists(),
        "checkpoint written"
    );
    for (_, topic, _) in &runs {
        let a = alerts(&broker, topic);
        assert_eq!(count(&a, "resolved", "payments"), 0, "still open: {a:?}");
    }

    // Second half, 10:30-11:00: payments recovers; auth errors from 10:34 to
    // 10:38, inside the warm-up (15 windows) of a detector starting afresh.
    gen("2026-03-01T10:30:00Z", 32, "error-burst:auth@4m+4m");
    let total = broker.topic_count("logs") as i64;
    for (group, topic, st) in [
        ("a", "alerts-a", Some(state.as_path())),
        ("b", "alerts-b", None),
    ] {
        let out = run_ok(detect_cmd(&broker, group, topic, st).arg("--stop-when-caught-up"));
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            summary.contains(&format!("{} records", total - first)),
            "{group}: {summary}"
        );
        assert!(summary.contains(" 0 late records"), "{group}: {summary}");
    }

    let a = alerts(&broker, "alerts-a");
    assert_eq!(count(&a, "firing", "payments"), 1, "no second alert: {a:?}");
    assert_eq!(
        count(&a, "resolved", "payments"),
        1,
        "the open incident resolves after the restart: {a:?}"
    );
    let fp = |st: &str| {
        a.iter()
            .find(|x| x.0 == st && x.1 == "payments")
            .map(|x| x.3.clone())
    };
    assert_eq!(fp("firing"), fp("resolved"), "one incident: {a:?}");
    assert_eq!(
        count(&a, "firing", "auth"),
        1,
        "the restored baselines see the burst: {a:?}"
    );
    assert!(
        a.iter()
            .all(|x| (x.1 == "payments" || x.1 == "auth") && x.2 == "error_ratio"),
        "{a:?}"
    );

    // Without the checkpoint: warming up again, the burst goes unseen and
    // the old incident never resolves.
    let b = alerts(&broker, "alerts-b");
    assert_eq!(count(&b, "firing", "payments"), 1, "{b:?}");
    assert_eq!(count(&b, "firing", "auth"), 0, "{b:?}");
    assert_eq!(count(&b, "resolved", "payments"), 0, "{b:?}");

    // A group whose commits lag its checkpoint (as after a crash between
    // the two): everything replays, the checkpointed records are skipped,
    // nothing is counted twice, nothing alerts again.
    rewind(&broker, "a");
    let log = dir.path().join("a-3.log");
    let out = detect_cmd(&broker, "a", "alerts-a", Some(&state))
        .arg("--stop-when-caught-up")
        .env("LOGWARDEN_LOG_FORMAT", "json")
        .stderr(std::fs::File::create(&log).expect("log"))
        .output()
        .expect("detect runs");
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains(" 0 records"), "{summary}");
    let text = std::fs::read_to_string(&log).expect("log");
    let skipped = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "detect stopped")
        .and_then(|v| v["fields"]["skipped_records"].as_u64());
    assert_eq!(skipped, Some(total as u64), "{text}");
    assert_eq!(alerts(&broker, "alerts-a").len(), a.len(), "no new alert");
    assert_eq!(broker.committed_total("a", "logs"), total);
}
