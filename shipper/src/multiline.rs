//! Multi-line joining (stack traces): a message that does not match its container's start
//! pattern is appended to the message before it. A joined message is complete on the next
//! start line, when nothing was added for `timeout_ms`, or at `max_bytes` (then it is cut
//! and its pieces are marked `split`). Joining is per stream, so stdout and stderr never mix.
//!
//! The joiner knows the file offset where each buffered message began, so the decoder never
//! lets a checkpoint pass a line that is buffered here and not yet in a record.

use std::time::{Duration, Instant};

use regex::Regex;

use crate::config::MultilineRule;
use crate::file_name::ContainerFile;
use crate::line::{mark_split, LogLine};
use crate::{Error, Result};

/// The configured rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct MultilineRules {
    rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    namespace: glob::Pattern,
    container: glob::Pattern,
    start: Regex,
    timeout: Duration,
    max_bytes: usize,
}

impl MultilineRules {
    pub fn new(rules: &[MultilineRule]) -> Result<MultilineRules> {
        let mut compiled = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let key = |field: &str| format!("multiline[{i}].{field}");
            let pattern = |field: &str, glob: &str| {
                glob::Pattern::new(glob).map_err(|e| {
                    Error::Config(format!("{}: {glob:?} is not a glob: {e}", key(field)))
                })
            };
            let start = Regex::new(&rule.start_pattern).map_err(|e| {
                Error::Config(format!(
                    "{}: {:?} does not compile: {e}",
                    key("start_pattern"),
                    rule.start_pattern
                ))
            })?;
            if rule.timeout_ms == 0 {
                return Err(Error::Config(format!(
                    "{}: must be greater than 0",
                    key("timeout_ms")
                )));
            }
            if rule.max_bytes == 0 {
                return Err(Error::Config(format!(
                    "{}: must be greater than 0",
                    key("max_bytes")
                )));
            }
            compiled.push(CompiledRule {
                namespace: pattern("namespace", &rule.namespace)?,
                container: pattern("container", &rule.container)?,
                start,
                timeout: Duration::from_millis(rule.timeout_ms),
                max_bytes: rule.max_bytes,
            });
        }
        Ok(MultilineRules { rules: compiled })
    }

    /// A joiner for the container's file when a rule applies to it (the first that does).
    pub fn joiner_for(&self, container: &ContainerFile) -> Option<MultilineJoiner> {
        self.rules
            .iter()
            .find(|rule| {
                rule.namespace.matches(&container.namespace)
                    && rule.container.matches(&container.container)
            })
            .map(|rule| MultilineJoiner {
                start: rule.start.clone(),
                timeout: rule.timeout,
                max_bytes: rule.max_bytes,
                pending: Vec::new(),
            })
    }
}

/// Joins the messages of one file.
#[derive(Debug)]
pub struct MultilineJoiner {
    start: Regex,
    timeout: Duration,
    max_bytes: usize,
    /// At most one message per stream.
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    line: LogLine,
    /// File offset of the first line of the message.
    offset: u64,
    updated: Instant,
}

impl MultilineJoiner {
    /// Takes one finished message that began at file `offset`; appends completed joined
    /// messages to `out`.
    pub fn push(&mut self, mut line: LogLine, offset: u64, out: &mut Vec<LogLine>) {
        let now = Instant::now();
        let same_stream = self
            .pending
            .iter()
            .position(|p| p.line.stream == line.stream);
        let Some(i) = same_stream else {
            self.pending.push(Pending {
                line,
                offset,
                updated: now,
            });
            return;
        };
        if self.start.is_match(&line.message) {
            out.push(self.pending.remove(i).line);
        } else {
            let pending = &mut self.pending[i];
            if pending.line.message.len() + 1 + line.message.len() <= self.max_bytes {
                pending.line.message.push('\n');
                pending.line.message.push_str(&line.message);
                for mark in line.marks {
                    if !pending.line.marks.contains(&mark) {
                        pending.line.marks.push(mark);
                    }
                }
                pending.updated = now;
                return;
            }
            // Too long: this piece goes now; the message continues in a new one.
            let mut piece = self.pending.remove(i).line;
            mark_split(&mut piece);
            out.push(piece);
            mark_split(&mut line);
        }
        self.pending.push(Pending {
            line,
            offset,
            updated: now,
        });
    }

    /// Emits the messages nothing was added to for the timeout; true when any was.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<LogLine>) -> bool {
        let before = out.len();
        let timeout = self.timeout;
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| now.duration_since(p.updated) >= timeout);
        self.pending = kept;
        out.extend(expired.into_iter().map(|p| p.line));
        out.len() > before
    }

    /// Emits everything buffered (the file ended).
    pub fn flush_all(&mut self, out: &mut Vec<LogLine>) {
        self.pending.sort_by_key(|p| p.offset);
        out.extend(self.pending.drain(..).map(|p| p.line));
    }

    /// The file offset of the first line still buffered.
    pub fn pending_from(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.offset).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitesize_record::Mark;

    fn joiner(start: &str, max_bytes: usize, timeout_ms: u64) -> MultilineJoiner {
        let rules = MultilineRules::new(&[MultilineRule {
            namespace: "shop*".into(),
            container: "*".into(),
            start_pattern: start.into(),
            timeout_ms,
            max_bytes,
        }])
        .unwrap();
        let file = |namespace: &str| ContainerFile {
            pod: "p".into(),
            namespace: namespace.into(),
            container: "c".into(),
            container_id: "x".into(),
        };
        assert!(rules.joiner_for(&file("auth")).is_none());
        rules.joiner_for(&file("shop-eu")).unwrap()
    }

    fn line(stream: &str, message: &str) -> LogLine {
        LogLine {
            time: "2026-11-25T10:00:00Z".into(),
            stream: stream.into(),
            partial: false,
            message: message.into(),
            marks: vec![],
        }
    }

    #[test]
    fn continuation_lines_join_the_message_before_them_per_stream() {
        let mut j = joiner(r"^\S", 1024, 1000);
        let mut out = Vec::new();
        j.push(line("stderr", "Exception in main"), 0, &mut out);
        j.push(line("stdout", "GET /a"), 10, &mut out);
        j.push(line("stderr", "  at A.b(A.java:1)"), 20, &mut out);
        j.push(line("stderr", "  at C.d(C.java:2)"), 30, &mut out);
        assert!(out.is_empty());
        assert_eq!(j.pending_from(), Some(0));
        j.push(line("stdout", "GET /b"), 40, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "GET /a");
        assert_eq!(j.pending_from(), Some(0));
        j.push(line("stderr", "next"), 50, &mut out);
        assert_eq!(
            out[1].message,
            "Exception in main\n  at A.b(A.java:1)\n  at C.d(C.java:2)"
        );
        assert_eq!(j.pending_from(), Some(40));
        j.flush_all(&mut out);
        let rest: Vec<_> = out[2..].iter().map(|l| l.message.as_str()).collect();
        assert_eq!(rest, ["GET /b", "next"]);
        assert_eq!(j.pending_from(), None);
    }

    #[test]
    fn timeout_completes_a_message() {
        let mut j = joiner(r"^\S", 1024, 50);
        let mut out = Vec::new();
        j.push(line("stdout", "boom"), 0, &mut out);
        j.push(line("stdout", "  at x"), 5, &mut out);
        assert!(!j.flush_expired(Instant::now(), &mut out));
        assert!(j.flush_expired(Instant::now() + Duration::from_millis(60), &mut out));
        assert_eq!(out[0].message, "boom\n  at x");
        assert_eq!(j.pending_from(), None);
    }

    #[test]
    fn max_bytes_cuts_and_marks_the_pieces() {
        let mut j = joiner(r"^\S", 12, 1000);
        let mut out = Vec::new();
        j.push(line("stdout", "boom"), 0, &mut out);
        j.push(line("stdout", " at 1"), 5, &mut out); // "boom\n at 1" = 10 bytes
        j.push(line("stdout", " at 2"), 11, &mut out); // would be 16: cut
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "boom\n at 1");
        assert_eq!(out[0].marks, [Mark::Split]);
        assert_eq!(j.pending_from(), Some(11));
        j.flush_all(&mut out);
        assert_eq!(out[1].message, " at 2");
        assert_eq!(out[1].marks, [Mark::Split]);
    }

    #[test]
    fn bad_rules_name_their_key() {
        let rule = |start: &str, namespace: &str| MultilineRule {
            namespace: namespace.into(),
            container: "*".into(),
            start_pattern: start.into(),
            timeout_ms: 1,
            max_bytes: 1,
        };
        let err = MultilineRules::new(&[rule("^ok", "*"), rule("([", "*")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiline[1].start_pattern"), "{err}");
        let err = MultilineRules::new(&[rule("^ok", "[x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiline[0].namespace"), "{err}");
    }
}
