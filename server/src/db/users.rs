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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Adds a user; a name already taken is a clear error.
pub async fn add(db: &DatabaseConnection, name: &str) -> crate::Result<Model> {
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
    let model = ActiveModel {
        name: Set(name.to_owned()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

pub async fn list(db: &DatabaseConnection) -> crate::Result<Vec<Model>> {
    Ok(Entity::find().order_by_asc(Column::Name).all(db).await?)
}
