//! `logwarden templates`: the template miner on a file of log lines.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context;

use logwarden_ingest::file::LineReader;
use logwarden_ingest::parse::{ParseContext, Parser};
use logwarden_ingest::record::{template_id_hex, LogRecord};

use crate::config::Config;

/// Parses every line of `input` (`-` for stdin), mines templates online, and
/// prints either one template id per input line (`ids`), or a summary table
/// of the templates with their counts, most frequent first.
pub fn run(cfg: &Config, input: &Path, ids: bool) -> anyhow::Result<()> {
    let mut parse_cfg = cfg.parse.clone();
    parse_cfg.templates.enabled = true;
    let mut parser = Parser::new(parse_cfg).context("invalid [parse] configuration")?;
    let reader: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
        )
    };
    let mut reader = LineReader::new(reader);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut rec = LogRecord::default();
    let mut lines = 0u64;
    let now = chrono::Utc::now().timestamp_micros();
    while let Some(payload) = reader.next_line()? {
        let ctx = ParseContext {
            transport_time_us: None,
            ingest_time_us: now,
        };
        parser.parse(Some(payload), &ctx, &mut rec);
        lines += 1;
        if ids {
            match rec.template_id {
                Some(id) => writeln!(out, "{}", template_id_hex(id))?,
                None => writeln!(out, "-")?,
            }
        }
    }
    if !ids {
        let Some(miner) = parser.miner() else {
            return Ok(());
        };
        let mut rows: Vec<(u64, &str, u64)> = miner.templates().collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        writeln!(
            out,
            "{:>10}  {:>7}  {:<16}  template",
            "count", "share", "id"
        )?;
        for (id, template, count) in rows {
            let share = 100.0 * count as f64 / lines.max(1) as f64;
            writeln!(
                out,
                "{count:>10}  {share:>6.2}%  {}  {template}",
                template_id_hex(id)
            )?;
        }
        writeln!(out, "{lines} lines, {} templates", miner.len())?;
    }
    out.flush()?;
    Ok(())
}
