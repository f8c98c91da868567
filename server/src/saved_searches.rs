//! Saved searches: a name for a `/search` view, owned by the user who saved it and, when
//! shared, visible to the owners of the namespaces it names. A saved search is only a URL
//! (the search page's query string without its paging cursor): opening one is an ordinary
//! search under the opener's own scope, so it can never show more than they may read.
//!
//! Who sees one: its owner; when shared, anyone who owns one of its namespaces (an owner
//! binding over it, an admin, or — signed in, not through a token — a member of the
//! namespace's owner group in the registry). Only its owner deletes it. Creating and
//! deleting are audited (`saved_search.create`, `saved_search.delete`).

use sea_orm::entity::prelude::*;
use sea_orm::{Condition, QueryOrder, Set};
use serde::{Deserialize, Serialize};

use crate::authz::{NamespaceScope, Principal};
// `crate::Result` is spelled out: a `Result` in scope would break the entity derive.
use crate::{audit, db, Error};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "saved_searches")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub owner: String,
    pub name: String,
    /// The `/search` query string (`namespace=shop&q=error&from=now-1h`).
    pub query: String,
    /// JSON array of the namespaces the query string names.
    pub namespaces: String,
    pub shared: bool,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The parameters of `/search` a saved search keeps, in this order. The paging cursor and
/// an auditor's reason are left out: the first is a position, the second belongs to one
/// investigation, not to the view.
pub const KEPT_PARAMETERS: [&str; 4] = ["namespace", "q", "from", "to"];

const MAX_NAME: usize = 100;
const MAX_QUERY: usize = 4000;

/// A saved search as the API and the dashboard show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SavedSearch {
    pub id: i64,
    pub name: String,
    pub owner: String,
    /// The query string of `/search` (without `?`).
    pub query: String,
    /// `/search?` + `query`: open it to run the search.
    pub url: String,
    pub namespaces: Vec<String>,
    /// Shared with the owners of its namespaces.
    pub shared: bool,
    /// Saved by the caller (who may delete it).
    pub mine: bool,
    pub created_at: String,
}

/// What a caller asks to save.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewSavedSearch {
    pub name: String,
    /// The search's URL (`/search?namespace=shop&q=error`) or its query string alone.
    pub url: String,
    /// Share with the owners of its namespaces (it must name them).
    #[serde(default)]
    pub shared: bool,
}

fn view(row: Model, caller: &str) -> SavedSearch {
    SavedSearch {
        id: row.id,
        url: format!("/search?{}", row.query),
        namespaces: serde_json::from_str(&row.namespaces).unwrap_or_default(),
        mine: row.owner == caller,
        name: row.name,
        owner: row.owner,
        query: row.query,
        shared: row.shared,
        created_at: row
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// The query string of `url` reduced to [`KEPT_PARAMETERS`] (empty values dropped), and the
/// namespaces it names. Unknown parameters are dropped; a bad namespace name is a 400.
pub fn normalize(url: &str) -> crate::Result<(String, Vec<String>)> {
    let url = url.trim();
    let query = match url.split_once('?') {
        Some((path, query)) => {
            if !path.is_empty() && path != "/search" {
                return Err(Error::BadRequest(format!(
                    "url: a saved search is a /search URL, not {path}"
                )));
            }
            query
        }
        None if url.starts_with('/') => {
            if url != "/search" {
                return Err(Error::BadRequest(format!(
                    "url: a saved search is a /search URL, not {url}"
                )));
            }
            ""
        }
        None => url,
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut kept = Vec::new();
    let mut namespaces = Vec::new();
    for key in KEPT_PARAMETERS {
        // The last value wins, as in the search page's own parsing of a repeated key.
        let Some((_, value)) = pairs.iter().rev().find(|(k, _)| k == key) else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if key == "namespace" {
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                bitesize_record::validate_namespace(name)
                    .map_err(|e| Error::BadRequest(format!("url: namespace: {e}")))?;
                if !namespaces.iter().any(|n| n == name) {
                    namespaces.push(name.to_owned());
                }
            }
            if namespaces.is_empty() {
                continue;
            }
            kept.push(format!(
                "namespace={}",
                bitesize_web::urlencode(&namespaces.join(","))
            ));
        } else {
            kept.push(format!("{key}={}", bitesize_web::urlencode(value)));
        }
    }
    let query = kept.join("&");
    if query.len() > MAX_QUERY {
        return Err(Error::BadRequest(format!(
            "url: at most {MAX_QUERY} characters of query string"
        )));
    }
    Ok((query, namespaces))
}

/// Whether the caller owns one of `namespaces` (what sharing reaches).
async fn owns_any(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
    namespaces: &[String],
) -> crate::Result<bool> {
    if namespaces.iter().any(|n| scope.owns(n)) {
        return Ok(true);
    }
    if principal.token.is_some() || principal.groups.is_empty() {
        return Ok(false);
    }
    for name in namespaces {
        let group = db::namespaces::Entity::find_by_id(name.clone())
            .one(db)
            .await?
            .and_then(|row| row.owner_group);
        if group.is_some_and(|g| principal.groups.contains(&g)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The caller's saved searches and those shared with them, by name.
pub async fn visible(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
) -> crate::Result<Vec<SavedSearch>> {
    let rows = Entity::find()
        .filter(
            Condition::any()
                .add(Column::Owner.eq(principal.user.as_str()))
                .add(Column::Shared.eq(true)),
        )
        .order_by_asc(Column::Name)
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    let mut out = Vec::new();
    for row in rows {
        if row.owner == principal.user || shared_with(db, principal, scope, &row).await? {
            out.push(view(row, &principal.user));
        }
    }
    Ok(out)
}

async fn shared_with(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
    row: &Model,
) -> crate::Result<bool> {
    if !row.shared {
        return Ok(false);
    }
    let namespaces: Vec<String> = serde_json::from_str(&row.namespaces).unwrap_or_default();
    owns_any(db, principal, scope, &namespaces).await
}

/// One saved search the caller may see; `NotFound` otherwise (whether or not it exists).
pub async fn find(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
    id: i64,
) -> crate::Result<SavedSearch> {
    let missing = || Error::NotFound(format!("no saved search {id}"));
    let row = Entity::find_by_id(id).one(db).await?.ok_or_else(missing)?;
    if row.owner == principal.user || shared_with(db, principal, scope, &row).await? {
        Ok(view(row, &principal.user))
    } else {
        Err(missing())
    }
}

/// Saves a search for the caller; audited.
pub async fn create(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
    new: NewSavedSearch,
) -> crate::Result<SavedSearch> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::BadRequest(format!(
            "name: 1 to {MAX_NAME} characters"
        )));
    }
    let (query, namespaces) = normalize(&new.url)?;
    if let Some(outside) = namespaces.iter().find(|n| !scope.allows(n)) {
        return Err(Error::Forbidden(format!(
            "namespace {outside} is not one you may read, so you cannot save a search of it"
        )));
    }
    if new.shared && namespaces.is_empty() {
        return Err(Error::BadRequest(
            "shared: pick the namespaces of the search first; it is shared with their owners"
                .into(),
        ));
    }
    let taken = Entity::find()
        .filter(Column::Owner.eq(principal.user.as_str()))
        .filter(Column::Name.eq(name))
        .one(db)
        .await?;
    if taken.is_some() {
        return Err(Error::BadRequest(format!(
            "you already have a saved search named {name:?}; delete it or pick another name"
        )));
    }
    let row = ActiveModel {
        owner: Set(principal.user.clone()),
        name: Set(name.to_owned()),
        query: Set(query.clone()),
        namespaces: Set(serde_json::to_string(&namespaces).expect("json")),
        shared: Set(new.shared),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    audit::record(
        db,
        audit::NewEvent {
            actor: principal.user.clone(),
            action: "saved_search.create".into(),
            namespaces: namespaces.clone(),
            query: None,
            hits: None,
            reason: None,
            detail: serde_json::json!({
                "id": row.id, "name": name, "query": query, "shared": new.shared,
            }),
        },
    )
    .await?;
    Ok(view(row, &principal.user))
}

/// Deletes one of the caller's saved searches; audited. Someone else's: 403 when the caller
/// can see it, 404 when not.
pub async fn delete(
    db: &DatabaseConnection,
    principal: &Principal,
    scope: &NamespaceScope,
    id: i64,
) -> crate::Result<SavedSearch> {
    let found = find(db, principal, scope, id).await?;
    if !found.mine {
        return Err(Error::Forbidden(format!(
            "the saved search {:?} is {}'s; only they can delete it",
            found.name, found.owner
        )));
    }
    Entity::delete_by_id(id).exec(db).await?;
    audit::record(
        db,
        audit::NewEvent {
            actor: principal.user.clone(),
            action: "saved_search.delete".into(),
            namespaces: found.namespaces.clone(),
            query: None,
            hits: None,
            reason: None,
            detail: serde_json::json!({ "id": id, "name": found.name, "query": found.query }),
        },
    )
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_view_and_drops_paging_and_reasons() {
        let (query, namespaces) = normalize(
            "/search?q=error+AND+pod%3Aweb-*&namespace=shop,%20payments&cursor=abc&reason=INC-1&from=now-1h&to=&x=1",
        )
        .unwrap();
        assert_eq!(
            query,
            "namespace=shop%2Cpayments&q=error%20AND%20pod%3Aweb-%2A&from=now-1h"
        );
        assert_eq!(namespaces, ["shop", "payments"]);
        let (query, namespaces) = normalize("q=x").unwrap();
        assert_eq!((query.as_str(), namespaces.len()), ("q=x", 0));
        assert_eq!(normalize("/search").unwrap().0, "");
        assert!(normalize("/api/v1/export?q=x").is_err());
        assert!(normalize("/search?namespace=Bad_Name").is_err());
        assert_eq!(normalize("q=%zz%4").unwrap().0, "q=%25zz%254");
    }
}
