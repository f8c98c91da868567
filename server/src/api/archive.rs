//! The archive API: what is archived (`GET /api/v1/archive`, the caller's namespaces only,
//! audited like every read) and rehydrates (`POST /api/v1/archive/rehydrate`, admins and
//! the namespace's owners; `GET /api/v1/archive/rehydrate/{id}` for its progress).
//!
//! Why owners may rehydrate and viewers may not: a rehydrate changes what the index holds
//! and for how long (it overrides retention for its keep period), like the retention
//! setting owners already manage; viewers only read.

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::{Read, ReadParams};
use crate::app::AppState;
use crate::archive::catalog::HourSummary;
use crate::archive::{JobStatus, RehydrateRequest};
use crate::authz::{self, Principal};
use crate::kafka::registry::Caller;
use crate::search::{Selection, TimeRange};
use crate::{db, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/archive", web::get().to(list))
        .route("/api/v1/archive/rehydrate", web::post().to(rehydrate))
        .route(
            "/api/v1/archive/rehydrate/{id}",
            web::get().to(rehydrate_status),
        );
}

/// `GET /api/v1/archive`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArchiveList {
    /// Per namespace and hour, oldest first.
    pub hours: Vec<HourSummary>,
    pub objects: u64,
    pub records: u64,
    pub bytes: u64,
}

#[utoipa::path(get, path = "/api/v1/archive", tag = "archive", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "objects, records and bytes archived per namespace and hour (namespace: one or several, comma-separated; from/to: hours overlapping the range); only namespaces the caller may read", body = ArchiveList), (status = 400, description = "bad parameter, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let range = TimeRange::parse(
        params.from.as_deref(),
        params.to.as_deref(),
        chrono::Utc::now(),
    )
    .map_err(Error::BadRequest)?;
    let store = &state.archive.store;
    let requested = match params.named_namespaces()? {
        Some(names) => names,
        None => store.namespaces().await?,
    };
    let namespaces = read.scope.filter(requested);
    let mut hours = Vec::new();
    for namespace in &namespaces {
        hours.extend(
            store
                .catalog(namespace)
                .await?
                .summary(range.from, range.to),
        );
    }
    hours.sort_by(|a, b| (&a.hour, &a.namespace).cmp(&(&b.hour, &b.namespace)));
    let body = ArchiveList {
        objects: hours.iter().map(|h| h.objects).sum(),
        records: hours.iter().map(|h| h.records).sum(),
        bytes: hours.iter().map(|h| h.bytes).sum(),
        hours,
    };
    let selection = Selection {
        namespaces,
        query: String::new(),
        range,
    };
    let detail = serde_json::json!({ "from": params.from, "to": params.to });
    read.audit(
        &state,
        "archive.list",
        &selection,
        Some(body.records),
        detail,
    )
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(post, path = "/api/v1/archive/rehydrate", tag = "archive", security(("bearer" = []), ("session" = [])), request_body = RehydrateRequest,
    responses((status = 202, description = "started (or queued behind another rehydrate); follow it at /api/v1/archive/rehydrate/{id}", body = JobStatus), (status = 400, description = "bad namespace, time or keep_days, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "neither admin nor owner of the namespace", body = crate::error::ErrorBody)))]
async fn rehydrate(
    state: web::Data<AppState>,
    principal: Principal,
    bytes: Bytes,
) -> Result<HttpResponse> {
    let request: RehydrateRequest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("request body: {e}")))?;
    let range = request.check(&state.config, chrono::Utc::now())?;
    let scope = authz::scope_for(&state.db, &principal).await?;
    let caller = Caller {
        principal: &principal,
        scope: &scope,
    };
    let owner_by_group = match db::namespaces::find(&state.db, &range.namespace).await? {
        Some(row) => caller.owns(&row),
        None => false,
    };
    if !(scope.owns(&range.namespace) || owner_by_group) {
        return Err(Error::Forbidden(format!(
            "rehydrating {} needs the admin role or its owner role",
            range.namespace
        )));
    }
    let job = state.archive.start_rehydrate(scope.actor(), range).await?;
    Ok(HttpResponse::Accepted().json(job))
}

#[utoipa::path(get, path = "/api/v1/archive/rehydrate/{id}", tag = "archive", security(("bearer" = []), ("session" = [])), params(("id" = i64, Path, description = "the rehydrate's id")),
    responses((status = 200, description = "the rehydrate's state and progress", body = JobStatus), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 404, description = "no such rehydrate among the caller's namespaces", body = crate::error::ErrorBody)))]
async fn rehydrate_status(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let job = state
        .archive
        .rehydrate_status(*id)
        .await?
        .filter(|job| scope.allows(&job.namespace))
        .ok_or_else(|| Error::NotFound(format!("rehydrate {id}")))?;
    Ok(HttpResponse::Ok().json(job))
}
