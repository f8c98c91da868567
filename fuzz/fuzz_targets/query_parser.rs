//! The query language (`query/src/lib.rs`): any text either parses into a query that then runs
//! without error over a real index, or is refused with a message and a position inside the
//! text. Never a panic, never a query that parses but fails when searched (a 500 instead of
//! a 400).
#![no_main]

use std::sync::OnceLock;

use bitesize_query::schema::{document, schema, Fields, Origin};
use bitesize_record::Record;
use libfuzzer_sys::fuzz_target;
use tantivy::collector::Count;
use tantivy::{Index, IndexReader, TantivyDocument};

struct Searchable {
    index: Index,
    fields: Fields,
    reader: IndexReader,
}

/// A small in-memory index with the shared schema and records of every field kind (labels,
/// nested JSON with text, integers, decimals, booleans and dates).
fn searchable() -> &'static Searchable {
    static SEARCHABLE: OnceLock<Searchable> = OnceLock::new();
    SEARCHABLE.get_or_init(|| {
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, 15_000_000)
            .expect("index writer");
        let records = [
            r#"{"time":"2026-11-25T10:00:00Z","stream":"stdout","log":"GET /api/users 200 OK",
                "kubernetes":{"namespace_name":"shop","pod_name":"web-1","container_name":"nginx",
                "host":"node-a","container_image":"nginx:1.25","labels":{"app":"web","app.kubernetes.io/name":"web"}}}"#,
            r#"{"time":"2026-11-25T10:00:01Z","stream":"stderr","log":"{\"level\":\"error\",\"latency_ms\":512}",
                "kubernetes":{"namespace_name":"shop","pod_name":"api-2","container_name":"api"},
                "fields":{"level":"error","latency_ms":512,"ratio":0.25,"cached":true,
                "ts":"2024-05-01T10:00:00Z","user":{"id":42,"name":"Zoë"},"http.status":500,
                "big":18446744073709551615,"neg":-7}}"#,
            r#"{"time":"2026-11-25T10:00:02Z","stream":"stdout","log":"connection refused by peer: user-service timeout",
                "kubernetes":{"namespace_name":"dev","pod_name":"healthcheck","container_name":"probe"}}"#,
        ];
        for (offset, json) in records.iter().enumerate() {
            let record = Record::decode(json.as_bytes()).expect("seed record");
            let origin = Origin {
                partition: 0,
                offset: offset as i64,
            };
            writer
                .add_document(document(&fields, &record, offset as i64 * 1_000_000_000, origin))
                .expect("add document");
        }
        writer.commit().expect("commit");
        let reader = index.reader().expect("reader");
        Searchable {
            index,
            fields,
            reader,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // The API hands the parser a `&str`; other bytes never reach it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let searchable = searchable();
    match bitesize_query::parse(text, &searchable.index, &searchable.fields) {
        Ok(query) => {
            let searcher = searchable.reader.searcher();
            if let Err(e) = searcher.search(query.as_ref(), &Count) {
                panic!("{text:?} parses but fails to run: {e}");
            }
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            assert!(
                error.position <= text.chars().count(),
                "{text:?}: position {} past the end",
                error.position
            );
        }
    }
});
