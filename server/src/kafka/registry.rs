//! The namespace registry: each namespace's topic and its settings, kept in the database
//! and applied to Kafka through the admin API. Creating a namespace creates its topic;
//! changing it changes the topic (retention through AlterConfigs, partitions only up);
//! deleting it deletes the topic. Topics that match the indexing pattern but are not in the
//! registry are listed as discovered and can be adopted; entries whose topic is gone are
//! flagged. Every change is audited by the caller's name.

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use super::admin::{TopicAdmin, TopicSettings, TopicState};
use super::lag::{self, TopicLag};
use crate::authz::{NamespaceScope, Principal};
use crate::config::Config;
use crate::db::namespaces::{self, Model};
use crate::metrics::{Metrics, NamespaceLabel, PartitionLabel};
use crate::search::{IndexRegistry, IndexStats};
use crate::{audit, Error, Result};

/// `POST /api/v1/admin/namespaces`: onboard a namespace (its topic is created), or adopt the
/// existing topic with `adopt: true`. Absent settings take the `[kafka.topics]` defaults.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    /// Kafka `retention.ms` (`-1`: unlimited).
    pub retention_ms: Option<i64>,
    /// Kafka `retention.bytes` per partition (`-1`: unlimited).
    pub retention_bytes: Option<i64>,
    /// Days the index keeps records (absent: the server default).
    pub retention_days: Option<i32>,
    /// Archive the namespace's records (absent: `archive.by_default`).
    pub archive: Option<bool>,
    /// The group whose members own the namespace.
    pub owner_group: Option<String>,
    /// Take over the existing topic as it is instead of creating one.
    #[serde(default)]
    pub adopt: bool,
}

/// `PATCH /api/v1/admin/namespaces/{name}`: only the fields given change. Owners may change
/// `retention_ms`, `retention_bytes` and `retention_days` within the configured bounds;
/// everything else needs an admin.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNamespace {
    /// New partition count; partitions can only grow.
    pub partitions: Option<i32>,
    /// Cannot be changed here (Kafka needs a partition reassignment); given only to say so.
    pub replication_factor: Option<i32>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    /// `0` goes back to the server default.
    pub retention_days: Option<i32>,
    pub archive: Option<bool>,
    /// `""` removes the owner group.
    pub owner_group: Option<String>,
}

/// `DELETE /api/v1/admin/namespaces/{name}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteNamespace {
    /// The namespace's name, typed again.
    pub confirm: String,
    /// Only remove the registry entry; the topic and its records stay.
    #[serde(default)]
    pub keep_topic: bool,
}

/// One registry entry with what Kafka says about its topic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NamespaceEntry {
    pub name: String,
    pub topic: String,
    /// The registry's settings.
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<i64>,
    /// Index retention in days (`null`: the server default).
    pub retention_days: Option<i32>,
    pub archive: bool,
    pub owner_group: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The registry entry's topic does not exist in Kafka.
    pub topic_missing: bool,
    /// The topic as Kafka describes it (absent when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<TopicState>,
    /// End offsets and this server's lag (absent when the topic is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<TopicLag>,
    /// Records searchable and the index's size on disk (absent: nothing indexed yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexStats>,
}

/// What [`NamespaceRegistry::volumes`] finds for one namespace's topic.
#[derive(Debug, Clone, Copy)]
pub struct TopicVolume {
    /// Records the topic holds now.
    pub records: i64,
    /// Records not yet indexed by this server.
    pub lag_records: i64,
}

/// A topic matching the indexing pattern that is not in the registry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiscoveredTopic {
    pub topic: String,
    /// The namespace the topic name carries under the topic template (absent: it does not
    /// follow the template and cannot be adopted).
    pub namespace: Option<String>,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `POST` `{"name": namespace, "adopt": true}` takes it into the registry.
    pub adoptable: bool,
}

/// `GET /api/v1/admin/namespaces`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NamespaceList {
    pub namespaces: Vec<NamespaceEntry>,
    pub discovered: Vec<DiscoveredTopic>,
}

/// The registry with what it needs: database, Kafka admin, the indexes (for lag), metrics.
pub struct NamespaceRegistry {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub admin: TopicAdmin,
    pub indexes: Arc<IndexRegistry>,
    pub metrics: Arc<Metrics>,
}

/// Who asks, and with which rights over the registry.
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub scope: &'a NamespaceScope,
}

impl Caller<'_> {
    fn is_admin(&self) -> bool {
        self.scope.is_admin()
    }

    /// An owner of `entry`: an owner binding over it, or (signed in, not through a token)
    /// a member of its owner group.
    pub(crate) fn owns(&self, entry: &Model) -> bool {
        self.scope.owns(&entry.name)
            || (self.principal.token.is_none()
                && entry
                    .owner_group
                    .as_ref()
                    .is_some_and(|g| self.principal.groups.contains(g)))
    }
}

fn positive_or_unlimited(key: &str, value: i64) -> Result<i64> {
    if value == -1 || value > 0 {
        Ok(value)
    } else {
        Err(Error::BadRequest(format!(
            "{key} must be positive, or -1 for unlimited"
        )))
    }
}

fn owner_group(value: Option<String>) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(group) if group.len() > 200 => Err(Error::BadRequest(
            "owner_group must be at most 200 characters".into(),
        )),
        Some(group) => Ok(Some(group.to_owned())),
    }
}

fn retention_days(value: Option<i32>) -> Result<Option<i32>> {
    match value {
        None | Some(0) => Ok(None),
        Some(d) if d < 0 => Err(Error::BadRequest(
            "retention_days must be at least 1 (0: the server default)".into(),
        )),
        Some(d) => Ok(Some(d)),
    }
}

impl NamespaceRegistry {
    /// The topic of `name`, checked against Kafka's rules and the indexing pattern.
    pub fn topic_of(&self, name: &str) -> Result<String> {
        let kafka = &self.config.kafka;
        let topic = bitesize_record::topic_for(&kafka.topic_template, name)
            .map_err(|e| Error::BadRequest(format!("name: {e}")))?;
        if !super::topic_pattern(kafka)?.is_match(&topic) {
            return Err(Error::BadRequest(format!(
                "topic {topic:?} does not match kafka.topic_pattern {:?}: this server would not index it",
                kafka.topic_pattern
            )));
        }
        Ok(topic)
    }

    fn check_partitions(&self, partitions: i32) -> Result<i32> {
        let max = self.config.kafka.topics.max_partitions;
        if partitions < 1 || partitions > max {
            return Err(Error::BadRequest(format!(
                "partitions must be between 1 and {max}"
            )));
        }
        Ok(partitions)
    }

    async fn audit(
        &self,
        actor: &str,
        action: &str,
        name: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        audit::record(
            &self.db,
            audit::NewEvent {
                actor: actor.to_owned(),
                action: action.to_owned(),
                namespaces: vec![name.to_owned()],
                query: None,
                hits: None,
                reason: None,
                detail,
            },
        )
        .await?;
        Ok(())
    }

    async fn managed(&self, name: &str) -> Result<Model> {
        match namespaces::find(&self.db, name).await? {
            Some(row) if row.managed => Ok(row),
            _ => Err(Error::NotFound(format!(
                "namespace {name:?} is not in the registry (create it, or adopt its topic)"
            ))),
        }
    }

    /// Creates the topic and the registry entry, or adopts the existing topic.
    pub async fn create(&self, actor: &str, request: CreateNamespace) -> Result<NamespaceEntry> {
        let name = request.name.trim().to_owned();
        let topic = self.topic_of(&name)?;
        if namespaces::find(&self.db, &name)
            .await?
            .is_some_and(|row| row.managed)
        {
            return Err(Error::BadRequest(format!(
                "namespace {name:?} is already in the registry; change it with PATCH"
            )));
        }
        let defaults = &self.config.kafka.topics;
        let days = retention_days(request.retention_days)?;
        let group = owner_group(request.owner_group.clone())?;
        let existing = self.admin.describe(&topic).await?;
        let (state, action) = if request.adopt {
            if request.partitions.is_some()
                || request.replication_factor.is_some()
                || request.retention_ms.is_some()
                || request.retention_bytes.is_some()
            {
                return Err(Error::BadRequest(
                    "adopt takes the topic as it is: leave out partitions, replication_factor and retention_ms/bytes, and change them afterwards with PATCH".into(),
                ));
            }
            let state = existing.ok_or_else(|| {
                Error::NotFound(format!(
                    "topic {topic:?} does not exist, so there is nothing to adopt: leave out adopt to create it"
                ))
            })?;
            (state, "namespace.adopt")
        } else {
            if existing.is_some() {
                return Err(Error::BadRequest(format!(
                    "topic {topic:?} already exists in Kafka: adopt it with \"adopt\": true"
                )));
            }
            let settings = TopicSettings {
                partitions: self
                    .check_partitions(request.partitions.unwrap_or(defaults.partitions))?,
                replication_factor: match request
                    .replication_factor
                    .unwrap_or(defaults.replication_factor)
                {
                    r if r >= 1 => r,
                    _ => {
                        return Err(Error::BadRequest(
                            "replication_factor must be at least 1".into(),
                        ))
                    }
                },
                retention_ms: positive_or_unlimited(
                    "retention_ms",
                    request.retention_ms.unwrap_or(defaults.retention_ms),
                )?,
                retention_bytes: positive_or_unlimited(
                    "retention_bytes",
                    request.retention_bytes.unwrap_or(defaults.retention_bytes),
                )?,
            };
            self.admin.create(&topic, settings).await?;
            let state = TopicState {
                name: topic.clone(),
                partitions: settings.partitions,
                replication_factor: settings.replication_factor,
                retention_ms: Some(settings.retention_ms),
                retention_bytes: Some(settings.retention_bytes),
            };
            (state, "namespace.create")
        };
        let row = Model {
            name: name.clone(),
            topic: topic.clone(),
            created_at: chrono::Utc::now(),
            retention_days: days,
            managed: true,
            partitions: Some(state.partitions),
            replication_factor: Some(state.replication_factor),
            retention_ms: state.retention_ms,
            retention_bytes: state.retention_bytes,
            archive: request.archive.unwrap_or(self.config.archive.by_default),
            owner_group: group,
        };
        let row = namespaces::save_registry_entry(&self.db, row).await?;
        self.audit(actor, action, &name, settings_json(&row))
            .await?;
        self.entry(row).await
    }

    /// Changes the entry and its topic. Owners may change only retention, within bounds.
    pub async fn update(
        &self,
        caller: &Caller<'_>,
        name: &str,
        request: UpdateNamespace,
    ) -> Result<NamespaceEntry> {
        let row = self.managed(name).await?;
        let admin = caller.is_admin();
        if !admin {
            if !caller.owns(&row) {
                return Err(Error::Forbidden(format!(
                    "changing namespace {name:?} needs the admin role, or its owner role for retention"
                )));
            }
            if request.partitions.is_some()
                || request.replication_factor.is_some()
                || request.archive.is_some()
                || request.owner_group.is_some()
            {
                return Err(Error::Forbidden(
                    "owners may change only retention_ms, retention_bytes and retention_days; the rest needs the admin role".into(),
                ));
            }
            self.check_owner_bounds(&request)?;
        }
        if let Some(rf) = request.replication_factor {
            if Some(rf) != row.replication_factor {
                return Err(Error::BadRequest(
                    "replication_factor cannot be changed here: Kafka needs a partition reassignment (kafka-reassign-partitions)".into(),
                ));
            }
        }
        let mut next = row.clone();
        let state = self.admin.describe(&row.topic).await?;
        if let Some(partitions) = request.partitions {
            self.check_partitions(partitions)?;
            let Some(state) = &state else {
                return Err(Error::BadRequest(format!(
                    "topic {:?} is missing in Kafka: its partitions cannot change (delete the entry, or recreate it)",
                    row.topic
                )));
            };
            if partitions < state.partitions {
                return Err(Error::BadRequest(format!(
                    "partitions can only grow: topic {:?} has {} and Kafka cannot remove partitions",
                    row.topic, state.partitions
                )));
            }
            if partitions > state.partitions {
                self.admin.grow_partitions(&row.topic, partitions).await?;
            }
            next.partitions = Some(partitions);
        }
        if request.retention_ms.is_some() || request.retention_bytes.is_some() {
            let defaults = &self.config.kafka.topics;
            let current = |registry: Option<i64>, kafka: Option<i64>, default: i64| {
                registry.or(kafka).unwrap_or(default)
            };
            let ms = positive_or_unlimited(
                "retention_ms",
                request.retention_ms.unwrap_or(current(
                    row.retention_ms,
                    state.as_ref().and_then(|s| s.retention_ms),
                    defaults.retention_ms,
                )),
            )?;
            let bytes = positive_or_unlimited(
                "retention_bytes",
                request.retention_bytes.unwrap_or(current(
                    row.retention_bytes,
                    state.as_ref().and_then(|s| s.retention_bytes),
                    defaults.retention_bytes,
                )),
            )?;
            if state.is_none() {
                return Err(Error::BadRequest(format!(
                    "topic {:?} is missing in Kafka: its retention cannot change",
                    row.topic
                )));
            }
            self.admin.set_retention(&row.topic, ms, bytes).await?;
            next.retention_ms = Some(ms);
            next.retention_bytes = Some(bytes);
        }
        if request.retention_days.is_some() {
            next.retention_days = retention_days(request.retention_days)?;
        }
        if let Some(archive) = request.archive {
            next.archive = archive;
        }
        if request.owner_group.is_some() {
            next.owner_group = owner_group(request.owner_group.clone())?;
        }
        let saved = namespaces::save_registry_entry(&self.db, next).await?;
        let detail = serde_json::json!({
            "before": settings_json(&row),
            "after": settings_json(&saved),
            "as": if admin { "admin" } else { "owner" },
        });
        self.audit(caller.scope.actor(), "namespace.update", name, detail)
            .await?;
        self.entry(saved).await
    }

    fn check_owner_bounds(&self, request: &UpdateNamespace) -> Result<()> {
        let t = &self.config.kafka.topics;
        if let Some(ms) = request.retention_ms {
            if ms < t.owner_min_retention_ms || ms > t.owner_max_retention_ms {
                return Err(Error::Forbidden(format!(
                    "owners may set retention_ms between {} and {} (kafka.topics.owner_min_retention_ms / owner_max_retention_ms); ask an admin for more",
                    t.owner_min_retention_ms, t.owner_max_retention_ms
                )));
            }
        }
        if let Some(bytes) = request.retention_bytes {
            let over = t.owner_max_retention_bytes != -1
                && (bytes == -1 || bytes > t.owner_max_retention_bytes);
            if over {
                return Err(Error::Forbidden(format!(
                    "owners may set retention_bytes up to {} (kafka.topics.owner_max_retention_bytes); ask an admin for more",
                    t.owner_max_retention_bytes
                )));
            }
        }
        if let Some(days) = request.retention_days {
            if days > t.owner_max_retention_days {
                return Err(Error::Forbidden(format!(
                    "owners may set retention_days up to {} (kafka.topics.owner_max_retention_days)",
                    t.owner_max_retention_days
                )));
            }
        }
        Ok(())
    }

    /// Deletes the entry and (unless `keep_topic`) its topic; the name must be typed again.
    pub async fn delete(&self, actor: &str, name: &str, request: DeleteNamespace) -> Result<()> {
        if request.confirm != name {
            return Err(Error::BadRequest(format!(
                "confirm: type the namespace name ({name:?}) again to delete it"
            )));
        }
        let row = self.managed(name).await?;
        let mut topic_deleted = false;
        if !request.keep_topic && self.admin.describe(&row.topic).await?.is_some() {
            self.admin.delete(&row.topic).await?;
            topic_deleted = true;
        }
        namespaces::remove(&self.db, name).await?;
        let label = NamespaceLabel {
            namespace: name.to_owned(),
        };
        self.metrics.kafka.topic_missing.remove(&label);
        self.metrics.kafka.lag_records.remove(&label);
        self.metrics.kafka.lag_seconds.remove(&label);
        self.metrics.kafka.partitions.remove(&label);
        let mut detail = settings_json(&row);
        detail["topic_deleted"] = serde_json::json!(topic_deleted);
        self.audit(actor, "namespace.delete", name, detail).await
    }

    /// One entry with its Kafka state and lag (and the metrics updated).
    pub async fn entry(&self, row: Model) -> Result<NamespaceEntry> {
        let state = self.admin.describe(&row.topic).await?;
        self.entry_with(row, state).await
    }

    async fn entry_with(&self, row: Model, state: Option<TopicState>) -> Result<NamespaceEntry> {
        let label = NamespaceLabel {
            namespace: row.name.clone(),
        };
        let k = &self.metrics.kafka;
        let lag = match &state {
            Some(state) => {
                let watermarks = self.admin.watermarks(&state.name, state.partitions).await?;
                let held = match self.indexes.get(&row.name) {
                    Some(index) => index.committed_offsets()?,
                    None => Default::default(),
                };
                let lag =
                    lag::topic_lag(&self.config.kafka, &state.name, watermarks, &held).await?;
                k.partitions
                    .get_or_create(&label)
                    .set(state.partitions as i64);
                for (&partition, &end) in &lag.end_offsets {
                    k.end_offset
                        .get_or_create(&PartitionLabel {
                            namespace: row.name.clone(),
                            partition,
                        })
                        .set(end);
                }
                k.lag_records.get_or_create(&label).set(lag.lag_records);
                k.lag_seconds.get_or_create(&label).set(lag.lag_seconds);
                Some(lag)
            }
            None => None,
        };
        k.topic_missing
            .get_or_create(&label)
            .set(i64::from(state.is_none()));
        let index = match self.indexes.get(&row.name) {
            Some(index) => Some(index.stats()?),
            None => None,
        };
        if let Some(stats) = index {
            self.metrics.observe_index(&row.name, stats);
        }
        Ok(NamespaceEntry {
            name: row.name,
            topic: row.topic,
            partitions: row.partitions,
            replication_factor: row.replication_factor,
            retention_ms: row.retention_ms,
            retention_bytes: row.retention_bytes,
            retention_days: row.retention_days,
            archive: row.archive,
            owner_group: row.owner_group,
            created_at: row.created_at,
            topic_missing: state.is_none(),
            kafka: state,
            lag,
            index,
        })
    }

    /// Records each namespace's topic holds and how many of them this server has not
    /// indexed yet, from watermarks alone (no record is read, unlike [`TopicLag`]'s
    /// seconds): quick enough for a page. Namespaces whose topic is missing are left out.
    pub async fn volumes(&self, rows: &[Model]) -> Result<BTreeMap<String, TopicVolume>> {
        let topics = self.admin.topics().await?;
        let mut volumes = BTreeMap::new();
        for row in rows {
            let Some(&(partitions, _)) = topics.get(&row.topic) else {
                continue;
            };
            let watermarks = self.admin.watermarks(&row.topic, partitions).await?;
            let held = match self.indexes.get(&row.name) {
                Some(index) => index.committed_offsets()?,
                None => Default::default(),
            };
            volumes.insert(
                row.name.clone(),
                TopicVolume {
                    records: watermarks.values().map(|(low, high)| high - low).sum(),
                    lag_records: lag::lag_records(&watermarks, held.get(&row.topic)),
                },
            );
        }
        Ok(volumes)
    }

    /// The registry entry of `name` (admins and the namespace's owners).
    pub async fn get(&self, caller: &Caller<'_>, name: &str) -> Result<NamespaceEntry> {
        let row = self.managed(name).await?;
        if !caller.is_admin() && !caller.owns(&row) {
            return Err(Error::Forbidden(format!(
                "namespace {name:?}'s settings are for admins and its owners"
            )));
        }
        self.entry(row).await
    }

    /// Every registry entry with its topic's state, and the topics not in the registry.
    pub async fn list(&self) -> Result<NamespaceList> {
        let topics = self.admin.topics().await?;
        let rows = namespaces::all(&self.db).await?;
        let mut entries = Vec::new();
        for row in rows.iter().filter(|row| row.managed).cloned() {
            let state = match topics.get(&row.topic) {
                Some(_) => self.admin.describe(&row.topic).await?,
                None => None,
            };
            entries.push(self.entry_with(row, state).await?);
        }
        let registered: BTreeMap<&str, ()> = rows
            .iter()
            .filter(|row| row.managed)
            .map(|row| (row.topic.as_str(), ()))
            .collect();
        let kafka = &self.config.kafka;
        let pattern = super::topic_pattern(kafka)?;
        let discovered = topics
            .iter()
            .filter(|(topic, _)| {
                pattern.is_match(topic) && !registered.contains_key(topic.as_str())
            })
            .map(|(topic, &(partitions, replication_factor))| {
                let namespace = bitesize_record::namespace_from_topic(&kafka.topic_template, topic);
                DiscoveredTopic {
                    topic: topic.clone(),
                    adoptable: namespace.is_some(),
                    namespace,
                    partitions,
                    replication_factor,
                }
            })
            .collect();
        Ok(NamespaceList {
            namespaces: entries,
            discovered,
        })
    }
}

/// The registry's settings of `row`, for the audit log.
fn settings_json(row: &Model) -> serde_json::Value {
    serde_json::json!({
        "topic": row.topic,
        "partitions": row.partitions,
        "replication_factor": row.replication_factor,
        "retention_ms": row.retention_ms,
        "retention_bytes": row.retention_bytes,
        "retention_days": row.retention_days,
        "archive": row.archive,
        "owner_group": row.owner_group,
    })
}
