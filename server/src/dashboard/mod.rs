//! Hosts the dashboard: fetches what a page shows through `authz` and the search module and
//! has `bitesize-web` render it; signs people in and out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bitesize_web::{
    highlight, render_login_page, render_search_page, render_signing_out_page, FacetCount,
    FacetGroup, Histogram, HistogramBar, HitRow, LoginPage, LoginProvider, SearchPage,
    SigningOutPage, Viewer,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::api::{blocking, run_search, Read, ReadParams};
use crate::app::AppState;
use crate::auth::{self, sessions};
use crate::authz::{self, NamespaceScope, Principal};
use crate::search::{self, TimeRange};
use crate::{audit, db, Error, Result};

mod fleet;
mod pages;
mod saved;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { redirect("/search") }))
        .route("/search", web::get().to(search_page))
        .route("/assets/app.js", web::get().to(app_js))
        .route("/login", web::get().to(login_page))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .configure(pages::routes)
        .configure(fleet::routes)
        .configure(saved::routes);
    // Single sign-on (handlers in auth::oidc; provider settings in `AppState::sso`).
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
    let grants = scope.grants();
    Viewer {
        user: principal.user.clone(),
        roles,
        admin: scope.is_admin(),
        audit_reader: scope.is_admin() || grants.iter().any(|g| g.role == authz::Role::Auditor),
    }
}

// The pages reference the script by this path (the route is spelled out for the route table).
const _: () = assert!(same(bitesize_web::APP_JS_PATH, "/assets/app.js"));

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The page script: `/` focuses the query box. Pages work without it.
async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(bitesize_web::APP_JS)
}

/// Facets the page shows: (query field, heading).
const FACETS: [(&str, &str); 5] = [
    ("pod", "Pods"),
    ("container", "Containers"),
    ("stream", "Streams"),
    ("node", "Nodes"),
    ("fields.level", "Levels (fields.level)"),
];
const FACET_SIZE: usize = 10;

#[derive(Debug, Deserialize)]
struct SavedParam {
    /// Set after saving a search: the page confirms it.
    saved: Option<i64>,
}

async fn search_page(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    params: web::Query<ReadParams>,
    saved: web::Query<SavedParam>,
) -> Result<HttpResponse> {
    let started = std::time::Instant::now();
    let mut page = search_view(&state, &principal, &request, &params).await?;
    if let Some(id) = saved.saved {
        if let Some(found) = page.saved.iter().find(|s| s.id == id && s.mine) {
            page.notice = Some(format!("Saved “{}”.", found.name));
        }
    }
    let body = render_search_page(page);
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "search page served"
    );
    Ok(html(body))
}

/// What the search page shows for `params`: the data (a bad query or range is said on the
/// page, not an error page) and the viewer's saved searches.
async fn search_view(
    state: &AppState,
    principal: &Principal,
    request: &HttpRequest,
    params: &ReadParams,
) -> Result<SearchPage> {
    let scope = authz::scope_for(&state.db, principal).await?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut page = SearchPage {
        viewer: viewer(principal, &scope),
        namespaces: scope.filter(db::namespaces::list(&state.db).await?),
        namespace: text(&params.namespace),
        query: text(&params.q),
        from: text(&params.from),
        to: text(&params.to),
        cursor: text(&params.cursor),
        reason_required: scope.requires_reason(),
        reason: text(&params.reason),
        saved: saved::rows(state, principal, &scope).await?,
        ..Default::default()
    };
    match load_search(state, principal, request, params, &mut page).await {
        Ok(()) => {}
        Err(Error::BadRequest(reason)) => page.error = Some(reason),
        Err(e) => return Err(e),
    }
    Ok(page)
}

/// Every data read of the search page, each through the caller's scope and audited like
/// the API's: the page of hits, the histogram and the facets of one selection.
async fn load_search(
    state: &AppState,
    principal: &Principal,
    request: &HttpRequest,
    params: &ReadParams,
    page: &mut SearchPage,
) -> Result<()> {
    let read = Read::authorize(state, principal, request, params).await?;
    let search = params.search_request(state, &read.scope)?;
    let selection = search.selection.clone();
    let response = run_search(state, search).await?;
    let detail = |extra: serde_json::Value| {
        let mut detail = serde_json::json!({
            "page": "/search", "from": params.from, "to": params.to, "cursor": params.cursor,
        });
        if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        detail
    };
    read.audit(
        state,
        "search",
        &selection,
        Some(response.total),
        detail(serde_json::json!({})),
    )
    .await?;
    let terms = highlight::plain_words(&selection.query);
    page.total = response.total;
    page.next_cursor = response.next_cursor.clone();
    page.hits = response.hits.iter().map(|r| hit_row(r, &terms)).collect();

    // The histogram of a range open at the end runs to now, so a preset shows its whole span.
    let mut charted = selection.clone();
    if charted.range.from.is_some() && charted.range.to.is_none() {
        let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        charted.range = TimeRange {
            to: Some(now.max(charted.range.from.unwrap_or(0) + 1)),
            ..charted.range
        };
    }
    let (registry, chart_selection) = (state.registry.clone(), charted.clone());
    let histogram = blocking(move || search::histogram(&registry, &chart_selection, None)).await?;
    read.audit(
        state,
        "histogram",
        &charted,
        Some(histogram.total),
        detail(serde_json::json!({ "bucket_ms": histogram.bucket_ms })),
    )
    .await?;
    page.histogram = Some(histogram_view(&histogram));

    let fields: Vec<String> = FACETS.iter().map(|(f, _)| f.to_string()).collect();
    let (registry, facet_selection, facet_fields) =
        (state.registry.clone(), selection.clone(), fields.clone());
    let facets =
        blocking(move || search::facets(&registry, &facet_selection, &facet_fields, FACET_SIZE))
            .await?;
    read.audit(
        state,
        "facets",
        &selection,
        None,
        detail(serde_json::json!({ "fields": fields })),
    )
    .await?;
    page.facets = facets_view(facets);
    Ok(())
}

fn histogram_view(histogram: &search::HistogramResponse) -> Histogram {
    let bucket_ms = histogram.bucket_ms.max(1);
    let step = chrono::Duration::milliseconds(bucket_ms);
    let starts: Vec<Option<DateTime<Utc>>> = histogram
        .buckets
        .iter()
        .map(|b| {
            DateTime::parse_from_rfc3339(&b.start)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .collect();
    let span_days = match (starts.first(), starts.last()) {
        (Some(Some(a)), Some(Some(b))) => (*b - *a).num_days(),
        _ => 0,
    };
    let format = if bucket_ms >= 86_400_000 {
        "%Y-%m-%d"
    } else if span_days >= 1 {
        "%m-%d %H:%M"
    } else if bucket_ms < 60_000 {
        "%H:%M:%S"
    } else {
        "%H:%M"
    };
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let bars = histogram
        .buckets
        .iter()
        .zip(starts)
        .map(|(bucket, start)| match start {
            Some(start) => HistogramBar {
                start: rfc3339(start),
                end: rfc3339(start + step),
                label: start.format(format).to_string(),
                count: bucket.count,
            },
            None => HistogramBar {
                start: bucket.start.clone(),
                end: bucket.start.clone(),
                label: bucket.start.clone(),
                count: bucket.count,
            },
        })
        .collect();
    Histogram {
        bars,
        bucket: duration_label(bucket_ms),
    }
}

/// `1 s`, `5 min`, `3 h`, `1 d`.
fn duration_label(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    for (size, unit) in UNITS {
        if ms >= size && ms % size == 0 {
            return format!("{} {unit}", ms / size);
        }
    }
    format!("{ms} ms")
}

fn facets_view(facets: search::FacetsResponse) -> Vec<FacetGroup> {
    let mut facets = facets.facets;
    FACETS
        .iter()
        .map(|(field, title)| FacetGroup {
            field: field.to_string(),
            title: title.to_string(),
            values: facets
                .remove(*field)
                .unwrap_or_default()
                .into_iter()
                .map(|v| FacetCount {
                    value: v.value,
                    count: v.count,
                })
                .collect(),
        })
        .collect()
}

fn hit_row(record: &serde_json::Value, terms: &[highlight::Term]) -> HitRow {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let k8s = &record["kubernetes"];
    let time_full = text(&record["time"]);
    let time = DateTime::parse_from_rfc3339(&time_full)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| time_full.clone());
    let message = text(&record["log"]);
    HitRow {
        time,
        time_full,
        namespace: text(&k8s["namespace_name"]),
        pod: text(&k8s["pod_name"]),
        container: text(&k8s["container_name"]),
        stream: text(&record["stream"]),
        highlights: highlight::ranges(&message, terms),
        message,
        record_json: serde_json::to_string_pretty(record).unwrap_or_default(),
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
fn login_view(state: &AppState, next: &str, error: Option<String>) -> LoginPage {
    let sso = &state.sso;
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
pub(crate) fn login_failed_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    reason: String,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(render_login_page(login_view(state, next, Some(reason))))
}

async fn login_page(state: web::Data<AppState>, params: web::Query<NextParam>) -> HttpResponse {
    html(render_login_page(login_view(
        &state,
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
    if !state.sso.local_accounts() {
        return Ok(login_failed_page(
            &state,
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
            &state,
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
            if let (Some(provider), None) = (&session.provider, session.revoked_at) {
                // Only this browser's cookie unseals the ID token kept for the hint.
                let hint = sessions::id_token_hint(&session, cookie.value());
                let sso = &state.sso;
                if let Some(url) = sso.end_session_url(provider, hint.as_deref()).await {
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
