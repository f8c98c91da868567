//! The `bitesize` command line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use figment::Figment;
use serde::Serialize;

use crate::config::Config;
use crate::{app, db, embedded, Result};

#[derive(Parser)]
#[command(
    name = "bitesize",
    version,
    about = "Kubernetes logs for every team, audited for the security office"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Serialize)]
pub struct GlobalArgs {
    /// TOML config file; `BITESIZE_*` environment variables and flags override it.
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory (index, database, demo files).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Address to serve the API and dashboard on.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: ingest from Kafka, serve the API and the dashboard.
    Serve,
    /// Run everything on this machine: broker, sample workload, shipper, server.
    Demo {
        /// Use this Kafka (bootstrap servers) instead of starting the embedded broker.
        #[arg(long)]
        kafka: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add { name: String },
    /// List users.
    List,
}

pub async fn run(cli: Cli) -> Result<()> {
    let overrides = Figment::from(Serialized::defaults(&cli.global));
    let config = Config::load(cli.global.config.as_deref(), overrides)?;
    match cli.command {
        Command::Serve => {
            let shutdown = Arc::new(AtomicBool::new(false));
            app::stop_on_signal(shutdown.clone());
            app::serve(config, shutdown).await
        }
        Command::Demo { kafka } => embedded::run(config, kafka).await,
        Command::Migrate => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                crate::Error::Io(format!("creating {}", config.data_dir.display()), e)
            })?;
            db::connect(&config.database_url()).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User(command) => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                crate::Error::Io(format!("creating {}", config.data_dir.display()), e)
            })?;
            let db = db::connect(&config.database_url()).await?;
            match command {
                UserCommand::Add { name } => {
                    let user = db::users::add(&db, &name).await?;
                    println!("added user {} (id {})", user.name, user.id);
                }
                UserCommand::List => {
                    for user in db::users::list(&db).await? {
                        println!(
                            "{}\t{}\t{}",
                            user.id,
                            user.name,
                            user.created_at.to_rfc3339()
                        );
                    }
                }
            }
            Ok(())
        }
    }
}
