//! Rehydrates of archived time ranges (see `bitesize_server::archive::kept`): one row per
//! rehydrate, with the range retention keeps in the index until `keep_until`, who asked,
//! and how it went.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ArchiveRehydrations {
    Table,
    Id,
    Namespace,
    TimeFrom,
    TimeTo,
    KeepUntil,
    RequestedBy,
    CreatedAt,
    State,
    RecordsAdded,
    RecordsPresent,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ArchiveRehydrations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ArchiveRehydrations::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::Namespace)
                            .string()
                            .not_null(),
                    )
                    // Nanoseconds since the epoch: [time_from, time_to).
                    .col(
                        ColumnDef::new(ArchiveRehydrations::TimeFrom)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::TimeTo)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::KeepUntil)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::RequestedBy)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::State)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::RecordsAdded)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ArchiveRehydrations::RecordsPresent)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(ArchiveRehydrations::Error).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_archive_rehydrations_namespace")
                    .table(ArchiveRehydrations::Table)
                    .col(ArchiveRehydrations::Namespace)
                    .col(ArchiveRehydrations::KeepUntil)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ArchiveRehydrations::Table).to_owned())
            .await
    }
}
