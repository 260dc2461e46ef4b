//! Fuzzes the template miner: the input's lines go to two miners with a
//! small cap, which must agree (mining is deterministic), stay within the
//! cap, and give every line of one template the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden_ingest::template::{MinerSnapshot, TemplateConfig, TemplateMiner};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let cfg = TemplateConfig {
        max_templates: 16,
        max_tokens: 12,
        max_token_bytes: 24,
        ..TemplateConfig::default()
    };
    let (Ok(mut a), Ok(mut b)) = (TemplateMiner::new(&cfg), TemplateMiner::new(&cfg)) else {
        panic!("valid config");
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let half = lines.len() / 2;
    for l in &lines[..half] {
        assert_eq!(a.observe(l), b.observe(l));
        assert!(a.len() <= 16);
    }
    // A restored miner continues exactly like the one that never stopped.
    let json = match a.snapshot().to_json() {
        Ok(j) => j,
        Err(e) => panic!("snapshot: {e}"),
    };
    let snap = match MinerSnapshot::from_json(&json) {
        Ok(s) => s,
        Err(e) => panic!("snapshot parse: {e}"),
    };
    let mut r = match TemplateMiner::restore(&cfg, snap) {
        Ok(r) => r,
        Err(e) => panic!("restore: {e}"),
    };
    for l in &lines[half..] {
        let x = a.observe(l);
        assert_eq!(x, r.observe(l));
        assert_eq!(x, b.observe(l));
        assert!(a.len() <= 16);
    }
});
