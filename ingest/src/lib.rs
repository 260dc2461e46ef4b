//! logwarden ingest: the Kafka source, log parsing, template mining, and the
//! segment pipeline that commits offsets only after a [`sink::Sink`] has made
//! the data durable.

pub mod dlq;
pub mod file;
pub mod kafka;
pub mod metrics;
pub mod parse;
pub mod record;
pub mod schema;
pub mod segment;
pub mod sink;
pub mod template;
pub mod writer;
