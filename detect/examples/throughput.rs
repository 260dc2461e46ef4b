//! Detector speed and memory bench: prints a table.
//!
//! ```text
//! cargo run --release -p logwarden-detect --example throughput -- [RECORDS] [SERIES]
//! ```
//!
//! 1. Windowed scoring throughput on one core: RECORDS (default 10M) events
//!    over 50 services, 60 s windows, event time advancing 1 ms per record
//!    (so about 60,000 records per window and a few windows judged per
//!    second of input); the events are built before the clock starts.
//! 2. Memory of live series: SERIES (default 100,000) services, each with
//!    a full warm-up of closed windows, measured as the growth of the
//!    process's resident set (Linux `/proc/self/statm`).

use std::time::Instant;

use logwarden_detect::{Detector, DetectorConfig, Event};
use logwarden_ingest::record::Level;

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let series: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);

    // 1. Throughput.
    let names: Vec<String> = (0..50).map(|i| format!("svc-{i:02}")).collect();
    let t0 = 1_700_000_000_000_000i64;
    let mut x: u64 = 88172645463325252;
    let events: Vec<Event<'_>> = (0..records)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Event {
                event_time_us: t0 + i as i64 * 1_000,
                service: Some(names[(x % 50) as usize].as_str()),
                level: if x.is_multiple_of(100) {
                    Level::Error
                } else {
                    Level::Info
                },
                template_id: Some(x % 20),
                message: None,
                values: &[],
                metrics: &[],
            }
        })
        .collect();
    let mut d = match Detector::new(DetectorConfig::default()) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let start = Instant::now();
    let mut alerts = 0usize;
    for ev in &events {
        alerts += d.observe(ev).len();
    }
    alerts += d.flush().len();
    let secs = start.elapsed().as_secs_f64();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| windowed scoring, records | {records} |");
    println!("| windowed scoring, seconds | {secs:.3} |");
    println!(
        "| windowed scoring, records/s (one core) | {:.0} |",
        records as f64 / secs
    );
    println!("| windows judged | {} |", d.windows_closed());
    println!("| alerts (steady input) | {alerts} |");
    drop(events);
    drop(d);

    // 2. Memory per live series.
    let names: Vec<String> = (0..series).map(|i| format!("service-{i:06}")).collect();
    let cfg = DetectorConfig {
        max_series: series.max(1),
        ..DetectorConfig::default()
    };
    let before = rss_bytes().unwrap_or(0);
    let mut d = match Detector::new(cfg) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let windows = 20i64;
    for w in 0..windows {
        for (i, name) in names.iter().enumerate() {
            let ev = Event {
                event_time_us: t0 + w * 60_000_000 + (i as i64 % 50_000) * 1000,
                service: Some(name),
                level: Level::Info,
                template_id: None,
                message: None,
                values: &[],
                metrics: &[],
            };
            d.observe(&ev);
        }
    }
    let after = rss_bytes().unwrap_or(0);
    let grown = after.saturating_sub(before);
    println!("| live series | {} |", d.series_count());
    println!(
        "| resident memory for them | {:.1} MiB ({} bytes per series, names included) |",
        grown as f64 / (1 << 20) as f64,
        grown / d.series_count().max(1) as u64
    );
}
