//! Single sign-on with OpenID Connect: the authorization code flow with PKCE, `state` and
//! `nonce`, issuer discovery, ID token validation (signature, issuer, audience, expiry with
//! clock skew, `at_hash`), groups from a configured claim of the ID token or of userinfo, and
//! RP-initiated logout where the provider advertises an `end_session_endpoint`.
//!
//! `GET /auth/oidc/{provider}/login` sends the browser to the provider;
//! `GET /auth/oidc/{provider}/callback` checks what comes back and starts a session (both
//! registered by `dashboard::routes`; the process's [`Sso`] is `AppState::sso`, built from
//! the configuration at start-up).
//!
//! A sign-in in progress (state, nonce, PKCE verifier, where to go afterwards) is kept in the
//! database (`oidc_logins`), keyed by a hash of the random `state`, for at most
//! [`PENDING_TTL`], and used once. The database rather than memory: with several server
//! processes behind a load balancer the callback may reach another process than the login,
//! and a restart between the two does not lose the sign-in. The `state` is also put in a
//! short-lived cookie of its own, and the callback must come with both: a callback started
//! in another browser (login CSRF) or with a changed `state` is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, IdToken, IdTokenClaims, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, SubjectIdentifier, TokenResponse,
    UserInfoClaims,
};
use sea_orm::entity::prelude::*;
use sea_orm::Set;
use serde::{Deserialize, Serialize};

use super::{secret, sessions};
use crate::app::AppState;
use crate::config::{Config, GroupsFrom, OidcProvider};
use crate::{audit, db};

/// How long a sign-in may take between the redirect to the provider and its callback.
pub const PENDING_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// How long a provider's discovery document (endpoints and signing keys) is reused.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// The cookie that binds a sign-in in progress to the browser that started it.
pub const STATE_COOKIE: &str = "bitesize_oidc_state";
const STATE_COOKIE_PATH: &str = "/auth/oidc/";

/// A sign-in in progress (`oidc_logins`).
pub mod pending {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oidc_logins")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// SHA-256 of the `state` (the cookie and the callback carry the state itself).
        pub state_hash: String,
        pub provider: String,
        pub nonce: String,
        pub pkce_verifier: String,
        /// Where to go after signing in (a same-site path).
        pub next: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Claims beyond the standard ones (the groups claim, or a custom user name claim).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

type OurIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OurIdTokenClaims = IdTokenClaims<ExtraClaims, CoreGenderClaim>;

/// The configured providers, an HTTP client for talking to them and their discovery
/// documents. One per process (`AppState::sso`).
pub struct Sso {
    config: Arc<Config>,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<HashMap<String, (Instant, ProviderMetadataWithLogout)>>,
}

/// A provider as the login page offers it.
#[derive(Debug, Clone)]
pub struct ProviderLink {
    pub name: String,
    pub display_name: String,
}

impl Sso {
    /// The sign-in settings of `config`.
    pub fn new(config: Arc<Config>) -> Sso {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would let a provider point us anywhere (SSRF).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client with these settings always builds");
        Sso {
            config,
            http,
            metadata: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn local_accounts(&self) -> bool {
        self.config.local_accounts
    }

    pub fn providers(&self) -> Vec<ProviderLink> {
        self.config
            .oidc
            .iter()
            .map(|p| ProviderLink {
                name: p.name.clone(),
                display_name: p.display_name().to_owned(),
            })
            .collect()
    }

    fn provider(&self, name: &str) -> Option<&OidcProvider> {
        self.config.oidc.iter().find(|p| p.name == name)
    }

    /// The provider's discovery document, fetched at most every [`METADATA_TTL`].
    async fn metadata(
        &self,
        provider: &OidcProvider,
    ) -> Result<ProviderMetadataWithLogout, String> {
        let mut cache = self.metadata.lock().await;
        if let Some((at, metadata)) = cache.get(&provider.name) {
            if at.elapsed() < METADATA_TTL {
                return Ok(metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(provider.issuer_url.clone()).map_err(|e| e.to_string())?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the OpenID configuration of {} at {}: {}",
                    provider.display_name(),
                    provider.issuer_url,
                    error_chain(&e)
                )
            })?;
        cache.insert(provider.name.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        &self,
        provider: &OidcProvider,
        metadata: ProviderMetadataWithLogout,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        String,
    > {
        let redirect = RedirectUrl::new(self.config.oidc_redirect_url(provider))
            .map_err(|e| format!("redirect_url: {e}"))?;
        // Read at each use: a secret file rotated in place applies without a restart. The
        // error names the key, never the secret.
        let index = self
            .config
            .oidc
            .iter()
            .position(|p| p.name == provider.name)
            .unwrap_or_default();
        let secret = provider.client_secret(&format!("oidc[{index}]"))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.client_id.clone()),
            secret.map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser after a local sign-out of a session that came from
    /// `provider_name`: its `end_session_endpoint` with the ID token as hint (when there is
    /// one), if the provider has such an endpoint.
    pub async fn end_session_url(
        &self,
        provider_name: &str,
        id_token: Option<&str>,
    ) -> Option<String> {
        let provider = self.provider(provider_name)?;
        let metadata = match self.metadata(provider).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(provider = %provider.name, error = %e, "no RP-initiated logout");
                return None;
            }
        };
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            LogoutRequest::from(endpoint).set_client_id(ClientId::new(provider.client_id.clone()));
        if let Some(Ok(token)) = id_token.map(str::parse::<OurIdToken>) {
            request = request.set_id_token_hint(&token);
        }
        if let Ok(back) = PostLogoutRedirectUrl::new(format!("{}/login", self.config.public_base()))
        {
            request = request.set_post_logout_redirect_uri(back);
        }
        Some(request.http_get_url().to_string())
    }
}

/// The chain of an error's causes, one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, Deserialize)]
pub struct LoginParams {
    next: Option<String>,
}

/// A sign-in that did not work: the login page says why.
struct Failure {
    status: StatusCode,
    reason: String,
}

impl Failure {
    fn new(status: StatusCode, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
        }
    }

    fn rejected(reason: impl Into<String>) -> Failure {
        Failure::new(StatusCode::UNAUTHORIZED, reason)
    }

    /// A setting of ours is wrong (e.g. an unreadable secret file): the operator reads why
    /// in the log, the user is told to ask them.
    fn misconfigured(provider: &OidcProvider, error: String) -> Failure {
        tracing::error!(provider = %provider.name, error = %error, "sign-in provider misconfigured");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Sign-in with {} is not set up correctly here; the server log says why.",
                provider.display_name()
            ),
        )
    }
}

fn secure(request: &HttpRequest) -> bool {
    request.connection_info().scheme() == "https"
}

fn state_cookie(value: String, request: &HttpRequest) -> Cookie<'static> {
    Cookie::build(STATE_COOKIE, value)
        .path(STATE_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(request))
        .max_age(actix_web::cookie::time::Duration::seconds(
            PENDING_TTL.num_seconds(),
        ))
        .finish()
}

fn state_cookie_removal() -> Cookie<'static> {
    let mut gone = Cookie::build(STATE_COOKIE, "")
        .path(STATE_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    gone.make_removal();
    gone
}

/// `GET /auth/oidc/{provider}/login`: to the provider, with a new state, nonce and PKCE
/// challenge.
pub async fn login(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    params: web::Query<LoginParams>,
    request: HttpRequest,
) -> HttpResponse {
    let next = crate::dashboard::safe_next(params.next.as_deref());
    match start_login(&state, &state.sso, &provider, &next).await {
        Ok((url, state_value)) => HttpResponse::SeeOther()
            .cookie(state_cookie(state_value, &request))
            .insert_header((header::LOCATION, url))
            .finish(),
        Err(failure) => {
            crate::dashboard::login_failed_page(&state, failure.status, &next, failure.reason)
        }
    }
}

/// Records the sign-in in progress; returns the provider's authorization URL and the state.
async fn start_login(
    state: &AppState,
    sso: &Sso,
    name: &str,
    next: &str,
) -> Result<(String, String), Failure> {
    let provider = sso.provider(name).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("There is no sign-in provider named {name:?}."),
        )
    })?;
    let metadata = sso
        .metadata(provider)
        .await
        .map_err(|e| Failure::new(StatusCode::BAD_GATEWAY, e))?;
    let client = sso
        .client(provider, metadata)
        .map_err(|e| Failure::misconfigured(provider, e))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut authorize = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in provider.scopes.iter().filter(|s| *s != "openid") {
        authorize = authorize.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = authorize.set_pkce_challenge(challenge).url();

    let now = chrono::Utc::now();
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "recording a sign-in");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not record the sign-in; see the server log.",
        )
    };
    // Sign-ins never finished are dropped here.
    pending::Entity::delete_many()
        .filter(pending::Column::CreatedAt.lt(now - PENDING_TTL))
        .exec(&state.db)
        .await
        .map_err(internal)?;
    pending::ActiveModel {
        state_hash: Set(secret::hash(csrf.secret())),
        provider: Set(provider.name.clone()),
        nonce: Set(nonce.secret().clone()),
        pkce_verifier: Set(verifier.secret().clone()),
        next: Set(next.to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(internal)?;
    Ok((url.to_string(), csrf.secret().clone()))
}

#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the issuer of this response, where the provider says it.
    iss: Option<String>,
}

/// Who signed in.
struct SignedIn {
    user: String,
    groups: Vec<String>,
    id_token: String,
    next: String,
}

/// `GET /auth/oidc/{provider}/callback`: checks what the provider sent back; on success a
/// session and a redirect to where the user was going, else the login page saying why.
pub async fn callback(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    params: web::Query<CallbackParams>,
    request: HttpRequest,
) -> crate::Result<HttpResponse> {
    let provider = provider.into_inner();
    let cookie_state = request.cookie(STATE_COOKIE).map(|c| c.value().to_owned());
    let mut next = "/search".to_owned();
    let result = finish_login(
        &state,
        &state.sso,
        &provider,
        &params,
        cookie_state.as_deref(),
        &mut next,
    )
    .await;
    match result {
        Ok(signed_in) => {
            if db::users::find(&state.db, &signed_in.user).await?.is_none() {
                db::users::add(&state.db, &signed_in.user, None).await?;
            }
            // A fresh session at every sign-in; the old one, if any, ends.
            if let Some(old) = request.cookie(sessions::COOKIE) {
                sessions::end(&state.db, old.value()).await?;
            }
            let secret = sessions::start_with_origin(
                &state.db,
                &signed_in.user,
                &signed_in.groups,
                Some(sessions::SsoOrigin {
                    provider: provider.clone(),
                    id_token: signed_in.id_token,
                }),
            )
            .await?;
            audit::record(
                &state.db,
                audit::NewEvent {
                    actor: signed_in.user.clone(),
                    action: "login.success".into(),
                    namespaces: vec![],
                    query: None,
                    hits: None,
                    reason: None,
                    detail: serde_json::json!({
                        "method": "oidc",
                        "provider": provider,
                        "groups": signed_in.groups,
                    }),
                },
            )
            .await?;
            let cookie = Cookie::build(sessions::COOKIE, secret)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure(&request))
                .finish();
            Ok(HttpResponse::SeeOther()
                .cookie(cookie)
                .cookie(state_cookie_removal())
                .insert_header((header::LOCATION, signed_in.next))
                .finish())
        }
        Err(failure) => {
            tracing::info!(provider = %provider, reason = %failure.reason, "sign-in refused");
            audit::record(
                &state.db,
                audit::NewEvent {
                    // No verified user name on a failed sign-in: the provider stands in.
                    actor: format!("oidc:{provider}").chars().take(200).collect(),
                    action: "login.failure".into(),
                    namespaces: vec![],
                    query: None,
                    hits: None,
                    reason: None,
                    detail: serde_json::json!({
                        "method": "oidc",
                        "provider": provider,
                        "reason": failure.reason,
                    }),
                },
            )
            .await?;
            let mut response =
                crate::dashboard::login_failed_page(&state, failure.status, &next, failure.reason);
            response.add_cookie(&state_cookie_removal()).ok();
            Ok(response)
        }
    }
}

async fn finish_login(
    state: &AppState,
    sso: &Sso,
    name: &str,
    params: &CallbackParams,
    cookie_state: Option<&str>,
    next: &mut String,
) -> Result<SignedIn, Failure> {
    let provider = sso.provider(name).ok_or_else(|| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("There is no sign-in provider named {name:?}."),
        )
    })?;
    let who = provider.display_name();

    // 1. The state: the one this browser was given, and a sign-in still pending.
    let Some(returned_state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "The sign-in response has no state. Start the sign-in again.",
        ));
    };
    if cookie_state != Some(returned_state) {
        return Err(Failure::rejected(
            "The sign-in state does not match the one this browser started with (the sign-in was started elsewhere, changed, or is too old). Start the sign-in again.",
        ));
    }
    let pending = take_pending(state, returned_state).await?.ok_or_else(|| {
        Failure::rejected("This sign-in is unknown or was already used. Start the sign-in again.")
    })?;
    *next = pending.next.clone();
    if pending.provider != provider.name {
        return Err(Failure::rejected(
            "This sign-in was started with another provider. Start the sign-in again.",
        ));
    }
    if chrono::Utc::now() - pending.created_at > PENDING_TTL {
        return Err(Failure::rejected(
            "The sign-in took longer than 10 minutes. Start the sign-in again.",
        ));
    }

    // 2. What the provider answered.
    if let Some(error) = &params.error {
        let description = params
            .error_description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(Failure::rejected(format!(
            "{who} did not sign you in: {error}{description}."
        )));
    }
    let metadata = sso
        .metadata(provider)
        .await
        .map_err(|e| Failure::new(StatusCode::BAD_GATEWAY, e))?;
    if let Some(iss) = &params.iss {
        if iss != metadata.issuer().as_str() {
            return Err(Failure::rejected(format!(
                "The sign-in response names issuer {iss}, not {}.",
                metadata.issuer().as_str()
            )));
        }
    }
    let Some(code) = params.code.clone().filter(|c| !c.is_empty()) else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "The sign-in response has no authorization code.",
        ));
    };

    // 3. The code for tokens (with the PKCE verifier), then the ID token's checks.
    let client = sso
        .client(provider, metadata)
        .map_err(|e| Failure::misconfigured(provider, e))?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| Failure::new(StatusCode::BAD_GATEWAY, format!("{who}: {e}")))?;
    let tokens = exchange
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&sso.http)
        .await
        .map_err(|e| {
            Failure::rejected(format!(
                "{who} did not accept the sign-in code: {}",
                error_chain(&e)
            ))
        })?;
    let raw_id_token = tokens
        .id_token()
        .ok_or_else(|| Failure::rejected(format!("{who} returned no ID token.")))?
        .to_string();
    let id_token: OurIdToken = raw_id_token
        .parse()
        .map_err(|e| Failure::rejected(format!("The ID token from {who} does not parse: {e}")))?;
    let skew = chrono::Duration::seconds(provider.clock_skew_secs as i64);
    let verifier = client
        .id_token_verifier()
        // Expiry: tolerate a provider clock that is up to `skew` behind...
        .set_time_fn(move || chrono::Utc::now() - skew)
        // ...and issue times up to `skew` ahead.
        .set_issue_time_verifier_fn(move |iat| {
            if iat > chrono::Utc::now() + skew {
                Err(format!("issued in the future ({iat})"))
            } else {
                Ok(())
            }
        });
    let nonce = Nonce::new(pending.nonce.clone());
    let claims: &OurIdTokenClaims = id_token
        .claims(&verifier, &nonce)
        .map_err(|e| Failure::rejected(explain(who, &e)))?;
    if let Some(expected) = claims.access_token_hash() {
        let algorithm = id_token
            .signing_alg()
            .map_err(|e| Failure::rejected(format!("The ID token from {who}: {e}")))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| Failure::rejected(format!("The ID token from {who}: {e}")))?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), algorithm, key)
            .map_err(|e| Failure::rejected(format!("The ID token from {who}: {e}")))?;
        if &actual != expected {
            return Err(Failure::rejected(format!(
                "The ID token from {who} is for another access token (at_hash)."
            )));
        }
    }

    // 4. Who it is, and their groups.
    let userinfo = if provider.groups_from == GroupsFrom::Userinfo {
        let request = client
            .user_info(
                tokens.access_token().clone(),
                Some(SubjectIdentifier::new(claims.subject().as_str().to_owned())),
            )
            .map_err(|e| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!("{who} has no userinfo endpoint ({e}); set groups_from = \"id_token\""),
                )
            })?;
        let info: UserInfoClaims<ExtraClaims, CoreGenderClaim> =
            request.request_async(&sso.http).await.map_err(|e| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "Reading the user's details from {who} failed: {}",
                        error_chain(&e)
                    ),
                )
            })?;
        Some(info)
    } else {
        None
    };
    let user = user_name(provider, claims, userinfo.as_ref());
    let groups_source = match &userinfo {
        Some(info) => &info.additional_claims().rest,
        None => &claims.additional_claims().rest,
    };
    let groups = groups_of(groups_source.get(&provider.groups_claim));
    if user.is_empty() || user.len() > 200 {
        return Err(Failure::rejected(format!(
            "{who} gave a user name Bitesize cannot use (1 to 200 characters)."
        )));
    }
    Ok(SignedIn {
        user,
        groups,
        id_token: raw_id_token,
        next: pending.next,
    })
}

/// Removes and returns the pending sign-in of `state`: each is used once.
async fn take_pending(state: &AppState, value: &str) -> Result<Option<pending::Model>, Failure> {
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "reading a sign-in");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not read the sign-in; see the server log.",
        )
    };
    let hash = secret::hash(value);
    let Some(row) = pending::Entity::find()
        .filter(pending::Column::StateHash.eq(hash.as_str()))
        .one(&state.db)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    // Only the request that deletes the row may use it (two racing callbacks: one wins).
    let deleted = pending::Entity::delete_many()
        .filter(pending::Column::Id.eq(row.id))
        .exec(&state.db)
        .await
        .map_err(internal)?;
    Ok((deleted.rows_affected == 1).then_some(row))
}

/// A failed ID token check, said plainly.
fn explain(who: &str, error: &ClaimsVerificationError) -> String {
    match error {
        ClaimsVerificationError::Expired(detail) => format!(
            "The ID token from {who} has expired or is not yet valid ({detail}). If this repeats, check the clocks of both servers."
        ),
        ClaimsVerificationError::InvalidAudience(detail) => format!(
            "The ID token from {who} was issued for another application (audience: {detail})."
        ),
        ClaimsVerificationError::InvalidNonce(detail) => format!(
            "The ID token from {who} does not belong to this sign-in (nonce mismatch: {detail})."
        ),
        ClaimsVerificationError::InvalidIssuer(detail) => {
            format!("The ID token is not from {who} (issuer: {detail}).")
        }
        ClaimsVerificationError::SignatureVerification(e) => {
            format!("The ID token's signature is not valid for {who} ({e}).")
        }
        other => format!("The ID token from {who} is not valid: {other}."),
    }
}

fn claim_text(value: Option<&serde_json::Value>) -> Option<String> {
    value
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The user name: the configured claim (ID token, then userinfo), else `sub`.
fn user_name(
    provider: &OidcProvider,
    claims: &OurIdTokenClaims,
    userinfo: Option<&UserInfoClaims<ExtraClaims, CoreGenderClaim>>,
) -> String {
    let from_id_token = match provider.username_claim.as_str() {
        "sub" => Some(claims.subject().as_str().to_owned()),
        "preferred_username" => claims.preferred_username().map(|u| u.as_str().to_owned()),
        "email" => claims.email().map(|e| e.as_str().to_owned()),
        other => claim_text(claims.additional_claims().rest.get(other)),
    };
    let from_userinfo = || {
        let info = userinfo?;
        match provider.username_claim.as_str() {
            "preferred_username" => info.preferred_username().map(|u| u.as_str().to_owned()),
            "email" => info.email().map(|e| e.as_str().to_owned()),
            other => claim_text(info.additional_claims().rest.get(other)),
        }
    };
    from_id_token
        .or_else(from_userinfo)
        .unwrap_or_else(|| claims.subject().as_str().to_owned())
}

/// The groups claim: an array of strings (other entries ignored) or one string.
fn groups_of(value: Option<&serde_json::Value>) -> Vec<String> {
    let mut groups: Vec<String> = match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    groups.retain(|g| !g.trim().is_empty());
    groups.sort();
    groups.dedup();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_as_a_list_or_one_string() {
        let list = serde_json::json!(["ops", "shop-team", 7, "ops", ""]);
        assert_eq!(groups_of(Some(&list)), ["ops", "shop-team"]);
        assert_eq!(groups_of(Some(&serde_json::json!("admins"))), ["admins"]);
        assert!(groups_of(Some(&serde_json::json!({"a": 1}))).is_empty());
        assert!(groups_of(None).is_empty());
    }

    #[test]
    fn failures_are_said_plainly() {
        let text = explain(
            "Test IdP",
            &ClaimsVerificationError::InvalidAudience("someone-else".into()),
        );
        assert!(text.contains("another application") && text.contains("someone-else"));
        let text = explain("Test IdP", &ClaimsVerificationError::Expired("x".into()));
        assert!(text.contains("expired"));
    }
}
