//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`. Schemas are derived
//! from the response types themselves, so the document cannot drift from what handlers send.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Bitesize API", description = "Kubernetes logs per namespace: search, histogram, facets, export, tail; access and audit."),
    paths(
        super::healthz,
        super::search_records,
        super::histogram,
        super::facets,
        super::namespaces,
        super::stream::export,
        super::stream::tail,
        super::access::me,
        super::access::list_tokens,
        super::access::create_token,
        super::access::revoke_token,
        super::access::list_bindings,
        super::access::add_binding,
        super::access::remove_binding,
        super::access::list_audit,
        super::access::verify_audit,
        super::namespaces_admin::list,
        super::namespaces_admin::create,
        super::namespaces_admin::show,
        super::namespaces_admin::update,
        super::namespaces_admin::remove,
        super::namespaces_admin::acls,
        super::kafka_stream::stream,
        crate::fleet::api::status,
        crate::fleet::api::show_config,
        crate::fleet::api::update_config,
        super::archive::list,
        super::archive::rehydrate,
        super::archive::rehydrate_status,
        super::saved_searches::list,
        super::saved_searches::create,
        super::saved_searches::show,
        super::saved_searches::remove,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an API token (bsz_...)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::sessions::COOKIE,
            ))),
        );
    }
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::routes::ROUTES;

    /// Every API route in the route table is in the document, and nothing else is.
    #[test]
    fn every_api_route_is_documented() {
        let doc = ApiDoc::openapi();
        let documented: Vec<&String> = doc.paths.paths.keys().collect();
        for (route, _) in ROUTES {
            if route.starts_with("/api/v1/") && *route != "/api/v1/openapi.json" {
                assert!(
                    documented.iter().any(|d| d == route),
                    "{route} is missing from the OpenAPI document"
                );
            }
        }
        for path in documented {
            assert!(
                ROUTES.iter().any(|(r, _)| r == path),
                "{path} is documented but not routed"
            );
        }
        let json = serde_json::to_value(&doc).unwrap();
        assert!(
            json["components"]["schemas"]["SearchResponse"]["properties"]["next_cursor"]
                .is_object()
        );
        assert!(json["paths"]["/api/v1/search"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "q"));
    }
}
