//! The namespace registry and Kafka governance API: `/api/v1/admin/namespaces` (admins;
//! owners may read and change their own namespace's retention) and the ACL plan
//! (`/api/v1/admin/kafka/acls`, admins). See `kafka::registry` for the rules.

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::authz::{self, bindings, Principal};
use crate::config::Config;
use crate::kafka::acl;
use crate::kafka::admin::TopicAdmin;
use crate::kafka::registry::{
    Caller, CreateNamespace, DeleteNamespace, NamespaceEntry, NamespaceList, NamespaceRegistry,
    UpdateNamespace,
};
use crate::{db, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/admin/namespaces", web::get().to(list))
        .route("/api/v1/admin/namespaces", web::post().to(create))
        .route("/api/v1/admin/namespaces/{name}", web::get().to(show))
        .route("/api/v1/admin/namespaces/{name}", web::patch().to(update))
        .route("/api/v1/admin/namespaces/{name}", web::delete().to(remove))
        .route("/api/v1/admin/kafka/acls", web::get().to(acls));
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("request body: {e}")))
}

pub(crate) fn registry(state: &AppState) -> Result<NamespaceRegistry> {
    let config = state.config.clone();
    Ok(NamespaceRegistry {
        admin: TopicAdmin::shared(&config.kafka)?,
        db: state.db.clone(),
        config,
        indexes: state.registry.clone(),
        metrics: state.metrics.clone(),
    })
}

/// Brings the Kafka gauges (partitions, end offsets, lag) up to date before a scrape; a
/// Kafka that does not answer leaves them as they were, logged.
pub async fn refresh_kafka_metrics(state: &AppState) {
    let refresh = async { registry(state)?.list().await };
    match tokio::time::timeout(std::time::Duration::from_secs(10), refresh).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "kafka metrics not refreshed"),
        Err(_) => tracing::warn!("kafka metrics not refreshed: kafka did not answer in 10 s"),
    }
}

#[utoipa::path(get, path = "/api/v1/admin/namespaces", tag = "kafka", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "registry entries with their topic's partitions, end offsets and this server's lag; topics matching the pattern that are not in the registry", body = NamespaceList), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody)))]
async fn list(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(registry(&state)?.list().await?))
}

#[utoipa::path(post, path = "/api/v1/admin/namespaces", tag = "kafka", security(("bearer" = []), ("session" = [])), request_body = CreateNamespace,
    responses((status = 201, description = "created (or adopted) with its topic", body = NamespaceEntry), (status = 400, description = "bad name or setting, topic exists (adopt it) or the namespace is registered already", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody), (status = 404, description = "adopt: the topic does not exist", body = crate::error::ErrorBody)))]
async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    bytes: Bytes,
) -> Result<HttpResponse> {
    let request: CreateNamespace = body(&bytes)?;
    let entry = registry(&state)?.create(&principal.user, request).await?;
    Ok(HttpResponse::Created().json(entry))
}

#[utoipa::path(get, path = "/api/v1/admin/namespaces/{name}", tag = "kafka", security(("bearer" = []), ("session" = [])), params(("name" = String, Path, description = "namespace")),
    responses((status = 200, description = "the entry (admins and the namespace's owners)", body = NamespaceEntry), (status = 403, description = "neither admin nor owner", body = crate::error::ErrorBody), (status = 404, description = "not in the registry", body = crate::error::ErrorBody)))]
async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    let caller = Caller {
        principal: &principal,
        scope: &scope,
    };
    Ok(HttpResponse::Ok().json(registry(&state)?.get(&caller, &name).await?))
}

#[utoipa::path(patch, path = "/api/v1/admin/namespaces/{name}", tag = "kafka", security(("bearer" = []), ("session" = [])), params(("name" = String, Path, description = "namespace")), request_body = UpdateNamespace,
    responses((status = 200, description = "changed, topic included", body = NamespaceEntry), (status = 400, description = "bad value, or fewer partitions (partitions can only grow)", body = crate::error::ErrorBody), (status = 403, description = "not an admin; owners only retention within bounds", body = crate::error::ErrorBody), (status = 404, description = "not in the registry", body = crate::error::ErrorBody)))]
async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    bytes: Bytes,
) -> Result<HttpResponse> {
    let request: UpdateNamespace = body(&bytes)?;
    let scope = authz::scope_for(&state.db, &principal).await?;
    let caller = Caller {
        principal: &principal,
        scope: &scope,
    };
    let entry = registry(&state)?.update(&caller, &name, request).await?;
    Ok(HttpResponse::Ok().json(entry))
}

#[utoipa::path(delete, path = "/api/v1/admin/namespaces/{name}", tag = "kafka", security(("bearer" = []), ("session" = [])), params(("name" = String, Path, description = "namespace")), request_body = DeleteNamespace,
    responses((status = 204, description = "removed from the registry, topic deleted unless keep_topic"), (status = 400, description = "confirm does not repeat the name", body = crate::error::ErrorBody), (status = 403, description = "not an admin", body = crate::error::ErrorBody), (status = 404, description = "not in the registry", body = crate::error::ErrorBody)))]
async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<String>,
    bytes: Bytes,
) -> Result<HttpResponse> {
    let scope = authz::scope_for(&state.db, &principal).await?;
    if !scope.is_admin() {
        return Err(Error::Forbidden(
            "deleting a namespace needs the admin role".into(),
        ));
    }
    let request: DeleteNamespace = body(&bytes)?;
    registry(&state)?
        .delete(scope.actor(), &name, request)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The ACL plan of the registry and bindings.
pub async fn acl_plan(db: &sea_orm::DatabaseConnection, config: &Config) -> Result<acl::AclPlan> {
    let registry = db::namespaces::all(db).await?;
    let bindings = bindings::list(db).await?;
    Ok(acl::describe(
        &config.kafka,
        acl::plan(&config.kafka, &registry, &bindings),
    ))
}

#[utoipa::path(get, path = "/api/v1/admin/kafka/acls", tag = "kafka", security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "the Kafka ACLs each principal needs, with kafka-acls commands", body = acl::AclPlan), (status = 403, description = "not an admin", body = crate::error::ErrorBody)))]
async fn acls(state: web::Data<AppState>) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(acl_plan(&state.db, &state.config).await?))
}
