//! The all-in-one mode (`bitesize demo`): a supervised Kafka-protocol broker, a sample
//! workload writing container logs, the shipper over them, and this server — the same code
//! paths as production, with embedded defaults.

mod accounts;
mod broker;
mod supervisor;
pub mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::process::Command;

use crate::config::{Config, LocalShipper};
use crate::{app, Error, Result};
use broker::Broker;
use supervisor::Supervised;
use workload::Workload;

/// Runs the demo until Ctrl-C; `kafka` uses an existing Kafka instead of starting a broker.
pub async fn run(mut config: Config, kafka: Option<String>) -> Result<()> {
    let data = config.data_dir.clone();
    for dir in [
        data.join("logs"),
        data.join("containers"),
        data.join("shipper"),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
    }
    let shipper_bin = find_shipper(config.shipper_bin.as_deref())?;
    let logins = {
        let db = crate::db::connect(&config.database_url()).await?;
        let logins = accounts::prepare(&db, &data, config.demo_admin_token.as_ref()).await?;
        db.close().await?;
        logins
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    app::stop_on_signal(shutdown.clone());

    let broker = match kafka {
        Some(bootstrap) => {
            config.kafka.brokers = bootstrap;
            None
        }
        None => {
            let bin = broker::find_broker(config.broker_bin.as_deref())?;
            let broker = Broker::start(&bin, &data).await?;
            config.kafka.brokers = broker.bootstrap.clone();
            Some(broker)
        }
    };

    let workload_dir = data.join("containers");
    let workload_stop = shutdown.clone();
    let workload =
        tokio::task::spawn_blocking(move || Workload::new(&workload_dir).run(workload_stop));

    // The shipper's status endpoints on a free loopback port, scraped by the fleet status
    // as the one node (no cluster is managed in the demo).
    let shipper_listen = free_loopback_port()?;
    let shipper_config = write_shipper_config(&data, &config.kafka.brokers, shipper_listen)?;
    config.fleet.local_shipper = Some(LocalShipper {
        node_name: DEMO_NODE.to_owned(),
        metrics_url: Some(format!("http://{shipper_listen}/metrics")),
    });
    // lines/s needs two scrapes: soon after start, not a quarter minute later.
    config.fleet.status_interval_secs = config.fleet.status_interval_secs.min(5);
    let shipper = Supervised::start(
        "shipper",
        data.join("logs").join("shipper.log"),
        move || {
            let mut command = Command::new(&shipper_bin);
            command
                .arg("run")
                .arg("--config")
                .arg(&shipper_config)
                .kill_on_drop(true);
            // The shipper reads its own BITESIZE_* keys; the server's must not leak into it.
            for (key, _) in
                std::env::vars().filter(|(k, _)| k.starts_with("BITESIZE_") && k != "BITESIZE_LOG")
            {
                command.env_remove(key);
            }
            command
        },
    );

    println!(
        "\nBitesize demo is running.\n  dashboard: http://{listen}/search\n  API:       http://{listen}/api/v1/search?namespace=shop (Authorization: Bearer <token>)\n  Kafka:     {kafka} ({who})\n  data:      {data}\n  namespaces: {namespaces}\n  sign in as (user, password, role):\n    {logins}\n  API token: `bitesize token create --subject admin --role admin --data-dir {data}`{token_note}\nPress Ctrl-C to stop.\n",
        listen = config.listen,
        kafka = config.kafka.brokers,
        who = if broker.is_some() { "embedded nisshi broker" } else { "external" },
        data = data.display(),
        namespaces = workload::NAMESPACES.join(", "),
        logins = logins.join("\n    "),
        token_note = if config.demo_admin_token.is_some() { "; BITESIZE_DEMO_ADMIN_TOKEN is an admin token" } else { "" },
    );

    let served = app::serve(config, shutdown.clone()).await;
    shutdown.store(true, Ordering::SeqCst);
    shipper.stop().await;
    match workload.await {
        Ok(Err(e)) => tracing::error!(error = %e, "workload failed"),
        Err(e) => tracing::error!(error = %e, "workload panicked"),
        Ok(Ok(())) => {}
    }
    if let Some(broker) = broker {
        broker.stop().await;
    }
    println!("Bitesize demo stopped; data kept in {}", data.display());
    served
}

/// The node name the demo's shipper reports, and the fleet status shows.
const DEMO_NODE: &str = "demo-node";

/// A loopback address no one listens on now (the OS picks the port; released for the
/// shipper to bind).
fn free_loopback_port() -> Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| Error::Io("finding a free loopback port for the shipper".into(), e))
}

fn write_shipper_config(data: &Path, brokers: &str, listen: SocketAddr) -> Result<PathBuf> {
    let data = std::fs::canonicalize(data)
        .map_err(|e| Error::Io(format!("resolving {}", data.display()), e))?;
    let config = serde_json::json!({
        "include": [data.join("containers").join("*.log")],
        "listen": listen.to_string(),
        "checkpoint_dir": data.join("shipper"),
        "node_name": DEMO_NODE,
        "cluster": "demo",
        "kafka": { "brokers": brokers },
    });
    // JSON is YAML, and needs no extra serializer.
    let path = data.join("shipper.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json"))
        .map_err(|e| Error::Io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// The shipper binary: the configured one, else `bitesize-shipper` next to this binary.
fn find_shipper(configured: Option<&Path>) -> Result<PathBuf> {
    let path = match configured {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()
            .map_err(|e| Error::Io("locating this binary".into(), e))?
            .with_file_name("bitesize-shipper"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Config(format!(
            "shipper_bin: {} not found; build it (cargo build -p bitesize-shipper) or set BITESIZE_SHIPPER_BIN",
            path.display()
        )))
    }
}
