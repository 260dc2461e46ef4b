//! The one configuration of logwarden: built-in defaults, then a TOML file
//! (`--config`), then `LOGWARDEN_*` environment variables, then flags.
//! Unknown keys and invalid values are rejected at start with an error that
//! names the option. `docs/configuration.md` documents every key.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use logwarden_ingest::kafka::KafkaConfig;
use logwarden_ingest::parse::{ParseMode, ParserConfig};
use logwarden_ingest::segment::SegmentConfig;
use logwarden_ingest::writer::WriterConfig;
use logwarden_storage::{ArchiveLayout, Location};

use crate::telemetry::TelemetryConfig;

/// Default consumer group of `logwarden ingest`.
pub const DEFAULT_INGEST_GROUP: &str = "logwarden-ingest";
/// Default consumer group of `logwarden detect`.
pub const DEFAULT_DETECT_GROUP: &str = "logwarden-detect";
/// Default alert topic.
pub const DEFAULT_ALERTS_TOPIC: &str = "logwarden-alerts";
/// Default archive location.
pub const DEFAULT_OUTPUT: &str = "./archive";
/// Default for `[detect] idle_partition_secs`.
pub const DEFAULT_IDLE_PARTITION_SECS: f64 = 3.0;
/// Default for [`DetectConfig::state_dir`]: empty, no checkpoint.
pub const DEFAULT_STATE_DIR: &str = "";
/// Default for [`DetectConfig::alertmanager_url`]: empty, no Alertmanager.
pub const DEFAULT_ALERTMANAGER_URL: &str = "";
/// Default for `[ingest] shutdown_timeout_secs`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: f64 = 30.0;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection and topics, shared by ingest and detect.
    pub kafka: KafkaConfig,
    /// Parsing of log lines.
    pub parse: ParserConfig,
    /// The ingest process.
    pub ingest: IngestConfig,
    /// Layout and encoding of the Parquet archive.
    pub archive: ArchiveLayout,
    /// The detect process.
    pub detect: DetectConfig,
    /// The HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).
    pub telemetry: TelemetryConfig,
}

/// The `[ingest]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Consumer group of the ingest instances.
    pub group: String,
    /// Archive location: a directory path, a `file://` URL, or
    /// `s3://bucket/prefix` (settings in `[archive.s3]`).
    pub output: String,
    /// Longest a graceful shutdown spends writing and committing, in seconds.
    pub shutdown_timeout_secs: f64,
    /// When segments (and archive files) close.
    pub segment: SegmentConfig,
    /// The writer stage.
    pub writer: WriterConfig,
    /// Threads parsing the input (Kafka in lenient mode, or `--input`); 0
    /// means one per core, at most four.
    pub parse_threads: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            group: DEFAULT_INGEST_GROUP.into(),
            output: DEFAULT_OUTPUT.into(),
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            segment: SegmentConfig::default(),
            writer: WriterConfig::default(),
            parse_threads: 0,
        }
    }
}

/// The `[detect]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Consumer group of the detect instances.
    pub group: String,
    /// Topic the alerts are published to.
    pub alerts_topic: String,
    /// A partition with no new record for this many seconds after reaching
    /// its end stops holding back the event-time watermark.
    pub idle_partition_secs: f64,
    /// Directory of the detector's checkpoint (baselines, open incidents,
    /// watermark and the offsets they cover), written before every offset
    /// commit and at shutdown, restored at start. Empty: no checkpoint, a
    /// restart warms up again. One directory per detect instance.
    pub state_dir: String,
    /// Base URL of a Prometheus Alertmanager (`http://host:9093`) that
    /// receives every alert too (API v2); empty: none.
    pub alertmanager_url: String,
    /// The detector's model settings.
    pub model: logwarden_detect::DetectorConfig,
    /// Per-record scoring of metric-like series (`backtest --field`).
    pub metric: logwarden_detect::numeric::NumericConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            group: DEFAULT_DETECT_GROUP.into(),
            alerts_topic: DEFAULT_ALERTS_TOPIC.into(),
            idle_partition_secs: DEFAULT_IDLE_PARTITION_SECS,
            state_dir: DEFAULT_STATE_DIR.into(),
            alertmanager_url: DEFAULT_ALERTMANAGER_URL.into(),
            model: Default::default(),
            metric: Default::default(),
        }
    }
}

impl Config {
    #[cfg(test)]
    /// Parses TOML text; unknown keys are errors.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Loads the file when given (else the defaults), then applies `sets`:
    /// `section.key=value` overrides of any key, from `--set` flags and the
    /// `LOGWARDEN_SET` variable. A value is read as TOML (`5`, `true`,
    /// `["a","b"]`, `"text"`) and otherwise taken as a string.
    pub fn load(path: Option<&PathBuf>, sets: &[String]) -> anyhow::Result<Self> {
        let mut table: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the configuration file {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in the configuration file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message().trim()))
            .context(match path {
                Some(p) => format!(
                    "in the configuration (file {} and --set overrides)",
                    p.display()
                ),
                None => "in the --set overrides".to_string(),
            })?;
        let mut cfg = cfg;
        cfg.kafka
            .resolve_secrets()
            .map_err(anyhow::Error::msg)
            .context("resolving secret references")?;
        Ok(cfg)
    }

    /// Checks the settings ingest uses.
    pub fn validate_ingest(&self, from_kafka: bool) -> anyhow::Result<()> {
        if from_kafka {
            self.kafka.validate()?;
            if self.ingest.group.trim().is_empty() {
                bail!("ingest.group must not be empty");
            }
            if self.parse.mode == ParseMode::Strict {
                for t in &self.kafka.topics {
                    let dlq = self.parse.dead_letter_topic_for(t);
                    if self.kafka.topics.contains(&dlq) {
                        bail!("parse.dead_letter_topic: the dead-letter topic of `{t}` is `{dlq}`, which is also a source topic");
                    }
                }
            }
        }
        if self.ingest.output.trim().is_empty() {
            bail!("ingest.output must not be empty");
        }
        self.output_location()?;
        if !(self.ingest.shutdown_timeout_secs.is_finite()
            && self.ingest.shutdown_timeout_secs > 0.0)
        {
            bail!("ingest.shutdown_timeout_secs must be positive");
        }
        self.ingest.segment.validate()?;
        self.ingest.writer.validate()?;
        self.archive.validate()?;
        self.telemetry.validate()?;
        Ok(())
    }

    /// Checks the settings detect uses.
    pub fn validate_detect(&self) -> anyhow::Result<()> {
        self.kafka.validate()?;
        if self.detect.group.trim().is_empty() {
            bail!("detect.group must not be empty");
        }
        if self.detect.alerts_topic.trim().is_empty() {
            bail!("detect.alerts_topic must not be empty");
        }
        if !(self.detect.idle_partition_secs.is_finite() && self.detect.idle_partition_secs >= 0.0)
        {
            bail!("detect.idle_partition_secs must be a non-negative number of seconds");
        }
        self.detect.metric.validate()?;
        self.telemetry.validate()?;
        Ok(())
    }

    /// Every check ingest (from Kafka) and detect make at start, including
    /// compiling the parse patterns and the detector settings.
    pub fn check_all(&self) -> anyhow::Result<()> {
        self.validate_ingest(true)?;
        self.validate_detect()?;
        logwarden_ingest::parse::Parser::new(self.parse.clone())
            .context("invalid [parse] configuration")?;
        logwarden_detect::Detector::new(self.detect.model.clone())
            .context("invalid [detect.model] configuration")?;
        Ok(())
    }

    /// The configuration as TOML, every default filled in, with the values
    /// of secret-looking keys (passwords, secrets, tokens, private keys,
    /// credentials) and passwords inside URLs replaced by [`REDACTED`].
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut v = toml::Value::try_from(self).context("serializing the configuration")?;
        redact(&mut v, false);
        toml::to_string(&v).context("serializing the configuration")
    }

    /// The archive location from `ingest.output`.
    pub fn output_location(&self) -> anyhow::Result<Location> {
        Location::parse(&self.ingest.output).map_err(|e| anyhow::anyhow!("ingest.output {e}"))
    }
}

/// What `config check` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// True for a key whose value must not be shown (one list for the whole
/// program: the Kafka properties' and the object store's secrets).
pub use logwarden_ingest::kafka::is_secret_key;

fn redact(v: &mut toml::Value, secret: bool) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                redact(v, secret || is_secret_key(k));
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|v| redact(v, secret)),
        toml::Value::String(s) if secret => *s = REDACTED.into(),
        toml::Value::String(s) => {
            if let Some(clean) = redact_url_password(s) {
                *s = clean;
            }
        }
        // Numbers and flags are settings, never secrets (`max_token_bytes`).
        _ => {}
    }
}

/// `scheme://user:password@host...` with the password redacted.
fn redact_url_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(format!(
        "{scheme}://{}:{REDACTED}{}",
        &rest[..colon],
        &rest[at..]
    ))
}

/// The parts of a TOML key (`a.b."c.d"` → `a`, `b`, `c.d`).
fn key_path(key: &str) -> Option<Vec<String>> {
    let mut table = toml::from_str::<toml::Table>(&format!("{key} = 0")).ok()?;
    let mut path = Vec::new();
    loop {
        if table.len() != 1 {
            return None;
        }
        let (k, v) = table.into_iter().next()?;
        path.push(k);
        match v {
            toml::Value::Table(inner) => table = inner,
            _ => return Some(path),
        }
    }
}

/// Applies one `dotted.key=value` override to a TOML table.
fn apply_set(table: &mut toml::Table, set: &str) -> anyhow::Result<()> {
    let (key, raw) = set
        .split_once('=')
        .with_context(|| format!("--set `{set}`: expected section.key=value"))?;
    // A TOML key: dotted, with quoted parts for names that contain dots
    // (`kafka.properties."sasl.mechanism"`).
    let parts = key_path(key.trim())
        .with_context(|| format!("--set `{set}`: expected section.key=value"))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let (last, path) = parts
        .split_last()
        .with_context(|| format!("--set `{set}`: empty key"))?;
    let mut node = table;
    for p in path {
        let entry = node
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .with_context(|| format!("--set `{set}`: `{p}` is not a table"))?;
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err =
            Config::from_toml("[ingest]\ngroup = \"g\"\nbogus_key = 1\n").expect_err("unknown key");
        assert!(format!("{err:#}").contains("bogus_key"), "{err:#}");
        let err =
            Config::from_toml("[ingest.segment]\nmax_rows = \"many\"\n").expect_err("wrong type");
        assert!(format!("{err:#}").contains("max_rows"), "{err:#}");
    }

    #[test]
    fn invalid_values_are_rejected_with_their_name() {
        let mut c =
            Config::from_toml("[kafka]\ntopics = [\"logs\"]\n[ingest.segment]\nmax_rows = 0\n")
                .expect("parses");
        let err = c.validate_ingest(true).expect_err("max_rows 0");
        assert!(err.to_string().contains("ingest.segment.max_rows"), "{err}");
        c.ingest.segment.max_rows = 10;
        c.validate_ingest(true).expect("valid");
        c.kafka.topics.clear();
        assert!(c
            .validate_ingest(true)
            .expect_err("no topics")
            .to_string()
            .contains("kafka.topics"));
    }

    #[test]
    fn a_dead_letter_topic_may_not_be_a_source() {
        let c = Config::from_toml(
            "[kafka]\ntopics = [\"app\", \"app.dlq\"]\n[parse]\nmode = \"strict\"\n[parse.topics.app]\nformat = \"json\"\n",
        )
        .expect("parses");
        let err = c.validate_ingest(true).expect_err("app.dlq is a source");
        assert!(err.to_string().contains("dead_letter_topic"), "{err}");
        let c = Config::from_toml(
            "[kafka]\ntopics = [\"app\"]\n[parse]\nmode = \"strict\"\ndead_letter_topic = \"dead.{topic}\"\n",
        )
        .expect("parses");
        c.validate_ingest(true).expect("valid");
        assert_eq!(c.parse.dead_letter_topic_for("app"), "dead.app");
    }

    #[test]
    fn set_overrides_any_key_and_rejects_unknown_ones() {
        let sets = vec![
            "ingest.segment.max_rows=5000".to_string(),
            "archive.partition_by=[\"dt\", \"service\"]".to_string(),
            "kafka.brokers=k1:9092,k2:9092".to_string(),
            "detect.model.window_secs=30".to_string(),
        ];
        let c = Config::load(None, &sets).expect("valid overrides");
        assert_eq!(c.ingest.segment.max_rows, 5000);
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.detect.model.window_secs, 30);
        assert_eq!(c.archive.partition_by.len(), 2);
        let err = Config::load(None, &["ingest.nope=1".to_string()]).expect_err("unknown key");
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        assert!(Config::load(None, &["novalue".to_string()]).is_err());
    }

    #[test]
    fn set_reaches_librdkafka_properties_whose_names_have_dots() {
        let sets = vec![
            "kafka.properties.\"security.protocol\"=\"SASL_SSL\"".to_string(),
            "kafka.properties.\"sasl.mechanism\"=SCRAM-SHA-512".to_string(),
            "kafka.properties.debug=security".to_string(),
        ];
        let c = Config::load(None, &sets).expect("valid overrides");
        let p = &c.kafka.properties;
        assert_eq!(
            p.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(
            p.get("sasl.mechanism").map(String::as_str),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(p.get("debug").map(String::as_str), Some("security"));
        assert!(Config::load(None, &["kafka.properties.\"unterminated=1".to_string()]).is_err());
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let mut c = Config::from_toml(
            "[kafka]\ntopics = [\"logs\"]\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.password\" = \"k3y\"\n\"sasl.username\" = \"svc\"\n",
        )
        .expect("parses");
        c.ingest.output = "s3://AKIA:s3cr3t@bucket/prefix".into();
        let out = c.redacted_toml().expect("serializes");
        for secret in ["hunter2", "k3y", "s3cr3t"] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
        assert!(out.contains("\"sasl.username\" = \"svc\""), "{out}");
        assert!(out.contains("s3://AKIA:<redacted>@bucket/prefix"), "{out}");
        // The printed configuration is itself a valid configuration.
        let back = Config::from_toml(&out).expect("round trip");
        assert_eq!(back.kafka.topics, vec!["logs".to_string()]);
        assert_eq!(back.ingest.segment, c.ingest.segment);
    }

    /// Every leaf key of the configuration with its default, rendered as
    /// TOML. `[[parse.patterns]]` is an empty list by default: its keys are
    /// added by name (a new field of `PatternConfig` fails
    /// `pattern_keys_are_listed`).
    fn keys_with_defaults() -> Vec<(String, String)> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
            match v {
                toml::Value::Table(t) if !t.is_empty() && prefix != "kafka.properties" => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                toml::Value::Array(a) if a.first().is_some_and(toml::Value::is_table) => {
                    for v in a {
                        walk(prefix, v, out);
                    }
                }
                _ => out.push((prefix.to_string(), v.to_string())),
            }
        }
        let c = Config::default();
        let v = toml::Value::try_from(&c).expect("serializes");
        let mut out = Vec::new();
        walk("", &v, &mut out);
        out.retain(|(k, _)| !k.starts_with("parse.patterns"));
        // Patterns are a list with no defaults: listed by key only.
        for k in ["name", "regex", "timestamp_format"] {
            out.push((format!("parse.patterns.{k}"), String::new()));
        }
        out
    }

    #[test]
    fn pattern_keys_are_listed() {
        let pattern: logwarden_ingest::parse::PatternConfig =
            toml::from_str("name = \"n\"\nregex = \"r\"\ntimestamp_format = \"%s\"\n")
                .expect("a pattern");
        let v = toml::Value::try_from(&pattern).expect("serializes");
        let keys: Vec<&String> = v.as_table().expect("a table").keys().collect();
        assert_eq!(keys, ["name", "regex", "timestamp_format"]);
    }

    /// docs/configuration.md documents every key the code reads, and only
    /// those, with the code's default: rows `| `key` | default | ... |`.
    #[test]
    fn configuration_doc_matches_the_code() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
        )
        .expect("docs/configuration.md");
        let documented: std::collections::BTreeMap<String, String> = doc
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let default = cells.get(2)?.trim_matches('`').to_string();
                Some((key.to_string(), default))
            })
            .collect();
        let code = keys_with_defaults();
        let mut problems = Vec::new();
        for (k, default) in &code {
            match documented.get(k) {
                None => problems.push(format!("`{k}` (default {default}) is not documented")),
                Some(d) if !default.is_empty() && d != default => problems.push(format!(
                    "`{k}`: the doc says the default is {d}, the code has {default}"
                )),
                _ => {}
            }
        }
        for k in documented.keys() {
            if !code.iter().any(|(c, _)| c == k) {
                problems.push(format!("`{k}` is documented but the code has no such key"));
            }
        }
        assert!(
            problems.is_empty(),
            "docs/configuration.md:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_toml("").expect("empty file");
        c.validate_ingest(false).expect("defaults valid");
        assert_eq!(c.ingest.group, DEFAULT_INGEST_GROUP);
    }
}
