//! logwarden storage: the Parquet archive.
