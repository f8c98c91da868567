//! Every route, classified in one table. A middleware looks each request's route up here:
//! public routes pass, the others need a signed-in principal (401 for the API, a redirect
//! to the sign-in page for pages), and admin routes an admin (403). A route missing from the
//! table answers 500, and a test checks that every registered route has an entry.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};

use super::Principal;
use crate::app::AppState;
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in principal; what it sees is then limited by its scope.
    SignedIn,
    /// Admins only.
    Admin,
}

/// (route pattern as registered, access).
pub const ROUTES: &[(&str, Access)] = &[
    ("/healthz", Access::Public),
    ("/readyz", Access::Public),
    ("/metrics", Access::Admin),
    ("/", Access::Public),
    ("/login", Access::Public),
    ("/auth/login", Access::Public),
    ("/auth/logout", Access::Public),
    ("/auth/oidc/{provider}/login", Access::Public),
    ("/auth/oidc/{provider}/callback", Access::Public),
    ("/search", Access::SignedIn),
    ("/assets/app.js", Access::Public),
    // Dashboard pages: each checks its own role and answers the 403 page, not JSON.
    ("/access", Access::SignedIn),
    ("/access/bindings", Access::SignedIn),
    ("/access/bindings/{id}/delete", Access::SignedIn),
    ("/access/tokens", Access::SignedIn),
    ("/access/tokens/{id}/revoke", Access::SignedIn),
    ("/audit", Access::SignedIn),
    ("/audit/export", Access::SignedIn),
    ("/namespaces", Access::SignedIn),
    ("/namespaces/{name}/retention", Access::SignedIn),
    ("/namespaces/{name}/delete", Access::SignedIn),
    ("/fleet", Access::SignedIn),
    ("/fleet/config", Access::SignedIn),
    ("/api/v1/search", Access::SignedIn),
    ("/api/v1/histogram", Access::SignedIn),
    ("/api/v1/facets", Access::SignedIn),
    ("/api/v1/export", Access::SignedIn),
    ("/api/v1/tail", Access::SignedIn),
    ("/api/v1/namespaces", Access::SignedIn),
    ("/api/v1/openapi.json", Access::Public),
    ("/api/v1/me", Access::SignedIn),
    ("/api/v1/tokens", Access::SignedIn),
    ("/api/v1/tokens/{id}", Access::SignedIn),
    ("/api/v1/bindings", Access::Admin),
    ("/api/v1/bindings/{id}", Access::Admin),
    ("/api/v1/audit", Access::SignedIn),
    ("/api/v1/audit/verify", Access::SignedIn),
    ("/api/v1/admin/namespaces", Access::Admin),
    // Owners read and change their own namespace's retention; the handler checks.
    ("/api/v1/admin/namespaces/{name}", Access::SignedIn),
    ("/api/v1/admin/kafka/acls", Access::Admin),
    ("/api/v1/fleet", Access::Admin),
    ("/api/v1/admin/fleet/config", Access::Admin),
    // Only namespaces in the caller's scope; the handler checks and audits.
    ("/api/v1/namespaces/{ns}/stream", Access::SignedIn),
    // The archive: listing and rehydrate status narrowed to the caller's scope; rehydrate
    // for admins and the namespace's owners (the handlers check and audit).
    ("/api/v1/archive", Access::SignedIn),
    ("/api/v1/archive/rehydrate", Access::SignedIn),
    ("/api/v1/archive/rehydrate/{id}", Access::SignedIn),
    // Saved searches: each caller sees theirs and those shared with them (the handler checks).
    ("/api/v1/saved-searches", Access::SignedIn),
    ("/api/v1/saved-searches/{id}", Access::SignedIn),
    ("/search/saved", Access::SignedIn),
    ("/search/saved/{id}/delete", Access::SignedIn),
];

/// Routes read by programs, which get a 401 rather than a redirect to the sign-in page.
fn is_machine_route(pattern: &str) -> bool {
    pattern.starts_with("/api/") || pattern == "/metrics"
}

pub fn access_of(pattern: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(p, _)| *p == pattern)
        .map(|(_, access)| *access)
}

/// The middleware that enforces [`ROUTES`].
pub async fn enforce(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(pattern) = request.match_pattern() else {
        return Ok(next.call(request).await?.map_into_boxed_body()); // no such route: 404
    };
    let Some(access) = access_of(&pattern) else {
        tracing::error!(route = %pattern, "route is not classified in authz::routes::ROUTES");
        let response =
            Error::Internal(format!("route {pattern} is not classified")).error_response();
        return Ok(request.into_response(response));
    };
    if access == Access::Public {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("app state")
        .clone();
    let principal = match crate::auth::authenticate(&state.db, request.request()).await {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            let response = if is_machine_route(&pattern) {
                Error::Unauthorized("sign in, or send Authorization: Bearer <token>".into())
                    .error_response()
            } else {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/search".to_owned(), |p| p.to_string());
                HttpResponse::Found()
                    .insert_header(("Location", format!("/login?next={}", urlencode(&target))))
                    .finish()
            };
            return Ok(request.into_response(response));
        }
        Err(e) => return Ok(request.into_response(e.error_response())),
    };
    if access == Access::Admin {
        match super::scope_for(&state.db, &principal).await {
            Ok(scope) if scope.is_admin() => {}
            Ok(_) => {
                let response = Error::Forbidden(
                    "this needs the admin role; an admin can grant it under Access".into(),
                )
                .error_response();
                return Ok(request.into_response(response));
            }
            Err(e) => return Ok(request.into_response(e.error_response())),
        }
    }
    request.extensions_mut().insert(principal);
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl actix_web::FromRequest for Principal {
    type Error = Error;
    type Future = std::future::Ready<Result<Principal, Error>>;

    fn from_request(
        request: &actix_web::HttpRequest,
        _: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        // Present whenever the route is not public: the middleware put it there.
        std::future::ready(
            request
                .extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| {
                    Error::Unauthorized("sign in, or send Authorization: Bearer <token>".into())
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route registered in the source is classified: adding a route without an entry in
    /// [`ROUTES`] fails here (and answers 500 at run time).
    #[test]
    fn every_registered_route_is_classified() {
        let sources = [
            include_str!("../api/mod.rs"),
            include_str!("../api/access.rs"),
            include_str!("../api/namespaces_admin.rs"),
            include_str!("../api/kafka_stream.rs"),
            include_str!("../api/archive.rs"),
            include_str!("../api/saved_searches.rs"),
            include_str!("../dashboard/mod.rs"),
            include_str!("../dashboard/pages.rs"),
            include_str!("../dashboard/fleet.rs"),
            include_str!("../dashboard/saved.rs"),
        ];
        let mut registered = Vec::new();
        for source in sources {
            // `.route("/path", ...)`, also when rustfmt puts the path on its own line.
            for piece in source.split(".route(").skip(1) {
                if let Some(path) = piece.trim_start().strip_prefix('"') {
                    registered.push(path.split('"').next().unwrap().to_owned());
                }
            }
        }
        assert!(registered.len() >= 20, "found {registered:?}");
        for route in &registered {
            assert!(
                access_of(route).is_some(),
                "route {route} is not classified in authz::routes::ROUTES"
            );
        }
        for (route, _) in ROUTES {
            assert!(
                registered.iter().any(|r| r == route),
                "ROUTES lists {route}, which is not registered"
            );
        }
    }

    #[test]
    fn data_and_admin_routes_are_not_public() {
        // The API description carries no data; everything else under /api/v1 does.
        let described = "/api/v1/openapi.json";
        for (route, access) in ROUTES {
            if (route.starts_with("/api/v1/") && *route != described) || *route == "/search" {
                assert_ne!(*access, Access::Public, "{route}");
            }
        }
        assert_eq!(access_of("/api/v1/bindings"), Some(Access::Admin));
    }
}
