//! Shared by the fuzz targets: run one payload through a [`Parser`] with a
//! forced format and check what must hold for every input.

use logwarden_ingest::parse::{FormatOverride, ParseContext, Parser, ParserConfig};
use logwarden_ingest::record::{LogRecord, TimeSource};

/// 2024-06-01T00:00:00Z, the ingest time of every fuzzed payload.
pub const NOW_US: i64 = 1_717_200_000_000_000;

/// A parser forcing `format`, small limits so that the limit paths run too.
pub fn parser(format: FormatOverride, cfg: ParserConfig) -> Parser {
    let cfg = ParserConfig {
        format,
        max_message_bytes: 4096,
        max_json_depth: 4,
        max_attributes: 32,
        ..cfg
    };
    match Parser::new(cfg) {
        Ok(p) => p,
        Err(e) => panic!("fuzz parser config: {e}"),
    }
}

/// Parses `data` twice into one reused record (the second time must give the
/// same record: no state leaks between payloads) and checks invariants.
pub fn check(p: &mut Parser, data: &[u8], rec: &mut LogRecord) {
    let ctx = ParseContext {
        transport_time_us: None,
        ingest_time_us: NOW_US,
    };
    p.parse(Some(data), &ctx, rec);
    let first = rec.clone();
    p.parse(Some(b"reset: a different line"), &ctx, rec);
    p.parse(Some(data), &ctx, rec);
    // Template ids may differ (the miner learned), everything else may not.
    let mut a = first.clone();
    let mut b = rec.clone();
    for r in [&mut a, &mut b] {
        r.template_id = None;
        r.template = None;
    }
    assert_eq!(a, b, "parsing is not a function of the payload");
    assert!(rec.message.len() <= 4096 * 3 + 64, "message over the limit");
    // max_attributes, the alias overflow (16) and `attributes_dropped`.
    assert!(rec.attributes.len() <= 32 + 16 + 1, "attributes over the limit");
    if rec.time_source == TimeSource::Ingest {
        assert_eq!(rec.event_time_us, NOW_US);
    }
    if !rec.message.is_empty() {
        assert!(rec.template_id.is_some());
    }
}
