//! Parsing the lines container runtimes write: CRI (`<RFC3339Nano> <stream> <P|F>[:tags] <msg>`)
//! and docker json-file (`{"log":"...\n","stream":"stdout","time":"..."}`), and joining
//! partial lines back into one message.
//!
//! A line that follows neither format is kept: it becomes a message with the raw text and a
//! [`Mark::ParseError`]. Invalid UTF-8 is replaced and marked with [`Mark::InvalidUtf8`].

use std::borrow::Cow;

use bitesize_record::Mark;
use serde::Deserialize;

/// One line as the container runtime wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    /// More of this message follows on the next line (CRI `P`, docker without `\n`).
    pub partial: bool,
    pub message: String,
    pub marks: Vec<Mark>,
}

/// Parses one line (without its trailing newline), detecting the format from its first byte.
pub fn parse_line(raw: &[u8]) -> LogLine {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    // Valid UTF-8 (the usual case) is parsed where it lies: only the parts are copied.
    let (text, invalid_utf8) = match std::str::from_utf8(raw) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => (String::from_utf8_lossy(raw), true),
    };
    let parsed = if text.starts_with('{') {
        parse_docker(&text)
    } else {
        parse_cri(&text)
    };
    let mut line = parsed.unwrap_or_else(|| LogLine {
        time: now_rfc3339(),
        stream: "stdout".to_owned(),
        partial: false,
        message: text.into_owned(),
        marks: vec![Mark::ParseError],
    });
    if invalid_utf8 {
        line.marks.push(Mark::InvalidUtf8);
    }
    line
}

fn parse_cri(text: &str) -> Option<LogLine> {
    let (time, rest) = text.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (tags, message) = rest.split_once(' ').unwrap_or((rest, ""));
    if !looks_like_rfc3339(time) || !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    let partial = match tags.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(LogLine {
        time: time.to_owned(),
        stream: stream.to_owned(),
        partial,
        message: message.to_owned(),
        marks: Vec::new(),
    })
}

fn parse_docker(text: &str) -> Option<LogLine> {
    #[derive(Deserialize)]
    struct DockerLine {
        log: String,
        stream: String,
        time: String,
    }
    let line: DockerLine = serde_json::from_str(text).ok()?;
    if !looks_like_rfc3339(&line.time) {
        return None;
    }
    let (message, partial) = match line.log.strip_suffix('\n') {
        Some(message) => (message.to_owned(), false),
        None => (line.log, true),
    };
    Some(LogLine {
        time: line.time,
        stream: line.stream,
        partial,
        message,
        marks: Vec::new(),
    })
}

/// Cheap shape check of `2026-11-25T10:00:00.123456789Z` (or with an offset): the runtime
/// writes these, so a full calendar parse on every line buys nothing.
fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || b[b.len() - 6] == b'+' || b[b.len() - 6] == b'-')
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Joins partial lines into whole messages, up to `max_bytes`; a longer message is emitted
/// in pieces of at most `max_bytes`, each marked [`Mark::Split`].
#[derive(Debug)]
pub struct PartialJoiner {
    max_bytes: usize,
    pending: Option<LogLine>,
}

impl PartialJoiner {
    pub fn new(max_bytes: usize) -> Self {
        PartialJoiner {
            max_bytes: max_bytes.max(1),
            pending: None,
        }
    }

    /// True while a partial message waits for its end.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds one line; appends the messages it completes to `done`.
    pub fn push(&mut self, line: LogLine, done: &mut Vec<LogLine>) {
        if self.pending.is_none() && !line.partial && line.message.len() <= self.max_bytes {
            // The usual line: whole, and short enough.
            done.push(line);
            return;
        }
        let mut current = match self.pending.take() {
            Some(mut pending) if pending.stream == line.stream => {
                pending.message.push_str(&line.message);
                pending.partial = line.partial;
                for mark in line.marks {
                    if !pending.marks.contains(&mark) {
                        pending.marks.push(mark);
                    }
                }
                pending
            }
            Some(pending) => {
                // The other stream interleaved: the pending piece will never be completed.
                done.push(LogLine {
                    partial: false,
                    ..pending
                });
                line
            }
            None => line,
        };
        while current.message.len() > self.max_bytes {
            let cut = floor_char_boundary(&current.message, self.max_bytes);
            let rest = current.message.split_off(cut);
            let mut piece = LogLine {
                partial: false,
                ..current.clone()
            };
            mark_split(&mut piece);
            done.push(piece);
            current.message = rest;
            mark_split(&mut current);
        }
        if current.partial {
            self.pending = Some(current);
        } else {
            done.push(current);
        }
    }

    /// Emits what is pending as it is (the file ended or rotated away mid-message).
    pub fn flush(&mut self) -> Option<LogLine> {
        self.pending.take().map(|line| LogLine {
            partial: false,
            ..line
        })
    }
}

pub(crate) fn mark_split(line: &mut LogLine) {
    if !line.marks.contains(&Mark::Split) {
        line.marks.push(Mark::Split);
    }
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while index > 0 && !s.is_char_boundary(index) {
        index -= 1;
    }
    if index == 0 {
        // A single character wider than the limit: keep it whole.
        index = s.char_indices().nth(1).map_or(s.len(), |(i, _)| i);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_full_and_partial() {
        let line = parse_line(b"2026-11-25T10:00:00.123456789Z stdout F GET /cart 200");
        assert_eq!(line.time, "2026-11-25T10:00:00.123456789Z");
        assert_eq!(line.stream, "stdout");
        assert!(!line.partial);
        assert_eq!(line.message, "GET /cart 200");
        assert!(line.marks.is_empty());

        let line = parse_line(b"2026-11-25T10:00:00.1+02:00 stderr P:tag boom ");
        assert!(line.partial);
        assert_eq!(line.stream, "stderr");
        assert_eq!(line.message, "boom ");
    }

    #[test]
    fn cri_empty_message() {
        let line = parse_line(b"2026-11-25T10:00:00Z stdout F");
        assert_eq!(line.message, "");
        assert!(line.marks.is_empty());
    }

    #[test]
    fn parses_docker_json_file() {
        let line =
            parse_line(br#"{"log":"hello\n","stream":"stderr","time":"2026-11-25T10:00:00.5Z"}"#);
        assert_eq!(
            (line.message.as_str(), line.stream.as_str(), line.partial),
            ("hello", "stderr", false)
        );
        let line =
            parse_line(br#"{"log":"hel","stream":"stdout","time":"2026-11-25T10:00:00.5Z"}"#);
        assert!(line.partial);
    }

    #[test]
    fn malformed_lines_are_kept_and_marked() {
        for raw in [
            &b"just text"[..],
            b"2026-11-25T10:00:00Z stdweird F x",
            b"notatime stdout F x",
            b"{\"broken\":",
            b"",
        ] {
            let line = parse_line(raw);
            assert_eq!(line.marks, vec![Mark::ParseError], "{raw:?}");
            assert_eq!(line.message.as_bytes(), raw);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_and_marked() {
        let line = parse_line(b"2026-11-25T10:00:00Z stdout F caf\xe9 ok");
        assert_eq!(line.message, "caf\u{fffd} ok");
        assert_eq!(line.marks, vec![Mark::InvalidUtf8]);
    }

    #[test]
    fn joins_partials_and_splits_long_messages() {
        let mut joiner = PartialJoiner::new(10);
        let push = |joiner: &mut PartialJoiner, line| {
            let mut done = Vec::new();
            joiner.push(line, &mut done);
            done
        };
        assert!(push(
            &mut joiner,
            parse_line(b"2026-11-25T10:00:00Z stdout P abc")
        )
        .is_empty());
        let done = push(
            &mut joiner,
            parse_line(b"2026-11-25T10:00:00Z stdout F def"),
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].message, "abcdef");
        assert!(done[0].marks.is_empty());

        assert!(push(
            &mut joiner,
            parse_line(b"2026-11-25T10:00:00Z stdout P 0123456")
        )
        .is_empty());
        let done = push(
            &mut joiner,
            parse_line(b"2026-11-25T10:00:00Z stdout F 789abcdefghij"),
        );
        let pieces: Vec<_> = done.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(pieces, ["0123456789", "abcdefghij"]);
        assert!(done.iter().all(|l| l.marks == vec![Mark::Split]));
        assert!(!joiner.has_pending());
    }

    #[test]
    fn split_respects_utf8_boundaries() {
        let mut joiner = PartialJoiner::new(4);
        let mut done = Vec::new();
        joiner.push(
            LogLine {
                time: "t".into(),
                stream: "stdout".into(),
                partial: false,
                message: "ééé".into(),
                marks: vec![],
            },
            &mut done,
        );
        let pieces: Vec<_> = done.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(pieces, ["éé", "é"]);
    }
}
