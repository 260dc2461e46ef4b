//! Fuzzes user patterns: a few fixed patterns (named captures mapped to the
//! record's fields, a custom timestamp format) tried before auto-detection.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use logwarden_fuzz::{check, parser};
use logwarden_ingest::parse::{FormatOverride, Parser, ParserConfig, PatternConfig};
use logwarden_ingest::record::LogRecord;

fn patterns() -> Vec<PatternConfig> {
    vec![
        PatternConfig {
            name: "legacy".into(),
            regex: r"^(?P<timestamp>\S+ \S+) <(?P<level>\w+)> (?P<service>[\w.-]+): (?P<message>.*)$".into(),
            timestamp_format: Some("%d.%m.%Y %H:%M:%S%.f".into()),
        },
        PatternConfig {
            name: "kv".into(),
            regex: r"^\[(?P<host>[^\]]*)\] (?P<level>\S+) (?P<latency_ms>\d+) (?P<message>.*)$".into(),
            timestamp_format: None,
        },
        PatternConfig {
            name: String::new(),
            regex: r"^(?P<timestamp>\d+)\|(?P<message>.*)".into(),
            timestamp_format: None,
        },
    ]
}

thread_local! {
    static P: RefCell<(Parser, LogRecord)> = RefCell::new((
        parser(
            FormatOverride::Auto,
            ParserConfig {
                patterns: patterns(),
                ..ParserConfig::default()
            },
        ),
        LogRecord::default(),
    ));
}

fuzz_target!(|data: &[u8]| {
    P.with(|p| {
        let (p, rec) = &mut *p.borrow_mut();
        check(p, data, rec);
    });
});
