//! The archive: every record, per namespace and hour, as NDJSON compressed with zstd in an
//! object store (a directory under the data directory by default, S3-compatible by URL),
//! written by its own stage beside ingest; and rehydration of archived time ranges back
//! into a namespace's index.
//!
//! - `object_name`: how objects are named (namespace, hour, topic, partition, offset span);
//!   the names alone are the catalog.
//! - `catalog`: complete spans, where the stage resumes, per-hour summaries.
//! - `line`: one NDJSON line (the resolved record and its Kafka origin).
//! - `store`: the object store (`file://` or `s3://`).
//! - `stage`: [`Archiver`], the stage (its own consumer group and thread).
//! - `rehydrate`: loading a range back, exactly once, with the commit payload kept true.
//! - `kept`: rehydrated ranges, which retention leaves alone until their keep period ends.
//! - `command`: `bitesize rehydrate` (through the running server, or on the data directory).
//!
//! [`Archive`] is what the API uses: the store and the rehydrates of this server (one runs
//! at a time; the others wait their turn).

pub mod catalog;
pub mod command;
pub mod kept;
pub mod line;
pub mod object_name;
pub mod rehydrate;
pub mod stage;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use serde::Deserialize;

pub use kept::KeptRanges;
pub use rehydrate::JobStatus;
pub use stage::Archiver;
pub use store::ArchiveStore;

use crate::config::Config;
use crate::search::IndexRegistry;
use crate::{audit, Error, Result};
use rehydrate::{Commit, Progress, Rehydration};

/// `POST /api/v1/archive/rehydrate`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RehydrateRequest {
    pub namespace: String,
    /// RFC 3339 or relative (`now-30d`); inclusive.
    pub from: String,
    /// RFC 3339 or relative; exclusive.
    pub to: String,
    /// Days retention keeps the range (default `archive.rehydrate_keep_days`, at most
    /// `archive.rehydrate_max_keep_days`).
    pub keep_days: Option<u32>,
}

/// A checked request: the namespace, the range in nanoseconds and the keep deadline.
pub struct RehydrateRange {
    pub namespace: String,
    pub from: i64,
    pub to: i64,
    pub keep_until: chrono::DateTime<chrono::Utc>,
}

impl RehydrateRequest {
    /// Checks the request; errors say which field is wrong.
    pub fn check(
        &self,
        config: &Config,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RehydrateRange> {
        let bad = |why: String| Error::BadRequest(why);
        bitesize_record::validate_namespace(&self.namespace)
            .map_err(|e| bad(format!("namespace: {e}")))?;
        let from = crate::search::time::parse_instant(self.from.trim(), now)
            .map_err(|e| bad(format!("from: {e}")))?;
        let to = crate::search::time::parse_instant(self.to.trim(), now)
            .map_err(|e| bad(format!("to: {e}")))?;
        if from >= to {
            return Err(bad("from must be before to".into()));
        }
        let settings = &config.archive;
        let days = self.keep_days.unwrap_or(settings.rehydrate_keep_days);
        if days == 0 || days > settings.rehydrate_max_keep_days {
            return Err(bad(format!(
                "keep_days must be between 1 and {} (archive.rehydrate_max_keep_days)",
                settings.rehydrate_max_keep_days
            )));
        }
        Ok(RehydrateRange {
            namespace: self.namespace.clone(),
            from,
            to,
            keep_until: now + chrono::Duration::days(i64::from(days)),
        })
    }
}

struct Job {
    row: kept::Model,
    progress: Arc<Progress>,
}

/// The archive as the server serves it: listing and rehydrates.
pub struct Archive {
    pub store: Arc<ArchiveStore>,
    pub kept: Arc<KeptRanges>,
    config: Config,
    registry: Arc<IndexRegistry>,
    db: DatabaseConnection,
    jobs: Mutex<HashMap<i64, Job>>,
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
}

fn status(row: &kept::Model, progress: Option<&Progress>) -> JobStatus {
    let time = |nanos: i64| line::rfc3339_nanos(nanos);
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::SeqCst);
    let mut status = JobStatus {
        id: row.id,
        namespace: row.namespace.clone(),
        from: time(row.time_from),
        to: time(row.time_to),
        keep_until: row
            .keep_until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        requested_by: row.requested_by.clone(),
        state: row.state.clone(),
        objects_total: 0,
        objects_done: 0,
        bytes_total: 0,
        bytes_done: 0,
        records_added: row.records_added.unwrap_or(0).max(0) as u64,
        records_already_indexed: row.records_present.unwrap_or(0).max(0) as u64,
        records_left_to_ingest: 0,
        error: row.error.clone(),
    };
    if let Some(p) = progress {
        status.state = p.state().to_owned();
        status.objects_total = load(&p.objects_total);
        status.objects_done = load(&p.objects_done);
        status.bytes_total = load(&p.bytes_total);
        status.bytes_done = load(&p.bytes_done);
        status.records_added = load(&p.added);
        status.records_already_indexed = load(&p.present);
        status.records_left_to_ingest = load(&p.left_to_ingest);
        status.error = p.error();
    }
    status
}

impl Archive {
    pub async fn open(
        config: &Config,
        registry: Arc<IndexRegistry>,
        db: DatabaseConnection,
    ) -> Result<Archive> {
        let kept = Arc::new(KeptRanges::new(db.clone()));
        kept.fail_unfinished().await?;
        Ok(Archive {
            store: Arc::new(ArchiveStore::open(config)?),
            kept,
            config: config.clone(),
            registry,
            db,
            jobs: Mutex::new(HashMap::new()),
            one_at_a_time: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Records the rehydrate (its range is kept from now on), audits it and starts it in
    /// the background; it waits while another runs.
    pub async fn start_rehydrate(&self, actor: &str, range: RehydrateRange) -> Result<JobStatus> {
        let row = self
            .kept
            .add(kept::NewRange {
                namespace: range.namespace.clone(),
                from: range.from,
                to: range.to,
                keep_until: range.keep_until,
                requested_by: actor.to_owned(),
            })
            .await?;
        audit_rehydrate(&self.db, actor, &row, "archive.rehydrate", None).await?;
        let progress = Progress::new();
        self.jobs.lock().expect("jobs lock").insert(
            row.id,
            Job {
                row: row.clone(),
                progress: progress.clone(),
            },
        );
        let index = self.registry.get_or_create(&range.namespace)?;
        let rehydration = Rehydration {
            store: self.store.clone(),
            index,
            kafka: self.config.kafka.clone(),
            range: (range.from, range.to),
            commit: Commit::ByIngest,
            progress: progress.clone(),
        };
        let started_status = status(&row, Some(&*progress));
        let (turn, kept, db, started) = (
            self.one_at_a_time.clone(),
            self.kept.clone(),
            self.db.clone(),
            row.clone(),
        );
        tokio::spawn(async move {
            let _turn = turn.lock().await;
            let _ = kept.set_state(started.id, "running").await;
            let result = rehydration.run().await;
            finish(&kept, &db, &started, &progress, result).await;
        });
        Ok(started_status)
    }

    /// A rehydrate of this server (running, or recorded in the database).
    pub async fn rehydrate_status(&self, id: i64) -> Result<Option<JobStatus>> {
        if let Some(job) = self.jobs.lock().expect("jobs lock").get(&id) {
            return Ok(Some(status(&job.row, Some(&*job.progress))));
        }
        Ok(self.kept.find(id).await?.map(|row| status(&row, None)))
    }
}

/// Stores a rehydrate's outcome and audits it.
pub async fn finish(
    kept: &KeptRanges,
    db: &DatabaseConnection,
    row: &kept::Model,
    progress: &Progress,
    result: Result<()>,
) {
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::SeqCst);
    let (added, present) = (load(&progress.added), load(&progress.present));
    let error = match result {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(namespace = %row.namespace, error = %e, "rehydrate failed");
            progress.fail(e.to_string());
            Some(e.to_string())
        }
    };
    let state = if error.is_some() { "failed" } else { "done" };
    if let Err(e) = kept
        .finish(row.id, state, added, present, error.clone())
        .await
    {
        tracing::error!(error = %e, "rehydrate outcome not stored");
    }
    let outcome = serde_json::json!({
        "state": state,
        "records_added": added,
        "records_already_indexed": present,
        "records_left_to_ingest": load(&progress.left_to_ingest),
        "error": error,
    });
    if let Err(e) = audit_rehydrate(
        db,
        &row.requested_by,
        row,
        "archive.rehydrate.end",
        Some(outcome),
    )
    .await
    {
        tracing::error!(error = %e, "rehydrate outcome not audited");
    }
}

async fn audit_rehydrate(
    db: &DatabaseConnection,
    actor: &str,
    row: &kept::Model,
    action: &str,
    outcome: Option<serde_json::Value>,
) -> Result<()> {
    let mut detail = serde_json::json!({
        "rehydrate": row.id,
        "from": line::rfc3339_nanos(row.time_from),
        "to": line::rfc3339_nanos(row.time_to),
        "keep_until": row.keep_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let (Some(outcome), Some(map)) = (outcome, detail.as_object_mut()) {
        map.insert("outcome".into(), outcome);
    }
    audit::record(
        db,
        audit::NewEvent {
            actor: actor.to_owned(),
            action: action.to_owned(),
            namespaces: vec![row.namespace.clone()],
            query: None,
            hits: None,
            reason: None,
            detail,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;
    use std::path::Path;

    fn load(jail: &mut Jail, text: &str) -> Result<Config> {
        jail.create_file("bitesize.toml", text)
            .expect("write config");
        Config::load(Some(Path::new("bitesize.toml")), figment::Figment::new())
    }

    #[test]
    fn archive_settings_name_the_key_and_hide_the_secret() {
        Jail::expect_with(|jail| {
            for (text, key) in [
                ("[archive]\nflush = 1\n", "flush"),
                ("[archive]\nurl = \"ftp://host/x\"\n", "archive.url"),
                ("[archive]\nurl = \"s3://\"\n", "archive.url"),
                ("[archive]\nzstd_level = 30\n", "archive.zstd_level"),
                ("[archive]\nflush_bytes = 10\n", "archive.flush_bytes"),
                (
                    "[archive]\ngroup_id = \"bitesize-indexer\"\n",
                    "archive.group_id",
                ),
                (
                    "[archive]\nrehydrate_keep_days = 100\n",
                    "archive.rehydrate_keep_days",
                ),
                (
                    "[archive.s3]\nendpoint = \"minio:9000\"\n",
                    "archive.s3.endpoint",
                ),
                (
                    "[archive.s3]\nsecret_access_key = \"x\"\nsecret_access_key_file = \"/nope\"\n",
                    "archive.s3.secret_access_key_file",
                ),
                (
                    "[archive.s3]\nsecret_access_key_file = \"/nope\"\n",
                    "archive.s3.secret_access_key_file",
                ),
            ] {
                let err = load(jail, text).unwrap_err().to_string();
                assert!(err.contains(key), "{text}: {err}");
            }
            let text = "[archive]\nurl = \"s3://logs/archive\"\n[archive.s3]\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3cr3t-value\"\n";
            let config = load(jail, text).unwrap();
            assert!(
                !format!("{config:?}").contains("s3cr3t-value"),
                "never printed"
            );
            let store = ArchiveStore::open(&config).unwrap();
            assert_eq!(store.url(), "s3://logs/archive");

            let config = load(jail, "data_dir = \"data\"\n").unwrap();
            assert_eq!(config.archive_group_id(), "bitesize-indexer-archive");
            let url = config.archive_url();
            assert!(
                url.starts_with("file:///") && url.ends_with("/data/archive/"),
                "{url}"
            );
            Ok(())
        });
    }

    #[test]
    fn rehydrate_requests_are_checked() {
        let config = Config::default();
        let now = chrono::Utc::now();
        let request = |namespace: &str, from: &str, to: &str, keep: Option<u32>| RehydrateRequest {
            namespace: namespace.into(),
            from: from.into(),
            to: to.into(),
            keep_days: keep,
        };
        let ok = request("shop", "now-2d", "now-1d", None)
            .check(&config, now)
            .unwrap();
        assert_eq!(ok.keep_until, now + chrono::Duration::days(7));
        assert_eq!(ok.to - ok.from, 86_400_000_000_000);
        for (bad, says) in [
            (request("Shop", "now-2d", "now", None), "namespace"),
            (request("shop", "yesterday", "now", None), "from"),
            (request("shop", "now-1d", "soon", None), "to"),
            (request("shop", "now", "now-1d", None), "before"),
            (request("shop", "now-2d", "now", Some(0)), "keep_days"),
            (request("shop", "now-2d", "now", Some(91)), "keep_days"),
        ] {
            let err = bad.check(&config, now).err().unwrap().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
