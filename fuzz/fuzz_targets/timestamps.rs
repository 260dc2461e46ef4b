//! Fuzzes the timestamp, time-zone and level parsers directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden_fuzz::NOW_US;
use logwarden_ingest::parse::{parse_level, parse_timestamp, syslog_severity, TimeCtx};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for offset in [0, 19_800, -43_200] {
        let tc = TimeCtx {
            default_offset_secs: offset,
            now_us: NOW_US,
        };
        if let Some(us) = parse_timestamp(s, &tc) {
            // Deterministic, and a zone-less stamp moves with the default
            // zone by at most a day.
            assert_eq!(parse_timestamp(s, &tc), Some(us));
        }
    }
    let _ = parse_level(s);
    if let Some(&b) = data.first() {
        let _ = syslog_severity(b);
    }
});
