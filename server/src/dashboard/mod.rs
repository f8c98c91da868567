//! Hosts the dashboard: fetches what a page shows through `authz` and the search module and
//! has `bitesize-web` render it; signs people in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bitesize_web::{
    render_login_page, render_search_page, render_signing_out_page, HitRow, LoginPage,
    LoginProvider, SearchPage, SigningOutPage, Viewer,
};
use serde::Deserialize;

use crate::api::{run_search, Read, ReadParams};
use crate::app::AppState;
use crate::auth::oidc::Sso;
use crate::auth::{self, sessions};
use crate::authz::{self, NamespaceScope, Principal};
use crate::{audit, db, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { redirect("/search") }))
        .route("/search", web::get().to(search_page))
        .route("/login", web::get().to(login_page))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout));
    // Single sign-on (handlers in auth::oidc), with the process's provider settings.
    cfg.app_data(web::Data::from(Sso::shared()));
    let (sso_login, sso_callback) = (
        web::get().to(auth::oidc::login),
        web::get().to(auth::oidc::callback),
    );
    cfg.route("/auth/oidc/{provider}/login", sso_login);
    cfg.route("/auth/oidc/{provider}/callback", sso_callback);
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn viewer(principal: &Principal, scope: &NamespaceScope) -> Viewer {
    let roles = scope
        .grants()
        .iter()
        .map(|g| match g.role {
            authz::Role::Admin | authz::Role::Auditor => g.role.as_str().to_owned(),
            _ => format!("{} of {}", g.role.as_str(), g.pattern.as_str()),
        })
        .collect();
    Viewer {
        user: principal.user.clone(),
        roles,
    }
}

async fn search_page(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let mut page = SearchPage {
        viewer: viewer(&principal, &scope),
        namespaces: scope.filter(db::namespaces::list(&state.db).await?),
        namespace: params.namespace.clone().unwrap_or_default(),
        query: params.q.clone().unwrap_or_default(),
        ..Default::default()
    };
    let result = async {
        let read = Read::authorize(&state, &principal, &request, &params).await?;
        let search = params.search_request(&state, &read.scope)?;
        let selection = search.selection.clone();
        let response = run_search(&state, search).await?;
        read.audit(
            &state,
            "search",
            &selection,
            Some(response.total),
            serde_json::json!({ "page": "/search" }),
        )
        .await?;
        Ok::<_, Error>(response)
    }
    .await;
    match result {
        Ok(response) => {
            page.total = response.total;
            page.hits = response.hits.iter().map(hit_row).collect();
        }
        Err(Error::BadRequest(reason)) => page.error = Some(reason),
        Err(e) => return Err(e),
    }
    Ok(html(render_search_page(page)))
}

fn hit_row(record: &serde_json::Value) -> HitRow {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let k8s = &record["kubernetes"];
    HitRow {
        time: text(&record["time"]),
        namespace: text(&k8s["namespace_name"]),
        pod: text(&k8s["pod_name"]),
        container: text(&k8s["container_name"]),
        stream: text(&record["stream"]),
        message: text(&record["log"]),
    }
}

#[derive(Debug, Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Only same-site paths: a sign-in link must not bounce the user to another site.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/search".to_owned(),
    }
}

/// The sign-in page: a button per OpenID Connect provider, the password form when local
/// accounts are on.
fn login_view(next: &str, error: Option<String>) -> LoginPage {
    let sso = Sso::shared();
    let providers = sso
        .providers()
        .into_iter()
        .map(|p| LoginProvider {
            href: format!(
                "/auth/oidc/{}/login?next={}",
                p.name,
                authz::routes::urlencode(next)
            ),
            display_name: p.display_name,
        })
        .collect();
    LoginPage {
        next: next.to_owned(),
        error,
        providers,
        local_accounts: sso.local_accounts(),
    }
}

/// The sign-in page with the reason the last attempt failed.
pub(crate) fn login_failed_page(status: StatusCode, next: &str, reason: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(render_login_page(login_view(next, Some(reason))))
}

async fn login_page(params: web::Query<NextParam>) -> HttpResponse {
    html(render_login_page(login_view(
        &safe_next(params.next.as_deref()),
        None,
    )))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse> {
    let next = safe_next(form.next.as_deref());
    if !Sso::shared().local_accounts() {
        return Ok(login_failed_page(
            StatusCode::FORBIDDEN,
            &next,
            "Local accounts are turned off here; sign in with your organisation's account.".into(),
        ));
    }
    let Some(principal) = auth::login_local(&state.db, form.user.trim(), &form.password).await?
    else {
        audit::record(
            &state.db,
            audit::NewEvent {
                actor: form.user.trim().chars().take(200).collect(),
                action: "login.failure".into(),
                namespaces: vec![],
                query: None,
                hits: None,
                reason: None,
                detail: serde_json::json!({ "method": "local" }),
            },
        )
        .await?;
        return Ok(login_failed_page(
            StatusCode::UNAUTHORIZED,
            &next,
            "Wrong user name or password.".into(),
        ));
    };
    // A fresh session at every sign-in; the old one, if any, ends.
    if let Some(old) = request.cookie(sessions::COOKIE) {
        sessions::end(&state.db, old.value()).await?;
    }
    let secret = sessions::start(&state.db, &principal.user, &principal.groups).await?;
    audit::record(
        &state.db,
        audit::NewEvent {
            actor: principal.user.clone(),
            action: "login.success".into(),
            namespaces: vec![],
            query: None,
            hits: None,
            reason: None,
            detail: serde_json::json!({ "method": "local" }),
        },
    )
    .await?;
    let secure = request.connection_info().scheme() == "https";
    let cookie = Cookie::build(sessions::COOKIE, secret)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, next))
        .finish())
}

/// Ends the session here, always; then, for a session that came from an OpenID Connect
/// provider advertising an `end_session_endpoint`, moves on there to end the provider's
/// session too (RP-initiated logout), which sends the browser back to `/login`.
async fn logout(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse> {
    let mut at_provider = None;
    if let Some(cookie) = request.cookie(sessions::COOKIE) {
        if let Some(session) = sessions::find(&state.db, cookie.value()).await? {
            if let (Some(provider), Some(id_token), None) =
                (&session.provider, &session.id_token, session.revoked_at)
            {
                let sso = Sso::shared();
                if let Some(url) = sso.end_session_url(provider, id_token).await {
                    let name = sso
                        .providers()
                        .into_iter()
                        .find(|p| &p.name == provider)
                        .map_or_else(|| provider.clone(), |p| p.display_name);
                    at_provider = Some(SigningOutPage {
                        provider: name,
                        url,
                    });
                }
            }
        }
        if let Some(principal) = sessions::authenticate(&state.db, cookie.value()).await? {
            audit::record(
                &state.db,
                audit::NewEvent {
                    actor: principal.user,
                    action: "logout".into(),
                    namespaces: vec![],
                    query: None,
                    hits: None,
                    reason: None,
                    detail: serde_json::json!({}),
                },
            )
            .await?;
        }
        sessions::end(&state.db, cookie.value()).await?;
    }
    let mut gone = Cookie::build(sessions::COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    Ok(match at_provider {
        // A page, not a redirect: the content security policy's form-action 'self' would
        // stop a redirect from the sign-out form to another site.
        Some(page) => HttpResponse::Ok()
            .cookie(gone)
            .content_type("text/html; charset=utf-8")
            .body(render_signing_out_page(page)),
        None => HttpResponse::SeeOther()
            .cookie(gone)
            .insert_header((header::LOCATION, "/login"))
            .finish(),
    })
}
