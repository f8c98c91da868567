//! What is changed on a record before it leaves the node: [`Redactor`] rewrites the message
//! (regex rules and named presets), [`FieldTransforms`] adds, renames and drops fields (the
//! job of fluentd's `record_transformer`). Both are compiled once from the config; a rule
//! that does not compile is a config error naming its key, never a silent pass.

use std::borrow::Cow;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

use crate::config::{RedactConfig, TransformConfig};
use crate::{Error, Result};

/// The named redaction presets, for errors and docs.
pub const PRESETS: [&str; 3] = ["card_numbers", "bearer_tokens", "emails"];

/// Redaction rules in order: presets first, then the configured rules.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    rules: Vec<RedactRule>,
}

#[derive(Debug, Clone)]
struct RedactRule {
    name: String,
    regex: Regex,
    replacement: Replacement,
}

#[derive(Debug, Clone)]
enum Replacement {
    /// A `regex` replacement template (`$1`, `${name}`).
    Template(String),
    /// Digit runs that pass the Luhn check are replaced; other numbers (ids, timestamps)
    /// are kept.
    CardNumber,
}

impl Redactor {
    pub fn new(config: &RedactConfig) -> Result<Redactor> {
        let mut rules = Vec::new();
        for (i, preset) in config.presets.iter().enumerate() {
            let (pattern, replacement) = match preset.as_str() {
                // 13 to 19 digits, optionally grouped by spaces or dashes.
                "card_numbers" => (r"\b\d(?:[ -]?\d){12,18}\b", Replacement::CardNumber),
                "bearer_tokens" => (
                    r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*",
                    Replacement::Template("${1}${2}[REDACTED]".to_owned()),
                ),
                "emails" => (
                    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                    Replacement::Template("[REDACTED:email]".to_owned()),
                ),
                other => {
                    return Err(Error::Config(format!(
                        "redact.presets[{i}]: {other:?} is not one of {}",
                        PRESETS.join(", ")
                    )))
                }
            };
            rules.push(RedactRule {
                name: preset.clone(),
                regex: Regex::new(pattern).expect("preset patterns compile"),
                replacement,
            });
        }
        for (i, rule) in config.rules.iter().enumerate() {
            let key = format!("redact.rules[{i}].pattern");
            let regex = Regex::new(&rule.pattern).map_err(|e| {
                Error::Config(format!("{key}: {:?} does not compile: {e}", rule.pattern))
            })?;
            rules.push(RedactRule {
                name: rule.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
                regex,
                replacement: Replacement::Template(rule.replacement.clone()),
            });
        }
        Ok(Redactor { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rewrites `text` in place; `hit` is called with the name of each rule that changed
    /// something.
    pub fn redact(&self, text: &mut String, mut hit: impl FnMut(&str)) {
        for rule in &self.rules {
            let replaced = match &rule.replacement {
                Replacement::Template(template) => rule.regex.replace_all(text, template.as_str()),
                Replacement::CardNumber => rule.regex.replace_all(text, |caps: &Captures| {
                    let digits = &caps[0];
                    if luhn_valid(digits) {
                        "[REDACTED:card_number]".to_owned()
                    } else {
                        digits.to_owned()
                    }
                }),
            };
            if let Cow::Owned(new) = replaced {
                if new != *text {
                    hit(&rule.name);
                    *text = new;
                }
            }
        }
    }
}

/// The Luhn checksum of the digits in `s` (separators skipped).
fn luhn_valid(s: &str) -> bool {
    let mut sum = 0;
    let mut count = 0;
    for (i, digit) in s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        count += 1;
        sum += if i % 2 == 1 {
            let d = digit * 2;
            if d > 9 {
                d - 9
            } else {
                d
            }
        } else {
            digit
        };
    }
    (13..=19).contains(&count) && sum % 10 == 0
}

/// A dotted path into the record (`kubernetes.labels.team`).
type FieldPath = Vec<String>;

/// Renames, then additions, then drops, on the record as a JSON object.
#[derive(Debug, Clone, Default)]
pub struct FieldTransforms {
    rename: Vec<(FieldPath, FieldPath)>,
    add: Vec<(FieldPath, Value)>,
    drop: Vec<FieldPath>,
}

fn field_path(key: &str, path: &str) -> Result<FieldPath> {
    let segments: FieldPath = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(Error::Config(format!(
            "{key}: {path:?} is not a dotted field path like kubernetes.labels.team"
        )));
    }
    Ok(segments)
}

impl FieldTransforms {
    pub fn new(config: &TransformConfig) -> Result<FieldTransforms> {
        let mut rename = Vec::new();
        for (from, to) in &config.rename {
            let key = format!("transforms.rename.{from}");
            rename.push((field_path(&key, from)?, field_path(&key, to)?));
        }
        let mut add = Vec::new();
        for (path, value) in &config.add {
            add.push((
                field_path(&format!("transforms.add.{path}"), path)?,
                value.clone(),
            ));
        }
        let mut drop = Vec::new();
        for (i, path) in config.drop.iter().enumerate() {
            drop.push(field_path(&format!("transforms.drop[{i}]"), path)?);
        }
        Ok(FieldTransforms { rename, add, drop })
    }

    pub fn is_empty(&self) -> bool {
        self.rename.is_empty() && self.add.is_empty() && self.drop.is_empty()
    }

    pub fn apply(&self, record: &mut Map<String, Value>) {
        // All renamed values are taken out first, so renames do not depend on their order
        // (`a → b` and `b → a` swap).
        let moved: Vec<(&FieldPath, Value)> = self
            .rename
            .iter()
            .filter_map(|(from, to)| remove(record, from).map(|value| (to, value)))
            .collect();
        for (to, value) in moved {
            set(record, to, value);
        }
        for (path, value) in &self.add {
            set(record, path, value.clone());
        }
        for path in &self.drop {
            remove(record, path);
        }
    }
}

fn remove(record: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut map = record;
    for segment in parents {
        map = map.get_mut(segment)?.as_object_mut()?;
    }
    map.remove(last)
}

/// Sets `path`, creating objects on the way; a non-object in the way is replaced.
fn set(record: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = record;
    for segment in parents {
        let entry = map
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        map = entry.as_object_mut().expect("an object");
    }
    map.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedactRuleConfig;
    use serde_json::json;

    fn redactor(presets: &[&str], rules: &[(&str, &str)]) -> Result<Redactor> {
        Redactor::new(&RedactConfig {
            presets: presets.iter().map(|p| p.to_string()).collect(),
            rules: rules
                .iter()
                .map(|(pattern, replacement)| RedactRuleConfig {
                    name: None,
                    pattern: pattern.to_string(),
                    replacement: replacement.to_string(),
                })
                .collect(),
        })
    }

    fn redacted(redactor: &Redactor, text: &str) -> (String, Vec<String>) {
        let mut text = text.to_owned();
        let mut hits = Vec::new();
        redactor.redact(&mut text, |name| hits.push(name.to_owned()));
        (text, hits)
    }

    #[test]
    fn presets_redact_cards_tokens_and_emails() {
        let r = redactor(&["card_numbers", "bearer_tokens", "emails"], &[]).unwrap();
        let (text, hits) = redacted(
            &r,
            "paid with 4111 1111 1111 1111 and 5500-0000-0000-0004, order 1234567890123, \
             Authorization: Bearer eyJhbGciOi.J9x-_y== by ann.lee+x@mail.example.com",
        );
        assert_eq!(
            text,
            "paid with [REDACTED:card_number] and [REDACTED:card_number], order 1234567890123, \
             Authorization: Bearer [REDACTED] by [REDACTED:email]"
        );
        assert_eq!(hits, ["card_numbers", "bearer_tokens", "emails"]);
        // Nothing to redact: no hit, text untouched.
        let (text, hits) = redacted(&r, "GET /cart 200 in 12ms, trace 1700000000123456789");
        assert_eq!(text, "GET /cart 200 in 12ms, trace 1700000000123456789");
        assert!(hits.is_empty());
    }

    #[test]
    fn custom_rules_use_capture_groups_and_run_after_presets() {
        let r = redactor(&["emails"], &[(r"(password=)\S+", "${1}***")]).unwrap();
        let (text, hits) = redacted(&r, "login a@b.io password=hunter2 ok");
        assert_eq!(text, "login [REDACTED:email] password=*** ok");
        assert_eq!(hits, ["emails", "rules[0]"]);
    }

    #[test]
    fn bad_rules_are_config_errors_naming_the_key() {
        let err = redactor(&[], &[("ok", "x"), ("(unclosed", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("redact.rules[1].pattern"), "{err}");
        let err = redactor(&["emails", "phone_numbers"], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redact.presets[1]") && err.contains("card_numbers"),
            "{err}"
        );
        let err = FieldTransforms::new(&TransformConfig {
            drop: vec!["fields..x".into()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("transforms.drop[0]"), "{err}");
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("3782-822463-10005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("0000"));
    }

    #[test]
    fn fields_are_renamed_added_and_dropped() {
        let t = FieldTransforms::new(&TransformConfig {
            add: [
                ("env".to_owned(), json!("prod")),
                ("kubernetes.labels.team".to_owned(), json!("payments")),
                ("meta.version".to_owned(), json!(3)),
            ]
            .into(),
            rename: [
                ("log".to_owned(), "message".to_owned()),
                ("stream".to_owned(), "log".to_owned()),
                ("missing".to_owned(), "x".to_owned()),
            ]
            .into(),
            drop: vec![
                "docker".into(),
                "fields.secret".into(),
                "nothing.here".into(),
            ],
        })
        .unwrap();
        let mut record = json!({
            "log": "hello", "stream": "stdout", "docker": {"container_id": "abc"},
            "kubernetes": {"labels": {"app": "web"}}, "fields": {"secret": 1, "ok": 2},
            "meta": "not an object"
        });
        t.apply(record.as_object_mut().unwrap());
        assert_eq!(
            record,
            json!({
                "message": "hello", "log": "stdout", "env": "prod",
                "kubernetes": {"labels": {"app": "web", "team": "payments"}},
                "fields": {"ok": 2}, "meta": {"version": 3}
            })
        );
    }
}
