//! The Tantivy schema every namespace index shares, and how a record becomes a document.

use bitesize_record::Record;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, JsonObjectOptions, NumericOptions, Schema,
    TextFieldIndexing, TextOptions, FAST, STRING, TEXT,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{DateTime, IndexSettings, TantivyDocument};

/// Handles to the fields of [`schema`].
#[derive(Clone)]
pub struct Fields {
    pub time: Field,
    pub namespace: Field,
    pub stream: Field,
    pub pod: Field,
    pub container: Field,
    pub node: Field,
    pub image: Field,
    pub log: Field,
    pub labels: Field,
    pub fields: Field,
    pub partition: Field,
    pub offset: Field,
    /// The whole record as JSON, stored (compressed by the doc store) and not indexed.
    pub record: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let raw = STRING | FAST;
    // Text in `fields` is searched like the message; the raw value is kept fast for facets.
    let json = JsonObjectOptions::from(TEXT)
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(tantivy::schema::IndexRecordOption::WithFreqsAndPositions),
        )
        .set_fast(Some("raw"));
    let fields = Fields {
        time: builder.add_date_field(
            "time",
            DateOptions::from(FAST)
                .set_indexed()
                .set_precision(DateTimePrecision::Nanoseconds),
        ),
        namespace: builder.add_text_field("namespace", raw.clone()),
        stream: builder.add_text_field("stream", raw.clone()),
        pod: builder.add_text_field("pod", raw.clone()),
        container: builder.add_text_field("container", raw.clone()),
        node: builder.add_text_field("node", raw.clone()),
        image: builder.add_text_field("image", raw),
        log: builder.add_text_field("log", TEXT),
        labels: builder.add_json_field(
            "labels",
            JsonObjectOptions::from(STRING).set_fast(Some("raw")),
        ),
        fields: builder.add_json_field("fields", json),
        partition: builder.add_u64_field(
            "partition",
            NumericOptions::default().set_fast().set_indexed(),
        ),
        offset: builder.add_u64_field("offset", NumericOptions::default().set_fast().set_indexed()),
        record: builder.add_text_field("record", TextOptions::default().set_stored()),
    };
    (builder.build(), fields)
}

/// Settings of a new namespace index. The stored record is most of an index; zstd over 32 KiB
/// blocks keeps it about half the size LZ4 over Tantivy's default 16 KiB blocks does
/// (`./scripts/bench ingest`), and a page of 100 newest hits still reads a few adjacent
/// blocks. An index made with other settings keeps its own: they are in its meta.json.
pub fn index_settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: 32 * 1024,
        ..IndexSettings::default()
    }
}

/// Where a record came from in Kafka.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}

/// Builds the document for `record`; `time_nanos` is the record's time already resolved.
pub fn document(
    fields: &Fields,
    record: &Record,
    time_nanos: i64,
    origin: Origin,
) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_date(fields.time, DateTime::from_timestamp_nanos(time_nanos));
    doc.add_text(fields.namespace, &record.kubernetes.namespace_name);
    doc.add_text(fields.stream, &record.stream);
    doc.add_text(fields.pod, &record.kubernetes.pod_name);
    doc.add_text(fields.container, &record.kubernetes.container_name);
    doc.add_text(fields.node, &record.kubernetes.host);
    doc.add_text(fields.image, &record.kubernetes.container_image);
    doc.add_text(fields.log, &record.log);
    if !record.kubernetes.labels.is_empty() {
        let labels = record
            .kubernetes
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), tantivy::schema::OwnedValue::Str(v.clone())))
            .collect::<Vec<_>>();
        doc.add_object(fields.labels, labels.into_iter().collect());
    }
    if let Some(map) = &record.fields {
        let value = serde_json::Value::Object(map.clone());
        if let tantivy::schema::OwnedValue::Object(object) =
            tantivy::schema::OwnedValue::from(value)
        {
            doc.add_object(fields.fields, object.into_iter().collect());
        }
    }
    doc.add_u64(fields.partition, origin.partition.max(0) as u64);
    doc.add_u64(fields.offset, origin.offset.max(0) as u64);
    doc.add_text(fields.record, String::from_utf8_lossy(&record.encode()));
    doc
}
