//! `GET /api/v1/fleet` (status) and `GET`/`PUT /api/v1/admin/fleet/config` (the desired
//! state), admins only (see `authz::routes`). Every change is audited.

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use sha2::{Digest, Sha256};

use super::settings::{FleetSettings, FleetSettingsUpdate};
use super::status::FleetStatus;
use crate::app::AppState;
use crate::authz::Principal;
use crate::{audit, Error, Result};

#[utoipa::path(get, path = "/api/v1/fleet", tag = "fleet", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "the shipper of every node, per cluster; `enabled: false` when no cluster is managed", body = FleetStatus), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody)))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.fleet.status().await?))
}

#[utoipa::path(get, path = "/api/v1/admin/fleet/config", tag = "fleet", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "the desired state of the shipper fleet", body = FleetSettings), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody)))]
pub async fn show_config(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.fleet.settings().await?))
}

#[utoipa::path(put, path = "/api/v1/admin/fleet/config", tag = "fleet", security(("bearer" = []), ("session" = [])), request_body = FleetSettingsUpdate,
    responses((status = 200, description = "stored and being applied; a config change updates only the ConfigMap (shippers reload it)", body = FleetSettings), (status = 400, description = "bad value, naming the key", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody)))]
pub async fn update_config(
    state: web::Data<AppState>,
    principal: Principal,
    bytes: Bytes,
) -> Result<HttpResponse> {
    let change: FleetSettingsUpdate = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("request body: {e}")))?;
    Ok(HttpResponse::Ok().json(update_as(&state, &principal, change).await?))
}

/// Validates, stores and audits a change by `principal` (an admin: the caller checks); the
/// API's `PUT` and the dashboard's `/fleet` editor both change the fleet through this.
pub async fn update_as(
    state: &AppState,
    principal: &Principal,
    change: FleetSettingsUpdate,
) -> Result<FleetSettings> {
    let (settings, changed) = state.fleet.update(change, &principal.user).await?;
    if !changed.fields.is_empty() {
        // The config may hold Kafka credentials: the audit log gets its hash only.
        let config_sha256 = format!("{:x}", Sha256::digest(settings.config.as_bytes()));
        audit::record(
            &state.db,
            audit::NewEvent {
                actor: principal.user.clone(),
                action: "fleet.config.update".into(),
                namespaces: Vec::new(),
                query: None,
                hits: None,
                reason: None,
                detail: serde_json::json!({
                    "changed": changed.fields,
                    "image": settings.image,
                    "version": settings.version,
                    "config_version": settings.config_version,
                    "config_sha256": config_sha256,
                    "rollout": changed.rolls_out(),
                }),
            },
        )
        .await?;
    }
    Ok(settings)
}
