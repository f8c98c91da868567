//! The Bitesize query language: a hand-written recursive-descent parser that turns what a user
//! types into a Tantivy query. The language is described for users in `docs/query.md`.
//!
//! This crate also owns the Tantivy [`schema`] every namespace index shares (the parser resolves
//! field names against it). It depends on Tantivy and the record format only, so the fuzz
//! target in `fuzz/` builds it without the server's dependencies.
//!
//! Grammar (NOT binds tighter than AND, AND tighter than OR; juxtaposition is AND):
//!
//! ```text
//! query   := or?                                  (empty → every record)
//! or      := and ("OR" and)*
//! and     := unary (["AND"] unary)*
//! unary   := "NOT" unary | "-" unary | primary    ("-" directly before the clause)
//! primary := "(" or ")" | clause
//! clause  := "\"" phrase "\"" | word["*"] | name ":" value
//! value   := "\"" text "\"" | text["*"] | (">" | ">=" | "<" | "<=") number
//!          | "[" (number | "*") "TO" (number | "*") "]"
//! ```
//!
//! Positions in errors are 0-based offsets in characters (not bytes) into the query text.
//!
//! Prefixes and numeric ranges are built as ranges over the term dictionary (no regular
//! expressions, so nothing in the user's text needs escaping and nothing is truncated).
//! Numeric ranges on `fields` read the inverted index, where every value keeps its own type
//! (integers as i64, or u64 above `i64::MAX`, decimals as f64): each type gets its own exactly
//! rounded range.

pub mod schema;

use std::fmt;
use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, InvertedIndexRangeQuery, Occur, PhrasePrefixQuery,
    PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, FieldType, IndexRecordOption, DATE_TIME_PRECISION_INDEXED};
use tantivy::time::format_description::well_known::Rfc3339;
use tantivy::time::OffsetDateTime;
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{DateTime, Index, Term};

use crate::schema::Fields;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 100_000;
/// Deepest nesting accepted: levels of parentheses plus `NOT`/`-` operators stacked on a clause.
pub const MAX_DEPTH: usize = 100;
/// Most clauses (words, phrases, `field:value`s) in one query.
pub const MAX_CLAUSES: usize = 10_000;
/// Most indexed words the trailing prefix of a multi-word `word*` expands to, per segment.
const MAX_PHRASE_PREFIX_EXPANSIONS: u32 = 1_000;
/// Longest piece of the user's text quoted back in an error message, in characters.
const MAX_SHOWN: usize = 60;

/// Why a query does not parse, and where (0-based character offset into the query text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub position: usize,
}

impl QueryError {
    fn new(message: impl Into<String>, position: usize) -> QueryError {
        QueryError {
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for QueryError {}

type Result<T> = std::result::Result<T, QueryError>;

/// Parses `text` into a query over one namespace index with the shared schema.
pub fn parse(
    text: &str,
    index: &Index,
    fields: &Fields,
) -> std::result::Result<Box<dyn Query>, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        let position = text
            .char_indices()
            .take_while(|(i, _)| *i < MAX_QUERY_BYTES)
            .count();
        return Err(QueryError::new(
            format!("query is too long: at most {MAX_QUERY_BYTES} bytes"),
            position,
        ));
    }
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    let mut parser = Parser::new(text, index, fields)?;
    let node = parser.parse_or()?;
    match parser.peek() {
        Next::End => Ok(node.into_query()),
        Next::Close => Err(QueryError::new(
            "unexpected ')' without a matching '('",
            parser.pos,
        )),
        // parse_or only stops at the end or at a ')'.
        _ => Err(QueryError::new("unexpected text", parser.pos)),
    }
}

/// The parsed query before it becomes Tantivy's.
enum Node {
    Leaf(Box<dyn Query>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Node {
    fn into_query(self) -> Box<dyn Query> {
        match self {
            Node::Leaf(query) => query,
            Node::And(nodes) => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(nodes.len() + 1);
                for node in nodes {
                    match node {
                        Node::Not(inner) => clauses.push((Occur::MustNot, inner.into_query())),
                        node => clauses.push((Occur::Must, node.into_query())),
                    }
                }
                if !clauses.iter().any(|(occur, _)| *occur == Occur::Must) {
                    // Only negations: they subtract from everything.
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                if clauses.len() == 1 {
                    if let Some((_, query)) = clauses.pop() {
                        return query;
                    }
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Node::Or(nodes) => any(nodes.into_iter().map(Node::into_query).collect()),
            Node::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, inner.into_query()),
            ])),
        }
    }
}

/// At least one of `queries` (none: nothing).
fn any(mut queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    match queries.len() {
        0 | 1 => queries.pop().unwrap_or_else(|| Box::new(EmptyQuery)),
        _ => Box::new(BooleanQuery::new(
            queries.into_iter().map(|q| (Occur::Should, q)).collect(),
        )),
    }
}

/// What comes next in the text, whitespace skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    End,
    Open,
    Close,
    And,
    Or,
    Not,
    /// The start of a clause (or of a `-` negation).
    Clause,
}

/// Where a value is searched.
enum Target {
    /// The message, tokenized.
    Log,
    /// A raw metadata field: the whole value, exactly.
    Raw(Field),
    /// `labels` at this key (already escaped as a Tantivy JSON path: one segment).
    Label(String),
    /// `fields` at this path (Tantivy JSON path syntax: `.` nests, `\.` is a literal dot).
    Json(String),
}

/// A number as written: integers exactly, anything else as f64.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn floor(self) -> i128 {
        match self {
            Num::Int(i) => i,
            // `as` saturates; finite by construction.
            Num::Float(f) => f.floor() as i128,
        }
    }
    fn ceil(self) -> i128 {
        match self {
            Num::Int(i) => i,
            Num::Float(f) => f.ceil() as i128,
        }
    }
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A run of unquoted text: `raw` keeps backslash escapes, `text` resolves them.
#[derive(Default)]
struct Bare {
    raw: String,
    text: String,
    /// The last character was an unescaped `*`.
    star: bool,
    /// Stopped at an unescaped `:`.
    colon: bool,
}

fn is_terminator(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')' || c == '"'
}

/// `text` shortened for an error message.
fn shown(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(MAX_SHOWN).collect();
        short.push('…');
        short
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    clauses: usize,
    fields: &'a Fields,
    log_analyzer: TextAnalyzer,
    json_analyzer: TextAnalyzer,
}

impl<'a> Parser<'a> {
    fn new(text: &str, index: &Index, fields: &'a Fields) -> Result<Parser<'a>> {
        let schema = index.schema();
        let tokenizer_of = |field: Field| -> String {
            let name = match schema.get_field_entry(field).field_type() {
                FieldType::Str(options) => options.get_indexing_options().map(|i| i.tokenizer()),
                FieldType::JsonObject(options) => {
                    options.get_text_indexing_options().map(|i| i.tokenizer())
                }
                _ => None,
            };
            name.unwrap_or("default").to_string()
        };
        let analyzer = |name: String| {
            index.tokenizers().get(&name).ok_or_else(|| {
                QueryError::new(format!("the index has no tokenizer named '{name}'"), 0)
            })
        };
        Ok(Parser {
            chars: text.chars().collect(),
            pos: 0,
            depth: 0,
            clauses: 0,
            fields,
            log_analyzer: analyzer(tokenizer_of(fields.log))?,
            json_analyzer: analyzer(tokenizer_of(fields.fields))?,
        })
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// `AND`, `OR` or `NOT` as a whole word at `pos`.
    fn keyword_at(&self, pos: usize) -> Option<Next> {
        for (word, next) in [("AND", Next::And), ("OR", Next::Or), ("NOT", Next::Not)] {
            let len = word.len();
            let matches = self.chars.len() >= pos + len
                && self.chars[pos..pos + len].iter().copied().eq(word.chars())
                && self.chars.get(pos + len).is_none_or(|&c| is_terminator(c));
            if matches {
                return Some(next);
            }
        }
        None
    }

    /// Skips whitespace and says what comes next.
    fn peek(&mut self) -> Next {
        self.skip_ws();
        match self.chars.get(self.pos) {
            None => Next::End,
            Some('(') => Next::Open,
            Some(')') => Next::Close,
            Some(_) => self.keyword_at(self.pos).unwrap_or(Next::Clause),
        }
    }

    /// One more level of nesting, refused past [`MAX_DEPTH`].
    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::new(
                format!(
                    "query nests too deeply: at most {MAX_DEPTH} levels of parentheses and NOT"
                ),
                at,
            ));
        }
        Ok(())
    }

    /// After operator `op`, a clause must follow.
    fn expect_clause(&mut self, op: &str) -> Result<()> {
        let found = match self.peek() {
            Next::End => {
                return Err(QueryError::new(
                    format!("expected a clause after '{op}'"),
                    self.pos,
                ))
            }
            Next::Close => "')'",
            Next::And => "'AND'",
            Next::Or => "'OR'",
            Next::Open | Next::Not | Next::Clause => return Ok(()),
        };
        Err(QueryError::new(
            format!("expected a clause after '{op}', found {found}"),
            self.pos,
        ))
    }

    fn parse_or(&mut self) -> Result<Node> {
        let mut items = vec![self.parse_and()?];
        while self.peek() == Next::Or {
            self.pos += 2;
            self.expect_clause("OR")?;
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Node> {
        let mut items = vec![self.parse_unary()?];
        loop {
            match self.peek() {
                Next::End | Next::Close | Next::Or => break,
                Next::And => {
                    self.pos += 3;
                    self.expect_clause("AND")?;
                }
                Next::Open | Next::Not | Next::Clause => {}
            }
            items.push(self.parse_unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::And(items)
        })
    }

    fn parse_unary(&mut self) -> Result<Node> {
        let next = self.peek();
        let at = self.pos;
        if next == Next::Not {
            self.pos += 3;
            self.enter(at)?;
            self.expect_clause("NOT")?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        if next == Next::Clause && self.chars.get(at) == Some(&'-') {
            if self.chars.get(at + 1).is_none_or(|&c| c.is_whitespace()) {
                return Err(QueryError::new(
                    "expected a clause right after '-' (no space in between)",
                    at + 1,
                ));
            }
            self.pos += 1;
            self.enter(at)?;
            self.expect_clause("-")?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Node> {
        match self.peek() {
            Next::Open => {
                let at = self.pos;
                self.pos += 1;
                self.enter(at)?;
                match self.peek() {
                    Next::Close => return Err(QueryError::new("empty parentheses", self.pos)),
                    Next::End => return Err(QueryError::new("'(' is never closed", at)),
                    _ => {}
                }
                let node = self.parse_or()?;
                if self.peek() != Next::Close {
                    return Err(QueryError::new("'(' is never closed", at));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(node)
            }
            Next::Close => Err(QueryError::new(
                "unexpected ')' without a matching '('",
                self.pos,
            )),
            Next::And => Err(QueryError::new("'AND' needs a clause before it", self.pos)),
            Next::Or => Err(QueryError::new("'OR' needs a clause before it", self.pos)),
            Next::Not => self.parse_unary(),
            Next::End => Err(QueryError::new("expected a clause", self.pos)),
            Next::Clause => self.parse_clause().map(Node::Leaf),
        }
    }

    /// A word, a quoted phrase, or `name:value`.
    fn parse_clause(&mut self) -> Result<Box<dyn Query>> {
        let start = self.pos;
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(QueryError::new(
                format!("too many clauses: at most {MAX_CLAUSES}"),
                start,
            ));
        }
        if self.chars.get(start) == Some(&'"') {
            let text = self.read_quoted()?;
            return self.leaf(&Target::Log, &text, false, start);
        }
        let head = self.read_bare(true);
        if !head.colon {
            let mut text = head.text;
            if head.star {
                text.pop();
            }
            return self.leaf(&Target::Log, &text, head.star, start);
        }
        if head.raw.is_empty() {
            return Err(QueryError::new("missing field name before ':'", start));
        }
        let target = self.resolve(&head.raw, start)?;
        self.pos += 1; // the ':'
        self.parse_value(&target, &head.raw)
    }

    /// The value after `name:`.
    fn parse_value(&mut self, target: &Target, name: &str) -> Result<Box<dyn Query>> {
        let at = self.pos;
        let name = shown(name);
        match self.chars.get(at).copied() {
            None => Err(QueryError::new(format!("missing value after '{name}:'"), at)),
            Some(c) if c.is_whitespace() || c == ')' => {
                Err(QueryError::new(format!("missing value after '{name}:'"), at))
            }
            Some('(') => Err(QueryError::new(
                format!("expected a value after '{name}:', found '(' (put a value that contains parentheses in quotes)"),
                at,
            )),
            Some('"') => {
                let text = self.read_quoted()?;
                self.leaf(target, &text, false, at)
            }
            Some(c @ ('[' | '>' | '<')) => {
                let Target::Json(path) = target else {
                    return Err(QueryError::new(
                        format!("'{c}' starts a numeric range, and ranges only work on fields.<path> (put the value in quotes to search for it as text)"),
                        at,
                    ));
                };
                let (lower, upper) = if c == '[' { self.read_range()? } else { self.read_comparison()? };
                Ok(self.numeric_range(path, lower, upper))
            }
            Some(_) => {
                let bare = self.read_bare(false);
                let mut text = bare.text;
                if bare.star {
                    text.pop();
                }
                self.leaf(target, &text, bare.star, at)
            }
        }
    }

    /// Unquoted text up to whitespace, a parenthesis or a quote (and, when `stop_at_colon`, an
    /// unescaped `:`, which is left unread). A backslash takes the next character literally.
    fn read_bare(&mut self, stop_at_colon: bool) -> Bare {
        let mut bare = Bare::default();
        while let Some(&c) = self.chars.get(self.pos) {
            if is_terminator(c) {
                break;
            }
            if c == ':' && stop_at_colon {
                bare.colon = true;
                break;
            }
            self.pos += 1;
            bare.raw.push(c);
            if c == '\\' {
                match self.chars.get(self.pos) {
                    Some(&next) => {
                        self.pos += 1;
                        bare.raw.push(next);
                        bare.text.push(next);
                    }
                    None => bare.text.push('\\'),
                }
                bare.star = false;
            } else {
                bare.text.push(c);
                bare.star = c == '*';
            }
        }
        bare
    }

    /// A `"…"` string starting at `pos`; `\"` and `\\` (any `\x`) escape.
    fn read_quoted(&mut self) -> Result<String> {
        let open = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.chars.get(self.pos).copied() {
                None => return Err(QueryError::new("unclosed quote", open)),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.chars.get(self.pos).copied() {
                        None => return Err(QueryError::new("unclosed quote", open)),
                        Some(c) => text.push(c),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `>n`, `>=n`, `<n`, `<=n`; `pos` is at the `>` or `<`.
    fn read_comparison(&mut self) -> Result<(Bound<Num>, Bound<Num>)> {
        let greater = self.chars.get(self.pos) == Some(&'>');
        self.pos += 1;
        let inclusive = self.chars.get(self.pos) == Some(&'=');
        if inclusive {
            self.pos += 1;
        }
        let op = match (greater, inclusive) {
            (true, false) => ">",
            (true, true) => ">=",
            (false, false) => "<",
            (false, true) => "<=",
        };
        let at = self.pos;
        let text = self.read_bare(false).text;
        if text.is_empty() {
            return Err(QueryError::new(
                format!("expected a number after '{op}'"),
                at,
            ));
        }
        let n = number(&text, at)?;
        let bound = if inclusive {
            Bound::Included(n)
        } else {
            Bound::Excluded(n)
        };
        Ok(if greater {
            (bound, Bound::Unbounded)
        } else {
            (Bound::Unbounded, bound)
        })
    }

    /// `[a TO b]`, inclusive, `*` for an open end; `pos` is at the `[`.
    fn read_range(&mut self) -> Result<(Bound<Num>, Bound<Num>)> {
        self.pos += 1;
        let lower = self.range_end("'['")?;
        self.skip_ws();
        let at = self.pos;
        let is_to = self.chars.get(at..at + 2).is_some_and(|s| s == ['T', 'O'])
            && self.chars.get(at + 2).is_some_and(|c| c.is_whitespace());
        if !is_to {
            return Err(QueryError::new("expected 'TO' in the range", at));
        }
        self.pos += 2;
        let upper = self.range_end("'TO'")?;
        self.skip_ws();
        match self.chars.get(self.pos) {
            Some(']') => {
                self.pos += 1;
                Ok((lower, upper))
            }
            None => Err(QueryError::new("expected ']' to close the range", self.pos)),
            Some(_) => Err(QueryError::new("expected ']' to close the range", self.pos)),
        }
    }

    /// One end of a `[a TO b]` range.
    fn range_end(&mut self, after: &str) -> Result<Bound<Num>> {
        self.skip_ws();
        let at = self.pos;
        let mut text = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            if is_terminator(c) || c == ']' || c == '[' {
                break;
            }
            text.push(c);
            self.pos += 1;
        }
        if text.is_empty() {
            return Err(QueryError::new(
                format!("expected a number after {after}"),
                at,
            ));
        }
        if text == "*" {
            return Ok(Bound::Unbounded);
        }
        Ok(Bound::Included(number(&text, at)?))
    }

    /// The field a `name:` designates.
    fn resolve(&self, raw: &str, at: usize) -> Result<Target> {
        let f = self.fields;
        let simple = match raw {
            "log" => Some(Target::Log),
            "namespace" | "kubernetes.namespace_name" => Some(Target::Raw(f.namespace)),
            "stream" => Some(Target::Raw(f.stream)),
            "pod" | "kubernetes.pod_name" => Some(Target::Raw(f.pod)),
            "container" | "kubernetes.container_name" => Some(Target::Raw(f.container)),
            "node" | "kubernetes.host" => Some(Target::Raw(f.node)),
            "image" | "kubernetes.container_image" => Some(Target::Raw(f.image)),
            _ => None,
        };
        if let Some(target) = simple {
            return Ok(target);
        }
        for prefix in ["labels.", "kubernetes.labels."] {
            if let Some(key) = raw.strip_prefix(prefix) {
                let key_at = at + prefix.len();
                if key.is_empty() {
                    return Err(QueryError::new(
                        format!("missing label key after '{prefix}'"),
                        key_at,
                    ));
                }
                let key = unescape(key);
                if key.contains('\0') {
                    return Err(QueryError::new(
                        "a label key cannot contain a NUL character",
                        key_at,
                    ));
                }
                // The whole key is one JSON path segment: its dots are not nesting.
                let mut escaped = String::with_capacity(key.len() + 4);
                for c in key.chars() {
                    if c == '.' || c == '\\' {
                        escaped.push('\\');
                    }
                    escaped.push(c);
                }
                return Ok(Target::Label(escaped));
            }
        }
        if let Some(path) = raw.strip_prefix("fields.") {
            let path_at = at + "fields.".len();
            if path.is_empty() {
                return Err(QueryError::new("missing path after 'fields.'", path_at));
            }
            if path.contains('\0') {
                return Err(QueryError::new(
                    "a field path cannot contain a NUL character",
                    path_at,
                ));
            }
            return Ok(Target::Json(path.to_string()));
        }
        let message = match raw {
            "labels" | "kubernetes.labels" => "'labels' needs a key: labels.<key>:value".to_string(),
            "fields" => "'fields' needs a path: fields.<path>:value".to_string(),
            "time" | "@timestamp" | "timestamp" => {
                "the time cannot be searched in the query: use the from and to parameters".to_string()
            }
            _ => format!(
                "unknown field '{}': known fields are log, namespace, stream, pod, container, node, image, \
                 labels.<key> and fields.<path>, and the fluentd names kubernetes.namespace_name, \
                 kubernetes.pod_name, kubernetes.container_name, kubernetes.host, \
                 kubernetes.container_image and kubernetes.labels.<key> (to search for text with a ':', \
                 put it in quotes)",
                shown(raw)
            ),
        };
        Err(QueryError::new(message, at))
    }

    /// The query for `value` (a prefix when `prefix`) on `target`; `at` is where the value starts.
    fn leaf(
        &mut self,
        target: &Target,
        value: &str,
        prefix: bool,
        at: usize,
    ) -> Result<Box<dyn Query>> {
        match target {
            Target::Log => {
                if prefix && value.is_empty() {
                    return Ok(Box::new(AllQuery));
                }
                let log = self.fields.log;
                let terms: Vec<Term> = tokens(&mut self.log_analyzer, value)
                    .iter()
                    .map(|t| Term::from_field_text(log, t))
                    .collect();
                text_query(terms, prefix).ok_or_else(|| nothing_to_search(value, at))
            }
            Target::Raw(field) => {
                let term = Term::from_field_text(*field, value);
                Ok(if prefix {
                    prefix_query(term)
                } else {
                    term_query(term)
                })
            }
            Target::Label(key) => {
                let mut term = Term::from_field_json_path(self.fields.labels, key, false);
                term.append_type_and_str(value);
                Ok(if prefix {
                    prefix_query(term)
                } else {
                    term_query(term)
                })
            }
            Target::Json(path) => {
                if prefix && value.is_empty() {
                    return Ok(self.json_path_exists(path));
                }
                let field = self.fields.fields;
                let terms: Vec<Term> = tokens(&mut self.json_analyzer, value)
                    .iter()
                    .map(|t| {
                        let mut term = Term::from_field_json_path(field, path, false);
                        term.append_type_and_str(t);
                        term
                    })
                    .collect();
                if prefix {
                    return text_query(terms, true).ok_or_else(|| nothing_to_search(value, at));
                }
                // The same key may hold text in one record and a number, a boolean or a date in
                // another: match every reading of the value.
                let mut readings: Vec<Box<dyn Query>> = Vec::new();
                readings.extend(text_query(terms, false));
                if let Ok(n) = number(value, at) {
                    readings.push(self.numeric_range(path, Bound::Included(n), Bound::Included(n)));
                }
                if let Ok(b) = value.parse::<bool>() {
                    let mut term = Term::from_field_json_path(field, path, false);
                    term.append_type_and_fast_value(b);
                    readings.push(term_query(term));
                }
                if value.starts_with(|c: char| c.is_ascii_digit()) {
                    if let Ok(date) = OffsetDateTime::parse(value, &Rfc3339) {
                        let date = DateTime::from_utc(date).truncate(DATE_TIME_PRECISION_INDEXED);
                        let mut term = Term::from_field_json_path(field, path, false);
                        term.append_type_and_fast_value(date);
                        readings.push(term_query(term));
                    }
                }
                if readings.is_empty() {
                    return Err(nothing_to_search(value, at));
                }
                Ok(any(readings))
            }
        }
    }

    /// `fields.<path>` holds a value of any type (or has anything nested below it).
    fn json_path_exists(&self, path: &str) -> Box<dyn Query> {
        let start = Term::from_field_json_path(self.fields.fields, path, false);
        // The term is the path then the end-of-path byte 0; nested paths continue with the
        // separator byte 1. Everything in [path, path + 2) is at or below the path.
        let bytes = start.serialized_value_bytes();
        let path_bytes = &bytes[..bytes.len().saturating_sub(1)];
        let lower = term_with_bytes(&start, path_bytes);
        let mut end = path_bytes.to_vec();
        end.push(2);
        let upper = term_with_bytes(&start, &end);
        Box::new(InvertedIndexRangeQuery::new(
            Bound::Included(lower),
            Bound::Excluded(upper),
        ))
    }

    /// Records with a number in `[lower, upper]` at `fields.<path>`. Integers are indexed as i64
    /// (u64 above `i64::MAX`) and decimals as f64, each type with its own terms, so each type
    /// gets its own range, rounded exactly.
    fn numeric_range(&self, path: &str, lower: Bound<Num>, upper: Bound<Num>) -> Box<dyn Query> {
        let field = self.fields.fields;
        let term = |value: &dyn Fn(&mut Term)| {
            let mut term = Term::from_field_json_path(field, path, false);
            value(&mut term);
            term
        };
        let range = |lo: Term, hi: Term| -> Box<dyn Query> {
            Box::new(InvertedIndexRangeQuery::new(
                Bound::Included(lo),
                Bound::Included(hi),
            ))
        };
        let mut parts: Vec<Box<dyn Query>> = Vec::new();

        let lo = match lower {
            Bound::Unbounded => i128::MIN,
            Bound::Included(n) => n.ceil(),
            Bound::Excluded(n) => n.floor().saturating_add(1),
        };
        let hi = match upper {
            Bound::Unbounded => i128::MAX,
            Bound::Included(n) => n.floor(),
            Bound::Excluded(n) => n.ceil().saturating_sub(1),
        };
        let (i_lo, i_hi) = (lo.max(i64::MIN as i128), hi.min(i64::MAX as i128));
        if i_lo <= i_hi {
            parts.push(range(
                term(&|t| t.append_type_and_fast_value(i_lo as i64)),
                term(&|t| t.append_type_and_fast_value(i_hi as i64)),
            ));
        }
        let (u_lo, u_hi) = (lo.max(i64::MAX as i128 + 1), hi.min(u64::MAX as i128));
        if u_lo <= u_hi {
            parts.push(range(
                term(&|t| t.append_type_and_fast_value(u_lo as u64)),
                term(&|t| t.append_type_and_fast_value(u_hi as u64)),
            ));
        }

        // -0.0 sorts just below 0.0: pick the zero that keeps the bound's meaning.
        let zero = |x: f64, negative: bool| {
            if x == 0.0 {
                if negative {
                    -0.0
                } else {
                    0.0
                }
            } else {
                x
            }
        };
        let f_lo = match lower {
            Bound::Unbounded => Bound::Included(f64::NEG_INFINITY),
            Bound::Included(n) => Bound::Included(zero(n.as_f64(), true)),
            Bound::Excluded(n) => Bound::Excluded(zero(n.as_f64(), false)),
        };
        let f_hi = match upper {
            Bound::Unbounded => Bound::Included(f64::INFINITY),
            Bound::Included(n) => Bound::Included(zero(n.as_f64(), false)),
            Bound::Excluded(n) => Bound::Excluded(zero(n.as_f64(), true)),
        };
        let f64_term = |x: f64| term(&|t| t.append_type_and_fast_value(x));
        let map = |bound: Bound<f64>| match bound {
            Bound::Included(x) => Bound::Included(f64_term(x)),
            Bound::Excluded(x) => Bound::Excluded(f64_term(x)),
            Bound::Unbounded => Bound::Unbounded,
        };
        parts.push(Box::new(InvertedIndexRangeQuery::new(map(f_lo), map(f_hi))));
        any(parts)
    }
}

/// `\x` → `x`.
fn unescape(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            text.push(chars.next().unwrap_or('\\'));
        } else {
            text.push(c);
        }
    }
    text
}

/// Parses a number: digits with an optional sign, fraction and exponent (no `inf`, no `nan`).
fn number(text: &str, at: usize) -> Result<Num> {
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(i) = text.parse::<i128>() {
            if (i64::MIN as i128..=u64::MAX as i128).contains(&i) {
                return Ok(Num::Int(i));
            }
        }
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() {
                return Ok(Num::Float(f));
            }
            return Err(QueryError::new(
                format!("number '{}' is out of range", shown(text)),
                at,
            ));
        }
    }
    Err(QueryError::new(
        format!("'{}' is not a number", shown(text)),
        at,
    ))
}

fn nothing_to_search(value: &str, at: usize) -> QueryError {
    QueryError::new(
        format!(
            "nothing to search for in '{}': text is searched by its words (letters and digits, at most 40 characters each)",
            shown(value)
        ),
        at,
    )
}

/// The tokens `analyzer` makes of `text`, as the index makes them.
fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push(stream.token().text.clone());
    }
    tokens
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

/// One token: a term (or a prefix); several: a phrase (whose last word is a prefix); none: `None`.
fn text_query(mut terms: Vec<Term>, prefix: bool) -> Option<Box<dyn Query>> {
    match (terms.len(), prefix) {
        (0, _) => None,
        (1, false) => terms.pop().map(term_query),
        (1, true) => terms.pop().map(prefix_query),
        (_, false) => Some(Box::new(PhraseQuery::new(terms))),
        (_, true) => {
            let mut query = PhrasePrefixQuery::new(terms);
            query.set_max_expansions(MAX_PHRASE_PREFIX_EXPANSIONS);
            Some(Box::new(query))
        }
    }
}

/// Every term that starts with `start` (a range over the term dictionary: no expansion limit).
fn prefix_query(start: Term) -> Box<dyn Query> {
    let upper = match prefix_end(start.serialized_value_bytes()) {
        Some(end) => Bound::Excluded(term_with_bytes(&start, &end)),
        None => Bound::Unbounded,
    };
    Box::new(InvertedIndexRangeQuery::new(Bound::Included(start), upper))
}

/// The smallest byte string greater than every string starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A term of the same field and type as `like` with `bytes` as its value.
fn term_with_bytes(like: &Term, bytes: &[u8]) -> Term {
    let mut term = like.clone();
    term.clear_with_type(like.typ());
    term.append_bytes(bytes);
    term
}

/// Evaluates a query against records that are not in any index (the consume endpoint's
/// `q`): the records of a batch go into a small in-memory index with the shared schema and
/// the parsed query runs over it, so a filter means exactly what the same search means.
pub struct RecordFilter {
    index: Index,
    fields: Fields,
    query: Box<dyn Query>,
    writer: tantivy::IndexWriter<tantivy::TantivyDocument>,
}

/// Memory of a filter's in-memory index writer (Tantivy's minimum is 15 MB).
const FILTER_WRITER_BYTES: usize = 15_000_000;

impl RecordFilter {
    /// Parses `text` (the search language); `None` for an empty query, which keeps all.
    pub fn new(text: &str) -> std::result::Result<Option<RecordFilter>, QueryError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let (schema, fields) = crate::schema::schema();
        let index = Index::create_in_ram(schema);
        let query = parse(text, &index, &fields)?;
        let writer = index
            .writer_with_num_threads(1, FILTER_WRITER_BYTES)
            .map_err(|e| QueryError::new(format!("cannot prepare the filter: {e}"), 0))?;
        Ok(Some(RecordFilter {
            index,
            fields,
            query,
            writer,
        }))
    }

    /// Which of `records` (each with its resolved time in nanoseconds) match, in order.
    pub fn matches(
        &mut self,
        records: &[(&bitesize_record::Record, i64)],
    ) -> tantivy::Result<Vec<bool>> {
        use crate::schema::{document, Origin};
        self.writer.delete_all_documents()?;
        for (position, (record, time_nanos)) in records.iter().enumerate() {
            // The batch position stands in for the offset, to map hits back.
            let origin = Origin {
                partition: 0,
                offset: position as i64,
            };
            self.writer
                .add_document(document(&self.fields, record, *time_nanos, origin))?;
        }
        self.writer.commit()?;
        let reader = self.index.reader()?;
        let searcher = reader.searcher();
        let mut keep = vec![false; records.len()];
        let hits = searcher.search(self.query.as_ref(), &tantivy::collector::DocSetCollector)?;
        for address in hits {
            let segment = searcher.segment_reader(address.segment_ord);
            if let Some(position) = segment.fast_fields().u64("offset")?.first(address.doc_id) {
                if let Some(slot) = keep.get_mut(position as usize) {
                    *slot = true;
                }
            }
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bitesize_record::Record;
    use serde_json::json;
    use tantivy::collector::DocSetCollector;
    use tantivy::{Index, IndexWriter, TantivyDocument};

    use super::*;
    use crate::schema::{document, schema, Origin};

    struct Doc {
        log: &'static str,
        pod: &'static str,
        container: &'static str,
        stream: &'static str,
        node: &'static str,
        image: &'static str,
        namespace: &'static str,
        labels: &'static [(&'static str, &'static str)],
        fields: serde_json::Value,
    }

    /// The records every test searches; a record's number is its offset.
    fn docs() -> Vec<Doc> {
        vec![
            // 0
            Doc {
                log: "GET /api/users 200 OK",
                pod: "web-1",
                container: "nginx",
                stream: "stdout",
                node: "node-a",
                image: "nginx:1.25",
                namespace: "shop",
                labels: &[("app", "web"), ("app.kubernetes.io/name", "frontend")],
                fields: json!({"status": 200, "latency_ms": 12.5, "msg": "request served"}),
            },
            // 1
            Doc {
                log: "Connection refused to database",
                pod: "db-0",
                container: "postgres",
                stream: "stderr",
                node: "node-b",
                image: "postgres:16",
                namespace: "shop",
                labels: &[("app", "db")],
                fields: json!({"latency_ms": 500, "level": "error", "user": {"id": 42}}),
            },
            // 2
            Doc {
                log: "connection reset by peer",
                pod: "web 1",
                container: "nginx",
                stream: "stderr",
                node: "node-a",
                image: "nginx:1.25",
                namespace: "shop",
                labels: &[("app.kubernetes.io/name", "backend"), ("team", "payments")],
                fields: json!({"latency_ms": 1500, "level": "warn", "code": "500"}),
            },
            // 3
            Doc {
                log: "user-service started in 3 seconds",
                pod: "api-7f9c",
                container: "api",
                stream: "stdout",
                node: "node-a",
                image: "registry.io/api:1.0",
                namespace: "shop",
                labels: &[],
                fields: json!({"latency_ms": -3, "a.b": "dotted", "ok": true, "ts": "2024-05-01T10:00:00Z"}),
            },
            // 4
            Doc {
                log: "Timeout while connecting; retrying",
                pod: "api-8d2e",
                container: "api",
                stream: "stdout",
                node: "node-b",
                image: "registryXio/api:2.0",
                namespace: "shop",
                labels: &[("app", "api")],
                fields: json!({"latency_ms": 500.5, "level": "ERROR", "big": 18446744073709551615u64}),
            },
            // 5
            Doc {
                log: "AND OR NOT are words too (really)",
                pod: "misc",
                container: "",
                stream: "stdout",
                node: "node-c",
                image: "busybox",
                namespace: "other",
                labels: &[],
                fields: serde_json::Value::Null,
            },
        ]
    }

    struct Fixture {
        index: Index,
        fields: Fields,
    }

    fn fixture() -> Fixture {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter<TantivyDocument> =
            index.writer_with_num_threads(1, 20_000_000).unwrap();
        for (i, doc) in docs().into_iter().enumerate() {
            let mut record = Record {
                log: doc.log.into(),
                stream: doc.stream.into(),
                ..Record::default()
            };
            record.kubernetes.pod_name = doc.pod.into();
            record.kubernetes.container_name = doc.container.into();
            record.kubernetes.host = doc.node.into();
            record.kubernetes.container_image = doc.image.into();
            record.kubernetes.namespace_name = doc.namespace.into();
            record.kubernetes.labels = doc
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>();
            record.fields = doc.fields.as_object().cloned();
            let origin = Origin {
                partition: 0,
                offset: i as i64,
            };
            writer
                .add_document(document(&fields, &record, 1_000 + i as i64, origin))
                .unwrap();
        }
        writer.commit().unwrap();
        Fixture { index, fields }
    }

    impl Fixture {
        /// Offsets of the records `query` matches, ascending.
        fn hits(&self, query: &str) -> Vec<u64> {
            let parsed = parse(query, &self.index, &self.fields)
                .unwrap_or_else(|e| panic!("query {:?} should parse: {e}", shown(query)));
            self.run(parsed.as_ref())
                .unwrap_or_else(|e| panic!("query {:?} should run: {e}", shown(query)))
        }

        fn run(&self, query: &dyn Query) -> tantivy::Result<Vec<u64>> {
            let searcher = self.index.reader()?.searcher();
            let mut hits = Vec::new();
            for address in searcher.search(query, &DocSetCollector)? {
                let reader = searcher.segment_reader(address.segment_ord);
                let offset = reader.fast_fields().u64("offset")?.first(address.doc_id);
                hits.push(offset.expect("every record has an offset"));
            }
            hits.sort_unstable();
            Ok(hits)
        }

        fn error(&self, query: &str) -> QueryError {
            match parse(query, &self.index, &self.fields) {
                Ok(_) => panic!("query {:?} should not parse", shown(query)),
                Err(e) => e,
            }
        }

        /// Asserts `query` fails at `position` with a message containing `needle`.
        fn fails(&self, query: &str, position: usize, needle: &str) {
            let e = self.error(query);
            let query = shown(query);
            assert_eq!(
                e.position, position,
                "position of the error in {query:?}: {e}"
            );
            assert!(
                e.message.contains(needle),
                "error for {query:?} is {:?}, wanted {needle:?}",
                e.message
            );
        }
    }

    const ALL: [u64; 6] = [0, 1, 2, 3, 4, 5];

    #[test]
    fn record_filter_agrees_with_search() {
        let fixture = fixture();
        let records: Vec<Record> = docs()
            .into_iter()
            .map(|doc| {
                let mut record = Record {
                    log: doc.log.into(),
                    stream: doc.stream.into(),
                    ..Record::default()
                };
                record.kubernetes.pod_name = doc.pod.into();
                record.kubernetes.container_name = doc.container.into();
                record.kubernetes.host = doc.node.into();
                record.kubernetes.container_image = doc.image.into();
                record.kubernetes.namespace_name = doc.namespace.into();
                record.kubernetes.labels = doc
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>();
                record.fields = doc.fields.as_object().cloned();
                record
            })
            .collect();
        let batch: Vec<(&Record, i64)> = records.iter().map(|r| (r, 1_000)).collect();
        assert!(
            RecordFilter::new("  ").unwrap().is_none(),
            "empty keeps all"
        );
        for query in [
            "error",
            "stream:stderr",
            "NOT error",
            "pod:web-*",
            "error OR timeout",
        ] {
            let mut filter = RecordFilter::new(query).unwrap().unwrap();
            // Twice: each batch is evaluated on its own.
            for _ in 0..2 {
                let kept: Vec<u64> = filter
                    .matches(&batch)
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter(|(_, keep)| **keep)
                    .map(|(i, _)| i as u64)
                    .collect();
                assert_eq!(kept, fixture.hits(query), "{query}");
            }
        }
        assert!(RecordFilter::new("pod:(").is_err());
    }

    #[test]
    fn empty_query_matches_everything() {
        let f = fixture();
        assert_eq!(f.hits(""), ALL);
        assert_eq!(f.hits("   \t\n "), ALL);
    }

    #[test]
    fn bare_words_search_the_message_as_the_index_tokenizes_it() {
        let f = fixture();
        assert_eq!(f.hits("connection"), [1, 2]);
        assert_eq!(f.hits("CONNECTION"), [1, 2]);
        assert_eq!(f.hits("database"), [1]);
        assert_eq!(f.hits("nothere"), [] as [u64; 0]);
        // Several tokens in one word: a phrase, in order.
        assert_eq!(f.hits("user-service"), [3]);
        assert_eq!(f.hits("reset-by"), [2]);
        assert_eq!(f.hits("by-reset"), [] as [u64; 0]);
        assert_eq!(f.hits("/api/users"), [0]);
        // Keywords only in upper case; in lower case they are words.
        assert_eq!(f.hits("and"), [5]);
        assert_eq!(f.hits("log:connection"), [1, 2]);
        // A backslash escapes: the parenthesis is part of the word.
        assert_eq!(f.hits(r"\(really\)"), [5]);
    }

    #[test]
    fn quoted_phrases() {
        let f = fixture();
        assert_eq!(f.hits("\"connection refused\""), [1]);
        assert_eq!(f.hits("\"Connection  Refused\""), [1]);
        assert_eq!(f.hits("\"refused connection\""), [] as [u64; 0]);
        assert_eq!(f.hits("\"timeout\""), [4]);
        assert_eq!(f.hits("\"AND\""), [5]);
        assert_eq!(f.hits("\"NOT are\""), [5]);
        assert_eq!(f.hits("log:\"reset by peer\""), [2]);
        assert_eq!(f.hits(r#""\"reset\" by""#), [2]);
    }

    #[test]
    fn boolean_operators() {
        let f = fixture();
        assert_eq!(f.hits("connection refused"), [1]);
        assert_eq!(f.hits("connection AND reset"), [2]);
        assert_eq!(f.hits("refused OR reset"), [1, 2]);
        assert_eq!(f.hits("refused OR reset OR timeout"), [1, 2, 4]);
        assert_eq!(f.hits("connection NOT refused"), [2]);
        assert_eq!(f.hits("connection AND NOT refused"), [2]);
        assert_eq!(f.hits("connection -refused"), [2]);
        assert_eq!(f.hits("connection -\"connection refused\""), [2]);
        assert_eq!(f.hits("connection -(refused OR peer)"), [] as [u64; 0]);
        assert_eq!(f.hits("(refused OR reset) (peer OR database)"), [1, 2]);
        assert_eq!(f.hits("((((connection))))"), [1, 2]);
        assert_eq!(f.hits("(connection)refused"), [1]);
    }

    #[test]
    fn negations_alone_subtract_from_everything() {
        let f = fixture();
        assert_eq!(f.hits("-connection"), [0, 3, 4, 5]);
        assert_eq!(f.hits("NOT connection"), [0, 3, 4, 5]);
        assert_eq!(f.hits("NOT connection NOT timeout"), [0, 3, 5]);
        assert_eq!(f.hits("NOT connection AND -timeout"), [0, 3, 5]);
        assert_eq!(f.hits("NOT NOT connection"), [1, 2]);
        assert_eq!(f.hits("--connection"), [1, 2]);
        assert_eq!(f.hits("refused OR -connection"), [0, 1, 3, 4, 5]);
        assert_eq!(f.hits("(-connection) OR (-timeout)"), ALL);
        assert_eq!(f.hits("-pod:web-1 -stream:stdout"), [1, 2]);
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let f = fixture();
        // OR binds loosest: timeout OR (connection AND refused).
        assert_eq!(f.hits("timeout OR connection AND refused"), [1, 4]);
        assert_eq!(f.hits("timeout OR connection refused"), [1, 4]);
        assert_eq!(f.hits("connection AND refused OR timeout"), [1, 4]);
        assert_eq!(f.hits("(timeout OR connection) AND refused"), [1]);
        // NOT binds tightest: (NOT connection) OR timeout.
        assert_eq!(f.hits("NOT connection OR timeout"), [0, 3, 4, 5]);
        assert_eq!(f.hits("NOT (connection OR timeout)"), [0, 3, 5]);
        // NOT applies to one clause: (NOT reset) AND connection.
        assert_eq!(f.hits("NOT reset connection"), [1]);
    }

    #[test]
    fn prefixes() {
        let f = fixture();
        assert_eq!(f.hits("conn*"), [1, 2, 4]);
        assert_eq!(f.hits("CONN*"), [1, 2, 4]);
        assert_eq!(f.hits("connection*"), [1, 2]);
        assert_eq!(f.hits("zz*"), [] as [u64; 0]);
        // The last word of a multi-word prefix is the prefix, the rest a phrase.
        assert_eq!(f.hits("user-serv*"), [3]);
        assert_eq!(f.hits("reset-b*"), [2]);
        assert_eq!(f.hits("peer-b*"), [] as [u64; 0]);
        assert_eq!(f.hits("*"), ALL);
        assert_eq!(f.hits("log:*"), ALL);
        // An escaped star is not a wildcard (and the tokenizer drops it).
        assert_eq!(f.hits(r"conn\*"), [] as [u64; 0]);
        assert_eq!(f.hits("-conn*"), [0, 3, 5]);
    }

    #[test]
    fn prefixes_on_raw_fields_and_labels_take_the_text_literally() {
        let f = fixture();
        assert_eq!(f.hits("pod:api-*"), [3, 4]);
        assert_eq!(f.hits("pod:web*"), [0, 2]);
        assert_eq!(f.hits("pod:web-*"), [0]);
        assert_eq!(f.hits("pod:Web*"), [] as [u64; 0]);
        // Regular expression characters mean themselves.
        assert_eq!(f.hits("image:registry.io*"), [3]);
        assert_eq!(f.hits("image:registry.*"), [3]);
        assert_eq!(f.hits("image:regis.ry*"), [] as [u64; 0]);
        assert_eq!(f.hits("pod:\"web *\""), [] as [u64; 0]);
        assert_eq!(f.hits(r"pod:web\ *"), [2]);
        assert_eq!(f.hits("labels.app:*"), [0, 1, 4]);
        assert_eq!(f.hits("labels.app:d*"), [1]);
        assert_eq!(f.hits("labels.app.kubernetes.io/name:front*"), [0]);
        assert_eq!(f.hits("fields.msg:serv*"), [0]);
        assert_eq!(f.hits("fields.msg:request-serv*"), [0]);
        assert_eq!(f.hits("fields.level:ERR*"), [1, 4]);
        // `fields.<path>:*`: the path holds anything.
        assert_eq!(f.hits("fields.latency_ms:*"), [0, 1, 2, 3, 4]);
        assert_eq!(f.hits("fields.user:*"), [1]);
        assert_eq!(f.hits("fields.level:*"), [1, 2, 4]);
    }

    #[test]
    fn metadata_fields_match_the_whole_value_exactly() {
        let f = fixture();
        assert_eq!(f.hits("pod:web-1"), [0]);
        assert_eq!(f.hits("pod:\"web 1\""), [2]);
        assert_eq!(f.hits(r"pod:web\ 1"), [2]);
        assert_eq!(f.hits("pod:web"), [] as [u64; 0]);
        assert_eq!(f.hits("pod:WEB-1"), [] as [u64; 0]);
        assert_eq!(f.hits("container:nginx"), [0, 2]);
        assert_eq!(f.hits("container:\"\""), [5]);
        assert_eq!(f.hits("stream:stderr"), [1, 2]);
        assert_eq!(f.hits("node:node-b"), [1, 4]);
        assert_eq!(f.hits("image:nginx:1.25"), [0, 2]);
        assert_eq!(f.hits("namespace:shop"), [0, 1, 2, 3, 4]);
        assert_eq!(f.hits("pod:web-1 OR pod:db-0"), [0, 1]);
        assert_eq!(f.hits("container:nginx connection"), [2]);
    }

    #[test]
    fn fluentd_aliases() {
        let f = fixture();
        assert_eq!(f.hits("kubernetes.namespace_name:other"), [5]);
        assert_eq!(f.hits("kubernetes.pod_name:db-0"), [1]);
        assert_eq!(f.hits("kubernetes.container_name:api"), [3, 4]);
        assert_eq!(f.hits("kubernetes.host:node-b"), [1, 4]);
        assert_eq!(f.hits("kubernetes.container_image:postgres:16"), [1]);
        assert_eq!(f.hits("kubernetes.labels.team:payments"), [2]);
    }

    #[test]
    fn labels_match_exactly_and_keys_keep_their_dots() {
        let f = fixture();
        assert_eq!(f.hits("labels.app:web"), [0]);
        assert_eq!(f.hits("labels.app:we"), [] as [u64; 0]);
        assert_eq!(f.hits("labels.app:Web"), [] as [u64; 0]);
        assert_eq!(f.hits("labels.team:payments"), [2]);
        assert_eq!(f.hits("labels.app.kubernetes.io/name:frontend"), [0]);
        assert_eq!(f.hits("labels.app.kubernetes.io/name:backend"), [2]);
        assert_eq!(f.hits("labels.app.kubernetes.io/name:\"backend\""), [2]);
        assert_eq!(f.hits("-labels.app:web labels.app:*"), [1, 4]);
    }

    #[test]
    fn fields_text_is_tokenized_like_the_message() {
        let f = fixture();
        assert_eq!(f.hits("fields.level:error"), [1, 4]);
        assert_eq!(f.hits("fields.level:ERROR"), [1, 4]);
        assert_eq!(f.hits("fields.msg:served"), [0]);
        assert_eq!(f.hits("fields.msg:\"request served\""), [0]);
        assert_eq!(f.hits("fields.msg:\"served request\""), [] as [u64; 0]);
        // Nested objects: dots nest.
        assert_eq!(f.hits("fields.user.id:42"), [1]);
        assert_eq!(f.hits("fields.user.id:43"), [] as [u64; 0]);
        // A key with a dot in it: escape the dot.
        assert_eq!(f.hits(r"fields.a\.b:dotted"), [3]);
        assert_eq!(f.hits("fields.a.b:dotted"), [] as [u64; 0]);
        // Booleans and dates are matched as such.
        assert_eq!(f.hits("fields.ok:true"), [3]);
        assert_eq!(f.hits("fields.ok:false"), [] as [u64; 0]);
        assert_eq!(f.hits("fields.ts:2024-05-01T10:00:00Z"), [3]);
        assert_eq!(f.hits("fields.ts:2024-05-01T12:00:00+02:00"), [3]);
        assert_eq!(f.hits("fields.ts:2024-05-01T10:00:01Z"), [] as [u64; 0]);
    }

    #[test]
    fn fields_numbers_match_as_numbers_and_as_text() {
        let f = fixture();
        assert_eq!(f.hits("fields.latency_ms:500"), [1]);
        assert_eq!(f.hits("fields.latency_ms:500.0"), [1]);
        assert_eq!(f.hits("fields.latency_ms:5e2"), [1]);
        assert_eq!(f.hits("fields.latency_ms:500.5"), [4]);
        assert_eq!(f.hits("fields.latency_ms:12.5"), [0]);
        assert_eq!(f.hits("fields.latency_ms:-3"), [3]);
        assert_eq!(f.hits("fields.status:200"), [0]);
        // `code` holds the text "500": the text reading matches.
        assert_eq!(f.hits("fields.code:500"), [2]);
        assert_eq!(f.hits("fields.code:\"500\""), [2]);
        assert_eq!(f.hits("fields.big:18446744073709551615"), [4]);
        assert_eq!(f.hits("fields.latency_ms:500 OR fields.code:500"), [1, 2]);
    }

    #[test]
    fn numeric_ranges_on_fields() {
        let f = fixture();
        // latency_ms: 0 → 12.5, 1 → 500, 2 → 1500, 3 → -3, 4 → 500.5
        assert_eq!(f.hits("fields.latency_ms:>500"), [2, 4]);
        assert_eq!(f.hits("fields.latency_ms:>=500"), [1, 2, 4]);
        assert_eq!(f.hits("fields.latency_ms:<500"), [0, 3]);
        assert_eq!(f.hits("fields.latency_ms:<=500"), [0, 1, 3]);
        assert_eq!(f.hits("fields.latency_ms:[100 TO 500]"), [1]);
        assert_eq!(f.hits("fields.latency_ms:[ 100  TO  500 ]"), [1]);
        assert_eq!(f.hits("fields.latency_ms:[12.5 TO 500]"), [0, 1]);
        assert_eq!(f.hits("fields.latency_ms:[-10 TO 13]"), [0, 3]);
        assert_eq!(f.hits("fields.latency_ms:[100 TO *]"), [1, 2, 4]);
        assert_eq!(f.hits("fields.latency_ms:[* TO 0]"), [3]);
        assert_eq!(f.hits("fields.latency_ms:[* TO *]"), [0, 1, 2, 3, 4]);
        assert_eq!(f.hits("fields.latency_ms:[600 TO 100]"), [] as [u64; 0]);
        // Fractional bounds round exactly on integers and compare exactly on decimals.
        assert_eq!(f.hits("fields.latency_ms:>499.5"), [1, 2, 4]);
        assert_eq!(f.hits("fields.latency_ms:>500.2"), [2, 4]);
        assert_eq!(f.hits("fields.latency_ms:>=500.5"), [2, 4]);
        assert_eq!(f.hits("fields.latency_ms:>=500.2"), [2, 4]);
        assert_eq!(f.hits("fields.latency_ms:<=499.5"), [0, 3]);
        assert_eq!(f.hits("fields.latency_ms:<500.5"), [0, 1, 3]);
        assert_eq!(f.hits("fields.latency_ms:[-3.5 TO -2.5]"), [3]);
        assert_eq!(f.hits("fields.latency_ms:>500.5"), [2]);
        assert_eq!(f.hits("fields.latency_ms:<-2.5"), [3]);
        assert_eq!(f.hits("fields.latency_ms:<-3.5"), [] as [u64; 0]);
        assert_eq!(f.hits("fields.latency_ms:>-3.5"), [0, 1, 2, 3, 4]);
        assert_eq!(f.hits("fields.latency_ms:<12.5"), [3]);
        assert_eq!(f.hits("fields.latency_ms:<=12.5"), [0, 3]);
        assert_eq!(f.hits("fields.latency_ms:[1e2 TO 1.5e3]"), [1, 2, 4]);
        assert_eq!(f.hits("fields.big:>9223372036854775807"), [4]);
        assert_eq!(f.hits("fields.big:<9223372036854775807"), [] as [u64; 0]);
        // Text values are not numbers.
        assert_eq!(f.hits("fields.code:>100"), [] as [u64; 0]);
        assert_eq!(f.hits("fields.user.id:[40 TO 50]"), [1]);
        assert_eq!(f.hits("fields.latency_ms:>100 -fields.level:warn"), [1, 4]);
        assert_eq!(f.hits("(fields.latency_ms:<0)"), [3]);
    }

    #[test]
    fn error_display_names_the_position() {
        let e = QueryError {
            message: "expected ')'".into(),
            position: 12,
        };
        assert_eq!(e.to_string(), "expected ')' at position 12");
        let f = fixture();
        assert_eq!(
            f.error("(a").to_string(),
            "'(' is never closed at position 0"
        );
    }

    #[test]
    fn unknown_fields_are_named_with_the_known_ones() {
        let f = fixture();
        let e = f.error("error foo:bar");
        assert_eq!(e.position, 6);
        for needle in [
            "unknown field 'foo'",
            "pod",
            "namespace",
            "labels.<key>",
            "fields.<path>",
            "kubernetes.host",
        ] {
            assert!(
                e.message.contains(needle),
                "{needle:?} not in {:?}",
                e.message
            );
        }
        f.fails("http://example.com", 0, "unknown field 'http'");
        f.fails("Pod:web", 0, "unknown field 'Pod'");
        f.fails("time:>5", 0, "from and to");
        f.fails("labels:x", 0, "labels.<key>");
        f.fails("fields:x", 0, "fields.<path>");
        f.fails("labels.:x", 7, "missing label key");
        f.fails("fields.:x", 7, "missing path");
        f.fails(":x", 0, "missing field name");
        // Positions count characters, not bytes.
        f.fails("héllo wörld foo:bar", 12, "unknown field 'foo'");
    }

    #[test]
    fn structural_errors_name_their_position() {
        let f = fixture();
        f.fails("(a b", 0, "'(' is never closed");
        f.fails("a (b (c)", 2, "'(' is never closed");
        f.fails("a b)", 3, "unexpected ')'");
        f.fails(")", 0, "unexpected ')'");
        f.fails("a ()", 3, "empty parentheses");
        f.fails("\"abc", 0, "unclosed quote");
        f.fails("a \"abc\\\"", 2, "unclosed quote");
        f.fails("pod:\"web", 4, "unclosed quote");
        f.fails("a AND", 5, "expected a clause after 'AND'");
        f.fails("a AND ", 6, "expected a clause after 'AND'");
        f.fails("a OR", 4, "expected a clause after 'OR'");
        f.fails("a OR OR b", 5, "expected a clause after 'OR', found 'OR'");
        f.fails("a AND OR b", 6, "expected a clause after 'AND', found 'OR'");
        f.fails("(a OR)", 5, "expected a clause after 'OR', found ')'");
        f.fails("OR a", 0, "'OR' needs a clause before it");
        f.fails("(AND a)", 1, "'AND' needs a clause before it");
        f.fails("NOT", 3, "expected a clause after 'NOT'");
        f.fails("a NOT", 5, "expected a clause after 'NOT'");
        f.fails("a -", 3, "right after '-'");
        f.fails("a - b", 3, "right after '-'");
        f.fails("-)", 1, "expected a clause after '-', found ')'");
        f.fails("->", 1, "nothing to search for in '>'");
        f.fails("a ... b", 2, "nothing to search for");
        f.fails("pod:", 4, "missing value after 'pod:'");
        f.fails("pod: web", 4, "missing value after 'pod:'");
        f.fails("(pod:)", 5, "missing value after 'pod:'");
        f.fails("pod:(a OR b)", 4, "found '('");
        f.fails("fields.level:--", 13, "nothing to search for");
    }

    #[test]
    fn range_errors_name_their_position() {
        let f = fixture();
        f.fails("fields.latency_ms:>abc", 19, "'abc' is not a number");
        f.fails("fields.latency_ms:>", 19, "expected a number after '>'");
        f.fails("fields.latency_ms:>=", 20, "expected a number after '>='");
        f.fails("fields.latency_ms:<= 5", 20, "expected a number after '<='");
        f.fails("fields.latency_ms:>nan", 19, "'nan' is not a number");
        f.fails("fields.latency_ms:>inf", 19, "'inf' is not a number");
        f.fails("fields.latency_ms:>1e999", 19, "out of range");
        f.fails("fields.latency_ms:>1.2.3", 19, "not a number");
        f.fails("fields.latency_ms:[1 TO x]", 24, "'x' is not a number");
        f.fails("fields.latency_ms:[1 5]", 21, "expected 'TO'");
        f.fails("fields.latency_ms:[1 to 5]", 21, "expected 'TO'");
        f.fails("fields.latency_ms:[1 TO 5", 25, "expected ']'");
        f.fails("fields.latency_ms:[1 TO 5 6]", 26, "expected ']'");
        f.fails("fields.latency_ms:[]", 19, "expected a number after '['");
        f.fails(
            "fields.latency_ms:[1 TO ]",
            24,
            "expected a number after 'TO'",
        );
        f.fails("pod:>5", 4, "ranges only work on fields.<path>");
        f.fails(
            "labels.app:[1 TO 2]",
            11,
            "ranges only work on fields.<path>",
        );
        f.fails("latency:>5", 0, "unknown field 'latency'");
    }

    #[test]
    fn limits() {
        let f = fixture();
        let nested = |n: usize| format!("{}connection{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(f.hits(&nested(MAX_DEPTH)), [1, 2]);
        f.fails(&nested(MAX_DEPTH + 1), MAX_DEPTH, "nests too deeply");
        f.fails(&nested(49_000), MAX_DEPTH, "nests too deeply");
        f.fails(
            &format!("{}connection", "NOT ".repeat(MAX_DEPTH + 1)),
            4 * MAX_DEPTH,
            "nests too deeply",
        );
        f.fails(
            &format!("{}connection", "-".repeat(60_000)),
            MAX_DEPTH,
            "nests too deeply",
        );
        f.fails(&"(".repeat(99_999), MAX_DEPTH, "nests too deeply");

        let clauses = |n: usize| vec!["peer"; n].join(" ");
        assert_eq!(f.hits(&clauses(MAX_CLAUSES)), [2]);
        f.fails(
            &clauses(MAX_CLAUSES + 1),
            MAX_CLAUSES * 5,
            "too many clauses",
        );
        let clauses = |n: usize| vec!["pod:x"; n].join(" OR ");
        assert_eq!(f.hits(&clauses(MAX_CLAUSES)), [] as [u64; 0]);

        let long = format!("connection {}", "x".repeat(MAX_QUERY_BYTES));
        f.fails(&long, MAX_QUERY_BYTES, "too long");
        // Multi-byte characters: the position is in characters.
        let long = "é".repeat(MAX_QUERY_BYTES);
        f.fails(&long, MAX_QUERY_BYTES / 2, "too long");
        let just_fits = format!("connection OR pod:{}", "a".repeat(MAX_QUERY_BYTES - 18));
        assert_eq!(just_fits.len(), MAX_QUERY_BYTES);
        assert_eq!(f.hits(&just_fits), [1, 2]);
        // Words over 40 bytes are not indexed: searching for one says so.
        f.fails(
            &format!("connection {}", "a".repeat(41)),
            11,
            "at most 40 characters",
        );
    }

    /// The examples of docs/query.md, word for word.
    #[test]
    fn documented_errors() {
        let f = fixture();
        let cases = [
            ("time:>2024", "the time cannot be searched in the query: use the from and to parameters at position 0"),
            ("labels:web", "'labels' needs a key: labels.<key>:value at position 0"),
            ("(error timeout", "'(' is never closed at position 0"),
            ("error)", "unexpected ')' without a matching '(' at position 5"),
            ("a ()", "empty parentheses at position 3"),
            ("\"connection refused", "unclosed quote at position 0"),
            ("error AND", "expected a clause after 'AND' at position 9"),
            ("error OR OR timeout", "expected a clause after 'OR', found 'OR' at position 9"),
            ("OR error", "'OR' needs a clause before it at position 0"),
            ("error - debug", "expected a clause right after '-' (no space in between) at position 7"),
            ("pod:", "missing value after 'pod:' at position 4"),
            ("a -> b", "nothing to search for in '>': text is searched by its words (letters and digits, at most 40 characters each) at position 3"),
            ("fields.latency_ms:>fast", "'fast' is not a number at position 19"),
            ("fields.latency_ms:[100 500]", "expected 'TO' in the range at position 23"),
            ("fields.latency_ms:[100 TO 500", "expected ']' to close the range at position 29"),
            ("pod:>5", "'>' starts a numeric range, and ranges only work on fields.<path> (put the value in quotes to search for it as text) at position 4"),
        ];
        for (query, expected) in cases {
            assert_eq!(f.error(query).to_string(), expected, "{query:?}");
        }
        assert!(f.error("foo:bar").to_string().starts_with(
            "unknown field 'foo': known fields are log, namespace, stream, pod, container, node, image, labels.<key> and fields.<path>, and the fluentd names "
        ));
    }

    #[test]
    fn documented_escapes() {
        let f = fixture();
        assert_eq!(f.hits("image:registry.io/*"), [3]);
        assert_eq!(f.hits("image:registryXio/*"), [4]);
        assert_eq!(f.hits(r"10\:30"), [] as [u64; 0]);
        assert_eq!(f.hits("\"GET /api/users\""), [0]);
        assert_eq!(f.hits(r"labels.example.com\:tier:gold"), [] as [u64; 0]);
        assert_eq!(f.hits("fields.ok:true fields.latency_ms:<0"), [3]);
    }

    /// Arbitrary text from an alphabet heavy in syntax never panics, and whatever parses runs.
    #[test]
    fn hostile_input_never_panics() {
        let f = fixture();
        let atoms = [
            "(",
            ")",
            "\"",
            "\\",
            "-",
            "*",
            ":",
            "[",
            "]",
            ">",
            "<",
            "=",
            " ",
            "AND",
            "OR",
            "NOT",
            "TO",
            "pod",
            "fields.",
            "labels.",
            "latency_ms",
            "a.b",
            "conn",
            "1",
            "-2.5",
            "e9",
            "é",
            "\0",
            "\u{1}",
            "kubernetes.host",
            "fields.latency_ms:",
            "log:",
            "\t",
            "{",
            "}",
            "nan",
            "\u{10FFFF}",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3_000 {
            let len = (next() % 12) as usize;
            let text: String = (0..len)
                .map(|_| atoms[(next() % atoms.len() as u64) as usize])
                .collect();
            if let Ok(query) = parse(&text, &f.index, &f.fields) {
                if let Err(e) = f.run(query.as_ref()) {
                    panic!("query {text:?} parsed but does not run: {e}");
                }
            }
        }
    }
}
