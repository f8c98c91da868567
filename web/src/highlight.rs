//! Which parts of a message the query's plain words match, for `<mark>`.
//!
//! The plain words of a query are its message words and phrases (bare, or under `log:`),
//! not negated and not field clauses. They are split and lower-cased the way messages are
//! indexed (at anything that is not a letter or digit), so a highlighted word is one the
//! search itself matched on.

use std::ops::Range;

/// A word to highlight: exact, or a prefix (`conn*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub word: String,
    pub prefix: bool,
}

/// Longest word the index holds (docs/query.md).
const MAX_WORD_BYTES: usize = 40;

/// The plain words of `query` (see the module docs); duplicates removed.
pub fn plain_words(query: &str) -> Vec<Term> {
    let chars: Vec<char> = query.chars().collect();
    let mut terms: Vec<Term> = Vec::new();
    let (mut i, mut depth) = (0usize, 0usize);
    let mut negate_next = false;
    // Depth of the parenthesis a NOT/- applies to while inside it.
    let mut negated_group: Option<usize> = None;
    let mut in_range = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' {
            depth += 1;
            if negate_next && negated_group.is_none() {
                negated_group = Some(depth);
            }
            negate_next = false;
            i += 1;
            continue;
        }
        if c == ')' {
            if negated_group == Some(depth) {
                negated_group = None;
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if c == '-' {
            negate_next = true;
            i += 1;
            continue;
        }
        // One token: up to whitespace or a parenthesis outside quotes.
        let (mut text, mut quoted_any, mut in_quotes) = (String::new(), false, false);
        let (mut field_end, mut prefix) = (None, false);
        while i < chars.len() {
            let c = chars[i];
            if !in_quotes && (c.is_whitespace() || c == '(' || c == ')') {
                break;
            }
            i += 1;
            prefix = false;
            match c {
                '\\' if i < chars.len() => {
                    text.push(chars[i]);
                    i += 1;
                }
                '"' => {
                    in_quotes = !in_quotes;
                    quoted_any = true;
                }
                ':' if !in_quotes && field_end.is_none() && !quoted_any => {
                    field_end = Some(text.len());
                    text.push(c);
                }
                '*' if !in_quotes => {
                    prefix = true;
                    text.push(c);
                }
                _ => text.push(c),
            }
        }
        if prefix {
            text.pop();
        }
        if in_range {
            in_range = !text.ends_with(']');
            continue;
        }
        if !quoted_any && matches!(text.as_str(), "AND" | "OR") {
            continue;
        }
        if !quoted_any && text == "NOT" {
            negate_next = true;
            continue;
        }
        let negated = negate_next || negated_group.is_some();
        negate_next = false;
        let value = match field_end {
            Some(end) => {
                let value = &text[end + 1..];
                if value.starts_with('[') && !value.ends_with(']') {
                    in_range = true;
                }
                if &text[..end] != "log" {
                    continue;
                }
                value.to_owned()
            }
            None => text,
        };
        if negated {
            continue;
        }
        let words: Vec<String> = value
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let last = words.len().saturating_sub(1);
        for (n, word) in words.into_iter().enumerate() {
            if word.len() > MAX_WORD_BYTES {
                continue;
            }
            let term = Term {
                word,
                prefix: prefix && n == last,
            };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    terms
}

/// Byte ranges of the words of `message` that `terms` match, in order, not overlapping.
pub fn ranges(message: &str, terms: &[Term]) -> Vec<Range<usize>> {
    if terms.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut start = None;
    let check = |from: usize, to: usize, found: &mut Vec<Range<usize>>| {
        let word = message[from..to].to_lowercase();
        let hit = terms.iter().any(|t| {
            if t.prefix {
                word.starts_with(&t.word)
            } else {
                word == t.word
            }
        });
        if hit {
            found.push(from..to);
        }
    };
    for (at, c) in message.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                check(from, at, &mut found);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        check(from, message.len(), &mut found);
    }
    found
}

/// `message` cut into (text, highlighted) pieces at `ranges` (ignoring any that are out of
/// bounds, overlapping or not on character boundaries).
pub fn pieces<'a>(message: &'a str, ranges: &[Range<usize>]) -> Vec<(&'a str, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    for range in ranges {
        if range.start < at
            || range.end > message.len()
            || range.start >= range.end
            || !message.is_char_boundary(range.start)
            || !message.is_char_boundary(range.end)
        {
            continue;
        }
        if range.start > at {
            out.push((&message[at..range.start], false));
        }
        out.push((&message[range.clone()], true));
        at = range.end;
    }
    if at < message.len() {
        out.push((&message[at..], false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(query: &str) -> Vec<String> {
        plain_words(query)
            .into_iter()
            .map(|t| {
                if t.prefix {
                    format!("{}*", t.word)
                } else {
                    t.word
                }
            })
            .collect()
    }

    #[test]
    fn keeps_only_plain_positive_words() {
        assert_eq!(words("Error"), ["error"]);
        assert_eq!(words("error -debug NOT trace"), ["error"]);
        assert_eq!(
            words("\"connection refused\" OR conn* AND pod:web-1"),
            ["connection", "refused", "conn*"]
        );
        assert_eq!(
            words("log:timeout stream:stderr fields.level:error"),
            ["timeout"]
        );
        assert_eq!(words("a -(b OR c) d"), ["a", "d"]);
        assert_eq!(words("user-serv*"), ["user", "serv*"]);
        assert_eq!(words("fields.latency_ms:[100 TO 500] slow"), ["slow"]);
        assert_eq!(words("pod:\"web 1\" x"), ["x"]);
        assert!(words("").is_empty() && words("*").is_empty());
    }

    #[test]
    fn finds_whole_words_case_insensitively() {
        let terms = plain_words("get conn*");
        let message = "GET /cart: connection reset; target";
        let found: Vec<&str> = ranges(message, &terms)
            .into_iter()
            .map(|r| &message[r])
            .collect();
        assert_eq!(found, ["GET", "connection"]);
    }

    #[test]
    fn cuts_at_ranges() {
        let message = "é GET x";
        let r = ranges(message, &plain_words("get"));
        assert_eq!(
            pieces(message, &r),
            [("é ", false), ("GET", true), (" x", false)]
        );
        let out_of_bounds = vec![5..9, 1..1];
        assert_eq!(pieces("ab", &out_of_bounds), [("ab", false)]);
    }
}
