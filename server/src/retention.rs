//! Index retention: on a schedule, each namespace's records older than its retention
//! (days in the database, else the configured default) are deleted. The deletes are queued
//! in the namespace's writer and committed by the ingest thread with its next commit, so
//! the index's commit payload always matches what it holds; Tantivy's merges then drop the
//! deleted documents from disk. Rehydrated time ranges are left alone until their keep
//! period ends (`archive::kept`). The namespace's Kafka topic retention is separate.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery};
use tantivy::Term;

use crate::archive::KeptRanges;
use crate::config::RetentionConfig;
use crate::search::schema::Fields;
use crate::search::IndexRegistry;
use crate::{db, Result};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

pub struct Retention {
    config: RetentionConfig,
    registry: Arc<IndexRegistry>,
    db: DatabaseConnection,
    kept: Arc<KeptRanges>,
}

impl Retention {
    pub fn new(
        config: RetentionConfig,
        registry: Arc<IndexRegistry>,
        db: DatabaseConnection,
        kept: Arc<KeptRanges>,
    ) -> Retention {
        Retention {
            config,
            registry,
            db,
            kept,
        }
    }

    /// Applies retention now and then every `check_interval_secs` until `shutdown`.
    pub async fn run(self, shutdown: Arc<AtomicBool>) {
        let interval = Duration::from_secs(self.config.check_interval_secs);
        while !shutdown.load(Ordering::SeqCst) {
            if let Err(e) = self.apply(chrono::Utc::now()).await {
                tracing::error!(error = %e, "retention pass failed");
            }
            let mut waited = Duration::ZERO;
            while waited < interval && !shutdown.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                waited += Duration::from_millis(200);
            }
        }
    }

    /// One pass: queues the deletes of every expired record.
    pub async fn apply(&self, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
        // No rehydrate adds a kept range between reading the ranges and queueing deletes.
        let _pass = self.kept.hold().await;
        let now_nanos = now.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let rows = db::namespaces::all(&self.db).await?;
        for name in self.registry.names() {
            let days = rows
                .iter()
                .find(|row| row.name == name)
                .and_then(|row| row.retention_days)
                .map_or(self.config.default_days as i64, i64::from);
            let Some(index) = self.registry.get(&name) else {
                continue;
            };
            let cutoff = now_nanos.saturating_sub(days.saturating_mul(NANOS_PER_DAY));
            let keep = self.kept.active(&name, now).await?;
            let registry = self.registry.clone();
            let index_name = index.name.clone();
            tokio::task::spawn_blocking(move || match registry.get(&index_name) {
                Some(index) => index
                    .queue_delete(expired(&index.fields, cutoff, &keep))
                    .map(|_| ()),
                None => Ok(()),
            })
            .await
            .map_err(|e| crate::Error::Internal(e.to_string()))??;
            tracing::debug!(namespace = %name, days, "retention applied");
        }
        Ok(())
    }
}

/// Records older than `cutoff` (nanoseconds) outside the `keep` ranges (`[from, to)`).
fn expired(fields: &Fields, cutoff: i64, keep: &[(i64, i64)]) -> Box<dyn Query> {
    let time = |nanos: i64| {
        Term::from_field_date(fields.time, tantivy::DateTime::from_timestamp_nanos(nanos))
    };
    let older: Box<dyn Query> = Box::new(RangeQuery::new(
        Bound::Unbounded,
        Bound::Excluded(time(cutoff)),
    ));
    if keep.is_empty() {
        return older;
    }
    let mut clauses = vec![(Occur::Must, older)];
    for &(from, to) in keep {
        let range: Box<dyn Query> = Box::new(RangeQuery::new(
            Bound::Included(time(from)),
            Bound::Excluded(time(to)),
        ));
        clauses.push((Occur::MustNot, range));
    }
    Box::new(BooleanQuery::new(clauses))
}
