//! Request hardening that applies to every route: security headers on every response, a
//! same-origin check on state-changing requests that ride on the session cookie (CSRF),
//! and a limit on failed sign-ins per client address (password form and single sign-on
//! callbacks alike).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::Error;

/// Largest JSON or form body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Security headers on every response.
pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut response = next.call(request).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}

/// Refuses a state-changing request whose `Origin` (or, without one, `Referer`) is another
/// site. Requests that carry a bearer token are not at risk (a browser never adds one by
/// itself); requests that carry the session cookie must prove they come from our pages.
pub async fn same_origin_writes(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && !request.headers().contains_key(header::AUTHORIZATION) {
        let host = request.connection_info().host().to_owned();
        let origin = header_host(request.headers().get(header::ORIGIN))
            .or_else(|| header_host(request.headers().get(header::REFERER)));
        let has_cookie = request.cookie(crate::auth::sessions::COOKIE).is_some();
        let allowed = match origin {
            Some(origin) => origin == host,
            // No Origin or Referer at all: only a non-browser client without our cookie.
            None => !has_cookie,
        };
        if !allowed {
            let response =
                Error::Forbidden("cross-site request refused: the Origin is not this site".into())
                    .error_response();
            return Ok(request.into_response(response));
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// `host[:port]` of an Origin or Referer header.
fn header_host(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let rest = text.split_once("://")?.1;
    Some(rest.split('/').next()?.to_owned())
}

/// Failed sign-ins per client address, in a sliding window.
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
    max: usize,
    window: Duration,
}

impl LoginLimiter {
    pub fn new(max: usize, window: Duration) -> LoginLimiter {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    fn blocked(&self, ip: IpAddr) -> bool {
        let mut failures = self.failures.lock().expect("limiter lock");
        let now = Instant::now();
        let list = failures.entry(ip).or_default();
        list.retain(|t| now.duration_since(*t) < self.window);
        list.len() >= self.max
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().expect("limiter lock");
        if failures.len() > 100_000 {
            failures.clear(); // bounded memory under a flood of addresses
        }
        failures.entry(ip).or_default().push(Instant::now());
    }
}

/// The sign-in attempts the limiter watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignIn {
    /// `POST /auth/login`: a wrong password answers 401.
    Password,
    /// `GET /auth/oidc/{provider}/callback`: a refused callback (tampered or replayed state,
    /// a token that fails its checks, a refusal by the provider) answers 4xx. Counting these
    /// stops a client from trying codes or states without end.
    SsoCallback,
}

fn sign_in_attempt(method: &Method, path: &str) -> Option<SignIn> {
    if method == Method::POST && path == "/auth/login" {
        return Some(SignIn::Password);
    }
    let provider = path
        .strip_prefix("/auth/oidc/")?
        .strip_suffix("/callback")?;
    (method == Method::GET && !provider.is_empty() && !provider.contains('/'))
        .then_some(SignIn::SsoCallback)
}

/// Applies the [`LoginLimiter`] in app data to sign-in attempts: past the limit, the sign-in
/// page says so with a 429, whether the attempt is a password or an SSO callback.
pub async fn limit_logins(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let attempt = sign_in_attempt(request.method(), request.path());
    let limiter = request.app_data::<web::Data<LoginLimiter>>().cloned();
    let ip = request.peer_addr().map(|a| a.ip());
    let (Some(limiter), Some(ip), Some(attempt)) = (limiter, ip, attempt) else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    if limiter.blocked(ip) {
        let reason = format!(
            "Too many failed sign-ins from this address. Try again in {} minutes.",
            limiter.window.as_secs().div_ceil(60)
        );
        let mut response = match request.app_data::<web::Data<crate::app::AppState>>() {
            Some(state) => crate::dashboard::login_failed_page(
                state,
                StatusCode::TOO_MANY_REQUESTS,
                "/search",
                reason,
            ),
            None => actix_web::HttpResponse::TooManyRequests().body(reason),
        };
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(limiter.window.as_secs()),
        );
        return Ok(request.into_response(response));
    }
    let response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    let failed = match attempt {
        SignIn::Password => status == StatusCode::UNAUTHORIZED,
        SignIn::SsoCallback => status.is_client_error(),
    };
    if failed {
        limiter.failed(ip);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_max_failures_per_address() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(!limiter.blocked(a));
            limiter.failed(a);
        }
        assert!(limiter.blocked(a));
        assert!(!limiter.blocked(b), "other addresses are not affected");
        let short = LoginLimiter::new(1, Duration::from_millis(1));
        short.failed(a);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.blocked(a), "failures expire");
    }

    #[test]
    fn password_posts_and_sso_callbacks_are_sign_in_attempts() {
        let attempt = |method: Method, path: &str| sign_in_attempt(&method, path);
        assert_eq!(attempt(Method::POST, "/auth/login"), Some(SignIn::Password));
        assert_eq!(
            attempt(Method::GET, "/auth/oidc/corp/callback"),
            Some(SignIn::SsoCallback)
        );
        assert_eq!(attempt(Method::GET, "/auth/login"), None);
        assert_eq!(attempt(Method::GET, "/auth/oidc/corp/login"), None);
        assert_eq!(attempt(Method::GET, "/auth/oidc//callback"), None);
        assert_eq!(attempt(Method::GET, "/auth/oidc/a/b/callback"), None);
    }

    #[test]
    fn origin_host_is_extracted() {
        let value = HeaderValue::from_static("http://127.0.0.1:8080/search?q=x");
        assert_eq!(header_host(Some(&value)).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(header_host(Some(&HeaderValue::from_static("null"))), None);
    }
}
