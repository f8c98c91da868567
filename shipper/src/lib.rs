//! Bitesize node agent.
//!
//! A pipeline of stages, each a struct with a `run`, connected by bounded channels:
//! [`tail::Tailer`] reads container log files and builds records, [`produce::Producer`]
//! hands them to Kafka, and [`checkpoint::Checkpointer`] moves file positions forward only
//! after Kafka acknowledged every record before them. Kill it at any point and restart:
//! nothing is lost (at-least-once). [`status_server::StatusServer`] serves `/metrics`,
//! `/healthz` and `/readyz` beside them.

#[cfg(feature = "agent")]
pub mod check;
#[cfg(feature = "agent")]
pub mod checkpoint;
pub mod config;
pub mod decode;
#[cfg(feature = "agent")]
pub mod discover;
pub mod error;
pub mod file_name;
pub mod fingerprint;
pub mod kafka_security;
#[cfg(feature = "agent")]
pub mod kubernetes;
pub mod line;
#[cfg(feature = "agent")]
pub mod metrics;
pub mod multiline;
#[cfg(feature = "agent")]
pub mod produce;
#[cfg(feature = "agent")]
pub mod record_builder;
#[cfg(feature = "agent")]
pub mod reload;
pub mod secret;
#[cfg(feature = "agent")]
pub mod status_server;
#[cfg(feature = "agent")]
pub mod tail;
pub mod transform;

#[cfg(feature = "agent")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "agent")]
use std::sync::Arc;
#[cfg(feature = "agent")]
use std::time::Duration;

pub use config::Config;
pub use error::{Error, Result};

#[cfg(feature = "agent")]
/// Records travelling from the tailer to the producer, with the file positions that become
/// safe to checkpoint once all of them (and everything before) are acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<OutgoingRecord>,
    pub progress: Vec<checkpoint::Progress>,
}

#[cfg(feature = "agent")]
/// One record ready for Kafka.
#[derive(Debug)]
pub struct OutgoingRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
}

#[cfg(feature = "agent")]
/// Runs the shipper until `shutdown` is set, then drains what is in flight and saves the
/// final checkpoint.
pub async fn run(config: Config, shutdown: Arc<AtomicBool>) -> Result<()> {
    run_with_reload(config, None, shutdown).await
}

#[cfg(feature = "agent")]
/// [`run`], also picking up changes of `config_file` (see [`reload`]).
pub async fn run_with_reload(
    config: Config,
    config_file: Option<std::path::PathBuf>,
    shutdown: Arc<AtomicBool>,
) -> Result<()> {
    config.validate()?;
    std::fs::create_dir_all(&config.checkpoint_dir)
        .map_err(|e| Error::Io(format!("creating {}", config.checkpoint_dir.display()), e))?;
    let metrics = Arc::new(metrics::Metrics::new());
    // The endpoints observe; they never stop shipping. A port already taken is logged.
    let status_task = match status_server::StatusServer::bind(&config.listen, metrics.clone()).await
    {
        Ok(server) => {
            tracing::info!(listen = ?server.local_addr(), "serving /metrics, /healthz, /readyz");
            Some(tokio::spawn(server.run()))
        }
        Err(e) => {
            tracing::error!(error = %e, "status endpoints unavailable; shipping anyway");
            None
        }
    };

    let store = checkpoint::CheckpointStore::open(&config.checkpoint_dir)?;
    let loaded = store.load()?;
    if !loaded.existed {
        // From now on this is not the first start: files found later start at the
        // beginning even if we stop before the first position is saved.
        store.save(&loaded.positions)?;
    }

    let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(config.in_flight_batches);
    let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(config.in_flight_batches);

    // The API feeds a cache the tailer reads; shipping never waits for it.
    let pod_watch = if config.kubernetes.enabled {
        let Some(node) = config.node_name.clone() else {
            return Err(Error::Config(
                "node_name: required when kubernetes.enabled (set node_name or NODE_NAME)".into(),
            ));
        };
        let watcher =
            kubernetes::PodWatcher::new(&config.kubernetes, Some(node), metrics.clone()).await?;
        let cache = watcher.cache();
        Some((cache, tokio::spawn(watcher.run())))
    } else {
        None
    };

    let mut tailer = tail::Tailer::new(
        &config,
        loaded.positions.clone(),
        !loaded.existed,
        metrics.clone(),
    )?;
    if let Some((cache, _)) = &pod_watch {
        tailer = tailer.with_pods(cache.clone());
    }
    if let Some(path) = config_file {
        let (live_tx, live_rx) = std::sync::mpsc::channel();
        tailer = tailer.with_reload(live_rx);
        let watcher = reload::ConfigWatcher::new(&path, config.clone(), live_tx, metrics.clone());
        let reload_shutdown = shutdown.clone();
        std::thread::spawn(move || watcher.run(reload_shutdown));
    }
    let (registration_tx, registration_rx) = tokio::sync::mpsc::unbounded_channel();
    tailer = tailer.with_registrations(registration_tx);
    let producer = produce::Producer::new(&config, metrics.clone())?;
    let flush_handle = Arc::new(producer.flush_handle());
    let checkpointer = checkpoint::Checkpointer::new(
        store,
        &config.checkpoint_dir,
        loaded.positions,
        metrics.clone(),
    )
    .with_registrations(registration_rx);

    let probe = flush_handle.clone();
    let probe_metrics = metrics.clone();
    let kafka_probe = tokio::spawn(async move {
        loop {
            let probe = probe.clone();
            let ok = tokio::task::spawn_blocking(move || probe.metadata_ok(Duration::from_secs(5)))
                .await
                .unwrap_or(false);
            probe_metrics.set_kafka_ready(ok);
            let pause = if ok { 5 } else { 1 };
            tokio::time::sleep(Duration::from_secs(pause)).await;
        }
    });

    let tail_shutdown = shutdown.clone();
    let tail_task = tokio::task::spawn_blocking(move || tailer.run(batch_tx, tail_shutdown));
    let produce_task = tokio::spawn(producer.run(batch_rx, ack_tx));
    let checkpoint_task = tokio::spawn(checkpointer.run(ack_rx));

    let tail_result = tail_task
        .await
        .map_err(|e| Error::Stage(format!("tailer: {e}")))?;
    let produce_result = produce_task
        .await
        .map_err(|e| Error::Stage(format!("producer: {e}")))?;
    let checkpoint_result = checkpoint_task
        .await
        .map_err(|e| Error::Stage(format!("checkpointer: {e}")))?;
    kafka_probe.abort();
    if let Some((_, task)) = pod_watch {
        task.abort();
    }
    if let Some(task) = status_task {
        task.abort();
    }
    flush_handle.flush();
    tail_result?;
    produce_result?;
    checkpoint_result?;
    tracing::info!("shipper stopped");
    Ok(())
}

#[cfg(feature = "agent")]
/// Sets `flag` when the process receives SIGINT or SIGTERM.
pub fn stop_on_signal(flag: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("stop requested");
        flag.store(true, Ordering::SeqCst);
    });
}
