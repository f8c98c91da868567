//! Server-side sessions: the cookie holds a random secret, the database its hash, so a
//! session can be revoked at once; idle and absolute expiry bound its life.
//!
//! A single sign-on session also keeps the ID token of its sign-in, for one use: the
//! `id_token_hint` of RP-initiated logout, which some providers require. Logout only happens
//! in the browser that holds the cookie, so the token is sealed (AES-256-GCM) under a key
//! derived from the cookie's secret, which the database never holds (it keeps the secret's
//! SHA-256, a different derivation). A copy of the database therefore holds no usable ID
//! token; the browser's sign-out request unseals it.

use sea_orm::entity::prelude::*;
use sea_orm::Set;

use super::secret;
use crate::authz::Principal;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub hash: String,
    pub user_name: String,
    /// JSON array of the groups the identity provider gave at sign-in.
    pub groups: String,
    pub created_at: ChronoDateTimeUtc,
    pub last_seen_at: ChronoDateTimeUtc,
    pub revoked_at: Option<ChronoDateTimeUtc>,
    /// The OpenID Connect provider (its `name`) the user signed in with; `None` for local.
    pub provider: Option<String>,
    /// The ID token of that sign-in, sealed with the cookie (see the module docs): the
    /// `id_token_hint` of RP-initiated logout. Read it with [`id_token_hint`].
    pub id_token_sealed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const COOKIE: &str = "bitesize_session";
pub const IDLE: chrono::Duration = chrono::Duration::hours(8);
pub const ABSOLUTE: chrono::Duration = chrono::Duration::hours(24);

/// Starts a session; returns the cookie value (a fresh secret: sessions rotate at sign-in).
pub async fn start(
    db: &DatabaseConnection,
    user: &str,
    groups: &[String],
) -> crate::Result<String> {
    start_with_origin(db, user, groups, None).await
}

/// Where a single sign-on session came from: what logout needs to end it at the provider too.
#[derive(Debug, Clone)]
pub struct SsoOrigin {
    pub provider: String,
    pub id_token: String,
}

/// Starts a session, remembering the provider it came from (`None`: a local sign-in).
pub async fn start_with_origin(
    db: &DatabaseConnection,
    user: &str,
    groups: &[String],
    origin: Option<SsoOrigin>,
) -> crate::Result<String> {
    let cookie = secret::generate("s_");
    let (provider, id_token_sealed) = match origin {
        Some(o) => (Some(o.provider), Some(seal(&cookie, &o.id_token))),
        None => (None, None),
    };
    let now = chrono::Utc::now();
    ActiveModel {
        hash: Set(secret::hash(&cookie)),
        user_name: Set(user.to_owned()),
        groups: Set(serde_json::to_string(groups).expect("json")),
        created_at: Set(now),
        last_seen_at: Set(now),
        provider: Set(provider),
        id_token_sealed: Set(id_token_sealed),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(cookie)
}

/// The principal of a live session; touches its idle clock.
pub async fn authenticate(
    db: &DatabaseConnection,
    cookie: &str,
) -> crate::Result<Option<Principal>> {
    let Some(session) = Entity::find()
        .filter(Column::Hash.eq(secret::hash(cookie)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let now = chrono::Utc::now();
    if session.revoked_at.is_some()
        || now - session.last_seen_at > IDLE
        || now - session.created_at > ABSOLUTE
    {
        return Ok(None);
    }
    let principal = Principal {
        user: session.user_name.clone(),
        groups: serde_json::from_str(&session.groups).unwrap_or_default(),
        token: None,
    };
    if now - session.last_seen_at > chrono::Duration::minutes(1) {
        let mut active: ActiveModel = session.into();
        active.last_seen_at = Set(now);
        active.update(db).await?;
    }
    Ok(Some(principal))
}

/// The session row behind `cookie`, live or not.
pub async fn find(db: &DatabaseConnection, cookie: &str) -> crate::Result<Option<Model>> {
    Ok(Entity::find()
        .filter(Column::Hash.eq(secret::hash(cookie)))
        .one(db)
        .await?)
}

/// Ends the session behind `cookie` (sign-out).
pub async fn end(db: &DatabaseConnection, cookie: &str) -> crate::Result<()> {
    if let Some(session) = Entity::find()
        .filter(Column::Hash.eq(secret::hash(cookie)))
        .one(db)
        .await?
    {
        let mut active: ActiveModel = session.into();
        active.revoked_at = Set(Some(chrono::Utc::now()));
        active.update(db).await?;
    }
    Ok(())
}

/// The ID token `session` was started with, unsealed with its `cookie`; `None` for a local
/// session, or when the cookie is not the session's.
pub fn id_token_hint(session: &Model, cookie: &str) -> Option<String> {
    unseal(cookie, session.id_token_sealed.as_deref()?)
}

const SEALED_PREFIX: &str = "v1:";

fn sealing_key(cookie: &str) -> ring::aead::LessSafeKey {
    use sha2::{Digest, Sha256};
    // Not the stored hash (SHA-256 of the cookie alone): a domain-separated derivation.
    let mut hasher = Sha256::new();
    hasher.update(b"bitesize session id_token_hint key v1\0");
    hasher.update(cookie.as_bytes());
    let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &hasher.finalize())
        .expect("a 32-byte key for AES-256-GCM");
    ring::aead::LessSafeKey::new(key)
}

/// `v1:` then hex of nonce (12 bytes), ciphertext and tag.
fn seal(cookie: &str, plaintext: &str) -> String {
    let mut nonce = [0u8; ring::aead::NONCE_LEN];
    rand::Rng::fill(&mut rand::rng(), &mut nonce);
    let mut data = plaintext.as_bytes().to_vec();
    sealing_key(cookie)
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(b"id_token_hint"),
            &mut data,
        )
        .expect("sealing a short text");
    let mut out = String::with_capacity(SEALED_PREFIX.len() + 2 * (nonce.len() + data.len()));
    out.push_str(SEALED_PREFIX);
    for b in nonce.iter().chain(&data) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn unseal(cookie: &str, sealed: &str) -> Option<String> {
    let hex = sealed.strip_prefix(SEALED_PREFIX)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    if bytes.len() < ring::aead::NONCE_LEN {
        return None;
    }
    let (nonce, rest) = bytes.split_at(ring::aead::NONCE_LEN);
    let mut data = rest.to_vec();
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = sealing_key(cookie)
        .open_in_place(nonce, ring::aead::Aad::from(b"id_token_hint"), &mut data)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_token_is_sealed_with_the_cookie() {
        let cookie = secret::generate("s_");
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let sealed = seal(&cookie, token);
        assert!(
            sealed.starts_with("v1:") && !sealed.contains("eyJ"),
            "{sealed}"
        );
        assert_ne!(sealed, seal(&cookie, token), "a fresh nonce each time");
        assert_eq!(unseal(&cookie, &sealed).as_deref(), Some(token));
        let other = secret::generate("s_");
        assert_eq!(
            unseal(&other, &sealed),
            None,
            "another cookie cannot open it"
        );
        assert_eq!(
            unseal(&cookie, &secret::hash(&cookie)),
            None,
            "nor the stored hash"
        );
        let mut tampered = sealed.clone();
        tampered.replace_range(10..12, if &sealed[10..12] == "00" { "01" } else { "00" });
        assert_eq!(unseal(&cookie, &tampered), None, "tampering is detected");
        assert_eq!(unseal(&cookie, "v1:zz"), None);
    }
}
