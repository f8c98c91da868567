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
    /// In the registry: created or adopted by an admin (false: only seen by the indexer).
    pub managed: bool,
    /// The topic's settings as the registry last set or read them.
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    /// Kafka `retention.ms` / `retention.bytes` of the topic (`-1`: unlimited).
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    /// Archive the namespace's records (kept for the archive stage).
    pub archive: bool,
    /// The group that owns the namespace: its members may change its retention and read it.
    pub owner_group: Option<String>,
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
        managed: Set(false),
        partitions: Set(None),
        replication_factor: Set(None),
        retention_ms: Set(None),
        retention_bytes: Set(None),
        archive: Set(false),
        owner_group: Set(None),
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

/// One namespace row, if any.
pub async fn find(db: &DatabaseConnection, name: &str) -> crate::Result<Option<Model>> {
    Ok(Entity::find_by_id(name.to_owned()).one(db).await?)
}

/// Writes `row` as the registry entry of its namespace (insert, or replace the row the
/// indexer or an earlier registration left); `created_at` of an existing row is kept.
pub async fn save_registry_entry(db: &DatabaseConnection, row: Model) -> crate::Result<Model> {
    let existing = find(db, &row.name).await?;
    let created_at = existing.as_ref().map_or(row.created_at, |e| e.created_at);
    let active = ActiveModel {
        name: Set(row.name.clone()),
        topic: Set(row.topic.clone()),
        created_at: Set(created_at),
        retention_days: Set(row.retention_days),
        managed: Set(true),
        partitions: Set(row.partitions),
        replication_factor: Set(row.replication_factor),
        retention_ms: Set(row.retention_ms),
        retention_bytes: Set(row.retention_bytes),
        archive: Set(row.archive),
        owner_group: Set(row.owner_group.clone()),
    };
    let saved = match existing {
        Some(_) => active.update(db).await?,
        None => active.insert(db).await?,
    };
    Ok(saved)
}

/// Removes the namespace's row (its index, if any, is left to retention).
pub async fn remove(db: &DatabaseConnection, name: &str) -> crate::Result<()> {
    Entity::delete_by_id(name.to_owned()).exec(db).await?;
    Ok(())
}
