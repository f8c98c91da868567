//! `bitesize rehydrate --namespace NS --from T --to T`, with a progress line.
//!
//! Only one writer can hold a namespace's index, so while the server runs the command goes
//! through its API (`--server URL`, an API token of an admin or of the namespace's owner in
//! `BITESIZE_TOKEN`) and shows the server's job status as it moves. Without `--server` it
//! works directly on the data directory, which needs the server stopped: a running server
//! holds the index writer's lock, and the command then says to use `--server`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::kept::{KeptRanges, NewRange};
use super::rehydrate::{Commit, Progress, Rehydration};
use super::{status, ArchiveStore, JobStatus, RehydrateRequest};
use crate::config::Config;
use crate::search::IndexRegistry;
use crate::{db, Error, Result};

/// Shows a job's progress on standard error: one line rewritten in place on a terminal, a
/// line per change (at most one a second) otherwise.
struct ProgressLine {
    terminal: bool,
    last: String,
    shown_at: Option<Instant>,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
            shown_at: None,
        }
    }

    fn show(&mut self, status: &JobStatus) {
        let line = status.progress_line();
        if self.terminal {
            eprint!("\r{line}\x1b[K");
            if status.finished() {
                eprintln!();
            }
        } else if line != self.last
            && (status.finished()
                || self
                    .shown_at
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(1)))
        {
            eprintln!("{line}");
            self.shown_at = Some(Instant::now());
        }
        self.last = line;
    }
}

fn summary(status: &JobStatus) -> Result<()> {
    if status.state == "failed" {
        return Err(Error::Internal(format!(
            "rehydrate {} of {} failed: {}",
            status.id,
            status.namespace,
            status.error.as_deref().unwrap_or("no reason given")
        )));
    }
    println!(
        "rehydrated {} [{}, {}): {} records added, {} already indexed, {} left to ingest; kept until {}",
        status.namespace,
        status.from,
        status.to,
        status.records_added,
        status.records_already_indexed,
        status.records_left_to_ingest,
        status.keep_until
    );
    Ok(())
}

/// Runs `request` through the server at `server` (when given) or on the data directory.
pub async fn rehydrate(
    config: &Config,
    request: RehydrateRequest,
    server: Option<&str>,
) -> Result<()> {
    match server {
        Some(url) => through_server(url.trim_end_matches('/'), &request).await,
        None => on_data_directory(config, &request).await,
    }
}

async fn through_server(url: &str, request: &RehydrateRequest) -> Result<()> {
    let token = std::env::var("BITESIZE_TOKEN").map_err(|_| {
        Error::BadRequest(
            "BITESIZE_TOKEN: set it to an API token of an admin or of the namespace's owner".into(),
        )
    })?;
    let client = reqwest::Client::new();
    let failed = |e: reqwest::Error| Error::Internal(format!("{url}: {e}"));
    let body = serde_json::json!({
        "namespace": request.namespace,
        "from": request.from,
        "to": request.to,
        "keep_days": request.keep_days,
    });
    let response = client
        .post(format!("{url}/api/v1/archive/rehydrate"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .map_err(failed)?;
    let mut status = job_status(response).await?;
    let mut line = ProgressLine::new();
    loop {
        line.show(&status);
        if status.finished() {
            return summary(&status);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let response = client
            .get(format!("{url}/api/v1/archive/rehydrate/{}", status.id))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(failed)?;
        status = job_status(response).await?;
    }
}

/// The job status in a response, or the server's error as ours.
async fn job_status(response: reqwest::Response) -> Result<JobStatus> {
    let code = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    if code.is_success() {
        return serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("unexpected answer from the server: {e}")));
    }
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or(text);
    Err(match code.as_u16() {
        400 => Error::BadRequest(detail),
        401 => Error::Unauthorized(detail),
        403 => Error::Forbidden(detail),
        404 => Error::NotFound(detail),
        _ => Error::Internal(format!("the server answered {code}: {detail}")),
    })
}

async fn on_data_directory(config: &Config, request: &RehydrateRequest) -> Result<()> {
    let range = request.check(config, chrono::Utc::now())?;
    let registry = IndexRegistry::open(&config.index_dir(), config.ingest.writer_memory_mb)
        .map_err(|e| match e {
            Error::Index(tantivy::TantivyError::LockFailure(..)) => Error::BadRequest(format!(
                "the server is running on {} (it holds the index writer): rehydrate through it with --server http://<its address> and BITESIZE_TOKEN set",
                config.data_dir.display()
            )),
            other => other,
        })?;
    let index = registry.get_or_create(&range.namespace)?;
    let db = db::connect(&config.database_url()).await?;
    let store = std::sync::Arc::new(ArchiveStore::open(config)?);
    let kept = KeptRanges::new(db.clone());
    let row = kept
        .add(NewRange {
            namespace: range.namespace.clone(),
            from: range.from,
            to: range.to,
            keep_until: range.keep_until,
            requested_by: "cli".into(),
        })
        .await?;
    super::audit_rehydrate(&db, "cli", &row, "archive.rehydrate", None).await?;
    let progress = Progress::new();
    let rehydration = Rehydration {
        store,
        index,
        kafka: config.kafka.clone(),
        range: (range.from, range.to),
        commit: Commit::Own,
        progress: progress.clone(),
    };
    kept.set_state(row.id, "running").await?;
    let mut work = tokio::spawn(async move { rehydration.run().await });
    let mut line = ProgressLine::new();
    let result = loop {
        line.show(&status(&row, Some(&*progress)));
        tokio::select! {
            joined = &mut work => break joined.map_err(|e| Error::Internal(e.to_string()))?,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    super::finish(&kept, &db, &row, &progress, result).await;
    let done = status(&row, Some(&*progress));
    line.show(&done);
    summary(&done)
}
