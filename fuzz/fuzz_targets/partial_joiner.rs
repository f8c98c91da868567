//! The partial-line joiner (`shipper/src/line.rs`): whatever the lines, each stream's messages
//! come out in order with nothing lost or repeated, nothing stays partial, and no piece is
//! longer than the limit unless it is a single character.
//!
//! Input: the first byte sets the limit (1 + byte % 64); the rest is runtime lines, one per
//! `\n`, each parsed as the tailer parses it.
#![no_main]

use std::collections::BTreeMap;

use bitesize_shipper::line::{parse_line, PartialJoiner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max_bytes = 1 + usize::from(first % 64);
    let mut joiner = PartialJoiner::new(max_bytes);
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for raw in rest.split(|&b| b == b'\n') {
        let line = parse_line(raw);
        written
            .entry(line.stream.clone())
            .or_default()
            .push_str(&line.message);
        joiner.push(line, &mut out);
    }
    out.extend(joiner.flush());
    assert!(!joiner.has_pending(), "flush leaves nothing pending");

    let mut read: BTreeMap<String, String> = BTreeMap::new();
    for message in &out {
        assert!(!message.partial, "a finished message is never partial");
        assert!(
            message.message.len() <= max_bytes || message.message.chars().count() == 1,
            "piece of {} bytes over the limit of {max_bytes}",
            message.message.len()
        );
        read.entry(message.stream.clone())
            .or_default()
            .push_str(&message.message);
    }
    written.retain(|_, text| !text.is_empty());
    read.retain(|_, text| !text.is_empty());
    assert_eq!(
        read, written,
        "each stream's text, in order, nothing lost or repeated"
    );
});
