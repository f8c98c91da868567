//! The shipper fleet's desired state: one row (`id` 1) edited through
//! `/api/v1/admin/fleet/config`; absent until the first change (defaults apply).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FleetSettings {
    Table,
    Id,
    Image,
    Version,
    ConfigYaml,
    Resources,
    Tolerations,
    ConfigVersion,
    TemplateConfigVersion,
    UpdatedBy,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FleetSettings::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(FleetSettings::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(FleetSettings::Image).string().not_null())
                    .col(ColumnDef::new(FleetSettings::Version).string().not_null())
                    .col(ColumnDef::new(FleetSettings::ConfigYaml).text().not_null())
                    // JSON: a Kubernetes ResourceRequirements object.
                    .col(ColumnDef::new(FleetSettings::Resources).text().not_null())
                    // JSON: a list of Kubernetes Tolerations.
                    .col(ColumnDef::new(FleetSettings::Tolerations).text().not_null())
                    // Bumped by every change of the shipper config (ConfigMap).
                    .col(
                        ColumnDef::new(FleetSettings::ConfigVersion)
                            .big_integer()
                            .not_null(),
                    )
                    // The config version when the pod template last changed (a rollout).
                    .col(
                        ColumnDef::new(FleetSettings::TemplateConfigVersion)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(FleetSettings::UpdatedBy).string().not_null())
                    // RFC 3339.
                    .col(ColumnDef::new(FleetSettings::UpdatedAt).string().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FleetSettings::Table).to_owned())
            .await
    }
}
