//! The tamper-evident audit log: one row per event, each holding the hash of the one before
//! it (see `bitesize_server::audit`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Actor,
    Action,
    Namespaces,
    Query,
    Hits,
    Reason,
    Detail,
    PrevHash,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::Actor).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Action).string().not_null())
                    .col(ColumnDef::new(AuditEvents::Namespaces).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Query).text().null())
                    .col(ColumnDef::new(AuditEvents::Hits).big_integer().null())
                    .col(ColumnDef::new(AuditEvents::Reason).text().null())
                    .col(ColumnDef::new(AuditEvents::Detail).text().not_null())
                    .col(ColumnDef::new(AuditEvents::PrevHash).string().not_null())
                    .col(
                        ColumnDef::new(AuditEvents::Hash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_audit_events_at", AuditEvents::At),
            ("idx_audit_events_actor", AuditEvents::Actor),
            ("idx_audit_events_action", AuditEvents::Action),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}
