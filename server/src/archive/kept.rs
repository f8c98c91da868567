//! Rehydrated time ranges and how long the index keeps them (table `archive_rehydrations`,
//! one row per rehydrate). Retention would otherwise delete rehydrated records, being old,
//! at its next pass: it leaves alone every record of a namespace whose time falls in one of
//! the namespace's ranges until that range's `keep_until` (`archive.rehydrate_keep_days`
//! after the request, or the request's `keep_days`); after that, the namespace's retention
//! applies again.
//!
//! A retention pass holds [`KeptRanges::hold`] while it reads the ranges and queues its
//! deletes, and a rehydrate adds its range under the same lock before it adds a record, so
//! no pass can delete a rehydrated record on the strength of a list read before the range
//! was there.

use sea_orm::entity::prelude::*;
use sea_orm::Set;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "archive_rehydrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub namespace: String,
    /// The range, in nanoseconds since the epoch: `[time_from, time_to)`.
    pub time_from: i64,
    pub time_to: i64,
    /// Until then, retention keeps the namespace's records of the range.
    pub keep_until: ChronoDateTimeUtc,
    pub requested_by: String,
    pub created_at: ChronoDateTimeUtc,
    /// `queued`, `running`, `committing`, `done` or `failed`.
    pub state: String,
    pub records_added: Option<i64>,
    pub records_present: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a new rehydrate asks for.
pub struct NewRange {
    pub namespace: String,
    pub from: i64,
    pub to: i64,
    pub keep_until: chrono::DateTime<chrono::Utc>,
    pub requested_by: String,
}

pub struct KeptRanges {
    db: DatabaseConnection,
    pass: tokio::sync::Mutex<()>,
}

impl KeptRanges {
    pub fn new(db: DatabaseConnection) -> KeptRanges {
        KeptRanges {
            db,
            pass: tokio::sync::Mutex::new(()),
        }
    }

    /// Held by a retention pass from reading the ranges to queueing its deletes.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.pass.lock().await
    }

    /// The ranges of `namespace` retention must leave alone at `now`, in nanoseconds.
    pub async fn active(
        &self,
        namespace: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::Result<Vec<(i64, i64)>> {
        let rows = Entity::find()
            .filter(Column::Namespace.eq(namespace))
            .filter(Column::KeepUntil.gt(now))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|r| (r.time_from, r.time_to)).collect())
    }

    /// Records a rehydrate (state `queued`); its range is kept from now on.
    pub async fn add(&self, range: NewRange) -> crate::Result<Model> {
        let _no_pass_meanwhile = self.hold().await;
        let row = ActiveModel {
            namespace: Set(range.namespace),
            time_from: Set(range.from),
            time_to: Set(range.to),
            keep_until: Set(range.keep_until),
            requested_by: Set(range.requested_by),
            created_at: Set(chrono::Utc::now()),
            state: Set("queued".into()),
            ..Default::default()
        };
        Ok(row.insert(&self.db).await?)
    }

    pub async fn find(&self, id: i64) -> crate::Result<Option<Model>> {
        Ok(Entity::find_by_id(id).one(&self.db).await?)
    }

    /// Stores a rehydrate's state and counts.
    pub async fn finish(
        &self,
        id: i64,
        state: &str,
        added: u64,
        present: u64,
        error: Option<String>,
    ) -> crate::Result<()> {
        let row = ActiveModel {
            id: Set(id),
            state: Set(state.to_owned()),
            records_added: Set(Some(added as i64)),
            records_present: Set(Some(present as i64)),
            error: Set(error),
            ..Default::default()
        };
        row.update(&self.db).await?;
        Ok(())
    }

    pub async fn set_state(&self, id: i64, state: &str) -> crate::Result<()> {
        let row = ActiveModel {
            id: Set(id),
            state: Set(state.to_owned()),
            ..Default::default()
        };
        row.update(&self.db).await?;
        Ok(())
    }

    /// Rehydrates a stopped server left unfinished are marked failed (their ranges stay
    /// kept: what they added is in the index).
    pub async fn fail_unfinished(&self) -> crate::Result<()> {
        Entity::update_many()
            .col_expr(Column::State, Expr::value("failed"))
            .col_expr(
                Column::Error,
                Expr::value("the server stopped before the rehydrate finished; run it again"),
            )
            .filter(Column::State.is_in(["queued", "running", "committing"]))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
