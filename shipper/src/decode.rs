//! Bytes of one file to finished messages: splits at newlines, parses each line, joins
//! partial lines and (when a rule applies) multi-line messages, and knows which file offset
//! is safe to checkpoint (every line before it belongs to a message already returned). The
//! tailer and `check` both read files through it.

use std::time::Instant;

use crate::config::Config;
use crate::file_name::ContainerFile;
use crate::line::{parse_line, LogLine, PartialJoiner};
use crate::multiline::{MultilineJoiner, MultilineRules};
use crate::Result;

/// What every file's decoder is made with: the line limit and the multi-line rules.
#[derive(Debug, Clone)]
pub struct DecoderSettings {
    max_line_bytes: usize,
    multiline: MultilineRules,
}

impl DecoderSettings {
    pub fn new(config: &Config) -> Result<DecoderSettings> {
        Ok(DecoderSettings {
            max_line_bytes: config.max_line_bytes,
            multiline: MultilineRules::new(&config.multiline)?,
        })
    }

    /// A decoder for `container`'s file read from `offset` (a line boundary).
    pub fn decoder(&self, offset: u64, container: &ContainerFile) -> FileDecoder {
        FileDecoder::new(
            offset,
            self.max_line_bytes,
            self.multiline.joiner_for(container),
        )
    }
}

#[derive(Debug)]
pub struct FileDecoder {
    /// Bytes read but not yet ending in a newline.
    buf: Vec<u8>,
    /// File offset of the first byte in `buf`.
    buf_offset: u64,
    /// Offset after the last line whose message is finished.
    safe_offset: u64,
    /// Offset of the first line of the message the partial joiner is building (after the
    /// last line it finished).
    message_start: u64,
    joiner: PartialJoiner,
    /// Messages the partial joiner finished, on their way to the multi-line joiner.
    joined: Vec<LogLine>,
    multiline: Option<MultilineJoiner>,
}

impl FileDecoder {
    /// A decoder for a file read from `offset` (a line boundary).
    pub fn new(
        offset: u64,
        max_line_bytes: usize,
        multiline: Option<MultilineJoiner>,
    ) -> FileDecoder {
        FileDecoder {
            buf: Vec::new(),
            buf_offset: offset,
            safe_offset: offset,
            message_start: offset,
            joiner: PartialJoiner::new(max_line_bytes),
            joined: Vec::new(),
            multiline,
        }
    }

    /// Hands a parsed line to the partial joiner, and what that finishes on.
    fn push(&mut self, line: LogLine, out: &mut Vec<LogLine>) {
        if self.multiline.is_none() {
            self.joiner.push(line, out);
            return;
        }
        let mut done = std::mem::take(&mut self.joined);
        self.joiner.push(line, &mut done);
        for line in done.drain(..) {
            self.finished(line, out);
        }
        self.joined = done;
    }

    /// Hands a message the partial joiner finished to the multi-line joiner, if any.
    fn finished(&mut self, line: LogLine, out: &mut Vec<LogLine>) {
        match &mut self.multiline {
            None => out.push(line),
            // Attributed to the start of the oldest of them: a checkpoint may then repeat a
            // line, never skip one.
            Some(multiline) => multiline.push(line, self.message_start, out),
        }
    }

    fn update_safe_offset(&mut self) {
        let buffered = self.multiline.as_ref().and_then(|m| m.pending_from());
        self.safe_offset = buffered.map_or(self.message_start, |b| b.min(self.message_start));
    }

    /// Emits multi-line messages that timed out; true when any was.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<LogLine>) -> bool {
        let flushed = self
            .multiline
            .as_mut()
            .is_some_and(|m| m.flush_expired(now, out));
        if flushed {
            self.update_safe_offset();
        }
        flushed
    }

    /// Offset of the next byte to read from the file.
    pub fn read_offset(&self) -> u64 {
        self.buf_offset + self.buf.len() as u64
    }

    /// Every line before this offset is in a message already returned.
    pub fn safe_offset(&self) -> u64 {
        self.safe_offset
    }

    /// Takes the next bytes of the file; appends finished messages to `out` and returns how
    /// many lines (newlines) the bytes completed.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LogLine>) -> usize {
        let Some(last_newline) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.buf.extend_from_slice(bytes);
            return 0;
        };
        let (complete, rest) = bytes.split_at(last_newline + 1);
        let mut lines = 0;
        let mut complete = complete;
        if !self.buf.is_empty() {
            // The line begun in an earlier read ends in this one.
            let first_end = next_newline(complete).expect("a newline") + 1;
            let mut first = std::mem::take(&mut self.buf);
            first.extend_from_slice(&complete[..first_end]);
            lines += self.lines(&first, out);
            first.clear();
            self.buf = first;
            complete = &complete[first_end..];
        }
        // Lines read whole in this read are parsed where they lie, never copied.
        lines += self.lines(complete, out);
        self.buf.extend_from_slice(rest);
        lines
    }

    /// Parses complete lines (`text` ends with a newline) that begin at `buf_offset`, and
    /// moves `buf_offset` past them. Returns how many there were.
    fn lines(&mut self, text: &[u8], out: &mut Vec<LogLine>) -> usize {
        let mut lines = 0;
        let mut start = 0;
        while let Some(newline) = next_newline(&text[start..]) {
            self.push(parse_line(&text[start..start + newline]), out);
            lines += 1;
            start += newline + 1;
            if !self.joiner.has_pending() {
                self.message_start = self.buf_offset + start as u64;
                self.update_safe_offset();
            }
        }
        self.buf_offset += text.len() as u64;
        lines
    }

    /// The file ended for good (rotated away, deleted, or the end of a `check`): a last line
    /// without its newline and a pending partial message are emitted as they are. Returns
    /// the lines completed.
    pub fn finish(&mut self, out: &mut Vec<LogLine>) -> usize {
        let mut lines = 0;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.push(parse_line(&rest), out);
            self.buf_offset += rest.len() as u64;
            lines = 1;
        }
        if let Some(rest) = self.joiner.flush() {
            self.finished(rest, out);
        }
        if let Some(multiline) = &mut self.multiline {
            multiline.flush_all(out);
        }
        self.message_start = self.buf_offset;
        self.safe_offset = self.buf_offset;
        lines
    }
}

/// Where the first `\n` in `bytes` is, looked for eight bytes at a time.
fn next_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ (ONES * u64::from(b'\n'));
        // The lowest flagged byte is exact.
        let found = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_offset_waits_for_partials_and_newlines() {
        let mut decoder = FileDecoder::new(100, 1024, None);
        let mut out = Vec::new();
        let p = b"2026-11-25T10:00:00Z stdout P ab\n";
        assert_eq!(decoder.feed(p, &mut out), 1);
        assert!(out.is_empty());
        assert_eq!(decoder.safe_offset(), 100);
        let f = b"2026-11-25T10:00:00Z stdout F cd\n2026-11-25T10:00:00Z std";
        assert_eq!(decoder.feed(f, &mut out), 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "abcd");
        let after_f = 100 + p.len() as u64 + 33;
        assert_eq!(decoder.safe_offset(), after_f);
        assert_eq!(decoder.read_offset(), 100 + (p.len() + f.len()) as u64);

        assert_eq!(decoder.feed(b"out F e", &mut out), 0);
        assert_eq!(decoder.finish(&mut out), 1);
        assert_eq!(out[1].message, "e");
        assert_eq!(decoder.safe_offset(), decoder.read_offset());
    }

    #[test]
    fn finds_newlines_at_every_position() {
        for len in 0..20 {
            for at in 0..=len {
                let mut bytes = vec![b'x'; len];
                if at < len {
                    bytes[at] = b'\n';
                    bytes[len - 1] = b'\n';
                }
                let expected = bytes.iter().position(|&b| b == b'\n');
                assert_eq!(next_newline(&bytes), expected, "{len} {at}");
            }
        }
        // Bytes just around `\n` are not newlines.
        assert_eq!(next_newline(b"\x09\x0b\x8a\xff\x0a"), Some(4));
    }

    #[test]
    fn lines_split_across_reads_at_any_point() {
        let text = b"2026-11-25T10:00:00Z stdout F one\n2026-11-25T10:00:00Z stdout P tw\n2026-11-25T10:00:00Z stdout F o\n2026-11-25T10:00:00Z stderr F three\n";
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let mut decoder = FileDecoder::new(7, 1024, None);
                let mut out = Vec::new();
                let mut lines = decoder.feed(&text[..cut], &mut out);
                lines += decoder.feed(&text[cut..cut2], &mut out);
                lines += decoder.feed(&text[cut2..], &mut out);
                let messages: Vec<_> = out.iter().map(|l| l.message.as_str()).collect();
                assert_eq!((lines, messages), (4, vec!["one", "two", "three"]));
                assert_eq!(decoder.safe_offset(), 7 + text.len() as u64);
                assert_eq!(decoder.read_offset(), 7 + text.len() as u64);
            }
        }
    }

    #[test]
    fn safe_offset_stays_before_lines_buffered_for_multiline() {
        let rules = crate::multiline::MultilineRules::new(&[crate::config::MultilineRule {
            namespace: "*".into(),
            container: "*".into(),
            start_pattern: r"^\S".into(),
            timeout_ms: 10,
            max_bytes: 1024,
        }])
        .unwrap();
        let file = crate::file_name::ContainerFile {
            pod: "p".into(),
            namespace: "n".into(),
            container: "c".into(),
            container_id: "x".into(),
        };
        let mut decoder = FileDecoder::new(0, 1024, rules.joiner_for(&file));
        let mut out = Vec::new();
        let first = b"2026-11-25T10:00:00Z stderr F boom\n";
        let trace = b"2026-11-25T10:00:00Z stderr F   at x\n";
        decoder.feed(first, &mut out);
        decoder.feed(trace, &mut out);
        assert!(out.is_empty());
        assert_eq!(decoder.safe_offset(), 0, "buffered lines are not safe yet");
        let next = b"2026-11-25T10:00:00Z stderr F next\n";
        decoder.feed(next, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "boom\n  at x");
        let next_at = (first.len() + trace.len()) as u64;
        assert_eq!(decoder.safe_offset(), next_at);
        assert!(!decoder.flush_expired(Instant::now(), &mut out));
        let later = Instant::now() + std::time::Duration::from_millis(20);
        assert!(decoder.flush_expired(later, &mut out));
        assert_eq!(out[1].message, "next");
        assert_eq!(decoder.safe_offset(), next_at + next.len() as u64);
    }
}
