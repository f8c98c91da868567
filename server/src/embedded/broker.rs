//! The demo's Kafka-protocol broker: `nisshi` (formerly tansu) as a supervised child
//! process, with SQLite storage in the data directory so topics, data and committed offsets
//! survive a restart.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::supervisor::Supervised;
use crate::{Error, Result};

pub const BROKER_NAME: &str = "nisshi";

pub struct Broker {
    pub bootstrap: String,
    process: Supervised,
}

impl Broker {
    /// Starts the broker and waits until it accepts connections.
    pub async fn start(bin: &Path, data_dir: &Path) -> Result<Broker> {
        let dir = data_dir.join("broker");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let bin = bin.to_owned();
        let dir = dir.clone();
        // nisshi resolves a sqlite:// path against its working directory.
        let storage = "sqlite://broker.db".to_owned();
        let process = Supervised::start(
            BROKER_NAME,
            data_dir.join("logs").join("broker.log"),
            move || {
                let mut command = Command::new(&bin);
                command
                    .args([
                        "broker",
                        "--listener-url",
                        &url,
                        "--advertised-listener-url",
                        &url,
                    ])
                    .args([
                        "--storage-engine",
                        &storage,
                        "--group-initial-rebalance-delay",
                        "0s",
                    ])
                    .current_dir(&dir)
                    .kill_on_drop(true);
                command
            },
        );
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                process.stop().await;
                return Err(Error::Embedded(format!(
                    "broker did not accept connections on {address} within 30 s; see {}",
                    data_dir.join("logs").join("broker.log").display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Broker {
            bootstrap: address.to_string(),
            process,
        })
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// The broker binary: the configured one, else `nisshi` on PATH, else the tool cache that
/// `./scripts/demo` and `./scripts/test` install into.
pub fn find_broker(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = configured {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(Error::Config(format!(
                "broker_bin: {} does not exist",
                path.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(BROKER_NAME));
    let cache = std::env::var_os("HOME").map(|home| {
        PathBuf::from(home)
            .join(".cache/bitesize/tools/bin")
            .join(BROKER_NAME)
    });
    on_path.chain(cache).find(|p| p.is_file()).ok_or_else(|| {
        Error::Config(format!(
            "broker binary {BROKER_NAME} not found on PATH or in ~/.cache/bitesize/tools/bin: \
             run ./scripts/demo (it installs it), set BITESIZE_BROKER_BIN, or pass --kafka <bootstrap>"
        ))
    })
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Io("finding a free port".into(), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Io("finding a free port".into(), e))
}
