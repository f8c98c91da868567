//! Writing a record's JSON straight from borrowed parts, for the shipper's per-line path:
//! no [`Record`](crate::Record) is built, no string is cloned, and a message that is a JSON
//! object goes into `fields` as its own text (checked, not parsed into a tree and printed
//! again). What it writes decodes with [`Record::decode`](crate::Record::decode) to the same
//! record as [`Record::encode`](crate::Record::encode) of the same parts (tested below).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Mark;

/// Scratch space kept between records (a longer record's is let go).
const SCRATCH_KEPT: usize = 1 << 20;

/// The parts of one record, borrowed from where they already are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordParts<'a> {
    pub time: Option<&'a str>,
    pub stream: &'a str,
    pub log: &'a str,
    pub container_id: &'a str,
    pub namespace_name: &'a str,
    pub pod_name: &'a str,
    /// Left out when empty, like `Record`'s.
    pub pod_id: &'a str,
    pub container_name: &'a str,
    pub container_image: &'a str,
    pub host: &'a str,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// More `kubernetes` members (`annotations`, `owner`, ...), written after the named ones.
    pub kubernetes_extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Whether `fields` holds the message (when it is a JSON object; see [`json_object`]).
    pub merge_json_log: bool,
    pub cluster: Option<&'a str>,
    pub marks: &'a [Mark],
}

impl RecordParts<'_> {
    /// Appends the record's JSON to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(time) = self.time {
            key(out, "time");
            string(out, time);
            out.push(b',');
        }
        key(out, "stream");
        string(out, self.stream);
        out.extend_from_slice(b",\"log\":");
        string(out, self.log);
        out.extend_from_slice(b",\"docker\":{\"container_id\":");
        string(out, self.container_id);
        out.extend_from_slice(b"},\"kubernetes\":{\"namespace_name\":");
        string(out, self.namespace_name);
        out.extend_from_slice(b",\"pod_name\":");
        string(out, self.pod_name);
        if !self.pod_id.is_empty() {
            out.extend_from_slice(b",\"pod_id\":");
            string(out, self.pod_id);
        }
        out.extend_from_slice(b",\"container_name\":");
        string(out, self.container_name);
        if !self.container_image.is_empty() {
            out.extend_from_slice(b",\"container_image\":");
            string(out, self.container_image);
        }
        if !self.host.is_empty() {
            out.extend_from_slice(b",\"host\":");
            string(out, self.host);
        }
        if let Some(labels) = self.labels.filter(|l| !l.is_empty()) {
            out.extend_from_slice(b",\"labels\":");
            serde_json::to_writer(&mut *out, labels).expect("writing to a Vec cannot fail");
        }
        for (name, value) in self.kubernetes_extra.into_iter().flatten() {
            out.push(b',');
            key(out, name);
            serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail");
        }
        out.push(b'}');
        if self.merge_json_log {
            if let Some(object) = json_object(self.log) {
                out.extend_from_slice(b",\"fields\":");
                out.extend_from_slice(object.as_bytes());
            }
        }
        if let Some(cluster) = self.cluster {
            out.extend_from_slice(b",\"cluster\":");
            string(out, cluster);
        }
        if !self.marks.is_empty() {
            out.extend_from_slice(b",\"marks\":");
            serde_json::to_writer(&mut *out, self.marks).expect("writing to a Vec cannot fail");
        }
        out.push(b'}');
    }

    /// The record's JSON, in a buffer of its size. Written in a buffer kept per thread
    /// first: escaping needs room for the worst case, which is not to be kept per record.
    pub fn to_vec(&self) -> Vec<u8> {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            self.write(scratch);
            let record = scratch.clone();
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
            record
        })
    }
}

fn key(out: &mut Vec<u8>, name: &str) {
    string(out, name);
    out.push(b':');
}

/// `s` as a JSON string, escaped exactly as `serde_json` escapes it, eight bytes at a time
/// between the bytes that need escaping (`"`, `\\`, control characters).
fn string(out: &mut Vec<u8>, s: &str) {
    let start = out.len();
    // Room for the worst case (every byte as `\u00XX`), the quotes and a word written ahead.
    out.resize(start + s.len() * 6 + 2 + 8, 0);
    let written = escape_into(s.as_bytes(), &mut out[start..]);
    out.truncate(start + written);
}

/// Writes `bytes` as a quoted JSON string at the start of `dst`; returns its length.
fn escape_into(bytes: &[u8], dst: &mut [u8]) -> usize {
    dst[0] = b'"';
    let (mut i, mut j) = (0, 1);
    while let Some(word) = bytes.get(i..i + 8) {
        let word: [u8; 8] = word.try_into().expect("8 bytes");
        // Copied whole; from the first byte that needs escaping on, it is written over.
        dst[j..j + 8].copy_from_slice(&word);
        let special = needs_escape(u64::from_le_bytes(word));
        if special == 0 {
            i += 8;
            j += 8;
            continue;
        }
        // The lowest flagged byte is exact (the flags above it may not be).
        let clean = special.trailing_zeros() as usize / 8;
        i += clean;
        j += clean;
        j += escape(bytes[i], &mut dst[j..]);
        i += 1;
    }
    for &byte in &bytes[i..] {
        if ESCAPE[usize::from(byte)] == 0 {
            dst[j] = byte;
            j += 1;
        } else {
            j += escape(byte, &mut dst[j..]);
        }
    }
    dst[j] = b'"';
    j + 1
}

/// A high bit set in each byte of `word` that is `"`, `\\` or below 0x20 (the lowest one
/// exactly; bytes above a flagged one may be flagged wrongly).
fn needs_escape(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    control
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
}

/// What follows the backslash for each byte, as `serde_json` writes it; 0: not escaped.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes the escape of `byte` at the start of `dst`; returns its length.
fn escape(byte: u8, dst: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(byte)] {
        b'u' => {
            dst[..6].copy_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
            6
        }
        short => {
            dst[..2].copy_from_slice(&[b'\\', short]);
            2
        }
    }
}

/// The message as the text of a JSON object, when it is one: the same messages
/// `serde_json` parses into an object (same syntax, numbers, escapes and nesting limit), with
/// whitespace around it trimmed. Checked without building a tree.
pub fn json_object(message: &str) -> Option<&str> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    let text = message.trim_end();
    let object = match quick_scan(text.as_bytes()) {
        Scan::Object => true,
        Scan::Invalid => false,
        Scan::Unsure => serde_json::from_str::<Object>(text).is_ok(),
    };
    object.then(|| text.trim_start_matches([' ', '\t', '\n', '\r']))
}

/// What [`quick_scan`] found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// One JSON object, with whitespace around it.
    Object,
    Invalid,
    /// Up to serde_json's own checks: a `\u` escape (surrogates), an exponent or a very
    /// long integer (range), deep nesting (its limit).
    Unsure,
}

/// Nesting that [`quick_scan`] leaves to serde_json (whose limit is 128).
const QUICK_DEPTH: usize = 100;
/// Integer digits that [`quick_scan`] leaves to serde_json (an f64 ends near 1e308).
const QUICK_DIGITS: usize = 300;

/// A quick pass over `text` with the JSON grammar, for the plain JSON of log lines: where
/// that grammar alone decides, it decides as serde_json does (tested); the rest is `Unsure`.
fn quick_scan(text: &[u8]) -> Scan {
    let start = skip_whitespace(text, 0);
    if text.get(start) != Some(&b'{') {
        return Scan::Invalid;
    }
    match scan_value(text, start, 0) {
        Ok(end) if skip_whitespace(text, end) == text.len() => Scan::Object,
        Ok(_) => Scan::Invalid,
        Err(scan) => scan,
    }
}

fn skip_whitespace(text: &[u8], mut i: usize) -> usize {
    while matches!(text.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end of the value at `i` (no whitespace before it).
fn scan_value(text: &[u8], i: usize, depth: usize) -> Result<usize, Scan> {
    match text.get(i) {
        Some(b'{') => scan_container(text, i, depth, b'}'),
        Some(b'[') => scan_container(text, i, depth, b']'),
        Some(b'"') => scan_string(text, i),
        Some(b't') => literal(text, i, b"true"),
        Some(b'f') => literal(text, i, b"false"),
        Some(b'n') => literal(text, i, b"null"),
        Some(b'-' | b'0'..=b'9') => scan_number(text, i),
        _ => Err(Scan::Invalid),
    }
}

fn literal(text: &[u8], i: usize, word: &[u8]) -> Result<usize, Scan> {
    if text[i..].starts_with(word) {
        Ok(i + word.len())
    } else {
        Err(Scan::Invalid)
    }
}

/// An object (`close` is `}`: members are `"key": value`) or an array.
fn scan_container(text: &[u8], i: usize, depth: usize, close: u8) -> Result<usize, Scan> {
    if depth >= QUICK_DEPTH {
        return Err(Scan::Unsure);
    }
    let mut i = skip_whitespace(text, i + 1);
    if text.get(i) == Some(&close) {
        return Ok(i + 1);
    }
    loop {
        if close == b'}' {
            if text.get(i) != Some(&b'"') {
                return Err(Scan::Invalid);
            }
            i = skip_whitespace(text, scan_string(text, i)?);
            if text.get(i) != Some(&b':') {
                return Err(Scan::Invalid);
            }
            i = skip_whitespace(text, i + 1);
        }
        i = skip_whitespace(text, scan_value(text, i, depth + 1)?);
        match text.get(i) {
            Some(b',') => i = skip_whitespace(text, i + 1),
            Some(&c) if c == close => return Ok(i + 1),
            _ => return Err(Scan::Invalid),
        }
    }
}

/// The string whose opening quote is at `i`, eight bytes at a time between the bytes
/// that end it, escape or refuse (`"`, `\\`, control characters).
fn scan_string(text: &[u8], i: usize) -> Result<usize, Scan> {
    let mut i = i + 1;
    loop {
        while let Some(word) = text.get(i..i + 8) {
            let special = needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            if special != 0 {
                i += special.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        match text.get(i) {
            None => return Err(Scan::Invalid),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match text.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => return Err(Scan::Unsure),
                _ => return Err(Scan::Invalid),
            },
            Some(0..=0x1f) => return Err(Scan::Invalid),
            Some(_) => i += 1,
        }
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`; an exponent or a very long integer is `Unsure`.
fn scan_number(text: &[u8], i: usize) -> Result<usize, Scan> {
    let digits = |from: usize| {
        text[from..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(text.len() - from)
    };
    let mut i = i + usize::from(text[i] == b'-');
    let integer = digits(i);
    if integer == 0 || (integer > 1 && text[i] == b'0') {
        return Err(Scan::Invalid);
    }
    if integer > QUICK_DIGITS {
        return Err(Scan::Unsure);
    }
    i += integer;
    if text.get(i) == Some(&b'.') {
        let fraction = digits(i + 1);
        if fraction == 0 {
            return Err(Scan::Invalid);
        }
        i += 1 + fraction;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        return Err(Scan::Unsure);
    }
    Ok(i)
}

/// A JSON object, checked and thrown away.
struct Object;

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
        deserializer.deserialize_map(Checked).map(|_| Object)
    }
}

/// Any JSON value, checked and thrown away. Unlike `serde::de::IgnoredAny`, which skips
/// strings and numbers without decoding them, it decodes them as `serde_json::Value` does,
/// so it refuses what `Value` refuses (a lone surrogate escape, a number out of range).
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mark, Record};

    /// The record `Record::encode` would write for `parts` (the reference layout).
    fn reference(parts: &RecordParts) -> Record {
        let mut record = Record {
            time: parts.time.map(str::to_owned),
            stream: parts.stream.to_owned(),
            log: parts.log.to_owned(),
            cluster: parts.cluster.map(str::to_owned),
            marks: parts.marks.to_vec(),
            ..Default::default()
        };
        record.docker.container_id = parts.container_id.to_owned();
        let k8s = &mut record.kubernetes;
        k8s.namespace_name = parts.namespace_name.to_owned();
        k8s.pod_name = parts.pod_name.to_owned();
        k8s.pod_id = parts.pod_id.to_owned();
        k8s.container_name = parts.container_name.to_owned();
        k8s.container_image = parts.container_image.to_owned();
        k8s.host = parts.host.to_owned();
        k8s.labels = parts.labels.cloned().unwrap_or_default();
        k8s.extra = parts.kubernetes_extra.cloned().unwrap_or_default();
        if parts.merge_json_log {
            // What the shipper did before: parse into a tree.
            let trimmed = record.log.trim_start();
            if trimmed.starts_with('{') {
                if let Ok(serde_json::Value::Object(map)) =
                    serde_json::from_str(record.log.trim_end())
                {
                    record.fields = Some(map);
                }
            }
        }
        Record::decode(&record.encode()).unwrap()
    }

    const MESSAGES: &[&str] = &[
        "",
        "plain text with \"quotes\", a \\ and a\ttab\u{1}\u{7f} é 漢 🎉",
        r#"{"level":"info","msg":"request served","status":200,"latency_ms":12.5}"#,
        "  {\"a\": [1, 2, {\"b\": null}], \"c\": true}  \n",
        r#"{"dup":1,"dup":2}"#,
        r#"{"big":18446744073709551616,"neg":-0,"exp":1E2,"f":1.10}"#,
        r#"{"escaped":"\u00e9\n\"\\\/","pair":"\ud83c\udf89"}"#,
        r#"{"lone":"\ud800"}"#,
        r#"{"huge":1e400}"#,
        "{\"ctrl\":\"a\u{1}b\"}",
        r#"{"trailing":1} x"#,
        r#"{"unclosed":1"#,
        r#"[1,2]"#,
        r#"{}"#,
        "\u{a0}{\"nbsp\":1}",
        "{\"nbsp_after\":1}\u{a0}",
        "{\"a\":1}\r",
    ];

    #[test]
    fn decodes_to_what_record_encode_gives() {
        let labels = BTreeMap::from([("app".to_owned(), "web \"x\"".to_owned())]);
        let extra = serde_json::json!({"owner": {"kind": "ReplicaSet", "name": "w"},
            "metadata_unavailable": true});
        for message in MESSAGES {
            for full in [false, true] {
                let parts = RecordParts {
                    time: full.then_some("2026-11-25T10:00:00.123456789Z"),
                    stream: "stdout",
                    log: message,
                    container_id: "3a38",
                    namespace_name: "shop",
                    pod_name: "web-7d9c",
                    pod_id: if full { "uid-1" } else { "" },
                    container_name: "web",
                    container_image: if full { "img:1" } else { "" },
                    host: if full { "node-1" } else { "" },
                    labels: full.then_some(&labels),
                    kubernetes_extra: full.then(|| extra.as_object().unwrap()),
                    merge_json_log: true,
                    cluster: full.then_some("prod"),
                    marks: if full {
                        &[Mark::ParseError, Mark::InvalidUtf8]
                    } else {
                        &[]
                    },
                };
                let written = parts.to_vec();
                let decoded = Record::decode(&written).unwrap_or_else(|e| {
                    panic!("{message:?}: {e}: {}", String::from_utf8_lossy(&written))
                });
                assert_eq!(decoded, reference(&parts), "{message:?}");
            }
        }
    }

    #[test]
    fn json_object_accepts_what_value_accepts() {
        for message in MESSAGES {
            let value = message.trim_start().starts_with('{')
                && matches!(
                    serde_json::from_str(message.trim_end()),
                    Ok(serde_json::Value::Object(_))
                );
            assert_eq!(json_object(message).is_some(), value, "{message:?}");
        }
        let deep = "{\"a\":".repeat(200) + "1" + &"}".repeat(200);
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
        assert_eq!(json_object(&deep), None, "the nesting limit is the same");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut texts: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        texts.extend(MESSAGES.iter().map(|m| m.to_string()));
        let all: String = (0u8..=0x7f).map(char::from).collect();
        // Specials at every position of an 8-byte word, and at the ends.
        for offset in 0..17 {
            for special in ["\"", "\\", "\n", "\u{1f}", "é"] {
                texts.push(format!(
                    "{}{special}{}",
                    "a".repeat(offset),
                    "b".repeat(offset % 5)
                ));
            }
            texts.push(all[offset..].to_owned() + &all[..offset]);
        }
        for text in texts {
            let mut out = Vec::new();
            string(&mut out, &text);
            assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{text:?}");
        }
    }

    /// Whether serde_json's `Value` takes `text` (trimmed at the end) as an object: the
    /// acceptance `json_object` must keep.
    fn value_takes(text: &str) -> bool {
        text.trim_start().starts_with('{')
            && matches!(
                serde_json::from_str(text.trim_end()),
                Ok(serde_json::Value::Object(_))
            )
    }

    #[test]
    fn quick_scan_decides_as_serde_json_on_mutated_json() {
        let seeds = [
            r#"{"level":"info","msg":"request served","status":200,"latency_ms":12.5,"ok":true,"x":null}"#,
            r#"{"a":[1,-2,0.5,{"b":"c\"d\\e\/f\n"}],"e":{},"f":[],"g":-0}"#,
            " { \"k\" : [ true , false , null ] } ",
        ];
        // Bytes that make and break JSON.
        let alphabet = b"{}[]:,\"\\/ -+.0123456789eEtrufalsnbx\t\n\r\x01\x7f";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut decided = 0;
        for _ in 0..20_000 {
            let mut text = seeds[next(seeds.len())].as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(text.len() + 1);
                let byte = alphabet[next(alphabet.len())];
                match next(3) {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ if at < text.len() => text[at] = byte,
                    _ => {}
                }
            }
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            if quick_scan(text.trim_end().as_bytes()) != Scan::Unsure {
                decided += 1;
            }
            assert_eq!(json_object(&text).is_some(), value_takes(&text), "{text:?}");
        }
        assert!(decided > 10_000, "the quick scan decided only {decided}");
    }

    #[test]
    fn layout_is_the_one_record_encode_writes() {
        let parts = RecordParts {
            time: Some("t"),
            stream: "stdout",
            log: r#"{"a":1}"#,
            container_id: "c",
            namespace_name: "ns",
            pod_name: "p",
            container_name: "w",
            host: "n",
            merge_json_log: true,
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(parts.to_vec()).unwrap(),
            r#"{"time":"t","stream":"stdout","log":"{\"a\":1}","docker":{"container_id":"c"},"kubernetes":{"namespace_name":"ns","pod_name":"p","container_name":"w","host":"n"},"fields":{"a":1}}"#
        );
        assert_eq!(parts.to_vec(), reference(&parts).encode());
    }
}
