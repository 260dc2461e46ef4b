//! Per-stage cost of the ingest hot path on a file of log lines: parsing
//! without templates, parsing with template mining, and appending the
//! records to the Arrow batch builder. Prints a table of ns per line.
//!
//! `cargo run --release -p logwarden-ingest --example stage_costs -- FILE`

use std::time::Instant;

use logwarden_ingest::parse::{ParseContext, Parser, ParserConfig};
use logwarden_ingest::record::{LogRecord, Provenance};
use logwarden_ingest::schema::LogBatchBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: stage_costs FILE")?;
    let text = std::fs::read(&path)?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let ctx = ParseContext {
        transport_time_us: None,
        ingest_time_us: 0,
    };
    let n = lines.len() as f64;
    let mut plain_cfg = ParserConfig::default();
    plain_cfg.templates.enabled = false;
    let mut rec = LogRecord::default();

    let mut plain = Parser::new(plain_cfg)?;
    let t = Instant::now();
    for l in &lines {
        plain.parse(Some(l), &ctx, &mut rec);
    }
    let parse_ns = t.elapsed().as_nanos() as f64 / n;

    let mut full = Parser::new(ParserConfig::default())?;
    let t = Instant::now();
    for l in &lines {
        full.parse(Some(l), &ctx, &mut rec);
    }
    let mined_ns = t.elapsed().as_nanos() as f64 / n;

    let mut full = Parser::new(ParserConfig::default())?;
    let mut b = LogBatchBuilder::new();
    let prov = Provenance {
        topic: "t".into(),
        partition: 0,
        offset: 0,
    };
    let t = Instant::now();
    for l in &lines {
        full.parse(Some(l), &ctx, &mut rec);
        b.append(&rec, &prov, 0);
        if b.rows() == 1 << 18 {
            b.finish()?;
        }
    }
    b.finish()?;
    let built_ns = t.elapsed().as_nanos() as f64 / n;

    println!("| stage | ns/line |");
    println!("|---|---|");
    println!("| parse | {parse_ns:.0} |");
    println!("| template mining | {:.0} |", mined_ns - parse_ns);
    println!("| Arrow append | {:.0} |", built_ns - mined_ns);
    println!("| total | {built_ns:.0} |");
    Ok(())
}
