//! Where the archive lives: a local directory (`/path`, `file:///path`) or an
//! S3-compatible bucket (`s3://bucket/prefix`), and the `[archive.s3]`
//! settings for the latter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use logwarden_ingest::options::{require, InvalidOption};

/// Default for [`S3Config::retry_max`].
pub const DEFAULT_S3_RETRY_MAX: usize = 10;
/// Default for [`S3Config::retry_timeout_secs`].
pub const DEFAULT_S3_RETRY_TIMEOUT_SECS: f64 = 180.0;

/// Settings of an S3-compatible archive (the `[archive.s3]` table).
/// Credentials come from the usual AWS environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity, ECS or EC2
/// instance metadata); every `AWS_*` variable object_store knows is read,
/// then these settings override it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL of an S3-compatible server (MinIO, Ceph, moto, R2…);
    /// unset for AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (or `AWS_REGION`); S3-compatible servers usually accept any.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible
    /// servers need; AWS uses virtual-hosted style. Default: path style when
    /// `endpoint` is set.
    pub path_style: Option<bool>,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Retries of a failed request (transient errors and throttling), with
    /// exponential backoff, before the sink reports the error; the writer
    /// then retries the whole segment with its own backoff.
    pub retry_max: usize,
    /// Give up retrying one request after this many seconds.
    pub retry_timeout_secs: f64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            path_style: None,
            allow_http: false,
            retry_max: DEFAULT_S3_RETRY_MAX,
            retry_timeout_secs: DEFAULT_S3_RETRY_TIMEOUT_SECS,
        }
    }
}

impl S3Config {
    pub fn validate(&self) -> Result<(), InvalidOption> {
        require(
            self.retry_timeout_secs.is_finite() && self.retry_timeout_secs >= 0.0,
            "archive.s3.retry_timeout_secs",
            "must be a non-negative number",
        )
    }
}

impl S3Config {
    /// The per-request retry policy.
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: self.retry_max,
            retry_timeout: Duration::from_secs_f64(self.retry_timeout_secs),
        }
    }
}

/// A parsed archive location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`, may be empty).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses `s3://bucket/prefix`, `file:///path` or a plain path.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{url}`: no bucket name"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|c| c == "." || c == "..") {
                return Err(format!(
                    "`{url}`: `.` and `..` are not allowed in the prefix"
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(format!(
                "`{url}`: supported locations are a directory, file:///path and s3://bucket/prefix"
            ));
        }
        if url.is_empty() {
            return Err("empty archive location".into());
        }
        Ok(Location::Local(PathBuf::from(url)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Builds the S3 client of a bucket: `AWS_*` environment, then `cfg`.
pub fn s3_store(bucket: &str, cfg: &S3Config) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(cfg.retry());
    // `AWS_ENDPOINT_URL` is the variable the AWS CLI and SDKs use.
    let endpoint = cfg
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(e) = &endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &cfg.region {
        b = b.with_region(r);
    }
    let path_style = cfg.path_style.unwrap_or(endpoint.is_some());
    if path_style {
        b = b.with_virtual_hosted_style_request(false);
    }
    if cfg.allow_http {
        b = b.with_allow_http(true);
    }
    if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        && cfg.region.is_none()
    {
        b = b.with_config(AmazonS3ConfigKey::Region, "us-east-1");
    }
    Ok(Arc::new(b.build()?))
}

/// The object path of `rel` (a `/`-separated path relative to the archive
/// root) under `prefix`. Components are taken verbatim (not re-encoded), so
/// keys are the same as the local layout's paths: the archive's own names
/// are already safe (see [`crate::layout`]).
pub fn object_path(prefix: &str, rel: &str) -> Result<ObjectPath, object_store::path::Error> {
    let joined: Vec<&str> = prefix
        .split('/')
        .chain(rel.split('/'))
        .filter(|p| !p.is_empty())
        .collect();
    ObjectPath::parse(joined.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("s3://b/logs/archive/").expect("s3"),
            Location::S3 {
                bucket: "b".into(),
                prefix: "logs/archive".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").expect("s3"),
            Location::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Location::parse("file:///data/a").expect("file"),
            Location::Local("/data/a".into())
        );
        assert_eq!(
            Location::parse("./a").expect("path"),
            Location::Local("./a".into())
        );
        assert!(Location::parse("gs://x/y").is_err());
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("s3://b/../x").is_err());
        assert_eq!(
            object_path("p/q", "dt=2026-03-01/service=a%2Fb/f.parquet")
                .expect("valid")
                .as_ref(),
            "p/q/dt=2026-03-01/service=a%2Fb/f.parquet"
        );
        assert_eq!(object_path("", "a/b").expect("valid").as_ref(), "a/b");
    }
}
