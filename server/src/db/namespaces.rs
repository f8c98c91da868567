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
