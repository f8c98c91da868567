//! OpenID Connect sign-in: sign-ins in progress (`oidc_logins`: the state, nonce and PKCE
//! verifier between the redirect to the provider and its callback), and, on sessions, the
//! provider a session came from and its ID token (the `id_token_hint` of RP-initiated logout).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OidcLogins {
    Table,
    Id,
    StateHash,
    Provider,
    Nonce,
    PkceVerifier,
    Next,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Provider,
    IdToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OidcLogins::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OidcLogins::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OidcLogins::StateHash)
                            .string()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(OidcLogins::Provider).string().not_null())
                    .col(ColumnDef::new(OidcLogins::Nonce).string().not_null())
                    .col(ColumnDef::new(OidcLogins::PkceVerifier).string().not_null())
                    .col(ColumnDef::new(OidcLogins::Next).text().not_null())
                    .col(
                        ColumnDef::new(OidcLogins::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::Provider).string().null())
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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Sessions::IdToken, Sessions::Provider] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(OidcLogins::Table).to_owned())
            .await
    }
}
