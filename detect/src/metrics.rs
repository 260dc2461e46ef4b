//! Metric names and descriptions of the detect stage, in one place. The
//! binary registers them and sets them from [`crate::DetectorStats`].

/// (name, description) of every detect metric.
pub const METRICS: &[(&str, &str)] = &[
    (
        WINDOWS_CLOSED,
        "series windows closed and judged, including empty windows of silent series",
    ),
    (
        LATE_RECORDS,
        "records dropped because their window had already closed",
    ),
    (
        OUT_OF_RANGE_RECORDS,
        "records dropped because their event time is outside 1970..2200",
    ),
    (EVICTED_SERIES, "series dropped to stay under max_series"),
    (
        FORGOTTEN_SERIES,
        "series dropped after forget_after_windows of silence",
    ),
    (SERIES, "series tracked now"),
    (ALERTS, "alerts emitted, labelled by status and signal"),
];

pub const WINDOWS_CLOSED: &str = "logwarden_detect_windows_closed_total";
pub const LATE_RECORDS: &str = "logwarden_detect_late_records_total";
pub const OUT_OF_RANGE_RECORDS: &str = "logwarden_detect_out_of_range_records_total";
pub const EVICTED_SERIES: &str = "logwarden_detect_evicted_series_total";
pub const FORGOTTEN_SERIES: &str = "logwarden_detect_forgotten_series_total";
pub const SERIES: &str = "logwarden_detect_series";
pub const ALERTS: &str = "logwarden_detect_alerts_total";
