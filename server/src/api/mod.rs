//! The REST API under `/api/v1`, and the health endpoint.

mod stream;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::app::AppState;
use crate::search::{self, SearchRequest, Selection, SortKey, TimeRange};
use crate::{db, Error, Result};

pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/api/v1/search", web::get().to(search_records))
        .route("/api/v1/histogram", web::get().to(histogram))
        .route("/api/v1/facets", web::get().to(facets))
        .route("/api/v1/export", web::get().to(stream::export))
        .route("/api/v1/tail", web::get().to(stream::tail))
        .route("/api/v1/namespaces", web::get().to(namespaces));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The query string of every read endpoint (one flat struct: serde's `flatten` does not mix
/// with numbers in query strings). Each endpoint uses the parameters it needs.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ReadParams {
    /// One namespace or several, comma-separated; absent: every namespace.
    pub namespace: Option<String>,
    /// The query; empty or absent matches everything.
    pub q: Option<String>,
    /// RFC 3339 or relative (`now-15m`); inclusive.
    pub from: Option<String>,
    /// RFC 3339 or relative; exclusive.
    pub to: Option<String>,
    /// search: page size (default 100, at most 10 000).
    pub limit: Option<usize>,
    /// search: `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// histogram: bucket width in milliseconds; chosen from the range when absent.
    pub bucket_ms: Option<i64>,
    /// facets: extra fields, comma-separated (e.g. `fields.level,labels.app`).
    pub field: Option<String>,
    /// facets: values per field (default 10, at most 100).
    pub size: Option<usize>,
    /// export: `ndjson` (default) or `csv`.
    pub format: Option<String>,
}

impl ReadParams {
    pub fn selection(&self, state: &AppState) -> Result<Selection> {
        let namespaces = match self.namespace.as_deref().map(str::trim) {
            None | Some("") => state.registry.names(),
            Some(list) => {
                let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
                for name in &names {
                    bitesize_record::validate_namespace(name)
                        .map_err(|e| Error::BadRequest(e.to_string()))?;
                }
                names
            }
        };
        let range = TimeRange::parse(self.from.as_deref(), self.to.as_deref(), chrono::Utc::now())
            .map_err(Error::BadRequest)?;
        Ok(Selection {
            namespaces,
            query: self.q.clone().unwrap_or_default(),
            range,
        })
    }

    pub fn search_request(&self, state: &AppState) -> Result<SearchRequest> {
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(cursor) => Some(SortKey::decode(cursor).ok_or_else(|| {
                Error::BadRequest(format!("cursor {cursor:?} is not one this server gave out"))
            })?),
        };
        Ok(SearchRequest {
            selection: self.selection(state)?,
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            after,
        })
    }
}

/// Runs blocking index work on the blocking pool: Tantivy search is CPU work.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    web::block(work)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

pub async fn run_search(
    state: &AppState,
    request: SearchRequest,
) -> Result<search::SearchResponse> {
    let registry = state.registry.clone();
    blocking(move || search::search(&registry, &request)).await
}

async fn search_records(
    state: web::Data<AppState>,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let request = params.search_request(&state)?;
    Ok(HttpResponse::Ok().json(run_search(&state, request).await?))
}

async fn histogram(
    state: web::Data<AppState>,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let selection = params.selection(&state)?;
    let (registry, bucket) = (state.registry.clone(), params.bucket_ms);
    let response = blocking(move || search::histogram(&registry, &selection, bucket)).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn facets(
    state: web::Data<AppState>,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let selection = params.selection(&state)?;
    let mut fields: Vec<String> = search::DEFAULT_FACETS
        .iter()
        .map(|f| f.to_string())
        .collect();
    for extra in params
        .field
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        if !fields.iter().any(|f| f == extra) {
            fields.push(extra.to_owned());
        }
    }
    let size = params.size.unwrap_or(10);
    if size == 0 || size > 100 {
        return Err(Error::BadRequest("size must be between 1 and 100".into()));
    }
    let registry = state.registry.clone();
    let response = blocking(move || search::facets(&registry, &selection, &fields, size)).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn namespaces(state: web::Data<AppState>) -> Result<HttpResponse> {
    let namespaces = db::namespaces::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "namespaces": namespaces })))
}
