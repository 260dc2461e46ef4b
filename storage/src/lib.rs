//! logwarden storage: the Parquet archive. Takes the segments ingest closes,
//! splits them into Hive partitions, encodes them as zstd Parquet sorted by
//! (service, event time), and publishes each file atomically and durably.

pub mod layout;
pub mod local;
pub mod parquet;
pub mod split;

pub use local::LocalArchive;
pub use split::ArchiveLayout;
