//! `logwarden backtest`: replays history through the same detector, offline.
//!
//! Two modes:
//! - logs (default): every line of a JSON-lines/text log file, or every
//!   record of a Parquet archive directory, goes through the parser and the
//!   windowed [`Detector`] exactly as `logwarden detect` would see it
//!   (samples of `[detect.model] metric_fields` scored per record too); the
//!   alerts it would have raised are printed, and `--scores-out` gets one
//!   CSV row per judged window and signal.
//! - metric (`--field NAME`): each JSON line is one sample of a numeric
//!   series, scored one record at a time by the [`NumericScorer`] using only
//!   the records before it; `--scores-out` gets exactly one row per input
//!   line, in input order: `timestamp,value,anomaly_score,alert`.
//!
//! `--plot OUT.svg` draws a series with its expected band and the alerts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use logwarden_detect::numeric::{parse_timestamp_us, NumericScorer};
use logwarden_detect::plot::{svg, PlotPoint};
use logwarden_detect::{Alert, AlertStatus, Detector, Event, WindowScore};
use logwarden_ingest::file::{EventReader, LineReader};
use logwarden_ingest::parse::{ParseContext, Parser};
use logwarden_ingest::record::{Level, LogRecord};

use crate::config::Config;

/// Most series whose windows are kept in memory for `--plot`.
const MAX_PLOT_SERIES: usize = 256;
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// A JSON-lines (or any text) log file, `-` for stdin, or a Parquet
    /// archive directory written by `logwarden ingest`.
    #[arg(long, env = "LOGWARDEN_BACKTEST_INPUT")]
    pub input: PathBuf,
    /// Metric mode: score this numeric field of each JSON line, one record at
    /// a time.
    #[arg(long)]
    pub field: Option<String>,
    /// Metric mode: the field holding each record's time (RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS`, or epoch seconds/milliseconds).
    #[arg(long, default_value = "timestamp")]
    pub time_field: String,
    /// Write the scores as CSV here (metric mode: one row per input line;
    /// logs mode: one row per judged window and signal).
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
    /// Draw a series, its expected band and its alerts as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Logs mode: the series to plot, `service/signal` or
    /// `service/signal/dimension` as in the alerts' keys (default: the
    /// series of the first alert, else the first series).
    #[arg(long)]
    pub plot_series: Option<String>,
    /// Print alerts as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Window length in seconds (logs mode).
    #[arg(long, env = "LOGWARDEN_WINDOW_SECS")]
    pub window_secs: Option<u64>,
}

/// What a backtest did.
#[derive(Debug, Default, Clone)]
pub struct BacktestReport {
    pub records: u64,
    /// Records older than the windows already closed, left out.
    pub late_records: u64,
    pub alerts: u64,
    pub firing: u64,
    pub windows: u64,
}

pub fn run(cfg: &Config, args: &BacktestArgs) -> anyhow::Result<BacktestReport> {
    cfg.detect.metric.validate()?;
    let report = match &args.field {
        Some(field) => run_metric(cfg, args, field)?,
        None => run_logs(cfg, args)?,
    };
    eprintln!(
        "backtest done: {} records ({} too late for their window), {} windows judged, {} alerts ({} firing)",
        report.records, report.late_records, report.windows, report.alerts, report.firing
    );
    Ok(report)
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    Ok(Box::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    ))
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

/// A progress line on stderr, only when stderr is a terminal.
struct Progress {
    on: bool,
    last: Instant,
    start: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
            start: Instant::now(),
        }
    }

    fn tick(&mut self, records: u64, alerts: u64) {
        if self.on && self.last.elapsed() >= PROGRESS_INTERVAL {
            self.last = Instant::now();
            let rate = records as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r{records} records, {alerts} alerts ({rate:.0} records/s)  ");
        }
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// One CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------- metric

fn run_metric(cfg: &Config, args: &BacktestArgs, field: &str) -> anyhow::Result<BacktestReport> {
    let mut reader = LineReader::new(open_input(&args.input)?);
    let mut scorer = NumericScorer::new(cfg.detect.metric.clone());
    let mut out = match &args.scores_out {
        Some(p) => Some(create(p)?),
        None => None,
    };
    if let Some(o) = out.as_mut() {
        writeln!(o, "timestamp,value,anomaly_score,alert")?;
    }
    let mut report = BacktestReport::default();
    let mut plot: Vec<PlotPoint> = Vec::new();
    let mut progress = Progress::new();
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    while let Some(line) = reader.next_line()? {
        report.records += 1;
        // A line that is not a JSON object, or lacks the field, still gets
        // its row (with an empty value and score 0): one row per record.
        let obj: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(line).ok();
        let ts_text = obj
            .as_ref()
            .and_then(|o| o.get(&args.time_field))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let value = obj
            .as_ref()
            .and_then(|o| o.get(field))
            .and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            });
        let t_us = parse_timestamp_us(&ts_text);
        let verdict = value.map(|v| scorer.score_at(t_us, v));
        let (score, alert) = verdict.map_or((0.0, false), |v| (v.score, v.alert));
        if let Some(o) = out.as_mut() {
            let value_text = value.map(|v| v.to_string()).unwrap_or_default();
            writeln!(
                o,
                "{},{},{},{}",
                csv_field(&ts_text),
                value_text,
                score,
                u8::from(alert)
            )?;
        }
        if alert {
            report.alerts += 1;
            report.firing += 1;
            let v = value.unwrap_or(f64::NAN);
            let band = verdict.and_then(|v| v.expected);
            if args.json {
                let j = serde_json::json!({
                    "timestamp": ts_text, "field": field, "value": v, "score": score,
                    "expected": band.map(|b| b.expected),
                    "expected_low": band.map(|b| b.low),
                    "expected_high": band.map(|b| b.high),
                });
                writeln!(stdout, "{j}")?;
            } else {
                let range = band.map_or(String::new(), |b| {
                    format!(
                        ", expected {:.4} (range {:.4} to {:.4})",
                        b.expected, b.low, b.high
                    )
                });
                writeln!(
                    stdout,
                    "[firing] {ts_text} {field} = {v}{range}, score {score:.3}"
                )?;
            }
        }
        if args.plot.is_some() {
            if let Some(v) = value {
                plot.push(PlotPoint {
                    x: t_us.unwrap_or(report.records as i64),
                    value: v,
                    band: verdict.and_then(|v| v.expected).map(|b| (b.low, b.high)),
                    alert,
                });
            }
        }
        progress.tick(report.records, report.alerts);
    }
    progress.done();
    if let Some(mut o) = out {
        o.flush()?;
    }
    if let Some(p) = &args.plot {
        let time_axis = plot.first().is_some_and(|p| p.x > 1_000_000_000);
        let title = format!("{} — {field}", args.input.display());
        std::fs::write(p, svg(&title, &plot, time_axis))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(report)
}

// ------------------------------------------------------------------ logs

/// The records of a log source, in roughly event-time order.
pub(crate) trait RecordSource {
    /// Fills `rec` with the next record; false at the end.
    fn next(&mut self, rec: &mut LogRecord) -> anyhow::Result<bool>;
}

struct LineSource {
    /// Lines grouped into events as a backfill groups them (a stack trace
    /// is one record).
    reader: EventReader<Box<dyn Read>>,
    parser: Parser,
    now_us: i64,
    /// The event time of the last record with its own, for the lines
    /// without one (see [`LogRecord::inherit_time`]).
    last_time: Option<i64>,
}

impl RecordSource for LineSource {
    fn next(&mut self, rec: &mut LogRecord) -> anyhow::Result<bool> {
        let Some((line, rest)) = self.reader.next_event()? else {
            return Ok(false);
        };
        let ctx = ParseContext {
            transport_time_us: None,
            ingest_time_us: self.now_us,
        };
        self.parser.parse(Some(line), &ctx, rec);
        if let Some(rest) = rest {
            rec.continue_message(rest);
        }
        rec.inherit_time(&mut self.last_time);
        Ok(true)
    }
}

fn run_logs(cfg: &Config, args: &BacktestArgs) -> anyhow::Result<BacktestReport> {
    let mut model = cfg.detect.model.clone();
    if let Some(w) = args.window_secs {
        model.window_secs = w;
    }
    let mut detector = Detector::new(model).context("invalid [detect.model] configuration")?;
    detector.record_windows(true);
    detector.set_metric_model(cfg.detect.metric.clone());
    let mut source: Box<dyn RecordSource> = if args.input.is_dir() {
        Box::new(crate::backtest_archive::ArchiveSource::open(&args.input)?)
    } else {
        Box::new(LineSource {
            reader: EventReader::new(open_input(&args.input)?),
            parser: Parser::new(cfg.parse.clone()).context("invalid [parse] configuration")?,
            now_us: chrono::Utc::now().timestamp_micros(),
            last_time: None,
        })
    };
    let mut scores_out = match &args.scores_out {
        Some(p) => {
            let mut o = create(p)?;
            writeln!(
                o,
                "window_start,window_end,service,signal,observed,expected,expected_low,expected_high,probability,score,anomalous,dimension"
            )?;
            Some(o)
        }
        None => None,
    };
    let mut plots: BTreeMap<String, Vec<WindowScore>> = BTreeMap::new();
    let mut first_alert_series: Option<String> = None;
    // (series key, window start) of every firing alert, for the plot.
    let mut fired: std::collections::BTreeSet<(String, i64)> = Default::default();
    let mut report = BacktestReport::default();
    let mut rec = LogRecord::default();
    let mut values: Vec<Option<f64>> = Vec::new();
    let mut progress = Progress::new();
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut handle = |alerts: Vec<Alert>,
                      windows: Vec<WindowScore>,
                      report: &mut BacktestReport|
     -> anyhow::Result<()> {
        for a in alerts {
            report.alerts += 1;
            if a.status == AlertStatus::Firing {
                report.firing += 1;
                first_alert_series.get_or_insert_with(|| a.key());
                if args.plot.is_some() {
                    fired.insert((a.key(), a.window_start_us));
                }
            }
            if args.json {
                serde_json::to_writer(&mut stdout, &a)?;
                writeln!(stdout)?;
            } else {
                writeln!(stdout, "{a}")?;
            }
        }
        report.windows += windows.len() as u64;
        for w in windows {
            if let Some(o) = scores_out.as_mut() {
                writeln!(
                    o,
                    "{},{},{},{},{},{},{},{},{:e},{:.6},{},{}",
                    logwarden_detect::rfc3339_us(w.window_start_us),
                    logwarden_detect::rfc3339_us(w.window_end_us),
                    csv_field(&w.service),
                    w.signal.as_str(),
                    w.observed,
                    opt(w.expected),
                    opt(w.expected_low),
                    opt(w.expected_high),
                    w.probability,
                    w.score,
                    u8::from(w.anomalous),
                    csv_field(w.dimension.as_deref().unwrap_or_default())
                )?;
            }
            if args.plot.is_some() {
                let key = logwarden_detect::alert::series_key(
                    &w.service,
                    w.signal,
                    w.dimension.as_deref(),
                );
                let wanted = args.plot_series.as_ref().is_none_or(|s| *s == key);
                if wanted && (plots.contains_key(&key) || plots.len() < MAX_PLOT_SERIES) {
                    plots.entry(key).or_default().push(w);
                }
            }
        }
        Ok(())
    };
    let mut metric_values: Vec<Option<f64>> = Vec::new();
    while source.next(&mut rec)? {
        report.records += 1;
        logwarden_detect::field_values(&cfg.detect.model.fields, &rec, &mut values);
        logwarden_detect::field_values(&cfg.detect.model.metric_fields, &rec, &mut metric_values);
        let alerts = detector.observe(&Event {
            values: &values,
            metrics: &metric_values,
            ..Event::from_record(&rec)
        });
        let windows = detector.take_window_scores();
        if !alerts.is_empty() || !windows.is_empty() {
            handle(alerts, windows, &mut report)?;
        }
        progress.tick(report.records, report.alerts);
    }
    progress.done();
    let alerts = detector.flush();
    let windows = detector.take_window_scores();
    handle(alerts, windows, &mut report)?;
    report.late_records = detector.late_records();
    if let Some(mut o) = scores_out {
        o.flush()?;
    }
    if let Some(path) = &args.plot {
        let key = args
            .plot_series
            .clone()
            .or(first_alert_series)
            .or_else(|| plots.keys().next().cloned());
        let Some(key) = key else {
            bail!("--plot: no series to draw");
        };
        let Some(ws) = plots.get(&key) else {
            bail!("--plot: no windows for series `{key}`");
        };
        let points: Vec<PlotPoint> = ws
            .iter()
            .map(|w| PlotPoint {
                x: w.window_start_us,
                value: w.observed,
                band: w.expected_low.zip(w.expected_high),
                alert: fired.contains(&(key.clone(), w.window_start_us)),
            })
            .collect();
        std::fs::write(path, svg(&key, &points, true))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Level of an archived record from its column text.
pub fn level_from_str(s: &str) -> Level {
    Level::ALL
        .into_iter()
        .find(|l| l.as_str() == s)
        .unwrap_or(Level::Unknown)
}
