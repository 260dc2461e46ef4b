//! The archive end to end: ingest from a real broker to a real S3-compatible
//! server (moto) read back over S3; compaction, local and on S3, with kill -9
//! in the middle; every engine reading the archive agrees.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const SESSION_MS: &str = "6000";
const TOTAL: u64 = 30_000;
/// Spreads the generated lines over about four hours of event time, so the
/// archive has several hourly partitions to compact.
const EVENTS_PER_SEC: &str = "2";

fn ingest(broker: &Broker, group: &str, output: &str) -> Command {
    let mut c = logwarden();
    c.args([
        "ingest",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        "logs",
    ])
    .args(["--group", group, "--session-timeout-ms", SESSION_MS])
    .args(["--output", output]);
    c
}

fn compact(output: &str) -> Command {
    let mut c = logwarden();
    c.args(["compact", "--output", output, "--settle-secs", "0"]);
    // On S3 a run killed with -9 leaves its lease: the next run may take it
    // over two seconds later.
    c.args(["--set", "archive.compaction.lease_secs=2"]);
    c
}

fn s3_settings(cmd: &mut Command, moto: &Moto) {
    moto.env(cmd);
    cmd.args([
        "--set",
        &format!("archive.s3.endpoint=\"{}\"", moto.endpoint()),
    ])
    .args(["--set", "archive.s3.allow_http=true"]);
}

/// Kills `cmd` with SIGKILL as soon as `cond` holds (or lets it finish if
/// it finishes first). Returns whether it was killed.
fn kill_when(cmd: &mut Command, mut cond: impl FnMut() -> bool) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    // A partition's staged directory lives for a few milliseconds only:
    // polled every millisecond, not at `wait_until`'s pace.
    let deadline = std::time::Instant::now() + WAIT;
    let killed = loop {
        if cond() {
            child.kill().expect("kill -9");
            break true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            break false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the kill point or the end"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let _ = child.wait();
    killed
}

fn digest(archive: &str, moto: Option<&Moto>) -> serde_json::Value {
    python_json_with("archive_digest.py", &[archive], |c| {
        if let Some(m) = moto {
            m.env(c);
        }
    })
}

/// Ingest from Kafka into S3 (moto), killed with -9 mid-stream and resumed;
/// the archive read back over S3 with pyarrow holds every record exactly
/// once. Then compaction on S3, killed with -9 each time it has started a
/// partition, and resumed: row count and checksum over all columns equal,
/// fewer objects, still exactly once.
#[test]
fn s3_archive_exactly_once_and_compaction_across_kill_9() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let broker = Broker::start();
    broker.create_topic("logs", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.jsonl");
    generate(
        &broker,
        "logs",
        TOTAL,
        7,
        &truth,
        &["--events-per-sec", EVENTS_PER_SEC],
    );
    let url = "s3://lake/logs/archive";

    // Killed once it has published objects, with segments still flowing.
    let mut first = ingest(&broker, "g-s3", url);
    s3_settings(&mut first, &moto);
    first.args([
        "--segment-max-rows",
        "1500",
        "--segment-max-age-secs",
        "0.5",
    ]);
    let parquet_keys = || {
        moto.keys("lake", "logs/archive/dt=")
            .iter()
            .filter(|k| k.ends_with(".parquet"))
            .count()
    };
    kill_when(&mut first, || parquet_keys() >= 6);
    let mut rest = ingest(&broker, "g-s3", url);
    s3_settings(&mut rest, &moto);
    rest.args(["--segment-max-rows", "1500", "--stop-when-caught-up"]);
    let out = run_ok(&mut rest);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("s3://lake/logs/archive"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = python_json_with(
        "verify_archive.py",
        &[url, truth.to_str().expect("utf-8")],
        |c| moto.env(c),
    );
    assert_verified(&r, TOTAL);
    let ty = r["event_time_type"].as_str().expect("type");
    assert!(
        ty.contains("isAdjustedToUTC=true") && ty.contains("microseconds"),
        "{ty}"
    );

    // A second run resumes from the committed offsets: its recovery clears
    // the in-flight records, so every file is now eligible for compaction.
    let mut again = ingest(&broker, "g-s3", url);
    s3_settings(&mut again, &moto);
    run_ok(again.arg("--stop-when-caught-up"));

    let before = digest(url, Some(&moto));
    assert_eq!(before["rows"], TOTAL, "{before}");
    let files_before = before["files"].as_u64().expect("files");
    let mut kills = 0;
    for _ in 0..3 {
        let mut c = compact(url);
        s3_settings(&mut c, &moto);
        if kill_when(&mut c, || {
            !moto
                .keys("lake", "logs/archive/_logwarden/compaction/")
                .is_empty()
        }) {
            kills += 1;
        }
    }
    assert!(kills >= 1, "compaction was never caught mid-way");
    // Until the killed run's lease has expired, a run finds the archive busy.
    wait_until("a complete compaction run", WAIT, || {
        let mut c = compact(url);
        s3_settings(&mut c, &moto);
        c.output().expect("compact starts").status.success()
    });
    let after = digest(url, Some(&moto));
    assert_eq!(after["rows"], before["rows"], "{before} {after}");
    assert_eq!(after["checksum"], before["checksum"], "{before} {after}");
    assert_eq!(after["distinct_keys"], TOTAL, "{after}");
    let files_after = after["files"].as_u64().expect("files");
    assert!(
        files_after < files_before && files_after <= 8,
        "{files_before} -> {files_after}"
    );
    assert!(moto
        .keys("lake", "logs/archive/_logwarden/compaction/")
        .is_empty());
    let r = python_json_with(
        "verify_archive.py",
        &[url, truth.to_str().expect("utf-8")],
        |c| moto.env(c),
    );
    assert_verified(&r, TOTAL);
}

fn staged_dirs(staging: &Path) -> usize {
    std::fs::read_dir(staging)
        .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}

/// Local archive: compaction killed with -9 mid-way several times, then
/// completed; DuckDB's row count and checksum over all columns are equal,
/// and DuckDB (with a partition-pruned filter), pyarrow and polars agree on
/// counts and values, timestamps and attribute maps included.
#[test]
fn local_compaction_across_kill_9_and_readers_agree() {
    let broker = Broker::start();
    broker.create_topic("logs", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.jsonl");
    let archive = dir.path().join("archive");
    let out = archive.to_str().expect("utf-8").to_string();
    generate(
        &broker,
        "logs",
        TOTAL,
        8,
        &truth,
        &["--events-per-sec", EVENTS_PER_SEC],
    );
    run_ok(ingest(&broker, "g-local", &out).args([
        "--segment-max-rows",
        "1000",
        "--stop-when-caught-up",
    ]));
    run_ok(ingest(&broker, "g-local", &out).arg("--stop-when-caught-up"));
    let before = digest(&out, None);
    assert_eq!(before["rows"], TOTAL, "{before}");
    let readers = python_json("readers_agree.py", &[&out]);
    assert_eq!(readers["agree"], true, "{readers}");

    let staging = dir.path().join(".archive.compacting");
    let mut kills = 0;
    for _ in 0..3 {
        if kill_when(&mut compact(&out), || staged_dirs(&staging) > 0) {
            kills += 1;
        }
    }
    assert!(kills >= 1, "compaction was never caught mid-way");
    // Killed mid-way, the archive is still exactly once at every point.
    assert_exactly_once(&archive, &truth, TOTAL);
    let done = run_ok(&mut compact(&out));
    let summary = String::from_utf8_lossy(&done.stdout).to_string();
    assert!(summary.contains("compact done"), "{summary}");
    assert_eq!(staged_dirs(&staging), 0);

    let after = digest(&out, None);
    assert_eq!(after["rows"], before["rows"], "{before} {after}");
    assert_eq!(after["checksum"], before["checksum"], "{before} {after}");
    assert!(
        after["files"].as_u64() < before["files"].as_u64() && after["files"].as_u64() <= Some(8),
        "{before} {after}"
    );
    assert_exactly_once(&archive, &truth, TOTAL);
    let readers = python_json("readers_agree.py", &[&out]);
    assert_eq!(readers["agree"], true, "{readers}");
    assert_eq!(readers["rows"], TOTAL, "{readers}");
    assert!(readers["pruned_rows"].as_u64() > Some(0), "{readers}");
}

/// Parquet files under `dir`, by partition directory (relative), with sizes.
fn files_by_dir(root: &Path) -> std::collections::BTreeMap<String, Vec<(String, u64)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !name.starts_with(['_', '.']) {
                stack.push(p);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                let rel = d
                    .strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                let size = e.metadata().expect("stat").len();
                out.entry(rel).or_default().push((name, size));
            }
        }
    }
    out
}

/// Ingest from Kafka with small segments (one file each) merges, by itself
/// and while it keeps consuming and committing, the small files of a
/// partition whose hour has closed; the files a replay could still rewrite
/// (the last 64 segments) stay. After a clean stop, DuckDB reads every
/// produced record exactly once.
#[test]
fn ingest_compacts_closed_partitions_while_it_runs() {
    const N: u64 = 4000;
    let broker = Broker::start();
    broker.create_topic("logs", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = dir.path().join("truth.jsonl");
    let archive = dir.path().join("archive");
    // One record per second of event time from 10:00 (2026-03-01): hour 10
    // holds 3,600 records, 144 segments of 25.
    generate(&broker, "logs", N, 11, &truth, &["--events-per-sec", "1"]);
    let mut cmd = ingest(&broker, "g-auto", archive.to_str().expect("utf-8"));
    cmd.args(["--segment-max-rows", "25"])
        .args(["--set", "archive.compaction.interval_secs=1"])
        .args(["--set", "archive.compaction.settle_secs=0"])
        .args(["--set", "archive.compaction.close_after_secs=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Proc(cmd.spawn().expect("ingest starts"));
    let hour10 = "dt=2026-03-01/hour=10";
    let merged_in_hour10 = || {
        files_by_dir(&archive)
            .get(hour10)
            .is_some_and(|f| f.iter().any(|(n, _)| n.starts_with("compacted-")))
    };
    // A run may merge hour 10 while ingest still writes to it (segments
    // also close on age, so there can be more than 144): wait for a run
    // after the last of them.
    let hour10_files = || files_by_dir(&archive).get(hour10).map_or(0, Vec::len);
    wait_until(
        "every record committed and the closed hour's small files merged",
        WAIT,
        || {
            broker.committed_total("g-auto", "logs") == N as i64
                && merged_in_hour10()
                && hour10_files() < 144
        },
    );
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "ingest compacted while running, not at exit"
    );

    signal(&child, "TERM");
    let status = wait_exit(&mut child, WAIT).expect("ingest exits on SIGTERM");
    assert!(status.success(), "{status}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().expect("stdout piped"), &mut stdout)
        .expect("stdout");
    assert!(
        stdout.contains(&format!("{N} archived")) && !stdout.contains("merged 0 small files"),
        "{stdout}"
    );
    assert_exactly_once(&archive, &truth, N);
}

/// A backfill with small segments over hour x service partitions compacts
/// the partitions it wrote before exiting: no partition keeps more than one
/// file under `min_file_bytes`, every line is read back exactly once, and
/// running the same backfill again (after compaction) replaces its rows
/// instead of adding them.
#[test]
fn backfill_compacts_its_partitions_before_exiting() {
    const N: u64 = 6000;
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = dir.path().join("old.log");
    let truth = dir.path().join("truth.jsonl");
    let archive = dir.path().join("archive");
    generate_file(&lines, N, 12, &truth);
    let backfill = |sets: &[String]| {
        let mut c = logwarden();
        c.args(["ingest", "--input"])
            .arg(&lines)
            .args(["--segment-max-rows", "300", "--output"])
            .arg(&archive)
            .args(["--set", r#"archive.partition_by=["dt","hour","service"]"#]);
        for s in sets {
            c.args(["--set", s]);
        }
        String::from_utf8_lossy(&run_ok(&mut c).stdout).into_owned()
    };

    // Without compaction: one small file per segment and partition.
    backfill(&["archive.compaction.in_ingest=false".to_string()]);
    let before = files_by_dir(&archive);
    let files_before: usize = before.values().map(Vec::len).sum();
    let largest = before
        .values()
        .flatten()
        .map(|(_, s)| *s)
        .max()
        .expect("files");
    let crowded = before.values().filter(|f| f.len() >= 3).count();
    assert!(
        crowded >= 3,
        "partitions with several small files: {before:?}"
    );
    assert_exactly_once(&archive, &truth, N);

    // Run again with compaction: files under twice the largest segment file
    // are small; a merged file takes up to twenty of them.
    let min = 2 * largest;
    let sets = [
        format!("archive.compaction.min_file_bytes={min}"),
        format!("archive.compaction.target_file_bytes={}", 20 * largest),
    ];
    for round in 0..2 {
        let summary = backfill(&sets);
        assert!(!summary.contains("merged 0 small files"), "{summary}");
        let after = files_by_dir(&archive);
        let files_after: usize = after.values().map(Vec::len).sum();
        assert!(
            files_after < files_before,
            "round {round}: {files_before} -> {files_after}"
        );
        assert_eq!(after.len(), before.len(), "the same partitions");
        for (d, files) in &after {
            let small = files.iter().filter(|(_, s)| *s < min).count();
            assert!(
                small <= 1,
                "round {round}: {d} keeps {small} small files: {files:?}"
            );
        }
        // The second round re-runs a compacted backfill: still exactly once.
        assert_exactly_once(&archive, &truth, N);
    }

    // In-ingest compaction off, `logwarden compact` from outside merging the
    // backfill's files, then the backfill again: still exactly once.
    let mut off = sets.to_vec();
    off.push("archive.compaction.in_ingest=false".to_string());
    backfill(&off);
    let summary = run_ok(
        compact(archive.to_str().expect("utf-8"))
            .args(["--close-after-secs", "0"])
            .args(["--min-file-bytes", &min.to_string()]),
    );
    let out = String::from_utf8_lossy(&summary.stdout);
    assert!(
        files_by_dir(&archive).values().map(Vec::len).sum::<usize>() < files_before,
        "{out}"
    );
    assert_exactly_once(&archive, &truth, N);
    backfill(&off);
    assert_exactly_once(&archive, &truth, N);
}
