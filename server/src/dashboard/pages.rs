//! The pages around search: `/access` (bindings and API tokens, changed by plain form posts),
//! `/audit` (the CISO's view, with export) and `/namespaces`, and the 403 page. Every change
//! goes through the same functions as the API's, so it is checked and audited the same way;
//! the same-origin check of `hardening` guards the form posts like any other write.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use bitesize_web::{
    render_access_page, render_audit_page, render_forbidden_page, render_namespaces_page,
    AccessPage, AuditPage, AuditQuery, AuditRow, BindingRow, ChainStatus, ForbiddenPage,
    NamespaceRow, NamespacesPage, NewTokenSecret, TokenRow,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{html, redirect, viewer};
use crate::api::access::{self, AuditParams, CreateToken};
use crate::api::namespaces_admin;
use crate::app::AppState;
use crate::auth::tokens;
use crate::authz::bindings::{self, NewBinding};
use crate::authz::{self, NamespaceScope, Principal, Role};
use crate::kafka::registry::{Caller, CreateNamespace, DeleteNamespace, UpdateNamespace};
use crate::{audit, db, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    let remove = web::post().to(remove_binding);
    let retention = web::post().to(namespace_retention);
    let delete = web::post().to(delete_namespace);
    cfg.route("/access", web::get().to(access_page))
        .route("/access/bindings", web::post().to(add_binding))
        .route("/access/bindings/{id}/delete", remove)
        .route("/access/tokens", web::post().to(create_token))
        .route("/access/tokens/{id}/revoke", web::post().to(revoke_token))
        .route("/audit", web::get().to(audit_page))
        .route("/audit/export", web::get().to(audit_export))
        .route("/namespaces", web::get().to(namespaces_page))
        .route("/namespaces", web::post().to(create_namespace))
        .route("/namespaces/{name}/retention", retention)
        .route("/namespaces/{name}/delete", delete);
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The 403 page: what `wanted` needs, and the admins who can grant it.
pub(crate) async fn forbidden(
    state: &AppState,
    principal: &Principal,
    scope: &NamespaceScope,
    wanted: &str,
    missing: String,
) -> Result<HttpResponse> {
    let admins = bindings::list(&state.db)
        .await?
        .into_iter()
        .filter(|b| b.role == Role::Admin.as_str())
        .map(|b| match b.subject_kind.as_str() {
            "group" => format!("members of group {}", b.subject),
            _ => b.subject,
        })
        .collect();
    let page = ForbiddenPage {
        viewer: viewer(principal, scope),
        wanted: wanted.to_owned(),
        missing,
        admins,
    };
    Ok(HttpResponse::build(StatusCode::FORBIDDEN)
        .content_type("text/html; charset=utf-8")
        .body(render_forbidden_page(page)))
}

#[derive(Debug, Deserialize)]
struct AccessParams {
    done: Option<String>,
}

async fn access_view(
    state: &AppState,
    principal: &Principal,
    scope: &NamespaceScope,
) -> Result<AccessPage> {
    let admin = scope.is_admin();
    let bindings = if admin {
        bindings::list(&state.db)
            .await?
            .into_iter()
            .map(|b| BindingRow {
                id: b.id,
                subject_kind: b.subject_kind,
                subject: b.subject,
                role: b.role,
                pattern: b.pattern,
                created_by: b.created_by,
                created_at: when(b.created_at),
            })
            .collect()
    } else {
        vec![]
    };
    let owner = (!admin).then_some(principal.user.as_str());
    let tokens = tokens::list(&state.db, owner)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            owner: t.user_name,
            name: t.name,
            prefix: format!("{}…", t.prefix),
            role: t.role,
            patterns: t.patterns,
            created_at: when(t.created_at),
            expires_at: t.expires_at.map(when).unwrap_or_default(),
            last_used_at: t.last_used_at.map(when).unwrap_or_default(),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    Ok(AccessPage {
        viewer: viewer(principal, scope),
        admin,
        bindings,
        tokens,
        ..Default::default()
    })
}

fn page_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The access page again with what went wrong (a 400 or 403 the form can be corrected from).
async fn access_error(
    state: &AppState,
    principal: &Principal,
    error: Error,
) -> Result<HttpResponse> {
    let status = match &error {
        Error::BadRequest(_) | Error::NotFound(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        _ => return Err(error),
    };
    let scope = authz::scope_for(&state.db, principal).await?;
    let mut page = access_view(state, principal, &scope).await?;
    page.error = Some(match error {
        Error::BadRequest(m) | Error::NotFound(m) | Error::Forbidden(m) => m,
        other => other.to_string(),
    });
    Ok(page_response(status, render_access_page(page)))
}

async fn access_page(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<AccessParams>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let mut page = access_view(&state, &principal, &scope).await?;
    page.notice = match params.done.as_deref() {
        Some("binding-added") => Some("Binding added: it applies on the next page load.".into()),
        Some("binding-removed") => Some("Binding removed.".into()),
        Some("token-revoked") => Some("Token revoked: it no longer works.".into()),
        _ => None,
    };
    Ok(html(render_access_page(page)))
}

#[derive(Debug, Deserialize)]
struct BindingForm {
    subject_kind: String,
    subject: String,
    role: String,
    #[serde(default)]
    pattern: String,
}

/// Admins only, said on the 403 page for the others.
async fn admin_only(
    state: &AppState,
    principal: &Principal,
    wanted: &str,
) -> Result<Option<HttpResponse>> {
    let scope = authz::scope_for(&state.db, principal).await?;
    if scope.is_admin() {
        return Ok(None);
    }
    let missing = "changing role bindings needs the admin role".to_owned();
    Ok(Some(
        forbidden(state, principal, &scope, wanted, missing).await?,
    ))
}

async fn add_binding(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Form<BindingForm>,
) -> Result<HttpResponse> {
    if let Some(refused) = admin_only(&state, &principal, "/access/bindings").await? {
        return Ok(refused);
    }
    let form = form.into_inner();
    let pattern = form.pattern.trim();
    let binding = NewBinding {
        subject_kind: form.subject_kind,
        subject: form.subject.trim().to_owned(),
        role: form.role,
        pattern: (!pattern.is_empty()).then(|| pattern.to_owned()),
    };
    match access::add_binding_as(&state, &principal, binding).await {
        Ok(_) => Ok(redirect("/access?done=binding-added")),
        Err(e) => access_error(&state, &principal, e).await,
    }
}

async fn remove_binding(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    if let Some(refused) = admin_only(&state, &principal, "/access/bindings").await? {
        return Ok(refused);
    }
    match access::remove_binding_as(&state, &principal, *id).await {
        Ok(_) => Ok(redirect("/access?done=binding-removed")),
        Err(e) => access_error(&state, &principal, e).await,
    }
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    name: String,
    role: String,
    /// Comma- or space-separated namespace patterns.
    #[serde(default)]
    namespaces: String,
    #[serde(default)]
    expires_in: String,
}

/// Answers with the page itself (not a redirect): the secret is shown this once.
async fn create_token(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse> {
    let form = form.into_inner();
    let request = CreateToken {
        name: form.name,
        role: form.role,
        namespaces: form
            .namespaces
            .split([',', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
        expires_in: Some(form.expires_in.trim().to_owned()).filter(|e| !e.is_empty()),
    };
    match access::issue_token(&state, &principal, request).await {
        Ok((secret, model)) => {
            let scope = authz::scope_for(&state.db, &principal).await?;
            let mut page = access_view(&state, &principal, &scope).await?;
            page.new_token = Some(NewTokenSecret {
                name: model.name,
                secret,
            });
            // Never cached: the secret must not outlive this response anywhere.
            let mut response = page_response(StatusCode::OK, render_access_page(page));
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(e) => access_error(&state, &principal, e).await,
    }
}

async fn revoke_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    match access::revoke_token_as(&state, &principal, *id).await {
        Ok(_) => Ok(redirect("/access?done=token-revoked")),
        Err(e) => access_error(&state, &principal, e).await,
    }
}

fn audit_query(params: &AuditParams) -> AuditQuery {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    AuditQuery {
        actor: text(&params.actor),
        action: text(&params.action),
        namespace: text(&params.namespace),
        from: text(&params.from),
        to: text(&params.to),
    }
}

/// Admins and auditors; the others get the 403 page.
async fn audit_reader(
    state: &AppState,
    principal: &Principal,
    wanted: &str,
) -> Result<std::result::Result<NamespaceScope, HttpResponse>> {
    let scope = authz::scope_for(&state.db, principal).await?;
    match access::require_audit_reader(state, principal).await {
        Ok(()) => Ok(Ok(scope)),
        Err(Error::Forbidden(_)) => {
            let missing = "the audit log needs the auditor or the admin role".to_owned();
            Ok(Err(
                forbidden(state, principal, &scope, wanted, missing).await?
            ))
        }
        Err(e) => Err(e),
    }
}

async fn audit_page(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse> {
    let scope = match audit_reader(&state, &principal, "/audit").await? {
        Ok(scope) => scope,
        Err(refused) => return Ok(refused),
    };
    let verification = audit::verify(&state.db).await?;
    let mut page = AuditPage {
        viewer: viewer(&principal, &scope),
        query: audit_query(&params),
        chain: ChainStatus {
            ok: verification.ok,
            events: verification.events,
            broken: verification
                .first_broken
                .map(|b| format!("at event #{}: {}", b.id, b.reason)),
        },
        paged: params.before_id.is_some(),
        ..Default::default()
    };
    let events = match params.filter() {
        Ok(filter) => {
            let events = audit::list(&state.db, &filter).await?;
            if events.len() as u64 >= filter.limit.min(audit::MAX_LIST_LIMIT) {
                page.older = events.last().map(|e| e.id);
            }
            events
        }
        Err(Error::BadRequest(reason)) => {
            page.error = Some(reason);
            vec![]
        }
        Err(e) => return Err(e),
    };
    page.events = events
        .into_iter()
        .map(|e| AuditRow {
            id: e.id,
            at: e.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            namespaces: e.namespace_list().join(", "),
            detail: serde_json::to_string_pretty(&e.detail_json()).unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            query: e.query.unwrap_or_default(),
            hits: e.hits.map(|h| h.to_string()).unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    Ok(html(render_audit_page(page)))
}

#[derive(Debug, Deserialize)]
struct ExportFormat {
    format: Option<String>,
}

/// The filtered events (up to the list limit of 10 000), oldest first, as NDJSON or CSV.
async fn audit_export(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<AuditParams>,
    format: web::Query<ExportFormat>,
) -> Result<HttpResponse> {
    if let Err(refused) = audit_reader(&state, &principal, "/audit/export").await? {
        return Ok(refused);
    }
    let csv = match format.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => false,
        "csv" => true,
        other => {
            return Err(Error::BadRequest(format!(
                "format {other:?}: use ndjson or csv"
            )))
        }
    };
    let mut filter = params.filter()?;
    filter.limit = params.limit.unwrap_or(audit::MAX_LIST_LIMIT);
    let mut events = audit::list(&state.db, &filter).await?;
    events.reverse();
    let mut body = String::new();
    if csv {
        body.push_str("id,at,actor,action,namespaces,query,hits,reason,detail,prev_hash,hash\n");
    }
    for e in &events {
        if csv {
            let cells = [
                e.id.to_string(),
                e.at.to_rfc3339(),
                e.actor.clone(),
                e.action.clone(),
                e.namespace_list().join(" "),
                e.query.clone().unwrap_or_default(),
                e.hits.map(|h| h.to_string()).unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.detail.clone(),
                e.prev_hash.clone(),
                e.hash.clone(),
            ];
            let line: Vec<String> = cells.iter().map(|c| crate::api::csv_cell(c)).collect();
            body.push_str(&line.join(","));
            body.push('\n');
        } else {
            body.push_str(&serde_json::to_string(e).unwrap_or_default());
            body.push('\n');
        }
    }
    let (content_type, file) = if csv {
        ("text/csv; charset=utf-8", "audit.csv")
    } else {
        ("application/x-ndjson", "audit.ndjson")
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .body(body))
}

/// `1234567` → `1 234 567`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A size for people: `512 B`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`.
fn bytes_label(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

fn days_label(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "unlimited".to_owned(),
        ms if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{} hours", ms / 3_600_000),
        ms => format!("{ms} ms"),
    }
}

#[derive(Debug, Deserialize)]
struct NamespacesParams {
    done: Option<String>,
}

async fn namespaces_page(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<NamespacesParams>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let mut page = namespaces_view(&state, &principal, &scope).await?;
    page.notice = match params.done.as_deref() {
        Some("created") => Some("Namespace created, with its topic.".into()),
        Some("retention") => Some("Retention changed.".into()),
        Some("deleted") => Some("Namespace deleted, with its topic.".into()),
        _ => None,
    };
    Ok(html(render_namespaces_page(page)))
}

/// The namespaces page again with what went wrong.
async fn namespaces_error(
    state: &AppState,
    principal: &Principal,
    error: Error,
) -> Result<HttpResponse> {
    let status = match &error {
        Error::BadRequest(_) | Error::NotFound(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        _ => return Err(error),
    };
    let scope = authz::scope_for(&state.db, principal).await?;
    let mut page = namespaces_view(state, principal, &scope).await?;
    page.error = Some(match error {
        Error::BadRequest(m) | Error::NotFound(m) | Error::Forbidden(m) => m,
        other => other.to_string(),
    });
    Ok(page_response(status, render_namespaces_page(page)))
}

/// A number typed in a form field: empty is none; anything else must be a whole number.
fn form_number<T: std::str::FromStr>(field: &str, text: &str) -> Result<Option<T>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Error::BadRequest(format!("{field}: {text:?} is not a whole number")))
}

#[derive(Debug, Deserialize)]
struct NamespaceForm {
    name: String,
    #[serde(default)]
    partitions: String,
    #[serde(default)]
    retention_days: String,
    #[serde(default)]
    owner_group: String,
}

async fn create_namespace(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Form<NamespaceForm>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    if !scope.is_admin() {
        let missing = "creating a namespace needs the admin role".to_owned();
        return forbidden(&state, &principal, &scope, "/namespaces", missing).await;
    }
    let created = async {
        let owner = form.owner_group.trim();
        let request = CreateNamespace {
            name: form.name.trim().to_owned(),
            partitions: form_number("partitions", &form.partitions)?,
            retention_days: form_number("retention_days", &form.retention_days)?,
            owner_group: (!owner.is_empty()).then(|| owner.to_owned()),
            ..Default::default()
        };
        namespaces_admin::registry(&state)?
            .create(&principal.user, request)
            .await
    }
    .await;
    match created {
        Ok(_) => Ok(redirect("/namespaces?done=created")),
        Err(e) => namespaces_error(&state, &principal, e).await,
    }
}

#[derive(Debug, Deserialize)]
struct RetentionForm {
    #[serde(default)]
    retention_days: String,
}

/// Owners and admins: the registry checks who may change what.
async fn namespace_retention(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    form: web::Form<RetentionForm>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let changed = async {
        let days = form_number::<i32>("retention_days", &form.retention_days)?
            .ok_or_else(|| Error::BadRequest("retention_days: give a number of days".into()))?;
        let request = UpdateNamespace {
            retention_days: Some(days),
            ..Default::default()
        };
        let caller = Caller {
            principal: &principal,
            scope: &scope,
        };
        namespaces_admin::registry(&state)?
            .update(&caller, &name, request)
            .await
    }
    .await;
    match changed {
        Ok(_) => Ok(redirect("/namespaces?done=retention")),
        Err(e) => namespaces_error(&state, &principal, e).await,
    }
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn delete_namespace(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    form: web::Form<DeleteForm>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    if !scope.is_admin() {
        let missing = "deleting a namespace needs the admin role".to_owned();
        return forbidden(&state, &principal, &scope, "/namespaces", missing).await;
    }
    let request = DeleteNamespace {
        confirm: form.confirm.trim().to_owned(),
        keep_topic: false,
    };
    let deleted = match namespaces_admin::registry(&state) {
        Ok(registry) => registry.delete(scope.actor(), &name, request).await,
        Err(e) => Err(e),
    };
    match deleted {
        Ok(()) => Ok(redirect("/namespaces?done=deleted")),
        Err(e) => namespaces_error(&state, &principal, e).await,
    }
}

async fn namespaces_view(
    state: &AppState,
    principal: &Principal,
    scope: &NamespaceScope,
) -> Result<NamespacesPage> {
    let rows: Vec<_> = db::namespaces::all(&state.db)
        .await?
        .into_iter()
        .filter(|n| scope.allows(&n.name))
        .collect();
    // Kafka's figures are a bonus: a broker that is slow or down leaves them empty.
    let volumes = match namespaces_admin::registry(state) {
        Ok(registry) => {
            let looked =
                tokio::time::timeout(std::time::Duration::from_secs(3), registry.volumes(&rows))
                    .await;
            match looked {
                Ok(Ok(volumes)) => volumes,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "namespaces page without Kafka figures");
                    Default::default()
                }
                Err(_) => {
                    tracing::warn!("namespaces page without Kafka figures: no answer in 3 s");
                    Default::default()
                }
            }
        }
        Err(_) => Default::default(),
    };
    let namespaces = rows
        .into_iter()
        .map(|n| {
            let indexed = state
                .registry
                .get(&n.name)
                .and_then(|index| index.stats().ok())
                .map(|stats| {
                    state.metrics.observe_index(&n.name, stats);
                    format!(
                        "{} records, {}",
                        group_digits(stats.documents),
                        bytes_label(stats.bytes)
                    )
                })
                .unwrap_or_default();
            let volume = volumes.get(&n.name);
            NamespaceRow {
                topic: n.topic,
                partitions: n.partitions.map(|p| p.to_string()).unwrap_or_default(),
                kafka_retention: n.retention_ms.map(days_label).unwrap_or_default(),
                index_retention: n
                    .retention_days
                    .map_or_else(|| "server default".to_owned(), |d| format!("{d} days")),
                indexed,
                kafka_records: volume
                    .map(|v| group_digits(v.records.max(0) as u64))
                    .unwrap_or_default(),
                lag: volume
                    .map(|v| group_digits(v.lag_records.max(0) as u64))
                    .unwrap_or_default(),
                archive: n.archive,
                owner: n.owner_group.unwrap_or_default(),
                created_at: when(n.created_at),
                managed: n.managed,
                editable: scope.owns(&n.name),
                name: n.name,
            }
        })
        .collect();
    Ok(NamespacesPage {
        viewer: viewer(principal, scope),
        namespaces,
        admin: scope.is_admin(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_easily() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000), "1 000");
        assert_eq!(group_digits(1_234_567), "1 234 567");
        assert_eq!(bytes_label(512), "512 B");
        assert_eq!(bytes_label(3_500), "3.4 KiB");
        assert_eq!(bytes_label(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(bytes_label(5 << 40), "5.0 TiB");
        assert_eq!(bytes_label(u64::MAX), "16777216.0 TiB");
    }
}
