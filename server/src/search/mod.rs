//! Schema, per-namespace indexes and search.

pub mod index;
pub mod query;
pub mod schema;

use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, Query, QueryParser};
use tantivy::schema::Value;
use tantivy::{DateTime, Order, TantivyDocument};

pub use index::{IndexRegistry, NamespaceIndex, Offsets};

use crate::{Error, Result};

pub const MAX_LIMIT: usize = 10_000;

/// A search over one or more namespaces.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub namespaces: Vec<String>,
    pub query: String,
    pub limit: usize,
}

#[derive(Debug, Serialize)]
pub struct SearchResponse {
    /// Matching records, newest first.
    pub hits: Vec<serde_json::Value>,
    /// How many records match in all.
    pub total: u64,
}

/// Runs `request` against the indexes it names; namespaces without an index have no hits.
pub fn search(registry: &IndexRegistry, request: &SearchRequest) -> Result<SearchResponse> {
    if request.limit == 0 || request.limit > MAX_LIMIT {
        return Err(Error::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let mut found: Vec<(DateTime, u64, serde_json::Value)> = Vec::new();
    let mut total = 0u64;
    for namespace in &request.namespaces {
        let Some(index) = registry.get(namespace) else {
            continue;
        };
        let query = parse_query(&index, &request.query)?;
        let searcher = index.searcher();
        let top =
            TopDocs::with_limit(request.limit).order_by_fast_field::<DateTime>("time", Order::Desc);
        let (docs, count) = searcher.search(&query, &(top, Count))?;
        total += count as u64;
        for (time, address) in docs {
            let doc: TantivyDocument = searcher.doc(address)?;
            let record = doc
                .get_first(index.fields.record)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null);
            let offset = doc
                .get_first(index.fields.offset)
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            found.push((time, offset, record));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    found.truncate(request.limit);
    Ok(SearchResponse {
        hits: found.into_iter().map(|(_, _, record)| record).collect(),
        total,
    })
}

fn parse_query(index: &NamespaceIndex, text: &str) -> Result<Box<dyn Query>> {
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    // Bare words search the message; `pod:web`, `labels.app:x`, `fields.level:error` name a field.
    let mut parser = QueryParser::for_index(index.tantivy_index(), vec![index.fields.log]);
    parser.set_conjunction_by_default();
    parser
        .parse_query(text)
        .map_err(|e| Error::BadRequest(format!("query {text:?} does not parse: {e}")))
}
