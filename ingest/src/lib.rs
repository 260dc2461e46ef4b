//! logwarden ingest: the Kafka source, log parsing, template mining, and the
//! segment pipeline that commits offsets only after a [`sink::Sink`] has made
//! the data durable.

pub mod dlq;
pub mod file;
pub mod kafka;
pub mod lanes;
pub mod metrics;
pub mod multiline;
pub mod options;
pub mod parse;
pub mod pool;
pub mod record;
pub mod schema;
pub mod segment;
pub mod sink;
pub mod template;
pub mod writer;

/// Threads of a stage that splits its work: `configured`, or when that is
/// 0, one per core, at most four.
pub fn stage_threads(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    }
}
