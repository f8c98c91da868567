//! Saved searches: a name, the `/search` URL state (its query string, without paging), the
//! namespaces it names and whether it is shared with their owners. A saved search is only a
//! URL: opening one is an ordinary search under the viewer's own scope.
//!
//! Also seals the ID-token hint of single sign-on sessions: `sessions.id_token` (the ID
//! token in plain text) is replaced by `sessions.id_token_sealed` (encrypted under a key
//! derived from the session cookie, see `auth/sessions.rs`). Tokens stored in plain text
//! before are dropped: those sessions still sign out here, and at the provider without the
//! hint.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SavedSearches {
    Table,
    Id,
    Owner,
    Name,
    Query,
    Namespaces,
    Shared,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    IdToken,
    IdTokenSealed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SavedSearches::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SavedSearches::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SavedSearches::Owner).string().not_null())
                    .col(ColumnDef::new(SavedSearches::Name).string().not_null())
                    // `namespace=shop&q=error&from=now-1h`: what follows `/search?`.
                    .col(ColumnDef::new(SavedSearches::Query).text().not_null())
                    // JSON array of the namespace names the query string selects.
                    .col(ColumnDef::new(SavedSearches::Namespaces).text().not_null())
                    .col(ColumnDef::new(SavedSearches::Shared).boolean().not_null())
                    .col(
                        ColumnDef::new(SavedSearches::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("saved_searches_owner_name")
                    .table(SavedSearches::Table)
                    .col(SavedSearches::Owner)
                    .col(SavedSearches::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::IdToken)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::IdTokenSealed).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::IdTokenSealed)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::IdToken).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SavedSearches::Table).to_owned())
            .await
    }
}
