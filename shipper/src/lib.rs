//! Bitesize node agent.
//!
//! A pipeline of stages, each a struct with a `run`, connected by bounded channels:
//! [`tail::Tailer`] reads container log files and builds records, [`produce::Producer`]
//! hands them to Kafka, and [`checkpoint::Checkpointer`] moves file positions forward only
//! after Kafka acknowledged every record before them. Kill it at any point and restart:
//! nothing is lost (at-least-once).

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod file_name;
pub mod line;
pub mod produce;
pub mod tail;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use config::Config;
pub use error::{Error, Result};

/// Records travelling from the tailer to the producer, with the file positions that become
/// safe to checkpoint once all of them (and everything before) are acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<OutgoingRecord>,
    pub positions: Vec<checkpoint::Position>,
}

/// One record ready for Kafka.
#[derive(Debug)]
pub struct OutgoingRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
}

/// Runs the shipper until `shutdown` is set, then drains what is in flight and saves the
/// final checkpoint.
pub async fn run(config: Config, shutdown: Arc<AtomicBool>) -> Result<()> {
    config.validate()?;
    std::fs::create_dir_all(&config.checkpoint_dir)
        .map_err(|e| Error::Io(format!("creating {}", config.checkpoint_dir.display()), e))?;
    let store = checkpoint::CheckpointStore::open(&config.checkpoint_dir)?;
    let positions = store.load()?;

    let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(config.in_flight_batches);
    let (ack_tx, ack_rx) = tokio::sync::mpsc::channel(config.in_flight_batches);

    let tailer = tail::Tailer::new(&config, positions);
    let producer = produce::Producer::new(&config)?;
    let flush_handle = producer.flush_handle();
    let checkpointer = checkpoint::Checkpointer::new(store, &config.checkpoint_dir);

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
    flush_handle.flush();
    tail_result?;
    produce_result?;
    checkpoint_result?;
    tracing::info!("shipper stopped");
    Ok(())
}

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
