//! The REST API under `/api/v1`, and the health endpoint.

pub mod access;
mod archive;
mod kafka_stream;
pub mod namespaces_admin;
mod openapi;
mod saved_searches;
mod stream;

pub(crate) use stream::csv_cell;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::app::AppState;
use crate::authz::{self, NamespaceScope, Principal};
use crate::search::{self, SearchRequest, Selection, SortKey, TimeRange};
use crate::{audit, Error, Result};

pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/api/v1/search", web::get().to(search_records))
        .route("/api/v1/histogram", web::get().to(histogram))
        .route("/api/v1/facets", web::get().to(facets))
        .route("/api/v1/export", web::get().to(stream::export))
        .route("/api/v1/tail", web::get().to(stream::tail))
        .route("/api/v1/namespaces", web::get().to(namespaces))
        .route("/api/v1/openapi.json", web::get().to(openapi::document))
        .route("/api/v1/fleet", web::get().to(crate::fleet::api::status))
        .route(
            "/api/v1/admin/fleet/config",
            web::get().to(crate::fleet::api::show_config),
        )
        .route(
            "/api/v1/admin/fleet/config",
            web::put().to(crate::fleet::api::update_config),
        )
        .configure(access::routes)
        .configure(namespaces_admin::routes)
        .configure(archive::routes)
        .configure(kafka_stream::routes)
        .configure(saved_searches::routes);
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the server answers")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the ingest thread runs and the database answers.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await.is_ok();
    let ingest = state.metrics.ingest_is_running();
    let body = serde_json::json!({ "database": database, "ingest": ingest });
    if database && ingest {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition (admins; point Prometheus at it with an admin API token).
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    namespaces_admin::refresh_kafka_metrics(&state).await;
    state.metrics.observe_indexes(&state.registry);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.encode())
}

/// The query string of every read endpoint (one flat struct: serde's `flatten` does not mix
/// with numbers in query strings). Each endpoint uses the parameters it needs.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    /// Why the data is read; required of auditors (or the `X-Bitesize-Reason` header).
    pub reason: Option<String>,
}

/// A read the caller is allowed to make: its scope, and the reason it stated.
pub struct Read {
    pub scope: NamespaceScope,
    pub reason: Option<String>,
}

impl Read {
    /// The caller's scope; an auditor without a stated reason is refused.
    pub async fn authorize(
        state: &AppState,
        principal: &Principal,
        request: &HttpRequest,
        params: &ReadParams,
    ) -> Result<Read> {
        let scope = authz::scope_for(&state.db, principal).await?;
        let header = request
            .headers()
            .get("x-bitesize-reason")
            .and_then(|v| v.to_str().ok());
        let reason = params
            .reason
            .as_deref()
            .or(header)
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if scope.requires_reason() && reason.is_none() {
            return Err(Error::BadRequest(
                "auditors state a reason for every read: the reason parameter or the X-Bitesize-Reason header".into(),
            ));
        }
        Ok(Read { scope, reason })
    }

    /// Records the read in the audit log.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        selection: &Selection,
        hits: Option<u64>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let event = audit::NewEvent {
            actor: self.scope.actor().to_owned(),
            action: action.to_owned(),
            namespaces: selection.namespaces.clone(),
            query: Some(selection.query.clone()),
            hits,
            reason: self.reason.clone(),
            detail,
        };
        audit::record(&state.db, event).await?;
        Ok(())
    }
}

impl ReadParams {
    /// The namespaces `namespace` names (comma-separated), each checked; `None` when it
    /// names none (then the caller reads all it may).
    pub fn named_namespaces(&self) -> Result<Option<Vec<String>>> {
        let Some(list) = self
            .namespace
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        else {
            return Ok(None);
        };
        let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
        for name in &names {
            bitesize_record::validate_namespace(name)
                .map_err(|e| Error::BadRequest(e.to_string()))?;
        }
        Ok(Some(names))
    }

    /// What to read: the requested namespaces (all when none named) narrowed to `scope`.
    /// A namespace outside the scope is not an error: it simply has nothing to show.
    pub fn selection(&self, state: &AppState, scope: &NamespaceScope) -> Result<Selection> {
        let requested = match self.named_namespaces()? {
            Some(names) => names,
            None => state.registry.names(),
        };
        let range = TimeRange::parse(self.from.as_deref(), self.to.as_deref(), chrono::Utc::now())
            .map_err(Error::BadRequest)?;
        Ok(Selection {
            namespaces: scope.filter(requested),
            query: self.q.clone().unwrap_or_default(),
            range,
        })
    }

    pub fn search_request(
        &self,
        state: &AppState,
        scope: &NamespaceScope,
    ) -> Result<SearchRequest> {
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(cursor) => Some(SortKey::decode(cursor).ok_or_else(|| {
                Error::BadRequest(format!("cursor {cursor:?} is not one this server gave out"))
            })?),
        };
        Ok(SearchRequest {
            selection: self.selection(state, scope)?,
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

#[utoipa::path(get, path = "/api/v1/search", tag = "logs", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "matching records, newest first", body = search::SearchResponse), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
async fn search_records(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let search = params.search_request(&state, &read.scope)?;
    let selection = search.selection.clone();
    let response = run_search(&state, search).await?;
    let detail =
        serde_json::json!({ "from": params.from, "to": params.to, "cursor": params.cursor });
    read.audit(&state, "search", &selection, Some(response.total), detail)
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

#[utoipa::path(get, path = "/api/v1/histogram", tag = "logs", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "counts per time bucket", body = search::HistogramResponse), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
async fn histogram(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let selection = params.selection(&state, &read.scope)?;
    let (registry, bucket, audited) = (state.registry.clone(), params.bucket_ms, selection.clone());
    let response = blocking(move || search::histogram(&registry, &selection, bucket)).await?;
    let detail = serde_json::json!({ "from": params.from, "to": params.to, "bucket_ms": response.bucket_ms });
    read.audit(&state, "histogram", &audited, Some(response.total), detail)
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

#[utoipa::path(get, path = "/api/v1/facets", tag = "logs", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "top values per field", body = search::FacetsResponse), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
async fn facets(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let selection = params.selection(&state, &read.scope)?;
    let mut fields: Vec<String> = search::DEFAULT_FACETS
        .iter()
        .map(|f| f.to_string())
        .collect();
    let extras = params
        .field
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim);
    for extra in extras.filter(|f| !f.is_empty()) {
        if !fields.iter().any(|f| f == extra) {
            fields.push(extra.to_owned());
        }
    }
    let size = params.size.unwrap_or(10);
    if size == 0 || size > 100 {
        return Err(Error::BadRequest("size must be between 1 and 100".into()));
    }
    let detail = serde_json::json!({ "from": params.from, "to": params.to, "fields": fields });
    let (registry, audited) = (state.registry.clone(), selection.clone());
    let response = blocking(move || search::facets(&registry, &selection, &fields, size)).await?;
    read.audit(&state, "facets", &audited, None, detail).await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Namespaces with data that the caller may read.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "logs", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{\"namespaces\": [...]}`: namespaces with data the caller may read"), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
async fn namespaces(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let namespaces = scope.filter(crate::db::namespaces::list(&state.db).await?);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "namespaces": namespaces })))
}
