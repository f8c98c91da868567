//! `bitesize-shipper`: the node agent binary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bitesize-shipper",
    version,
    about = "Ships container logs to Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tail the log directory and ship every line to Kafka.
    Run {
        /// YAML config file; `BITESIZE_*` environment variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print, as NDJSON, the records the shipper would produce for FILEs; no broker needed.
    Check {
        /// YAML config file (cluster, node name, topic template, line limit).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Container log files, named like the kubelet names them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BITESIZE_LOG")
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            let loaded = bitesize_shipper::Config::load(config.as_deref())?;
            let shutdown = Arc::new(AtomicBool::new(false));
            bitesize_shipper::stop_on_signal(shutdown.clone());
            bitesize_shipper::run_with_reload(loaded, config, shutdown).await?;
        }
        Command::Check { config, files } => {
            let config = bitesize_shipper::Config::load(config.as_deref())?;
            let pods = if config.kubernetes.enabled {
                // This node's pods when NODE_NAME is set, else every pod the account sees.
                let watcher = bitesize_shipper::kubernetes::PodWatcher::new(
                    &config.kubernetes,
                    config.node_name.clone(),
                    Default::default(),
                )
                .await?;
                let cache = watcher.cache();
                tokio::spawn(watcher.run());
                if !cache.wait_synced(std::time::Duration::from_secs(5)).await {
                    eprintln!("Kubernetes API not reachable in 5 s: file-name metadata only");
                }
                Some(cache)
            } else {
                None
            };
            let failures = bitesize_shipper::check::check(
                &config,
                pods,
                &files,
                // Whole buffers, not a write per line (stdout is line-buffered).
                &mut std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
            )?;
            for failure in &failures {
                eprintln!("{failure}");
            }
            if !failures.is_empty() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
