//! Who is asking: API tokens (`Authorization: Bearer`), session cookies, local accounts and
//! OpenID Connect sign-in (`oidc`).
//! Turns a request into a [`Principal`]; what the principal may do is `authz`'s business.

pub mod oidc;
pub mod passwords;
pub mod secret;
pub mod sessions;
pub mod tokens;

use actix_web::HttpRequest;
use sea_orm::DatabaseConnection;

use crate::authz::Principal;
use crate::{db, Result};

/// The principal behind a request's bearer token or session cookie, if any is valid.
pub async fn authenticate(
    db: &DatabaseConnection,
    request: &HttpRequest,
) -> Result<Option<Principal>> {
    if let Some(value) = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
    {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        return match token {
            Some(token) if !token.is_empty() => tokens::authenticate(db, token).await,
            _ => Ok(None),
        };
    }
    match request.cookie(sessions::COOKIE) {
        Some(cookie) => sessions::authenticate(db, cookie.value()).await,
        None => Ok(None),
    }
}

/// Checks a local account's password; `None` for an unknown user or a wrong password (the
/// same answer, so a caller cannot tell which).
pub async fn login_local(
    db: &DatabaseConnection,
    user: &str,
    password: &str,
) -> Result<Option<Principal>> {
    let Some(account) = db::users::find(db, user).await? else {
        // Spend the time a real check takes, so response times do not reveal which names exist.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy =
            DUMMY.get_or_init(|| passwords::hash("not-a-real-password").unwrap_or_default());
        passwords::verify(password, dummy);
        return Ok(None);
    };
    match account.password_hash.as_deref() {
        Some(stored) if passwords::verify(password, stored) => Ok(Some(Principal {
            user: account.name,
            groups: Vec::new(),
            token: None,
        })),
        _ => Ok(None),
    }
}
