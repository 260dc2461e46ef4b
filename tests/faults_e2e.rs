//! Fault tests, each on a real broker process, each ending with the archive
//! read back by an external reader (DuckDB): every produced record exactly
//! once. Each test prints a `FAULT` line with its figures (records produced,
//! archived, duplicates, lost, time to recover).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use common::*;

/// Segments close fast so that files are published (and offsets committed)
/// all through the stream, which is when faults hurt.
const FAST_SEGMENTS: [&str; 4] = [
    "--segment-max-rows",
    "4000",
    "--segment-max-age-secs",
    "0.5",
];

/// A paced generator writing `count` records to `topic` in the background.
fn paced_generator(
    broker: &Broker,
    topic: &str,
    count: u64,
    seed: u64,
    rate: u32,
    truth: &Path,
) -> Proc {
    generate_cmd(count, seed, truth)
        .args(["--brokers", &broker.bootstrap(), "--topic", topic])
        .args(["--rate", &rate.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .map(Proc)
        .expect("generator starts")
}

/// Checks the archive and prints the figures of one fault test.
fn report(name: &str, archive: &Path, truth: &Path, produced: u64, recover: Option<Duration>) {
    let r = assert_exactly_once(archive, truth, produced);
    eprintln!(
        "FAULT {name}: produced {produced}, archived {}, duplicates {}, lost {}, time to recover {}",
        r["rows"],
        r["duplicated"],
        r["missing"],
        recover.map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64())),
    );
}

/// The number of records an ingest run archived, from its summary line.
fn archived_in(summary: &str) -> u64 {
    summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" archived"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no archived count in {summary:?}"))
}

/// Waits until `group` has committed every record of `topic`.
fn wait_committed(broker: &Broker, group: &str, topic: &str, total: u64) {
    wait_until("every offset committed", WAIT, || {
        broker.committed_total(group, topic) == total as i64
    });
}

/// Starts `cmd` with its log (stderr) in `log` and its summary (stdout)
/// kept for [`archived_by`].
fn spawn_logged(cmd: &mut std::process::Command, log: &Path) -> Proc {
    cmd.stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .map(Proc)
        .expect("ingest starts")
}

/// The records an exited instance started by [`spawn_logged`] archived.
fn archived_by(p: &mut Proc) -> u64 {
    let mut out = String::new();
    if let Some(mut s) = p.stdout.take() {
        std::io::Read::read_to_string(&mut s, &mut out).expect("stdout");
    }
    archived_in(&out)
}

/// kill -9 of ingest at random points, 20 times in a row while records
/// keep arriving, then a run that catches up. Odd rounds kill at a random
/// time after start (start-up, group join, consuming); even rounds kill a
/// random moment after the run published a file (mid-stream, with segments
/// open and writes in flight).
#[test]
fn kill_9_twenty_times_during_a_stream() {
    let (broker, _dir, truth, archive) = setup(&[("logs", 3)]);
    let total = 200_000u64;
    let mut producer = paced_generator(&broker, "logs", total, 21, 2500, &truth);
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let mut killed_mid_write = 0;
    for round in 0..20 {
        let committed_before = broker.committed_total("g-kill20", "logs");
        let mut ingest = ingest_kafka_session(&broker, "logs", "g-kill20", &archive, 3000)
            .args(FAST_SEGMENTS)
            .spawn_quiet();
        if round % 2 == 0 {
            wait_until("this run commits", WAIT, || {
                broker.committed_total("g-kill20", "logs") > committed_before
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(100..4000)));
        }
        ingest.kill().expect("kill -9");
        ingest.wait().expect("reaped");
        if broker.committed_total("g-kill20", "logs") > committed_before {
            killed_mid_write += 1;
        }
    }
    assert!(producer.wait().expect("generator ends").success());
    assert!(killed_mid_write >= 10, "{killed_mid_write}");
    let t = Instant::now();
    run_ok(ingest_kafka(&broker, "logs", "g-kill20", &archive).arg("--stop-when-caught-up"));
    report("kill-9 x20", &archive, &truth, total, Some(t.elapsed()));
}

/// Strict mode under kill -9: generated records with unparseable messages
/// mixed into the stream, ingest killed up to four times while the stream
/// flows (each time after it committed; at least twice), then a run that
/// catches up. Every record is
/// archived exactly once, no unparseable message is archived, and every
/// one of them is on the dead-letter topic: at least once, since a kill
/// between a dead letter's delivery and its commit sends it again.
#[test]
fn kill_9_in_strict_mode_archives_exactly_once_and_dead_letters_every_bad_message() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;
    let (broker, _dir, truth, archive) = setup(&[("logs", 3), ("logs.dlq", 1)]);
    let total = 60_000u64;
    let bad = 200usize;
    let bad_payload = |i: usize| [&[0xffu8, 0xfe][..], format!(" bad {i}").as_bytes()].concat();
    let mut producer = paced_generator(&broker, "logs", total, 23, 3000, &truth);
    let bootstrap = broker.bootstrap();
    let bad_producer = std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("producer");
        for i in 0..bad {
            let payload = bad_payload(i);
            let key = format!("bad-{i}");
            let rec = BaseRecord::<[u8], [u8]>::to("logs")
                .partition((i % 3) as i32)
                .key(key.as_bytes())
                .payload(&payload);
            p.send(rec).map_err(|(e, _)| e).expect("enqueue");
            p.poll(Duration::ZERO);
            // Spread over the generator's 20 seconds.
            std::thread::sleep(Duration::from_millis(100));
        }
        p.flush(Duration::from_secs(60)).expect("flush");
    });
    let strict = ["--set", "parse.mode=\"strict\""];
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut kills = 0;
    // Once the stream has ended, a run may find everything committed and
    // commit nothing: the kills stop there.
    let mut streaming = || matches!(producer.try_wait(), Ok(None));
    while kills < 4 && streaming() {
        let committed_before = broker.committed_total("g-strict", "logs");
        let mut ingest = ingest_kafka_session(&broker, "logs", "g-strict", &archive, 3000)
            .args(FAST_SEGMENTS)
            .args(strict)
            .spawn_quiet();
        wait_until("this run commits, or the stream ends", WAIT, || {
            broker.committed_total("g-strict", "logs") > committed_before || !streaming()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        ingest.kill().expect("kill -9");
        ingest.wait().expect("reaped");
        if broker.committed_total("g-strict", "logs") > committed_before {
            kills += 1;
        }
    }
    assert!(
        kills >= 2,
        "only {kills} kills after a commit while the stream flowed"
    );
    assert!(producer.wait().expect("generator ends").success());
    bad_producer.join().expect("bad messages produced");
    let t = Instant::now();
    run_ok(
        ingest_kafka(&broker, "logs", "g-strict", &archive)
            .args(strict)
            .arg("--stop-when-caught-up"),
    );
    report(
        &format!("kill-9 x{kills}, strict mode"),
        &archive,
        &truth,
        total,
        Some(t.elapsed()),
    );
    let dead = broker.read_all("logs.dlq");
    let mut seen = vec![0usize; bad];
    for (_, _, key, payload) in &dead {
        let i: usize = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix("bad-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("dead letter with key {key:?}"));
        assert_eq!(payload, &bad_payload(i), "dead letter {i}");
        seen[i] += 1;
    }
    let missing: Vec<usize> = (0..bad).filter(|&i| seen[i] == 0).collect();
    assert!(missing.is_empty(), "not dead-lettered: {missing:?}");
    eprintln!(
        "FAULT kill-9 x{kills}, strict mode: {bad} unparseable messages, {} dead letters ({} sent again)",
        dead.len(),
        dead.len() - bad
    );
}

/// The broker is killed and restarted mid-stream (its data kept by its
/// storage): the generator, ingest and detect reconnect and continue, and
/// ingest and detect commit every record without being restarted.
#[test]
fn broker_restart_mid_stream() {
    let mut broker = Broker::start_durable();
    broker.create_topic("logs", 3);
    broker.create_topic("alerts", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (truth, archive) = (dir.path().join("truth.jsonl"), dir.path().join("archive"));
    let total = 60_000u64;
    let mut producer = paced_generator(&broker, "logs", total, 22, 4000, &truth);
    let mut ingest = ingest_kafka(&broker, "logs", "g-restart", &archive)
        .args(FAST_SEGMENTS)
        .spawn_quiet();
    let mut detect = detect_kafka(&broker, "logs", "d-restart", "alerts").spawn_quiet();
    wait_until("ingest commits", WAIT, || {
        broker.committed_total("g-restart", "logs") > 5000
    });
    let before = broker.committed_total("g-restart", "logs");
    broker.kill();
    // The outage.
    std::thread::sleep(Duration::from_secs(3));
    broker.restart();
    let restarted = Instant::now();
    wait_until("ingest commits after the restart", WAIT, || {
        broker.committed_total("g-restart", "logs") > before
    });
    let recover = restarted.elapsed();
    assert!(producer.wait().expect("generator ends").success());
    // Both keep consuming without a restart of their own: their committed
    // offsets reach the number of records produced (the topic may hold a few
    // more: the generator's retries across the outage can write a record
    // twice).
    wait_until("ingest commits everything", WAIT, || {
        broker.committed_total("g-restart", "logs") >= total as i64
    });
    wait_until("detect commits everything", WAIT, || {
        broker.committed_total("d-restart", "logs") >= total as i64
    });
    assert!(
        ingest.try_wait().expect("ingest status").is_none(),
        "ingest exited"
    );
    assert!(
        detect.try_wait().expect("detect status").is_none(),
        "detect exited"
    );
    for p in [&ingest, &detect] {
        signal(p, "TERM");
    }
    for p in [&mut ingest, &mut detect] {
        let status = wait_exit(p, Duration::from_secs(60)).expect("exits after SIGTERM");
        assert!(status.success(), "{status}");
    }
    let out =
        run_ok(ingest_kafka(&broker, "logs", "g-restart", &archive).arg("--stop-when-caught-up"));
    let late = archived_in(&String::from_utf8_lossy(&out.stdout));
    // Every message of the topic is archived exactly once: the archive's
    // (partition, offset) pairs are exactly the topic's (offsets may have
    // gaps: a broker restart can skip some), and every generated record is
    // among them, intact.
    let rows = python_json(
        "read_rows.py",
        &[
            archive.to_str().expect("utf-8"),
            "SELECT kafka_partition AS p, kafka_offset AS o FROM a ORDER BY ALL",
        ],
    );
    let archived: Vec<(i64, i64)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["p"].as_i64().expect("p"), r["o"].as_i64().expect("o")))
        .collect();
    let mut in_topic: Vec<(i64, i64)> = broker
        .read_all("logs")
        .iter()
        .map(|(p, o, _, _)| (i64::from(*p), *o))
        .collect();
    in_topic.sort();
    assert_eq!(
        archived.len(),
        in_topic.len(),
        "archive and topic differ in size"
    );
    assert!(
        archived == in_topic,
        "archive and topic hold different offsets"
    );
    let in_topic = in_topic.len();
    let r = python_json(
        "verify_archive.py",
        &[
            archive.to_str().expect("utf-8"),
            truth.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r["missing"], 0, "{r}");
    assert_eq!(r["unexpected"], 0, "{r}");
    assert_eq!(r["mismatched"], 0, "{r}");
    assert_eq!(r["distinct_seq"], total, "{r}");
    eprintln!(
        "FAULT broker restart: produced {total} ({in_topic} in the topic after producer retries), archived {}, duplicates of a topic message 0, lost 0, time to recover {:.1}s, left for a catch-up run {late}",
        r["rows"],
        recover.as_secs_f64()
    );
}

/// SIGTERM under load: polling stops, open segments are written and
/// committed, and the process exits within the shutdown timeout. A second
/// signal exits at once, still without committing undurable data: it is
/// sent while the archive's file system is full, so that the graceful stop
/// is stuck retrying its writes.
#[test]
fn sigterm_under_load_flushes_commits_and_exits_in_time() {
    let (broker, dir, truth, archive) = setup(&[("logs", 3)]);
    let fs = SmallFs::mount(&archive, "256m");
    let total = 150_000u64;
    generate(&broker, "logs", total, 23, &truth, &[]);
    let timeout_secs = 10.0;
    let start = |log: &Path| {
        ingest_kafka(&broker, "logs", "g-term", &archive)
            .args(["--log-format", "json"])
            .args([
                "--set",
                &format!("ingest.shutdown_timeout_secs={timeout_secs}"),
            ])
            .args(["--segment-max-rows", "20000"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .map(Proc)
            .expect("ingest starts")
    };
    let logged = |log: &Path, what: &str| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(what)
    };

    // One signal: a graceful stop.
    let log1 = dir.path().join("first.log");
    let mut ingest = start(&log1);
    wait_until("files published", WAIT, || parquet_files(&archive) >= 1);
    signal(&ingest, "TERM");
    let t = Instant::now();
    let status = wait_exit(&mut ingest, Duration::from_secs_f64(timeout_secs * 3.0))
        .expect("ingest exits within the shutdown bound");
    let graceful = t.elapsed();
    assert!(status.success(), "{status}");
    let committed = broker.committed_total("g-term", "logs");
    assert!(committed > 0, "a graceful stop commits what it wrote");

    // Signals while nothing can become durable: the first starts a
    // graceful stop that cannot finish, a second one exits at once with
    // 130. The first comes twice at once, as GNU `timeout` sends it (to
    // the process, then to its group): that is one signal, not two.
    let filler = fs.fill();
    let log2 = dir.path().join("second.log");
    let mut ingest = start(&log2);
    wait_until("writes failing on the full disk", WAIT, || {
        logged(&log2, "disk_full")
    });
    let first = Instant::now();
    signal(&ingest, "TERM");
    signal(&ingest, "TERM");
    wait_until("the graceful stop begins", WAIT, || {
        logged(&log2, "shutting down")
    });
    // Past the window in which a signal repeats the first (1 s), the
    // doubled signal has not forced an exit.
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(first.elapsed()));
    assert!(
        ingest.try_wait().expect("status").is_none(),
        "a signal delivered twice at once forced an exit"
    );
    signal(&ingest, "TERM");
    let t = Instant::now();
    let status =
        wait_exit(&mut ingest, Duration::from_secs(5)).expect("a second signal exits at once");
    let forced = t.elapsed();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(
        broker.committed_total("g-term", "logs"),
        committed,
        "committed data that was not durable"
    );
    std::fs::remove_file(filler).expect("freeing space");

    // Whatever either stop committed was durable: catching up gives every
    // record exactly once.
    run_ok(ingest_kafka(&broker, "logs", "g-term", &archive).arg("--stop-when-caught-up"));
    eprintln!(
        "FAULT sigterm: graceful exit in {:.2}s (bound {timeout_secs}s), forced exit in {:.2}s",
        graceful.as_secs_f64(),
        forced.as_secs_f64()
    );
    report("sigterm", &archive, &truth, total, None);
}

/// A second ingest instance joins the group mid-stream and later leaves it:
/// the archive is the same as with one instance.
#[test]
fn rebalance_when_an_instance_joins_and_leaves() {
    let (broker, dir, truth, archive) = setup(&[("logs", 4)]);
    let total = 80_000u64;
    let mut producer = paced_generator(&broker, "logs", total, 24, 4000, &truth);
    let spawn = |log: &Path| {
        ingest_kafka(&broker, "logs", "g-rebal", &archive)
            .args(["--log-format", "json"])
            .args(FAST_SEGMENTS)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .map(Proc)
            .expect("ingest starts")
    };
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn(&log_a);
    wait_until("instance A commits", WAIT, || {
        broker.committed_total("g-rebal", "logs") > 2000
    });
    let mut b = spawn(&log_b);
    wait_until("instance B is assigned partitions", WAIT, || {
        held_partitions(&log_b).is_some_and(|n| n > 0)
    });
    let at_join = broker.committed_total("g-rebal", "logs");
    wait_until("progress with two instances", WAIT, || {
        broker.committed_total("g-rebal", "logs") > at_join + 5000
    });
    signal(&b, "TERM");
    let status = wait_exit(&mut b, Duration::from_secs(60)).expect("B leaves");
    assert!(status.success(), "{status}");
    assert!(producer.wait().expect("generator ends").success());
    wait_committed(&broker, "g-rebal", "logs", total);
    signal(&a, "TERM");
    assert!(wait_exit(&mut a, Duration::from_secs(60))
        .expect("A exits")
        .success());
    let revoked = std::fs::read_to_string(&log_a).unwrap_or_default();
    assert!(
        revoked.contains("partitions revoked"),
        "A never gave partitions up:\n{revoked}"
    );
    report("rebalance join+leave", &archive, &truth, total, None);
}

/// Three instances in one group share the partitions and together write
/// the archive one instance would.
#[test]
fn three_instances_share_the_partitions() {
    let (broker, dir, truth, archive) = setup(&[("logs", 6)]);
    let total = 90_000u64;
    let logs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("{i}.log")))
        .collect();
    let mut instances: Vec<Proc> = logs
        .iter()
        .map(|log| {
            spawn_logged(
                ingest_kafka(&broker, "logs", "g-three", &archive).args(["--log-format", "json"]),
                log,
            )
        })
        .collect();
    // Records are produced once the group has settled with every instance
    // holding a share, so that each one has work.
    wait_until("every instance holds partitions", WAIT, || {
        let held: Vec<Option<u64>> = logs.iter().map(|l| held_partitions(l)).collect();
        held.iter().all(|h| h.is_some_and(|n| n > 0)) && held.iter().flatten().sum::<u64>() == 6
    });
    generate(&broker, "logs", total, 25, &truth, &[]);
    wait_committed(&broker, "g-three", "logs", total);
    for p in &instances {
        signal(p, "TERM");
    }
    let mut shares = Vec::new();
    for p in instances.iter_mut() {
        assert!(wait_exit(p, Duration::from_secs(60))
            .expect("exits")
            .success());
        shares.push(archived_by(p));
    }
    assert!(
        shares.iter().all(|&n| n > 0),
        "an instance got no work: {shares:?}"
    );
    assert_eq!(shares.iter().sum::<u64>(), total, "{shares:?}");
    eprintln!("FAULT scale-out: records archived per instance {shares:?}");
    report("three instances", &archive, &truth, total, None);
}

/// Four instances started together with `--stop-when-caught-up` on a
/// backlog of three partitions: each waits for the partitions the others
/// hold (and while all four are members, one holds none), and yet every
/// one of them exits by itself once the whole backlog is archived and
/// committed.
#[test]
fn instances_catching_up_together_all_stop_once_everything_is_archived() {
    let (broker, dir, truth, archive) = setup(&[("logs", 3)]);
    let total = 90_000u64;
    generate(&broker, "logs", total, 26, &truth, &[]);
    let logs: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("{i}.log")))
        .collect();
    let started = Instant::now();
    let mut instances: Vec<Proc> = logs
        .iter()
        .map(|log| {
            spawn_logged(
                ingest_kafka(&broker, "logs", "g-catchup", &archive)
                    .args(["--log-format", "json", "--stop-when-caught-up"])
                    // Segments close at the end of a partition, not by age:
                    // an instance that held its segments open would keep
                    // the others waiting for its commits.
                    .args(["--segment-max-age-secs", "600"]),
                log,
            )
        })
        .collect();
    let statuses: Vec<_> = instances
        .iter_mut()
        .map(|p| {
            wait_exit(
                p,
                Duration::from_secs(120).saturating_sub(started.elapsed()),
            )
        })
        .collect();
    if !statuses.iter().all(|s| s.is_some_and(|s| s.success())) {
        let logs: Vec<String> = logs
            .iter()
            .zip(&statuses)
            .map(|(log, s)| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                format!("instance {}, exit {s:?}:\n{text}", log.display())
            })
            .collect();
        panic!(
            "not every instance stopped by itself, successfully:\n{}",
            logs.join("\n")
        );
    }
    let shares: Vec<u64> = instances.iter_mut().map(archived_by).collect();
    let took = started.elapsed();
    assert_eq!(broker.committed_total("g-catchup", "logs"), total as i64);
    // Work dropped uncommitted at a rebalance is archived again by the next
    // holder (into the same files), so the shares may add up to more.
    assert!(
        shares.iter().sum::<u64>() >= total,
        "records archived per instance: {shares:?}"
    );
    eprintln!("FAULT catch-up together: records archived per instance {shares:?}");
    report(
        "four catch-up runs at once",
        &archive,
        &truth,
        total,
        Some(took),
    );
}

/// The messages of a JSON log (`--log-format json`), in order.
fn log_messages(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

/// Catch-up runs of a group that has committed everything: each finds the
/// group done as soon as it can ask, which is as its group join completes,
/// with its assignment on the way. It must not stop before that assignment
/// (closing a consumer in the middle of a rebalance can leave librdkafka
/// waiting on the closing group for good): each run exits by itself, was
/// assigned its partitions before it stopped, and left its group in time.
#[test]
fn a_catch_up_run_with_nothing_left_stops_after_its_group_join() {
    let (broker, dir, truth, archive) = setup(&[("logs", 3)]);
    let total = 3_000u64;
    generate(&broker, "logs", total, 27, &truth, &[]);
    for run in 0..4 {
        let log = dir.path().join(format!("{run}.log"));
        let mut p = spawn_logged(
            ingest_kafka(&broker, "logs", "g-done", &archive).args([
                "--log-format",
                "json",
                "--stop-when-caught-up",
            ]),
            &log,
        );
        let status = wait_exit(&mut p, Duration::from_secs(60));
        let messages = log_messages(&log);
        let at = |m: &str| messages.iter().position(|x| x.starts_with(m));
        let (assigned, caught_up) = (at("partitions assigned"), at("caught up"));
        assert!(
            status.is_some_and(|s| s.success())
                && assigned.is_some()
                && assigned < caught_up
                && at("the consumer did not leave its group in time").is_none(),
            "run {run}, exit {status:?}: {messages:#?}"
        );
        let archived = archived_by(&mut p);
        assert_eq!(archived, if run == 0 { total } else { 0 }, "run {run}");
    }
    report(
        "catch-up runs with nothing left",
        &archive,
        &truth,
        total,
        None,
    );
}

/// A tmpfs mounted for the test and unmounted on drop.
struct SmallFs {
    dir: std::path::PathBuf,
}

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).expect("mount point");
        run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills the file system with a hidden file (which readers skip);
    /// returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.join(".filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }

    fn resize(&self, size: &str) {
        run_ok(
            std::process::Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.dir),
        );
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// The archive's file system fills up: no partial or corrupt file becomes
/// visible, nothing more is committed, the error is logged with its kind,
/// and ingest resumes by itself once space is freed. Needs root (mount).
#[test]
fn disk_full_pauses_without_committing_and_resumes() {
    let (broker, dir, truth, archive) = setup(&[("logs", 3)]);
    let fs = SmallFs::mount(&archive, "1m");
    let total = 100_000u64;
    generate(&broker, "logs", total, 26, &truth, &[]);
    let log = dir.path().join("ingest.log");
    let mut ingest = ingest_kafka(&broker, "logs", "g-full", &archive)
        .args(["--log-format", "json"])
        .args(FAST_SEGMENTS)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .map(Proc)
        .expect("ingest starts");
    wait_until("a disk-full error in the log", WAIT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["fields"]["kind"] == "disk_full")
            })
    });
    let stuck_at = broker.committed_total("g-full", "logs");
    assert!(stuck_at < total as i64, "everything fit in 1 MiB?");
    let files = python_json("check_files.py", &[archive.to_str().expect("utf-8")]);
    assert_eq!(files["unreadable"], serde_json::json!([]), "{files}");
    assert!(
        files["rows"].as_i64().expect("rows") >= stuck_at,
        "committed {stuck_at} records but only {files} are in readable files"
    );
    assert!(
        ingest.try_wait().expect("status").is_none(),
        "ingest gave up"
    );

    fs.resize("256m");
    let freed = Instant::now();
    wait_committed(&broker, "g-full", "logs", total);
    let recover = freed.elapsed();
    signal(&ingest, "TERM");
    assert!(wait_exit(&mut ingest, Duration::from_secs(60))
        .expect("exits")
        .success());
    report("disk full", &archive, &truth, total, Some(recover));
}

/// The object store becomes unreachable for a while (its connections cut,
/// new ones refused), then comes back: writes are retried with backoff,
/// nothing is committed meanwhile, ingest keeps running, and it catches up.
/// The archive is then read back from the S3 server and checked.
#[test]
fn object_storage_outage_retries_without_committing() {
    let (broker, dir, truth, _archive) = setup(&[("logs", 3)]);
    let s3 = Moto::start();
    s3.create_bucket("archive");
    let proxy = FlakyProxy::start(s3.port);
    let total = 60_000u64;
    let log = dir.path().join("ingest.log");
    let mut producer = paced_generator(&broker, "logs", total, 27, 4000, &truth);
    let mut cmd = ingest_kafka(&broker, "logs", "g-s3", Path::new("s3://archive/logs"));
    s3.env(&mut cmd);
    let mut ingest = cmd
        .args(FAST_SEGMENTS)
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env(
            "RUST_LOG",
            "info,logwarden_ingest::kafka=debug,rdkafka=warn",
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .map(Proc)
        .expect("ingest starts");
    wait_until("commits before the outage", WAIT, || {
        broker.committed_total("g-s3", "logs") > 5000
    });
    proxy.set_down(true);
    // Writes in flight when the outage began may still complete; after that
    // nothing more can become durable, so nothing more may be committed.
    std::thread::sleep(Duration::from_secs(2));
    let during = broker.committed_total("g-s3", "logs");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        broker.committed_total("g-s3", "logs"),
        during,
        "committed during the outage"
    );
    assert!(
        ingest.try_wait().expect("status").is_none(),
        "ingest gave up"
    );
    wait_until("consumption paused instead of buffering", WAIT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("pausing consumption")
    });
    proxy.set_down(false);
    let back = Instant::now();
    assert!(producer.wait().expect("generator ends").success());
    wait_committed(&broker, "g-s3", "logs", total);
    let recover = back.elapsed();
    signal(&ingest, "TERM");
    assert!(wait_exit(&mut ingest, Duration::from_secs(60))
        .expect("exits")
        .success());
    // Read the archive back over S3.
    let local = dir.path().join("downloaded");
    run_ok(std::process::Command::new("python3").args([
        "-c",
        "import boto3, os, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='logwarden-test', aws_secret_access_key='logwarden-test', region_name='us-east-1')\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket='archive', Prefix='logs/'):\n    for o in page.get('Contents', []):\n        p = os.path.join(sys.argv[2], o['Key'][len('logs/'):])\n        os.makedirs(os.path.dirname(p), exist_ok=True)\n        s3.download_file('archive', o['Key'], p)\n",
        &s3.endpoint(),
        local.to_str().expect("utf-8"),
    ]));
    report(
        "object storage outage",
        &local,
        &truth,
        total,
        Some(recover),
    );
}
