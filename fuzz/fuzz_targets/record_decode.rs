//! The record decoder the server's ingest uses (`record/src/lib.rs`, `Record::decode`), then
//! what ingest does next: resolve the time and build the index document
//! (`query/src/schema.rs`). Any Kafka payload either decodes or is a decode error (ingest then
//! keeps it as a `not_json` record); a decoded record encodes and decodes again to itself.
#![no_main]

use std::sync::OnceLock;

use bitesize_query::schema::{document, schema, Fields, Origin};
use bitesize_record::{Error, Record};
use libfuzzer_sys::fuzz_target;

fn fields() -> &'static Fields {
    static FIELDS: OnceLock<Fields> = OnceLock::new();
    FIELDS.get_or_init(|| schema().1)
}

fuzz_target!(|payload: &[u8]| {
    let record = match Record::decode(payload) {
        Ok(record) => record,
        Err(Error::Decode(_)) => return,
        Err(other) => panic!("decoding gives only decode errors, not {other:?}"),
    };
    let again = Record::decode(&record.encode()).expect("an encoded record decodes");
    if !record.log.ends_with('\n') {
        // (decode drops one trailing newline, the original pipeline's; a second one goes on
        // the next trip)
        assert_eq!(again, record, "encode then decode gives the same record");
    }
    let time_nanos = record
        .time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0);
    let origin = Origin {
        partition: 0,
        offset: 0,
    };
    document(fields(), &record, time_nanos, origin);
});
