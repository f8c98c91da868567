//! Database schema of the Bitesize server. The server applies these at start-up, so the same
//! migrations run on the embedded SQLite file and on PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_users_and_namespaces;
mod m20261125_000002_audit_events;
mod m20261125_000003_access;
mod m20261125_000004_sessions;
mod m20261125_000005_oidc;
mod m20261125_000006_retention;
mod m20261125_000007_fleet;
mod m20261125_000008_namespace_registry;
mod m20261130_000009_saved_searches;
mod m20261130_000010_archive;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_users_and_namespaces::Migration),
            Box::new(m20261125_000002_audit_events::Migration),
            Box::new(m20261125_000003_access::Migration),
            Box::new(m20261125_000004_sessions::Migration),
            Box::new(m20261125_000005_oidc::Migration),
            Box::new(m20261125_000006_retention::Migration),
            Box::new(m20261125_000007_fleet::Migration),
            Box::new(m20261125_000008_namespace_registry::Migration),
            Box::new(m20261130_000009_saved_searches::Migration),
            Box::new(m20261130_000010_archive::Migration),
        ]
    }
}
