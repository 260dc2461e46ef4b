//! logwarden: Kafka log ingestion to a Parquet archive, and anomaly detection
//! to an alert topic.

mod alertmanager;
mod alerts_cmd;
mod backtest_archive;
mod backtest_cmd;
mod checkpoint;
mod compact_cmd;
mod config;
mod demo;
mod detect_cmd;
mod eval;
mod generate;
mod generate_cmd;
mod ingest_cmd;
mod malloc;
mod shutdown;
mod telemetry;
mod templates_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use config::Config;
use logwarden_ingest::kafka::StopWhen;

#[derive(Parser)]
#[command(
    name = "logwarden",
    version,
    about = "Kafka logs to a Parquet archive and to explained alerts"
)]
struct Cli {
    /// TOML configuration file; flags and LOGWARDEN_* variables override it.
    #[arg(long, global = true, env = "LOGWARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Override any configuration key: `section.key=value` (repeatable), e.g.
    /// `--set archive.parquet.zstd_level=6`. `LOGWARDEN_SET` takes the same,
    /// separated by `;`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Log output format on stderr.
    #[arg(
        long,
        global = true,
        env = "LOGWARDEN_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Consume logs from Kafka (or a file) and write the Parquet archive.
    Ingest(IngestArgs),
    /// Consume logs from Kafka, detect anomalies, publish alerts.
    Detect(DetectArgs),
    /// Generate synthetic logs to Kafka or stdout.
    Generate(generate_cmd::GenerateArgs),
    /// Run the whole pipeline on an embedded Kafka with generated logs.
    Demo(demo::DemoArgs),
    /// Mine log templates from a file and print them (or one id per line).
    Templates(TemplatesArgs),
    /// Replay a log file, a Parquet archive or a metric series through the
    /// detector offline: the alerts it would have raised, and scores as CSV.
    Backtest(backtest_cmd::BacktestArgs),
    /// Print the alerts on the alert topic, readably or as JSON lines.
    Alerts(alerts_cmd::AlertsArgs),
    /// Labelled synthetic incidents through the detector: precision,
    /// recall and delay (the bench of bench/incidents.sh).
    #[command(hide = true)]
    Eval(eval::EvalArgs),
    /// Check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Merge the small files of closed archive partitions.
    Compact(compact_cmd::CompactArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE (with --set, LOGWARDEN_SET and the LOGWARDEN_*
    /// variables of ingest and detect applied) and print the effective
    /// configuration as TOML, secrets redacted.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct TemplatesArgs {
    /// File of log lines, `-` for stdin.
    #[arg(long)]
    input: PathBuf,
    /// Print exactly one line per input line: its template id, assigned
    /// online as the line arrived.
    #[arg(long)]
    ids: bool,
}

#[derive(Args)]
struct DetectArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Topic the alerts are published to.
    #[arg(long, env = "LOGWARDEN_ALERTS_TOPIC")]
    alerts_topic: Option<String>,
    /// Window length in seconds.
    #[arg(long, env = "LOGWARDEN_WINDOW_SECS")]
    window_secs: Option<u64>,
    /// Numeric field of metric-like records to score per record; repeat
    /// for several (`detect.model.metric_fields`, replaced as a whole).
    #[arg(
        long = "metric-field",
        env = "LOGWARDEN_METRIC_FIELDS",
        value_delimiter = ','
    )]
    metric_fields: Vec<String>,
    /// Exit once every assigned partition is consumed to its end and the
    /// group has committed its topics' other partitions to theirs (a member
    /// that died holds its partitions until its session expires), closing
    /// the windows the data covers.
    #[arg(long, env = "LOGWARDEN_STOP_WHEN_CAUGHT_UP")]
    stop_when_caught_up: bool,
    /// Listen address of /metrics, /healthz and /readyz
    /// (`telemetry.detect_listen`).
    #[arg(long, env = "LOGWARDEN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Directory of the detector's checkpoint (`detect.state_dir`).
    #[arg(long, env = "LOGWARDEN_STATE_DIR")]
    state_dir: Option<String>,
    /// Also send alerts to this Alertmanager, e.g. http://localhost:9093
    /// (`detect.alertmanager_url`).
    #[arg(long, env = "LOGWARDEN_ALERTMANAGER_URL")]
    alertmanager_url: Option<String>,
}

impl DetectArgs {
    fn apply(&self, cfg: &mut Config) {
        self.kafka.apply(cfg);
        if let Some(g) = &self.kafka.group {
            cfg.detect.group = g.clone();
        }
        if let Some(t) = &self.alerts_topic {
            cfg.detect.alerts_topic = t.clone();
        }
        if let Some(w) = self.window_secs {
            cfg.detect.model.window_secs = w;
        }
        if !self.metric_fields.is_empty() {
            cfg.detect.model.metric_fields = self.metric_fields.clone();
        }
        if let Some(l) = &self.metrics_listen {
            cfg.telemetry.detect_listen = l.clone();
        }
        if let Some(d) = &self.state_dir {
            cfg.detect.state_dir = d.clone();
        }
        if let Some(u) = &self.alertmanager_url {
            cfg.detect.alertmanager_url = u.clone();
        }
    }
}

/// Kafka options shared by the consuming commands.
#[derive(Args, Clone)]
struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(long, env = "LOGWARDEN_BROKERS")]
    brokers: Option<String>,
    /// Topic to consume; repeat for several.
    #[arg(long = "topic", env = "LOGWARDEN_TOPICS", value_delimiter = ',')]
    topics: Vec<String>,
    /// Consumer group id.
    #[arg(long, env = "LOGWARDEN_GROUP")]
    group: Option<String>,
    /// Group session timeout in milliseconds.
    #[arg(long, env = "LOGWARDEN_SESSION_TIMEOUT_MS")]
    session_timeout_ms: Option<u64>,
}

impl KafkaArgs {
    fn apply(&self, cfg: &mut Config) {
        if let Some(b) = &self.brokers {
            cfg.kafka.brokers = b.clone();
        }
        if !self.topics.is_empty() {
            cfg.kafka.topics = self.topics.clone();
        }
        if let Some(ms) = self.session_timeout_ms {
            cfg.kafka.session_timeout_ms = ms;
        }
    }
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Archive location: a directory, file:///path or s3://bucket/prefix.
    #[arg(long, env = "LOGWARDEN_OUTPUT")]
    output: Option<String>,
    /// Read lines from this file (`-` for stdin) instead of Kafka.
    #[arg(long, env = "LOGWARDEN_INPUT")]
    input: Option<PathBuf>,
    /// With --input: the source name recorded as the records' topic and used
    /// in file names (default: the input's file name, or `stdin`). Re-running
    /// a backfill under the same name replaces its files; give distinct
    /// inputs distinct names.
    #[arg(long, env = "LOGWARDEN_SOURCE_NAME", requires = "input")]
    source_name: Option<String>,
    /// Exit once every assigned partition is consumed to its end and the
    /// group has committed its topics' other partitions to theirs (a member
    /// that died holds its partitions until its session expires). A
    /// partition's open segment is written as soon as it reaches its end.
    #[arg(long, env = "LOGWARDEN_STOP_WHEN_CAUGHT_UP")]
    stop_when_caught_up: bool,
    /// A segment (a set of archive files) closes at this many records.
    #[arg(long, env = "LOGWARDEN_SEGMENT_MAX_ROWS")]
    segment_max_rows: Option<usize>,
    /// A segment closes at about this many buffered bytes (0: 32 MiB from
    /// Kafka, 64 MiB from a file).
    #[arg(long, env = "LOGWARDEN_SEGMENT_MAX_BYTES")]
    segment_max_bytes: Option<usize>,
    /// A segment closes this many seconds after its first record.
    #[arg(long, env = "LOGWARDEN_SEGMENT_MAX_AGE_SECS")]
    segment_max_age_secs: Option<f64>,
    /// Longest a graceful shutdown spends writing and committing, in seconds.
    #[arg(long, env = "LOGWARDEN_SHUTDOWN_TIMEOUT_SECS")]
    shutdown_timeout_secs: Option<f64>,
    /// Listen address of /metrics, /healthz and /readyz
    /// (`telemetry.ingest_listen`).
    #[arg(long, env = "LOGWARDEN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

impl IngestArgs {
    fn apply(&self, cfg: &mut Config) {
        self.kafka.apply(cfg);
        if let Some(g) = &self.kafka.group {
            cfg.ingest.group = g.clone();
        }
        if let Some(o) = &self.output {
            cfg.ingest.output = o.clone();
        }
        if let Some(v) = self.segment_max_rows {
            cfg.ingest.segment.max_rows = v;
        }
        if let Some(v) = self.segment_max_bytes {
            cfg.ingest.segment.max_bytes = v;
        }
        if let Some(v) = self.segment_max_age_secs {
            cfg.ingest.segment.max_age_secs = v;
        }
        if let Some(v) = self.shutdown_timeout_secs {
            cfg.ingest.shutdown_timeout_secs = v;
        }
        if let Some(l) = &self.metrics_listen {
            cfg.telemetry.ingest_listen = l.clone();
        }
    }
}

/// A command's arguments from its environment variables alone.
fn env_args<A: clap::Args + clap::FromArgMatches>() -> Option<A> {
    let cmd = A::augment_args(clap::Command::new("env"));
    let m = cmd.try_get_matches_from(["env"]).ok()?;
    A::from_arg_matches(&m).ok()
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Before any thread is spawned.
    malloc::tune();
    let format = cli.log_format;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`logwarden templates ... | head`):
        // it wanted no more, which is no failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("error: {e:#}"),
                // One JSON object per line on stderr, the last one included.
                LogFormat::Json => tracing::error!(error = %format!("{e:#}"), "exiting on error"),
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut sets: Vec<String> = std::env::var("LOGWARDEN_SET")
        .map(|v| {
            v.split(';')
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    sets.extend(cli.sets.iter().cloned());
    let mut cfg = Config::load(cli.config.as_ref(), &sets)?;
    match cli.command {
        Command::Ingest(args) => {
            args.apply(&mut cfg);
            let signals = shutdown::Signals::install()?;
            if args.input.is_some() {
                // Kafka's settings have no effect on a file; the records'
                // topic is the source name.
                if !args.kafka.topics.is_empty() {
                    tracing::warn!(
                        "--topic (LOGWARDEN_TOPICS) is ignored with --input: \
                         the records' topic is --source-name"
                    );
                }
                if args.stop_when_caught_up {
                    tracing::warn!(
                        "--stop-when-caught-up is ignored with --input, \
                         which stops at the end of its input"
                    );
                }
            }
            let input = match &args.input {
                Some(p) => ingest_cmd::Input::File {
                    path: p.clone(),
                    name: args.source_name.clone(),
                },
                None => ingest_cmd::Input::Kafka {
                    stop: if args.stop_when_caught_up {
                        StopWhen::CaughtUp
                    } else {
                        StopWhen::Never
                    },
                },
            };
            let metrics = Default::default();
            let report = ingest_cmd::run(
                &cfg,
                input,
                metrics,
                signals.graceful.clone(),
                signals.forced.clone(),
            )
            .context("ingest failed")?;
            let active = if report.consumed == 0 {
                "no record".to_string()
            } else {
                format!("{:.2}s from the first record", report.active.as_secs_f64())
            };
            println!(
                "ingest done: {} records consumed, {} archived, {} with parse issues, {} dead-lettered, {} files ({} bytes) in {} ({:.2}s, {active}); compaction merged {} small files into {}",
                report.consumed,
                report.archived,
                report.parse_issues,
                report.dead_lettered,
                report.files,
                report.bytes_written,
                report.archive,
                report.elapsed.as_secs_f64(),
                report.compacted_in,
                report.compacted_out
            );
            Ok(())
        }
        Command::Detect(args) => {
            args.apply(&mut cfg);
            let signals = shutdown::Signals::install()?;
            let stop = if args.stop_when_caught_up {
                StopWhen::CaughtUp
            } else {
                StopWhen::Never
            };
            let report = detect_cmd::run(
                &cfg,
                stop,
                signals.graceful.clone(),
                Default::default(),
                |_| {},
            )
            .context("detect failed")?;
            println!(
                "detect done: {} records, {} windows closed, {} late records, {} alerts",
                report.records, report.windows_closed, report.late_records, report.alerts
            );
            Ok(())
        }
        Command::Generate(args) => generate_cmd::run(&args),
        Command::Demo(args) => demo::run(cfg, &args),
        Command::Templates(args) => templates_cmd::run(&cfg, &args.input, args.ids),
        Command::Alerts(args) => alerts_cmd::run(&cfg, &args),
        Command::Eval(args) => eval::run(&args),
        Command::Backtest(args) => backtest_cmd::run(&cfg, &args)
            .map(|_| ())
            .context("backtest failed"),
        Command::Config(ConfigCommand::Check { file }) => {
            let mut cfg = Config::load(Some(&file), &sets)?;
            // What ingest and detect would run with: their LOGWARDEN_*
            // variables (clap's env fallbacks) applied as they would be.
            if let Some(a) = env_args::<IngestArgs>() {
                a.apply(&mut cfg);
            }
            if let Some(a) = env_args::<DetectArgs>() {
                a.apply(&mut cfg);
            }
            cfg.check_all()?;
            print!("{}", cfg.redacted_toml()?);
            eprintln!("{}: valid", file.display());
            Ok(())
        }
        Command::Compact(args) => compact_cmd::run(cfg, &args),
    }
}
