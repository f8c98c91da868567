//! Namespaces that have log data, and the topic each came from.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{QueryOrder, Set};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "namespaces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub topic: String,
    pub created_at: ChronoDateTimeUtc,
    /// How long the index keeps records; `None`: the configured default.
    pub retention_days: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records that `name` has data from `topic`; a namespace already known is left as it is.
pub async fn register(db: &DatabaseConnection, name: &str, topic: &str) -> crate::Result<()> {
    let model = ActiveModel {
        name: Set(name.to_owned()),
        topic: Set(topic.to_owned()),
        created_at: Set(chrono::Utc::now()),
        retention_days: Set(None),
    };
    Entity::insert(model)
        .on_conflict(OnConflict::column(Column::Name).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Every namespace with data, by name.
pub async fn list(db: &DatabaseConnection) -> crate::Result<Vec<String>> {
    let rows = Entity::find().order_by_asc(Column::Name).all(db).await?;
    Ok(rows.into_iter().map(|row| row.name).collect())
}

/// Every namespace row (name, topic, retention).
pub async fn all(db: &DatabaseConnection) -> crate::Result<Vec<Model>> {
    Ok(Entity::find().order_by_asc(Column::Name).all(db).await?)
}

/// Sets how many days `name`'s index keeps records (`None`: back to the default).
pub async fn set_retention(
    db: &DatabaseConnection,
    name: &str,
    days: Option<i32>,
) -> crate::Result<()> {
    if days.is_some_and(|d| d < 1) {
        return Err(crate::Error::BadRequest(
            "retention must be at least 1 day".into(),
        ));
    }
    let row = Entity::find_by_id(name.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| crate::Error::NotFound(format!("namespace {name:?} has no data yet")))?;
    let mut active: ActiveModel = row.into();
    active.retention_days = Set(days);
    active.update(db).await?;
    Ok(())
}
