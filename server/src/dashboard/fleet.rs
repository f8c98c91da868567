//! `/fleet` (admins): the fleet status the `GET /api/v1/fleet` handler serves, and the
//! editor of the desired state. A preview runs the fleet module's own checks
//! ([`settings::merge`]) without storing; a save goes through [`fleet::api::update_as`], the
//! path of `PUT /api/v1/admin/fleet/config`, so it is checked and audited the same way.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bitesize_web::{
    line_diff, render_fleet_page, FleetCluster, FleetDesired, FleetForm, FleetNode, FleetPage,
    FleetPreview,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::pages::forbidden;
use super::{html, redirect, viewer};
use crate::app::AppState;
use crate::authz::{self, NamespaceScope, Principal};
use crate::fleet;
use crate::fleet::settings::{self, FleetSettings, FleetSettingsUpdate};
use crate::fleet::status::{ClusterStatus, NodeStatus};
use crate::{Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/fleet", web::get().to(fleet_page))
        .route("/fleet/config", web::post().to(fleet_config));
}

/// Admins only; the others get the 403 page.
async fn admin_scope(
    state: &AppState,
    principal: &Principal,
    wanted: &str,
) -> Result<std::result::Result<NamespaceScope, HttpResponse>> {
    let scope = authz::scope_for(&state.db, principal).await?;
    if scope.is_admin() {
        return Ok(Ok(scope));
    }
    let missing = "the shipper fleet needs the admin role".to_owned();
    Ok(Err(
        forbidden(state, principal, &scope, wanted, missing).await?
    ))
}

/// `2026-11-25 06:24:27` from RFC 3339 (as given when it does not parse).
fn when(text: Option<&str>) -> String {
    match text {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| {
                t.with_timezone(&Utc)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_else(|_| t.to_owned()),
        None => String::new(),
    }
}

fn node_view(n: NodeStatus, desired_version: i64) -> FleetNode {
    FleetNode {
        stale: n.config_version.is_some_and(|v| v != desired_version),
        node: n.node,
        pod: n.pod,
        phase: n.phase,
        ready: n.ready,
        restarts: n.restarts,
        image: n.image.unwrap_or_default(),
        version: n.shipper_version.unwrap_or_default(),
        config_version: n.config_version,
        config_source: n.config_version_source.unwrap_or_default(),
        lines_per_second: n
            .lines_per_second
            .map(|l| format!("{l:.1}"))
            .unwrap_or_default(),
        errors: n.errors.map(|e| e.to_string()).unwrap_or_default(),
        metrics_error: n.metrics_error,
        last_seen: when(n.last_seen.as_deref()),
    }
}

fn cluster_view(c: ClusterStatus, desired_version: i64) -> FleetCluster {
    let t = &c.totals;
    let totals = format!(
        "{} nodes, {} ready, {} restarts, {:.1} lines/s, {} errors",
        t.nodes, t.ready, t.restarts, t.lines_per_second, t.errors
    );
    FleetCluster {
        reachable: c.reachable,
        error: c.error,
        last_contact: when(c.last_contact.as_deref()),
        last_reconcile: when(c.last_reconcile.as_deref()),
        last_applied: c.last_applied,
        config_version_applied: c.config_version_applied,
        nodes: c
            .nodes
            .into_iter()
            .map(|n| node_view(n, desired_version))
            .collect(),
        totals,
        name: c.name,
    }
}

/// Resources or tolerations as the editor shows them (YAML).
fn yaml_text(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|_| value.to_string())
}

fn form_of(settings: &FleetSettings) -> FleetForm {
    FleetForm {
        image: settings.image.clone(),
        version: settings.version.clone(),
        config: settings.config.clone(),
        resources: yaml_text(&settings.resources),
        tolerations: yaml_text(&settings.tolerations),
    }
}

/// The page with the live status; the editor holds `form` (else the stored settings).
async fn fleet_view(
    state: &AppState,
    principal: &Principal,
    scope: &NamespaceScope,
    form: Option<FleetForm>,
) -> Result<(FleetPage, FleetSettings)> {
    let settings = state.fleet.settings().await?;
    let status = state.fleet.status().await?;
    let desired_version = settings.config_version;
    let page = FleetPage {
        viewer: viewer(principal, scope),
        enabled: status.enabled,
        desired: FleetDesired {
            image: settings.image.clone(),
            version: settings.version.clone(),
            config_version: desired_version,
            updated_by: settings.updated_by.clone().unwrap_or_default(),
            updated_at: when(settings.updated_at.as_deref()),
        },
        clusters: status
            .clusters
            .into_iter()
            .map(|c| cluster_view(c, desired_version))
            .collect(),
        form: form.unwrap_or_else(|| form_of(&settings)),
        ..Default::default()
    };
    Ok((page, settings))
}

#[derive(Debug, Deserialize)]
struct FleetParams {
    done: Option<String>,
}

async fn fleet_page(
    state: web::Data<AppState>,
    principal: Principal,
    params: web::Query<FleetParams>,
) -> Result<HttpResponse> {
    let scope = match admin_scope(&state, &principal, "/fleet").await? {
        Ok(scope) => scope,
        Err(refused) => return Ok(refused),
    };
    let (mut page, settings) = fleet_view(&state, &principal, &scope, None).await?;
    page.notice = match params.done.as_deref() {
        Some("saved") => Some(format!(
            "Saved: the desired config version is now {}; the clusters are being updated.",
            settings.config_version
        )),
        Some("unchanged") => Some("Nothing changed: the settings were already these.".into()),
        _ => None,
    };
    Ok(html(render_fleet_page(page)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfigForm {
    /// `preview` or `save`.
    action: String,
    image: String,
    version: String,
    config: String,
    resources: String,
    tolerations: String,
}

impl ConfigForm {
    /// As the editor shows it again: browsers send textarea lines ending in CR LF.
    fn normalized(self) -> FleetForm {
        let lf = |t: String| t.replace("\r\n", "\n");
        FleetForm {
            image: self.image.trim().to_owned(),
            version: self.version.trim().to_owned(),
            config: lf(self.config),
            resources: lf(self.resources),
            tolerations: lf(self.tolerations),
        }
    }
}

/// YAML or JSON (JSON is YAML); blank: `empty`.
fn structured(key: &str, text: &str, empty: Value) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(empty);
    }
    serde_yaml::from_str(text)
        .map_err(|e| Error::BadRequest(format!("{key}: not YAML or JSON: {e}")))
}

fn change_of(form: &FleetForm) -> Result<FleetSettingsUpdate> {
    Ok(FleetSettingsUpdate {
        image: Some(form.image.clone()),
        version: Some(form.version.clone()),
        config: Some(form.config.clone()),
        resources: Some(structured(
            "resources",
            &form.resources,
            Value::Object(Default::default()),
        )?),
        tolerations: Some(structured(
            "tolerations",
            &form.tolerations,
            Value::Array(vec![]),
        )?),
    })
}

/// What saving `change` would change, as line diffs of each changed field's text.
fn preview(current: &FleetSettings, change: FleetSettingsUpdate) -> Result<FleetPreview> {
    let (next, changed) = settings::merge(current, change)?;
    let text = |s: &FleetSettings, field: &str| match field {
        "image" => s.image.clone(),
        "version" => s.version.clone(),
        "config" => s.config.clone(),
        "resources" => yaml_text(&s.resources),
        _ => yaml_text(&s.tolerations),
    };
    Ok(FleetPreview {
        rolls_out: changed.rolls_out(),
        diffs: changed
            .fields
            .iter()
            .map(|f| (f.to_string(), line_diff(&text(current, f), &text(&next, f))))
            .collect(),
        changed: changed.fields.iter().map(|f| f.to_string()).collect(),
    })
}

/// "Preview" or "Save" of the editor.
async fn fleet_config(
    state: web::Data<AppState>,
    principal: Principal,
    form: web::Form<ConfigForm>,
) -> Result<HttpResponse> {
    let scope = match admin_scope(&state, &principal, "/fleet/config").await? {
        Ok(scope) => scope,
        Err(refused) => return Ok(refused),
    };
    let form = form.into_inner();
    let save = match form.action.as_str() {
        "save" => true,
        "preview" | "" => false,
        other => {
            return Err(Error::BadRequest(format!(
                "action {other:?}: use preview or save"
            )))
        }
    };
    let form = form.normalized();
    let (mut page, current) = fleet_view(&state, &principal, &scope, Some(form.clone())).await?;
    let outcome = match change_of(&form) {
        Ok(change) if save => match fleet::api::update_as(&state, &principal, change).await {
            Ok(saved) if saved == current => return Ok(redirect("/fleet?done=unchanged")),
            Ok(_) => return Ok(redirect("/fleet?done=saved")),
            Err(e) => Err(e),
        },
        Ok(change) => preview(&current, change),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(p) => {
            page.preview = Some(p);
            Ok(html(render_fleet_page(page)))
        }
        Err(Error::BadRequest(reason)) => {
            page.error = Some(reason);
            Ok(HttpResponse::build(StatusCode::BAD_REQUEST)
                .content_type("text/html; charset=utf-8")
                .body(render_fleet_page(page)))
        }
        Err(e) => Err(e),
    }
}
