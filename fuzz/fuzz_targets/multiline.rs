//! Fuzzes the grouping of a file's lines into multi-line events: the
//! events hold every line, in order, none lost or repeated, and none takes
//! more than the line and byte caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden_ingest::file::{EventReader, LineReader};
use logwarden_ingest::multiline::{MAX_BYTES, MAX_LINES};

fuzz_target!(|data: &[u8]| {
    let mut lines = Vec::new();
    let mut reader = LineReader::new(data);
    while let Some(line) = reader.next_line().expect("in-memory read") {
        lines.push(line.to_vec());
    }
    let mut events = EventReader::new(data);
    let mut rebuilt: Vec<Vec<u8>> = Vec::new();
    while let Some((first, rest)) = events.next_event().expect("in-memory read") {
        let mut event = vec![first.to_vec()];
        if let Some(rest) = rest {
            event.extend(rest.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        }
        assert!(event.len() <= MAX_LINES);
        if event.len() > 1 {
            let bytes: usize = event.iter().map(|l| l.len() + 1).sum();
            assert!(bytes <= MAX_BYTES, "{bytes} bytes");
        }
        rebuilt.extend(event);
    }
    assert_eq!(rebuilt, lines);
});
