//! `logwarden compact`: merges the small files of closed partitions of the
//! archive (local or S3) into files of the target size.

use std::time::{Instant, SystemTime};

use anyhow::Context;
use clap::Args;

use logwarden_storage::compact::compact;
use logwarden_storage::Location;

use crate::config::Config;

#[derive(Args)]
pub struct CompactArgs {
    /// Archive location: a directory, file:///path or s3://bucket/prefix.
    #[arg(long, env = "LOGWARDEN_OUTPUT")]
    output: Option<String>,
    /// Files smaller than this many bytes are merged.
    #[arg(long, env = "LOGWARDEN_COMPACT_MIN_FILE_BYTES")]
    min_file_bytes: Option<u64>,
    /// Merged files are cut at about this many bytes.
    #[arg(long, env = "LOGWARDEN_COMPACT_TARGET_FILE_BYTES")]
    target_file_bytes: Option<u64>,
    /// A partition is compacted this many seconds after its time range ends.
    #[arg(long, env = "LOGWARDEN_COMPACT_CLOSE_AFTER_SECS")]
    close_after_secs: Option<u64>,
    /// A file is merged only when last written at least this many seconds ago.
    #[arg(long, env = "LOGWARDEN_COMPACT_SETTLE_SECS")]
    settle_secs: Option<u64>,
}

pub fn run(mut cfg: Config, args: &CompactArgs) -> anyhow::Result<()> {
    if let Some(o) = &args.output {
        cfg.ingest.output = o.clone();
    }
    let c = &mut cfg.archive.compaction;
    if let Some(v) = args.min_file_bytes {
        c.min_file_bytes = v;
    }
    if let Some(v) = args.target_file_bytes {
        c.target_file_bytes = v;
    }
    if let Some(v) = args.close_after_secs {
        c.close_after_secs = v;
    }
    if let Some(v) = args.settle_secs {
        c.settle_secs = v;
    }
    let location: Location = cfg.output_location()?;
    let started = Instant::now();
    let r = compact(&location, &cfg.archive, SystemTime::now())
        .with_context(|| format!("compacting {location}"))?;
    println!(
        "compact done: {} files ({} bytes) merged into {} ({} bytes), {} rows, {} partitions, {} skipped, {} interrupted runs recovered, {:.2}s",
        r.files_in,
        r.bytes_in,
        r.files_out,
        r.bytes_out,
        r.rows,
        r.partitions,
        r.skipped,
        r.recovered,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
