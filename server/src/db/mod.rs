//! The relational catalog (sea-orm): SQLite in the data directory by default, PostgreSQL by
//! URL. Migrations from `bitesize-migrations` are applied on connect.

pub mod namespaces;
pub mod users;

use bitesize_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::Result;

/// Connects and brings the schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time is what SQLite can do; more connections only queue on its lock.
        options.max_connections(1);
    }
    let db = Database::connect(options).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}
