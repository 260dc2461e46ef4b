//! logwarden detect: rolling baselines per series and explained alerts.
//!
//! Data flow: the caller turns each parsed record into an [`Event`] and
//! feeds it to [`Detector::observe`]. The detector counts records, error
//! records, records per level and per frequent template, per service, in
//! tumbling event-time windows ([`DetectorConfig::window_secs`]); a window
//! closes when the watermark (highest event time minus
//! [`DetectorConfig::allowed_lateness_secs`]) passes its end. Each closed
//! window is judged per signal against that series' rolling baseline
//! ([`baseline`], seasonal once it has learned a daily shape) with a tail
//! probability ([`stats`]): Poisson or negative binomial for the counts
//! (both directions for the event count, upwards for levels and templates),
//! binomial or beta-binomial for the error count given the window's event
//! count. An incident fires once, stays quiet while it lasts
//! and resolves after a few normal windows ([`incident`]); each transition is
//! an [`Alert`], whose JSON is documented in `docs/alerts.md`.
//!
//! Metric-like records ([`DetectorConfig::metric_fields`], e.g. a
//! `queue_depth` sample per record) are not windowed: each value is scored
//! on arrival by its (service, field) series' [`numeric::NumericScorer`],
//! whose incidents become `metric` alerts through the same lifecycle.
//!
//! The crate is pure: no Kafka, no clock, no I/O. Replaying the same events
//! gives the same alerts with the same ids.

pub mod alert;
pub mod baseline;
pub mod config;
pub mod detector;
mod fields;
pub mod incident;
pub mod metrics;
pub mod nab;
pub mod numeric;
pub mod plot;
pub mod stats;
pub mod watermark;

pub use alert::{rfc3339_us, Alert, AlertStatus, Direction, SeriesRef, Severity, Signal};
pub use config::{DetectConfigError, DetectorConfig};
pub use detector::{
    field_values, Detector, DetectorState, DetectorStateRef, DetectorStats, Event, StateError,
    WindowScore, UNKNOWN_SERVICE,
};
pub use watermark::PartitionClock;
