//! Bytes of one file to finished messages: splits at newlines, parses each line and joins
//! partial lines, and knows which file offset is safe to checkpoint (every line before it
//! belongs to a finished message). The tailer and `check` both read files through it.

use crate::line::{parse_line, LogLine, PartialJoiner};

#[derive(Debug)]
pub struct FileDecoder {
    /// Bytes read but not yet ending in a newline.
    buf: Vec<u8>,
    /// File offset of the first byte in `buf`.
    buf_offset: u64,
    /// Offset after the last line whose message is finished.
    safe_offset: u64,
    joiner: PartialJoiner,
}

impl FileDecoder {
    /// A decoder for a file read from `offset` (a line boundary).
    pub fn new(offset: u64, max_line_bytes: usize) -> FileDecoder {
        FileDecoder {
            buf: Vec::new(),
            buf_offset: offset,
            safe_offset: offset,
            joiner: PartialJoiner::new(max_line_bytes),
        }
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
        let scan_from = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let Some(last_newline) = self.buf[scan_from..].iter().rposition(|&b| b == b'\n') else {
            return 0;
        };
        let end = scan_from + last_newline + 1;
        let mut lines = 0;
        let mut start = 0;
        while start < end {
            let newline = start
                + self.buf[start..end]
                    .iter()
                    .position(|&b| b == b'\n')
                    .expect("a newline before end");
            out.extend(self.joiner.push(parse_line(&self.buf[start..newline])));
            lines += 1;
            start = newline + 1;
            if !self.joiner.has_pending() {
                self.safe_offset = self.buf_offset + start as u64;
            }
        }
        self.buf.drain(..end);
        self.buf_offset += end as u64;
        lines
    }

    /// The file ended for good (rotated away, deleted, or the end of a `check`): a last line
    /// without its newline and a pending partial message are emitted as they are. Returns
    /// the lines completed.
    pub fn finish(&mut self, out: &mut Vec<LogLine>) -> usize {
        let mut lines = 0;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            out.extend(self.joiner.push(parse_line(&rest)));
            self.buf_offset += rest.len() as u64;
            lines = 1;
        }
        out.extend(self.joiner.flush());
        self.safe_offset = self.buf_offset;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_offset_waits_for_partials_and_newlines() {
        let mut decoder = FileDecoder::new(100, 1024);
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
}
