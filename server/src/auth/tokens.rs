//! API tokens: created for a user, limited to a role over namespace patterns, with an
//! optional expiry; shown once, stored hashed, revocable, last use recorded.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Set};
use serde::Serialize;

use super::secret;
use crate::authz::{Pattern, Principal, Role, TokenLimits};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_name: String,
    pub name: String,
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub role: String,
    /// JSON array of namespace patterns.
    pub patterns: String,
    /// Created by an operator on the command line: carries its grant by itself.
    pub standalone: bool,
    pub expires_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub last_used_at: Option<ChronoDateTimeUtc>,
    pub revoked_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const PREFIX: &str = "bsz_";

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user: String,
    pub name: String,
    pub role: Role,
    pub patterns: Vec<Pattern>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub standalone: bool,
    /// Use this secret instead of a random one (the demo's `BITESIZE_DEMO_ADMIN_TOKEN`).
    pub secret: Option<String>,
}

/// Creates a token; the secret is returned here and never again.
pub async fn create(db: &DatabaseConnection, token: NewToken) -> crate::Result<(String, Model)> {
    if token.patterns.is_empty() {
        return Err(crate::Error::BadRequest(
            "a token needs at least one namespace pattern".into(),
        ));
    }
    if token.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(crate::Error::BadRequest(
            "expiry must be in the future".into(),
        ));
    }
    let secret = token.secret.unwrap_or_else(|| secret::generate(PREFIX));
    if secret.len() < 20 {
        return Err(crate::Error::BadRequest(
            "a token secret must be at least 20 characters".into(),
        ));
    }
    let patterns: Vec<&str> = token.patterns.iter().map(Pattern::as_str).collect();
    let model = ActiveModel {
        user_name: Set(token.user),
        name: Set(token.name),
        prefix: Set(secret.chars().take(PREFIX.len() + 6).collect()),
        hash: Set(secret::hash(&secret)),
        role: Set(token.role.as_str().to_owned()),
        patterns: Set(serde_json::to_string(&patterns).expect("json")),
        standalone: Set(token.standalone),
        expires_at: Set(token.expires_at),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok((secret, model.insert(db).await?))
}

/// The principal a presented token stands for; `None` for an unknown, revoked or expired one.
pub async fn authenticate(
    db: &DatabaseConnection,
    presented: &str,
) -> crate::Result<Option<Principal>> {
    let Some(token) = Entity::find()
        .filter(Column::Hash.eq(secret::hash(presented)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let now = chrono::Utc::now();
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    let patterns: Vec<String> = serde_json::from_str(&token.patterns).unwrap_or_default();
    let limits = TokenLimits {
        id: token.id,
        role: Role::parse(&token.role)?,
        patterns: patterns
            .iter()
            .filter_map(|p| Pattern::parse(p).ok())
            .collect(),
        standalone: token.standalone,
    };
    let user = token.user_name.clone();
    let mut active: ActiveModel = token.into();
    active.last_used_at = Set(Some(now));
    active.update(db).await?;
    Ok(Some(Principal {
        user,
        groups: Vec::new(),
        token: Some(limits),
    }))
}

/// Revokes a token; `owner` limits it to that user's tokens (admins pass `None`).
pub async fn revoke(db: &DatabaseConnection, id: i64, owner: Option<&str>) -> crate::Result<Model> {
    let token = Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|t| owner.is_none_or(|o| t.user_name == o))
        .ok_or_else(|| crate::Error::NotFound(format!("token {id}")))?;
    let mut active: ActiveModel = token.into();
    active.revoked_at = Set(Some(chrono::Utc::now()));
    Ok(active.update(db).await?)
}

/// Tokens of `owner`, or every token when `None`.
pub async fn list(db: &DatabaseConnection, owner: Option<&str>) -> crate::Result<Vec<Model>> {
    let mut query = Entity::find().order_by_asc(Column::Id);
    if let Some(owner) = owner {
        query = query.filter(Column::UserName.eq(owner));
    }
    Ok(query.all(db).await?)
}
