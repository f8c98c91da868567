//! Who may read what: role bindings, API tokens (stored hashed), and local passwords.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    PasswordHash,
}

#[derive(DeriveIden)]
enum Bindings {
    Table,
    Id,
    SubjectKind,
    Subject,
    Role,
    Pattern,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    UserName,
    Name,
    Prefix,
    Hash,
    Role,
    Patterns,
    Standalone,
    ExpiresAt,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::PasswordHash).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Bindings::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Bindings::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Bindings::SubjectKind).string().not_null())
                    .col(ColumnDef::new(Bindings::Subject).string().not_null())
                    .col(ColumnDef::new(Bindings::Role).string().not_null())
                    .col(ColumnDef::new(Bindings::Pattern).string().not_null())
                    .col(ColumnDef::new(Bindings::CreatedBy).string().not_null())
                    .col(
                        ColumnDef::new(Bindings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("bindings_unique")
                    .table(Bindings::Table)
                    .col(Bindings::SubjectKind)
                    .col(Bindings::Subject)
                    .col(Bindings::Role)
                    .col(Bindings::Pattern)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ApiTokens::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ApiTokens::UserName).string().not_null())
                    .col(ColumnDef::new(ApiTokens::Name).string().not_null())
                    .col(ColumnDef::new(ApiTokens::Prefix).string().not_null())
                    .col(
                        ColumnDef::new(ApiTokens::Hash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(ApiTokens::Role).string().not_null())
                    .col(ColumnDef::new(ApiTokens::Patterns).text().not_null())
                    .col(ColumnDef::new(ApiTokens::Standalone).boolean().not_null())
                    .col(
                        ColumnDef::new(ApiTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Bindings::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::PasswordHash)
                    .to_owned(),
            )
            .await
    }
}
