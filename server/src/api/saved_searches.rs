//! Saved searches over the API: list mine and those shared with me, save one, open one,
//! delete mine (rules in `crate::saved_searches`).

use actix_web::{web, HttpResponse};

use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::saved_searches::{self, NewSavedSearch};
use crate::Result;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/saved-searches", web::get().to(list))
        .route("/api/v1/saved-searches", web::post().to(create))
        .route("/api/v1/saved-searches/{id}", web::get().to(show))
        .route("/api/v1/saved-searches/{id}", web::delete().to(remove));
}

#[utoipa::path(get, path = "/api/v1/saved-searches", tag = "saved searches", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{\"saved_searches\": [...]}`: yours, and those shared with you as an owner of one of their namespaces", body = Vec<saved_searches::SavedSearch>), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
pub(super) async fn list(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let found = saved_searches::visible(&state.db, &principal, &scope).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "saved_searches": found })))
}

#[utoipa::path(post, path = "/api/v1/saved-searches", tag = "saved searches", security(("bearer" = []), ("session" = [])), request_body = NewSavedSearch,
    responses((status = 201, description = "saved", body = saved_searches::SavedSearch), (status = 400, description = "bad name or URL, a name already used, or sharing a search that names no namespace", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "the URL names a namespace you may not read", body = crate::error::ErrorBody)))]
pub(super) async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewSavedSearch>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let saved = saved_searches::create(&state.db, &principal, &scope, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(saved))
}

#[utoipa::path(get, path = "/api/v1/saved-searches/{id}", tag = "saved searches", security(("bearer" = []), ("session" = [])), params(("id" = i64, Path, description = "saved search id")),
    responses((status = 200, description = "the saved search; open its `url` to run it", body = saved_searches::SavedSearch), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 404, description = "no such saved search among yours and those shared with you", body = crate::error::ErrorBody)))]
pub(super) async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let found = saved_searches::find(&state.db, &principal, &scope, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(found))
}

#[utoipa::path(delete, path = "/api/v1/saved-searches/{id}", tag = "saved searches", security(("bearer" = []), ("session" = [])), params(("id" = i64, Path, description = "saved search id")),
    responses((status = 200, description = "deleted; the body is what was deleted", body = saved_searches::SavedSearch), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "shared with you, but someone else's", body = crate::error::ErrorBody), (status = 404, description = "no such saved search among yours and those shared with you", body = crate::error::ErrorBody)))]
pub(super) async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let gone = saved_searches::delete(&state.db, &principal, &scope, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(gone))
}
