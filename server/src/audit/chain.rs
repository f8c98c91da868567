//! The hash that links each audit event to the one before it.
//!
//! `hash = lowercase hex of SHA-256(encoding)`, where the encoding is a fixed sequence of
//! fields, each written as its length in bytes (8-byte big-endian unsigned) followed by its
//! UTF-8 bytes; an optional field is one byte `0x00` when absent, or `0x01` followed by the
//! field as above when present. In order:
//!
//! | # | field | text hashed |
//! |---|---|---|
//! | 1 | domain tag | `bitesize-audit-v1` |
//! | 2 | `prev_hash` | as stored (64 hex digits) |
//! | 3 | `id` | decimal |
//! | 4 | `at` | RFC 3339 in UTC, always 6 fractional digits and `Z`: `2026-11-25T10:00:00.123456Z` |
//! | 5 | `actor` | as stored |
//! | 6 | `action` | as stored |
//! | 7 | `namespaces` | the stored JSON text |
//! | 8 | `query` | optional, as stored |
//! | 9 | `hits` | optional, decimal |
//! | 10 | `reason` | optional, as stored |
//! | 11 | `detail` | the stored JSON text |
//!
//! Length prefixes make the encoding unambiguous (no separator can be forged by a field's
//! content), and hashing the stored JSON text rather than a re-serialisation keeps
//! verification independent of any JSON library's formatting.

use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

use super::entity::Model;

/// `prev_hash` of the first event in the chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &str = "bitesize-audit-v1";

/// The hash `event` must carry, computed from all its other fields (its own `hash` is
/// ignored): lowercase hex SHA-256 over the tag `bitesize-audit-v1`, `prev_hash`, `id`
/// (decimal), `at` (RFC 3339, UTC, 6 fractional digits, `Z`), `actor`, `action`,
/// `namespaces`, `query`?, `hits`?, `reason`?, `detail` (stored text), each field as an
/// 8-byte big-endian length and its UTF-8 bytes, an optional (`?`) one as `0x00` when
/// absent or `0x01` and the field when present.
pub fn event_hash(event: &Model) -> String {
    let mut hasher = Sha256::new();
    field(&mut hasher, DOMAIN);
    field(&mut hasher, &event.prev_hash);
    field(&mut hasher, &event.id.to_string());
    field(
        &mut hasher,
        &event.at.to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    field(&mut hasher, &event.actor);
    field(&mut hasher, &event.action);
    field(&mut hasher, &event.namespaces);
    optional(&mut hasher, event.query.as_deref());
    optional(&mut hasher, event.hits.map(|h| h.to_string()).as_deref());
    optional(&mut hasher, event.reason.as_deref());
    field(&mut hasher, &event.detail);
    hex(&hasher.finalize())
}

fn field(hasher: &mut Sha256, text: &str) {
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

fn optional(hasher: &mut Sha256, text: Option<&str>) {
    match text {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            field(hasher, text);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}
