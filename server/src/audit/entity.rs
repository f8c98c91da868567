//! The `audit_events` table: one row per event, linked to the one before by `prev_hash`.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One stored audit event. `namespaces` and `detail` hold JSON text exactly as hashed; use
/// [`Model::namespace_list`] and [`Model::detail_json`] to read them as values.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Position in the chain: 1 for the first event, then each event the previous id + 1.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When the event was appended, with microsecond precision.
    pub at: ChronoDateTimeUtc,
    pub actor: String,
    pub action: String,
    /// JSON array of namespace names, sorted and without duplicates.
    #[sea_orm(column_type = "Text")]
    pub namespaces: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub query: Option<String>,
    pub hits: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// JSON object.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    /// Hash of the previous event, or [`super::GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// Hex SHA-256 of this event, see [`super::event_hash`].
    #[sea_orm(unique)]
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The namespaces the event concerns (empty if the stored text is not a JSON array of
    /// strings, which only a tampered row can be).
    pub fn namespace_list(&self) -> Vec<String> {
        serde_json::from_str(&self.namespaces).unwrap_or_default()
    }

    /// The event's detail object (`null` if the stored text is not JSON).
    pub fn detail_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null)
    }
}
