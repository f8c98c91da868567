//! The namespace registry: each namespace's Kafka topic settings (partitions, replication,
//! `retention.ms`, `retention.bytes`), archive on/off and owner group. `managed` marks the
//! namespaces an admin created or adopted; rows the indexer added on its own have it false.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Namespaces {
    Table,
    Managed,
    Partitions,
    ReplicationFactor,
    RetentionMs,
    RetentionBytes,
    Archive,
    OwnerGroup,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(Namespaces::Managed)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Namespaces::Partitions)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Namespaces::ReplicationFactor)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(Namespaces::RetentionMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Namespaces::RetentionBytes)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Namespaces::Archive)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Namespaces::OwnerGroup)
                .string()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Namespaces::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Namespaces::OwnerGroup,
            Namespaces::Archive,
            Namespaces::RetentionBytes,
            Namespaces::RetentionMs,
            Namespaces::ReplicationFactor,
            Namespaces::Partitions,
            Namespaces::Managed,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Namespaces::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
