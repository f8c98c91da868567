//! Access endpoints: who am I, API tokens (own; admins see all), role bindings (admins) and
//! the audit log (admins and auditors). Every change is audited.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::tokens::{self, NewToken};
use crate::authz::bindings::{self, NewBinding};
use crate::authz::{self, NamespaceScope, Pattern, Principal, Role};
use crate::{audit, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/me", web::get().to(me))
        .route("/api/v1/tokens", web::get().to(list_tokens))
        .route("/api/v1/tokens", web::post().to(create_token))
        .route("/api/v1/tokens/{id}", web::delete().to(revoke_token))
        .route("/api/v1/bindings", web::get().to(list_bindings))
        .route("/api/v1/bindings", web::post().to(add_binding))
        .route("/api/v1/bindings/{id}", web::delete().to(remove_binding))
        .route("/api/v1/audit", web::get().to(list_audit))
        .route("/api/v1/audit/verify", web::get().to(verify_audit));
}

#[utoipa::path(get, path = "/api/v1/me", tag = "access", security(("bearer" = []), ("session" = [])), responses((status = 200, description = "user, groups and grants in force"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn me(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user": principal.user,
        "groups": principal.groups,
        "grants": scope.grants(),
        "via_token": principal.token.as_ref().map(|t| t.id),
    })))
}

async fn change(
    state: &AppState,
    actor: &str,
    action: &str,
    namespaces: Vec<String>,
    detail: serde_json::Value,
) -> Result<()> {
    let event = audit::NewEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        namespaces,
        query: None,
        hits: None,
        reason: None,
        detail,
    };
    audit::record(&state.db, event).await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access", security(("bearer" = []), ("session" = [])), responses((status = 200, description = "your tokens (admins: all), never their secrets"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn list_tokens(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let owner = (!scope.is_admin()).then_some(principal.user.as_str());
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "tokens": tokens::list(&state.db, owner).await? })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct CreateToken {
    pub name: String,
    pub role: String,
    /// Namespace patterns (admin and auditor tokens cover `*`).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Lifetime like `30d`, `12h`; absent: no expiry.
    pub expires_in: Option<String>,
}

/// A user creates a token for a subset of their own permissions.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", security(("bearer" = []), ("session" = [])), request_body = CreateToken,
    responses((status = 201, description = "`{\"token\": \"bsz_...\", \"id\": N}`: the secret, shown once"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn create_token(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse> {
    let (secret, model) = issue_token(&state, &principal, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(
        serde_json::json!({ "token": secret, "id": model.id, "note": "shown once: store it now" }),
    ))
}

/// Creates (and audits) a token for `principal`: its secret, shown once, and its row.
pub(crate) async fn issue_token(
    state: &AppState,
    principal: &Principal,
    body: CreateToken,
) -> Result<(String, tokens::Model)> {
    if principal.token.is_some() {
        return Err(Error::Forbidden(
            "tokens cannot create tokens; sign in to create one".into(),
        ));
    }
    let scope = authz::scope_for(&state.db, principal).await?;
    let role = Role::parse(&body.role)?;
    let patterns = match role {
        Role::Admin | Role::Auditor => vec![Pattern::parse("*")?],
        Role::Owner | Role::Viewer if body.namespaces.is_empty() => {
            return Err(Error::BadRequest(
                "namespaces: name at least one namespace or pattern".into(),
            ))
        }
        Role::Owner | Role::Viewer => body
            .namespaces
            .iter()
            .map(|n| Pattern::parse(n))
            .collect::<Result<Vec<_>>>()?,
    };
    if !covers(&scope, role, &patterns) {
        return Err(Error::Forbidden(format!(
            "a token can only carry permissions you have: you cannot grant {} on {}",
            role.as_str(),
            patterns
                .iter()
                .map(Pattern::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let expires_at = body.expires_in.as_deref().map(parse_lifetime).transpose()?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::BadRequest("name must be 1 to 100 characters".into()));
    }
    let new = NewToken {
        user: principal.user.clone(),
        name: name.to_owned(),
        role,
        patterns,
        expires_at,
        standalone: false,
        secret: None,
    };
    let (secret, model) = tokens::create(&state.db, new).await?;
    change(
        state,
        &principal.user,
        "token.create",
        vec![],
        serde_json::json!({ "id": model.id, "name": model.name, "role": model.role }),
    )
    .await?;
    Ok((secret, model))
}

/// Whether `scope` holds `role` over every one of `patterns`.
fn covers(scope: &NamespaceScope, role: Role, patterns: &[Pattern]) -> bool {
    if scope.is_admin() {
        return true;
    }
    let grants = scope.grants();
    patterns.iter().all(|wanted| {
        grants.iter().any(|g| {
            let role_ok = matches!(
                (g.role, role),
                (Role::Auditor, Role::Auditor | Role::Viewer)
                    | (Role::Owner, Role::Owner | Role::Viewer)
                    | (Role::Viewer, Role::Viewer)
            );
            let pattern_ok = g.pattern.as_str() == "*"
                || g.pattern == *wanted
                || (!wanted.as_str().contains('*') && g.pattern.matches(wanted.as_str()))
                || g.pattern.as_str().strip_suffix('*').is_some_and(|prefix| {
                    !prefix.contains('*') && wanted.as_str().starts_with(prefix)
                });
            role_ok && pattern_ok
        })
    })
}

/// `30d`, `12h`, `45m` from now.
pub fn parse_lifetime(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let instant =
        crate::search::time::parse_instant(&format!("now+{}", text.trim()), chrono::Utc::now())
            .map_err(|e| Error::BadRequest(format!("expires: {e}")))?;
    Ok(chrono::DateTime::from_timestamp_nanos(instant))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access", security(("bearer" = []), ("session" = [])), params(("id" = i64, Path, description = "token id")),
    responses((status = 200, description = "the revoked token"), (status = 404, description = "no such token of yours", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn revoke_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(revoke_token_as(&state, &principal, *id).await?))
}

/// Revokes (and audits) token `id`: one of the principal's own, or any for an admin.
pub(crate) async fn revoke_token_as(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<tokens::Model> {
    let scope = authz::scope_for(&state.db, principal).await?;
    let owner = (!scope.is_admin()).then_some(principal.user.as_str());
    let token = tokens::revoke(&state.db, id, owner).await?;
    change(
        state,
        &principal.user,
        "token.revoke",
        vec![],
        serde_json::json!({ "id": token.id, "owner": token.user_name }),
    )
    .await?;
    Ok(token)
}

#[utoipa::path(get, path = "/api/v1/bindings", tag = "access", security(("bearer" = []), ("session" = [])), responses((status = 200, description = "every role binding (admins)"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn list_bindings(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(
        HttpResponse::Ok()
            .json(serde_json::json!({ "bindings": bindings::list(&state.db).await? })),
    )
}

#[utoipa::path(post, path = "/api/v1/bindings", tag = "access", security(("bearer" = []), ("session" = [])), request_body = NewBinding,
    responses((status = 201, description = "the binding, effective on the next request"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn add_binding(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<NewBinding>,
) -> Result<HttpResponse> {
    let binding = add_binding_as(&state, &principal, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(binding))
}

/// Adds (and audits) a binding; the caller has checked that `principal` is an admin.
pub(crate) async fn add_binding_as(
    state: &AppState,
    principal: &Principal,
    binding: NewBinding,
) -> Result<bindings::Model> {
    let binding = bindings::add(&state.db, binding, &principal.user).await?;
    change(
        state,
        &principal.user,
        "binding.create",
        vec![],
        serde_json::to_value(&binding).unwrap_or_default(),
    )
    .await?;
    Ok(binding)
}

#[utoipa::path(delete, path = "/api/v1/bindings/{id}", tag = "access", security(("bearer" = []), ("session" = [])), params(("id" = i64, Path, description = "binding id")),
    responses((status = 200, description = "the removed binding"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn remove_binding(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<i64>,
) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(remove_binding_as(&state, &principal, *id).await?))
}

/// Removes (and audits) binding `id`; the caller has checked that `principal` is an admin.
pub(crate) async fn remove_binding_as(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<bindings::Model> {
    let binding = bindings::remove(&state.db, id).await?;
    change(
        state,
        &principal.user,
        "binding.delete",
        vec![],
        serde_json::to_value(&binding).unwrap_or_default(),
    )
    .await?;
    Ok(binding)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub namespace: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u64>,
    /// Paging: the last id of the previous page.
    pub before_id: Option<i64>,
}

impl AuditParams {
    /// The filter these parameters ask for (empty text fields: no filter).
    pub(crate) fn filter(&self) -> Result<audit::AuditFilter> {
        let text = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
        let range = crate::search::TimeRange::parse(
            text(&self.from).as_deref(),
            text(&self.to).as_deref(),
            chrono::Utc::now(),
        )
        .map_err(Error::BadRequest)?;
        Ok(audit::AuditFilter {
            actor: text(&self.actor),
            action: text(&self.action),
            namespace: text(&self.namespace),
            from: range.from.map(chrono::DateTime::from_timestamp_nanos),
            to: range.to.map(chrono::DateTime::from_timestamp_nanos),
            before_id: self.before_id,
            limit: self.limit.unwrap_or(audit::DEFAULT_LIST_LIMIT),
        })
    }
}

/// The CISO's view: admins and auditors only.
pub(crate) async fn require_audit_reader(state: &AppState, principal: &Principal) -> Result<()> {
    let scope = authz::scope_for(&state.db, principal).await?;
    if scope.is_admin() || scope.grants().iter().any(|g| g.role == Role::Auditor) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "the audit log is for admins and auditors; an admin can grant the auditor role".into(),
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = []), ("session" = [])), params(AuditParams),
    responses((status = 200, description = "audit events, newest first (admins and auditors)"), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn list_audit(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse> {
    require_audit_reader(&state, &principal).await?;
    let events = audit::list(&state.db, &params.filter()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": events })))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "`{\"ok\": true, \"events\": N}`, or the first broken link", body = crate::audit::Verification), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not allowed", body = crate::error::ErrorBody)))]
async fn verify_audit(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse> {
    require_audit_reader(&state, &principal).await?;
    Ok(HttpResponse::Ok().json(audit::verify(&state.db).await?))
}
