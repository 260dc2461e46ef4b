//! `logwarden generate`: synthetic logs to a Kafka topic or stdout.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::generate::{base_rate, parse_duration_secs, Generator, GeneratorConfig, Incident};

#[derive(Args, Clone)]
pub struct GenerateArgs {
    /// Produce to Kafka at these bootstrap servers (default: write to stdout).
    #[arg(long, env = "LOGWARDEN_BROKERS")]
    pub brokers: Option<String>,
    /// Topic to produce to (with --brokers).
    #[arg(long, default_value = "logs")]
    pub topic: String,
    /// Number of lines to generate.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Seed: the same seed gives the same lines.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Lines per second of wall time; 0 for as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Event-time span to generate (e.g. 3h): lines stop at start + span
    /// (and at --count, whichever comes first).
    #[arg(long)]
    pub duration: Option<String>,
    /// Pace by event time instead of lines: this many seconds of event time
    /// per second of wall time.
    #[arg(long)]
    pub speedup: Option<f64>,
    /// Average events per second of event time across all services.
    #[arg(long)]
    pub events_per_sec: Option<f64>,
    /// Event time of the first line: RFC 3339, or `now-DURATION` (e.g. now-2h).
    /// Default: so that the last line is about now.
    #[arg(long)]
    pub start: Option<String>,
    /// Inject an incident: KIND:SERVICE@START+DURATION with KIND error-burst,
    /// traffic-drop, traffic-surge, new-template, latency (duration_ms x4)
    /// or drift (traffic doubling slowly over the duration; not an alert),
    /// START relative to the first line (e.g. error-burst:payments@40m+5m).
    /// Repeatable.
    #[arg(long)]
    pub incident: Vec<Incident>,
    /// Share of JSON lines; the rest are logfmt and plain text.
    #[arg(long, default_value_t = 0.8)]
    pub json_share: f64,
    /// Also write what each line should parse to (JSON lines: seq, service,
    /// level, event_time_us, message) to this file, for checking an archive.
    #[arg(long)]
    pub truth: Option<std::path::PathBuf>,
    /// Extra producer properties, KEY=VALUE (repeatable).
    #[arg(long = "producer-property", value_parser = parse_kv)]
    pub producer_properties: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

impl GenerateArgs {
    fn duration_us(&self) -> anyhow::Result<Option<i64>> {
        self.duration
            .as_deref()
            .map(|d| {
                parse_duration_secs(d)
                    .map(|s| (s * 1e6) as i64)
                    .with_context(|| format!("--duration `{d}`: expected e.g. 90s, 15m, 3h"))
            })
            .transpose()
    }

    pub fn generator_config(&self) -> anyhow::Result<GeneratorConfig> {
        if !(0.0..=1.0).contains(&self.json_share) {
            bail!("--json-share must be between 0 and 1");
        }
        let eps = self.events_per_sec.unwrap_or_else(base_rate);
        if !(eps.is_finite() && eps > 0.0) {
            bail!("--events-per-sec must be positive");
        }
        let now = chrono::Utc::now().timestamp_micros();
        let span_us = match self.duration_us()? {
            Some(d) => d,
            None => (self.count as f64 / eps * 1e6) as i64,
        };
        let start_us = match self.start.as_deref() {
            None => now - span_us,
            Some(s) if s.starts_with("now-") => {
                let secs =
                    parse_duration_secs(&s[4..]).with_context(|| format!("--start `{s}`"))?;
                now - (secs * 1e6) as i64
            }
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("--start `{s}`: expected RFC 3339 or now-DURATION"))?
                .timestamp_micros(),
        };
        Ok(GeneratorConfig {
            seed: self.seed,
            start_us,
            rate_scale: eps / base_rate(),
            json_share: self.json_share,
            incidents: self.incident.clone(),
        })
    }
}

/// Paces output to `rate` lines per second of wall time, or to `speedup`
/// seconds of event time per second of wall time.
struct Pacer {
    rate: f64,
    speedup: Option<f64>,
    start_us: i64,
    started: Instant,
}

impl Pacer {
    fn wait(&self, sent: u64, event_time_us: i64) {
        let due = match self.speedup {
            Some(x) if x > 0.0 => {
                Duration::from_secs_f64(((event_time_us - self.start_us).max(0) as f64 / 1e6) / x)
            }
            _ if self.rate > 0.0 => Duration::from_secs_f64(sent as f64 / self.rate),
            _ => return,
        };
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut truth = match &args.truth {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let mut truth_err = None;
    let gen_cfg = args.generator_config()?;
    let start_us = gen_cfg.start_us;
    let end_us = args
        .duration_us()?
        .map_or(i64::MAX, |d| start_us.saturating_add(d));
    let gen = Generator::new(gen_cfg)
        .take(args.count as usize)
        .take_while(move |g| g.event_time_us < end_us)
        .inspect(|g| {
            if let Some(t) = truth.as_mut() {
                let row = serde_json::json!({
                    "seq": g.seq, "service": g.service, "level": g.level,
                    "event_time_us": g.event_time_us, "message": g.message,
                });
                if let Err(e) = writeln!(t, "{row}") {
                    truth_err.get_or_insert(e);
                }
            }
        });
    let pacer = Pacer {
        rate: args.rate,
        speedup: args.speedup,
        start_us,
        started: Instant::now(),
    };
    match &args.brokers {
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            for (i, g) in gen.enumerate() {
                pacer.wait(i as u64, g.event_time_us);
                out.write_all(g.line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Some(brokers) => {
            let started = Instant::now();
            let delivered = produce(
                brokers,
                &args.topic,
                &args.producer_properties,
                gen.map(|g| (g.service, g.event_time_us, g.line)),
                &pacer,
            )?;
            eprintln!(
                "generated {delivered} lines to {} in {:.1}s",
                args.topic,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(e) = truth_err {
        return Err(e).context("writing the truth file");
    }
    if let Some(mut t) = truth {
        t.flush().context("writing the truth file")?;
    }
    Ok(())
}

/// Counts delivery reports.
#[derive(Default)]
pub struct DeliveryCounter {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!(error = %e, "delivery failed");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Produces keyed lines; returns how many were delivered. Fails if any was
/// not.
fn produce(
    brokers: &str,
    topic: &str,
    props: &[(String, String)],
    lines: impl Iterator<Item = (&'static str, i64, String)>,
    pacer: &Pacer,
) -> anyhow::Result<u64> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("message.max.bytes", "20000000");
    for (k, v) in props {
        cc.set(k, v);
    }
    let producer: ThreadedProducer<DeliveryCounter> =
        cc.create_with_context(DeliveryCounter::default())?;
    let mut sent = 0u64;
    for (key, event_time_us, line) in lines {
        pacer.wait(sent, event_time_us);
        let mut record = BaseRecord::to(topic).key(key).payload(&line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the producer")?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {sent} lines were not delivered");
    }
    Ok(ctx.delivered.load(Ordering::Relaxed))
}
