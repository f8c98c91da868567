//! The REST API under `/api/v1`, and the health endpoint.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::app::AppState;
use crate::search::{self, SearchRequest};
use crate::{db, Error, Result};

pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/api/v1/search", web::get().to(search_records))
        .route("/api/v1/namespaces", web::get().to(namespaces));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Query string of `GET /api/v1/search` (and of the dashboard's search page).
#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    /// One namespace or several, comma-separated; absent: every namespace.
    pub namespace: Option<String>,
    /// The query; empty or absent matches everything.
    pub q: Option<String>,
    pub limit: Option<usize>,
}

impl SearchParams {
    pub fn to_request(&self, state: &AppState) -> Result<SearchRequest> {
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
        Ok(SearchRequest {
            namespaces,
            query: self.q.clone().unwrap_or_default(),
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
        })
    }
}

/// Runs a search on the blocking pool: Tantivy search is CPU work.
pub async fn run_search(
    state: &AppState,
    request: SearchRequest,
) -> Result<search::SearchResponse> {
    let registry = state.registry.clone();
    web::block(move || search::search(&registry, &request))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

async fn search_records(
    state: web::Data<AppState>,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse> {
    let request = params.to_request(&state)?;
    let response = run_search(&state, request).await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn namespaces(state: web::Data<AppState>) -> Result<HttpResponse> {
    let namespaces = db::namespaces::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "namespaces": namespaces })))
}
