//! Server-side sessions: the cookie holds a random secret, the database its hash, so a
//! session can be revoked at once; idle and absolute expiry bound its life.

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
    /// The ID token of that sign-in: the `id_token_hint` of RP-initiated logout.
    pub id_token: Option<String>,
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
    let (provider, id_token) = match origin {
        Some(o) => (Some(o.provider), Some(o.id_token)),
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
        id_token: Set(id_token),
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
