//! Saved searches on `/search`: the list beside the results, the save form
//! (`POST /search/saved`) and delete buttons (`POST /search/saved/{id}/delete`). They call
//! `crate::saved_searches` like the API does, so they are checked and audited alike.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bitesize_web::{render_search_page, SavedSearchRow};
use serde::Deserialize;

use crate::api::ReadParams;
use crate::app::AppState;
use crate::authz::{self, NamespaceScope, Principal};
use crate::saved_searches::{self, NewSavedSearch};
use crate::{Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/search/saved", web::post().to(save))
        .route("/search/saved/{id}/delete", web::post().to(delete));
}

/// The viewer's saved searches and those shared with them, for the page.
pub(super) async fn rows(
    state: &AppState,
    principal: &Principal,
    scope: &NamespaceScope,
) -> Result<Vec<SavedSearchRow>> {
    Ok(saved_searches::visible(&state.db, principal, scope)
        .await?
        .into_iter()
        .map(|s| SavedSearchRow {
            id: s.id,
            name: s.name,
            href: s.url,
            owner: s.owner,
            mine: s.mine,
            shared: s.shared,
            namespaces: s.namespaces,
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct SaveForm {
    name: String,
    url: String,
    /// A checkbox: present (`true`) when ticked.
    shared: Option<String>,
}

/// Saves the view; back to it with a confirmation, or the page again saying what is wrong.
async fn save(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    form: web::Form<SaveForm>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let form = form.into_inner();
    let new = NewSavedSearch {
        name: form.name.clone(),
        url: form.url.clone(),
        shared: form.shared.is_some(),
    };
    let failure = match saved_searches::create(&state.db, &principal, &scope, new).await {
        Ok(saved) => {
            let separator = if saved.query.is_empty() { "?" } else { "&" };
            return Ok(super::redirect(&format!(
                "{}{separator}saved={}",
                saved.url.trim_end_matches('?'),
                saved.id
            )));
        }
        Err(Error::BadRequest(why)) => (StatusCode::BAD_REQUEST, why),
        Err(Error::Forbidden(why)) => (StatusCode::FORBIDDEN, why),
        Err(e) => return Err(e),
    };
    // The view that was to be saved, with the reason it was not (a URL the form did not come
    // from shows the plain search page).
    let query = form.url.split_once('?').map_or("", |(_, q)| q);
    let params = web::Query::<ReadParams>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let mut page = super::search_view(&state, &principal, &request, &params).await?;
    page.save_error = Some(failure.1);
    page.save_name = form.name;
    Ok(HttpResponse::build(failure.0)
        .content_type("text/html; charset=utf-8")
        .body(render_search_page(page)))
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    /// The page to go back to (same-site path).
    back: Option<String>,
}

async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    saved_searches::delete(&state.db, &principal, &scope, id.into_inner()).await?;
    Ok(super::redirect(&super::safe_next(form.back.as_deref())))
}
