//! logwarden storage: the Parquet archive. Takes the segments ingest closes,
//! splits them into Hive partitions, encodes them as zstd Parquet sorted by
//! (service, event time), and publishes each file atomically and durably, to
//! a local directory ([`LocalArchive`]) or to S3-compatible object storage
//! ([`ObjectStoreArchive`]). [`compact`] merges the small files of closed
//! partitions; [`compactor`] runs it inside ingest.

pub mod compact;
pub mod compactor;
pub mod encode;
pub mod hot;
pub mod inflight;
pub mod layout;
pub mod local;
pub mod object;
pub mod parquet;
pub mod split;
pub mod store;
#[cfg(test)]
mod test_support;

pub use local::LocalArchive;
pub use object::ObjectStoreArchive;
pub use split::ArchiveLayout;
pub use store::{Location, S3Config};
