//! Role bindings: a user or an OIDC group gets a role over a namespace pattern.

use sea_orm::entity::prelude::*;
use sea_orm::{Condition, QueryOrder, Set};
use serde::Serialize;

use super::{Grant, Pattern, Role};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "bindings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `user` or `group`.
    pub subject_kind: String,
    pub subject: String,
    pub role: String,
    pub pattern: String,
    pub created_by: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A binding to add.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct NewBinding {
    /// `user` or `group`.
    pub subject_kind: String,
    pub subject: String,
    pub role: String,
    /// Namespace pattern; admin and auditor bindings always cover `*`.
    pub pattern: Option<String>,
}

pub async fn add(
    db: &DatabaseConnection,
    binding: NewBinding,
    created_by: &str,
) -> crate::Result<Model> {
    if !matches!(binding.subject_kind.as_str(), "user" | "group") {
        return Err(crate::Error::BadRequest(
            "subject_kind: use user or group".into(),
        ));
    }
    let subject = binding.subject.trim();
    if subject.is_empty() || subject.len() > 200 {
        return Err(crate::Error::BadRequest(
            "subject must be 1 to 200 characters".into(),
        ));
    }
    let role = Role::parse(&binding.role)?;
    let pattern = match role {
        Role::Admin | Role::Auditor => Pattern::parse("*")?,
        Role::Owner | Role::Viewer => {
            Pattern::parse(binding.pattern.as_deref().ok_or_else(|| {
                crate::Error::BadRequest("pattern is required for owner and viewer".into())
            })?)?
        }
    };
    let existing = Entity::find()
        .filter(Column::SubjectKind.eq(&binding.subject_kind))
        .filter(Column::Subject.eq(subject))
        .filter(Column::Role.eq(role.as_str()))
        .filter(Column::Pattern.eq(pattern.as_str()))
        .one(db)
        .await?;
    if let Some(existing) = existing {
        return Ok(existing);
    }
    let model = ActiveModel {
        subject_kind: Set(binding.subject_kind),
        subject: Set(subject.to_owned()),
        role: Set(role.as_str().to_owned()),
        pattern: Set(pattern.as_str().to_owned()),
        created_by: Set(created_by.to_owned()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    };
    Ok(model.insert(db).await?)
}

pub async fn remove(db: &DatabaseConnection, id: i64) -> crate::Result<Model> {
    let binding = Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| crate::Error::NotFound(format!("binding {id}")))?;
    Entity::delete_by_id(id).exec(db).await?;
    Ok(binding)
}

pub async fn list(db: &DatabaseConnection) -> crate::Result<Vec<Model>> {
    Ok(Entity::find().order_by_asc(Column::Id).all(db).await?)
}

/// The grants of a user, directly and through any of `groups`.
pub async fn grants_for(
    db: &DatabaseConnection,
    user: &str,
    groups: &[String],
) -> crate::Result<Vec<Grant>> {
    let mut subjects = Condition::any().add(
        Condition::all()
            .add(Column::SubjectKind.eq("user"))
            .add(Column::Subject.eq(user)),
    );
    if !groups.is_empty() {
        subjects = subjects.add(
            Condition::all()
                .add(Column::SubjectKind.eq("group"))
                .add(Column::Subject.is_in(groups.iter().cloned())),
        );
    }
    let rows = Entity::find().filter(subjects).all(db).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(Grant {
                role: Role::parse(&row.role).ok()?,
                pattern: Pattern::parse(&row.pattern).ok()?,
            })
        })
        .collect())
}
