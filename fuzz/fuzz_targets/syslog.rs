//! Fuzzes the parser with `format = "syslog"`.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use logwarden_fuzz::{check, parser};
use logwarden_ingest::parse::{FormatOverride, Parser, ParserConfig};
use logwarden_ingest::record::LogRecord;

thread_local! {
    static P: RefCell<(Parser, LogRecord)> = RefCell::new((
        parser(FormatOverride::Syslog, ParserConfig::default()),
        LogRecord::default(),
    ));
}

fuzz_target!(|data: &[u8]| {
    P.with(|p| {
        let (p, rec) = &mut *p.borrow_mut();
        check(p, data, rec);
    });
});
