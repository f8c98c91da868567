//! People who use Bitesize.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, Set};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub created_at: ChronoDateTimeUtc,
    /// argon2 hash of a local account's password; `None` for SSO-only users.
    pub password_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Adds a user (with a local password when given); a name already taken is a clear error.
pub async fn add(
    db: &DatabaseConnection,
    name: &str,
    password: Option<&str>,
) -> crate::Result<Model> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(crate::Error::BadRequest(
            "user name must be 1 to 200 characters".into(),
        ));
    }
    if Entity::find()
        .filter(Column::Name.eq(name))
        .one(db)
        .await?
        .is_some()
    {
        return Err(crate::Error::BadRequest(format!(
            "user {name:?} already exists"
        )));
    }
    let password_hash = password.map(crate::auth::passwords::hash).transpose()?;
    let model = ActiveModel {
        name: Set(name.to_owned()),
        created_at: Set(chrono::Utc::now()),
        password_hash: Set(password_hash),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

pub async fn list(db: &DatabaseConnection) -> crate::Result<Vec<Model>> {
    Ok(Entity::find().order_by_asc(Column::Name).all(db).await?)
}

pub async fn find(db: &DatabaseConnection, name: &str) -> crate::Result<Option<Model>> {
    Ok(Entity::find().filter(Column::Name.eq(name)).one(db).await?)
}

/// Sets (or replaces) a user's local password.
pub async fn set_password(
    db: &DatabaseConnection,
    name: &str,
    password: &str,
) -> crate::Result<()> {
    let user = find(db, name)
        .await?
        .ok_or_else(|| crate::Error::NotFound(format!("user {name:?}")))?;
    let mut active: ActiveModel = user.into();
    active.password_hash = Set(Some(crate::auth::passwords::hash(password)?));
    active.update(db).await?;
    Ok(())
}
