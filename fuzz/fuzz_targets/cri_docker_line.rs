//! The container runtime line parser (`shipper/src/line.rs`): any bytes become a line, never a
//! panic; a line in neither format keeps its whole text and is marked `parse_error`; invalid
//! UTF-8 is marked `invalid_utf8`.
#![no_main]

use bitesize_record::Mark;
use bitesize_shipper::line::parse_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let line = parse_line(raw);
    let without_cr = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(without_cr);
    assert_eq!(
        line.marks.contains(&Mark::InvalidUtf8),
        std::str::from_utf8(without_cr).is_err(),
        "invalid_utf8 marks exactly the lines that are not UTF-8"
    );
    if line.marks.contains(&Mark::ParseError) {
        assert_eq!(line.message, text, "a malformed line keeps its text");
        assert!(!line.partial);
    } else if !text.starts_with('{') {
        // CRI: the message is the rest of the line after time, stream and tags.
        assert!(matches!(line.stream.as_str(), "stdout" | "stderr"));
        assert!(text.starts_with(&line.time));
        assert!(text.ends_with(&line.message));
    }
});
