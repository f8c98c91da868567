//! The `bitesize` command line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use figment::Figment;
use serde::Serialize;

use crate::auth::tokens::{self, NewToken};
use crate::authz::bindings::{self, NewBinding};
use crate::authz::{Pattern, Role};
use crate::config::Config;
use crate::{app, audit, db, embedded, Result};

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
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage role bindings.
    #[command(subcommand)]
    Binding(BindingCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Namespace settings.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Kafka governance.
    #[command(subcommand)]
    Kafka(KafkaCommand),
    /// Load an archived time range of a namespace back into its index (records already
    /// indexed are not duplicated). With the server running, go through it: `--server URL`
    /// and an API token (admin or the namespace's owner) in BITESIZE_TOKEN; without
    /// `--server` it works on the data directory, which needs the server stopped.
    Rehydrate {
        #[arg(long)]
        namespace: String,
        /// RFC 3339 or relative (`now-30d`); inclusive.
        #[arg(long)]
        from: String,
        /// RFC 3339 or relative; exclusive.
        #[arg(long)]
        to: String,
        /// Days retention keeps the range (default `archive.rehydrate_keep_days`).
        #[arg(long)]
        keep_days: Option<u32>,
        /// The running server's URL (`http://127.0.0.1:8080`).
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KafkaCommand {
    /// The Kafka ACLs each principal needs (from the namespace registry and the bindings),
    /// as `kafka-acls` commands; `--json` for the plan itself.
    Acls {
        /// Apply the plan through the Kafka admin API (fails, saying why, where unsupported).
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum NamespaceCommand {
    /// How many days the namespace's index keeps records (`default`: the configured default).
    SetRetention { name: String, days: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (a local account when a password is given).
    Add {
        name: String,
        /// Read the local password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's local password, read from standard input.
    SetPassword { name: String },
    /// List users.
    List,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; the token is printed alone on the last line.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        subject: String,
        /// admin, auditor, owner or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Namespace patterns, comma-separated (owner and viewer; default `*`).
        #[arg(long, value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Lifetime such as 30d or 12h; default: no expiry.
        #[arg(long)]
        expires: Option<String>,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum BindingCommand {
    /// Give a user or group a role (over a namespace pattern for owner and viewer).
    Add {
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        role: String,
        #[arg(long)]
        pattern: Option<String>,
    },
    /// List bindings.
    List,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits non-zero when it is broken.
    Verify,
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
            let db = open_database(&config).await?;
            match command {
                UserCommand::Add {
                    name,
                    password_stdin,
                } => {
                    let password = if password_stdin {
                        Some(read_password()?)
                    } else {
                        None
                    };
                    let user = db::users::add(&db, &name, password.as_deref()).await?;
                    println!("added user {} (id {})", user.name, user.id);
                }
                UserCommand::SetPassword { name } => {
                    db::users::set_password(&db, &name, &read_password()?).await?;
                    println!("password set for {name}");
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
        Command::Token(TokenCommand::Create {
            subject,
            role,
            namespaces,
            expires,
            name,
        }) => {
            let db = open_database(&config).await?;
            if db::users::find(&db, &subject).await?.is_none() {
                return Err(crate::Error::NotFound(format!(
                    "user {subject:?}: add it first with `bitesize user add {subject}`"
                )));
            }
            let role = Role::parse(&role)?;
            let patterns = if namespaces.is_empty() || matches!(role, Role::Admin | Role::Auditor) {
                vec![Pattern::parse("*")?]
            } else {
                namespaces
                    .iter()
                    .map(|n| Pattern::parse(n))
                    .collect::<Result<Vec<_>>>()?
            };
            let expires_at = expires
                .as_deref()
                .map(crate::api::access::parse_lifetime)
                .transpose()?;
            // Created by the operator of the data directory: the token carries its grant itself.
            let token = NewToken {
                user: subject,
                name,
                role,
                patterns,
                expires_at,
                standalone: true,
                secret: None,
            };
            let (secret, model) = tokens::create(&db, token).await?;
            eprintln!(
                "created token {} for {} ({}); it is shown once:",
                model.id, model.user_name, model.role
            );
            println!("{secret}");
            Ok(())
        }
        Command::Binding(command) => {
            let db = open_database(&config).await?;
            match command {
                BindingCommand::Add {
                    user,
                    group,
                    role,
                    pattern,
                } => {
                    let (subject_kind, subject) = match (user, group) {
                        (Some(user), _) => ("user", user),
                        (None, Some(group)) => ("group", group),
                        (None, None) => {
                            return Err(crate::Error::BadRequest("give --user or --group".into()))
                        }
                    };
                    let binding = NewBinding {
                        subject_kind: subject_kind.into(),
                        subject,
                        role,
                        pattern,
                    };
                    let added = bindings::add(&db, binding, "cli").await?;
                    println!(
                        "binding {}: {} {} is {} of {}",
                        added.id, added.subject_kind, added.subject, added.role, added.pattern
                    );
                }
                BindingCommand::List => {
                    for b in bindings::list(&db).await? {
                        println!(
                            "{}\t{} {}\t{}\t{}",
                            b.id, b.subject_kind, b.subject, b.role, b.pattern
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Namespace(NamespaceCommand::SetRetention { name, days }) => {
            let db = open_database(&config).await?;
            let days = match days.as_str() {
                "default" => None,
                n => Some(n.parse::<i32>().map_err(|_| {
                    crate::Error::BadRequest(format!("days: {n:?} is not a number or `default`"))
                })?),
            };
            db::namespaces::set_retention(&db, &name, days).await?;
            let event = audit::NewEvent {
                actor: "cli".into(),
                action: "namespace.retention".into(),
                namespaces: vec![name.clone()],
                query: None,
                hits: None,
                reason: None,
                detail: serde_json::json!({ "retention_days": days }),
            };
            audit::record(&db, event).await?;
            println!(
                "{name}: retention {}",
                days.map_or("default".to_owned(), |d| format!("{d} days"))
            );
            Ok(())
        }
        Command::Kafka(KafkaCommand::Acls { apply, json }) => {
            let db = open_database(&config).await?;
            let plan = crate::api::namespaces_admin::acl_plan(&db, &config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan).expect("json"));
            } else {
                for (acl, command) in plan.acls.iter().zip(&plan.commands) {
                    println!(
                        "# {} {} on {} {} {}: {}",
                        acl.principal,
                        acl.operation,
                        acl.pattern_type,
                        acl.resource_type,
                        acl.resource_name,
                        acl.reason
                    );
                    println!("{command}");
                }
            }
            if apply {
                let applied = crate::kafka::acl::apply(&config.kafka, &plan.acls).await?;
                eprintln!("applied {applied} ACLs to {}", config.kafka.brokers);
            }
            Ok(())
        }
        Command::Rehydrate {
            namespace,
            from,
            to,
            keep_days,
            server,
        } => {
            let request = crate::archive::RehydrateRequest {
                namespace,
                from,
                to,
                keep_days,
            };
            crate::archive::command::rehydrate(&config, request, server.as_deref()).await
        }
        Command::Audit(AuditCommand::Verify) => {
            let db = open_database(&config).await?;
            let verification = audit::verify(&db).await?;
            println!("{}", serde_json::to_string(&verification).expect("json"));
            if verification.ok {
                Ok(())
            } else {
                Err(crate::Error::Internal("the audit chain is broken".into()))
            }
        }
    }
}

async fn open_database(config: &Config) -> Result<sea_orm::DatabaseConnection> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| crate::Error::Io(format!("creating {}", config.data_dir.display()), e))?;
    db::connect(&config.database_url()).await
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| crate::Error::Io("reading the password".into(), e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
