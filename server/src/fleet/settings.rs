//! The fleet's desired state in the database (table `fleet_settings`, one row): shipper
//! image and version, the shipper's YAML config, resources, tolerations and the config
//! version counters. Absent until the first change: then [`FleetSettings::defaults`].

use std::path::PathBuf;

use figment::providers::{Format, Serialized, Yaml};
use figment::Figment;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Error, Result};

/// The image the fleet runs unless an admin chose another.
pub const DEFAULT_IMAGE: &str = "ghcr.io/bitesize/bitesize-shipper";

mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "fleet_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub image: String,
        pub version: String,
        pub config_yaml: String,
        pub resources: String,
        pub tolerations: String,
        pub config_version: i64,
        pub template_config_version: i64,
        pub updated_by: String,
        pub updated_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity::{ActiveModel, Entity, Model};

/// The desired state, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetSettings {
    /// Shipper image repository, without tag.
    pub image: String,
    /// Shipper version: the image tag.
    pub version: String,
    /// The shipper's YAML config (see the shipper's `config.rs`), the ConfigMap's content.
    pub config: String,
    /// Kubernetes `ResourceRequirements` of the shipper container.
    #[schema(value_type = Object)]
    pub resources: Value,
    /// Kubernetes `Toleration`s; the default tolerates every taint (a shipper on every node).
    #[schema(value_type = Vec<Object>)]
    pub tolerations: Value,
    /// Bumped by every change of `config`.
    pub config_version: i64,
    /// The config version when the pod template last changed (a rollout).
    pub template_config_version: i64,
    /// Who changed it last; absent for the defaults.
    pub updated_by: Option<String>,
    /// When (RFC 3339); absent for the defaults.
    pub updated_at: Option<String>,
}

/// A change: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetSettingsUpdate {
    pub image: Option<String>,
    pub version: Option<String>,
    pub config: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub resources: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub tolerations: Option<Value>,
}

/// What the manifests need from the shipper config.
#[derive(Debug, Clone, PartialEq)]
pub struct ShipperFacts {
    /// The port of `/metrics`, `/healthz` and `/readyz`.
    pub port: u16,
    pub checkpoint_dir: PathBuf,
}

impl FleetSettings {
    /// The desired state before any change: the server's Kafka and topic template.
    pub fn defaults(brokers: &str, topic_template: &str) -> FleetSettings {
        let config = format!(
            "# Shipper config (managed by the Bitesize server; edit it there).\ntopic_template: \"{topic_template}\"\nkafka:\n  brokers: \"{brokers}\"\n"
        );
        FleetSettings {
            image: DEFAULT_IMAGE.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config,
            resources: json!({
                "requests": { "cpu": "50m", "memory": "64Mi" },
                "limits": { "memory": "256Mi" },
            }),
            tolerations: json!([{ "operator": "Exists" }]),
            config_version: 1,
            template_config_version: 1,
            updated_by: None,
            updated_at: None,
        }
    }

    /// Port and checkpoint directory from the config (validated when saved).
    pub fn shipper(&self) -> ShipperFacts {
        parse_shipper_config(&self.config).unwrap_or_else(|_| ShipperFacts {
            port: 9102,
            checkpoint_dir: PathBuf::from("/var/lib/bitesize-shipper"),
        })
    }

    fn from_model(m: Model) -> Result<FleetSettings> {
        let json = |what: &str, text: &str| {
            serde_json::from_str(text)
                .map_err(|e| Error::Internal(format!("fleet_settings.{what}: {e}")))
        };
        Ok(FleetSettings {
            resources: json("resources", &m.resources)?,
            tolerations: json("tolerations", &m.tolerations)?,
            image: m.image,
            version: m.version,
            config: m.config_yaml,
            config_version: m.config_version,
            template_config_version: m.template_config_version,
            updated_by: Some(m.updated_by),
            updated_at: Some(m.updated_at),
        })
    }
}

/// The shipper config as the shipper reads it (its own parser and checks), so a config
/// saved here is one the shippers accept. Errors name the key.
pub fn parse_shipper_config(yaml: &str) -> Result<ShipperFacts> {
    let bad = |why: String| Error::BadRequest(format!("config: {why}"));
    serde_yaml::from_str::<Value>(yaml).map_err(|e| bad(format!("not YAML: {e}")))?;
    let config: bitesize_shipper::Config =
        Figment::from(Serialized::defaults(bitesize_shipper::Config::default()))
            .merge(Yaml::string(yaml))
            .extract()
            .map_err(|e| bad(e.to_string()))?;
    if config.node_name.is_some() {
        return Err(bad(
            "node_name: every node sets its own from NODE_NAME; leave it out".into(),
        ));
    }
    config.validate().map_err(|e| bad(e.to_string()))?;
    let port = config
        .listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| bad(format!("listen: {:?} is not an address", config.listen)))?
        .port();
    if port == 0 {
        return Err(bad(
            "listen: the port must be fixed (the probes use it)".into()
        ));
    }
    if !config.checkpoint_dir.is_absolute() {
        return Err(bad("checkpoint_dir: must be an absolute path".into()));
    }
    Ok(ShipperFacts {
        port,
        checkpoint_dir: config.checkpoint_dir,
    })
}

fn validate_image(image: &str, version: &str) -> Result<()> {
    let ok_image = !image.is_empty()
        && image.len() <= 255
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./-_:".contains(c))
        && !image.ends_with(':');
    if !ok_image {
        return Err(Error::BadRequest(format!(
            "image: {image:?} is not an image repository"
        )));
    }
    let ok_version = !version.is_empty()
        && version.len() <= 128
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok_version {
        return Err(Error::BadRequest(format!(
            "version: {version:?} is not an image tag"
        )));
    }
    Ok(())
}

/// A Kubernetes quantity such as `100m`, `64Mi`, `1.5`, `2G`.
fn is_quantity(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|n| n >= 0.0)
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

fn validate_resources(resources: &Value) -> Result<()> {
    let bad = |key: String, why: &str| Err(Error::BadRequest(format!("resources.{key}: {why}")));
    let Some(map) = resources.as_object() else {
        return Err(Error::BadRequest(
            "resources: must be an object with requests and/or limits".into(),
        ));
    };
    for (section, values) in map {
        if section != "requests" && section != "limits" {
            return bad(section.clone(), "unknown key (requests or limits)");
        }
        let Some(values) = values.as_object() else {
            return bad(section.clone(), "must be an object");
        };
        for (name, quantity) in values {
            if !matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") {
                return bad(
                    format!("{section}.{name}"),
                    "unknown resource (cpu, memory, ephemeral-storage)",
                );
            }
            let Some(text) = quantity.as_str() else {
                return bad(
                    format!("{section}.{name}"),
                    "must be a string such as \"100m\" or \"64Mi\"",
                );
            };
            if !is_quantity(text) {
                return bad(
                    format!("{section}.{name}"),
                    "not a quantity like 100m or 64Mi",
                );
            }
        }
    }
    Ok(())
}

fn validate_tolerations(tolerations: &Value) -> Result<()> {
    let Some(list) = tolerations.as_array() else {
        return Err(Error::BadRequest("tolerations: must be a list".into()));
    };
    for (i, t) in list.iter().enumerate() {
        let bad = |why: String| Err(Error::BadRequest(format!("tolerations[{i}]{why}")));
        let Some(map) = t.as_object() else {
            return bad(": must be an object".into());
        };
        for key in map.keys() {
            if !["key", "operator", "value", "effect", "tolerationSeconds"].contains(&key.as_str())
            {
                return bad(format!(".{key}: unknown key"));
            }
        }
        if serde_json::from_value::<k8s_openapi::api::core::v1::Toleration>(t.clone()).is_err() {
            return bad(": not a Kubernetes toleration".into());
        }
        if !matches!(
            t.get("operator").and_then(Value::as_str),
            None | Some("Exists") | Some("Equal")
        ) {
            return bad(".operator: must be Exists or Equal".into());
        }
        if !matches!(
            t.get("effect").and_then(Value::as_str),
            None | Some("") | Some("NoSchedule") | Some("PreferNoSchedule") | Some("NoExecute")
        ) {
            return bad(".effect: must be NoSchedule, PreferNoSchedule or NoExecute".into());
        }
    }
    Ok(())
}

/// The desired state: the stored row, else the defaults.
pub async fn load(
    db: &DatabaseConnection,
    brokers: &str,
    topic_template: &str,
) -> Result<FleetSettings> {
    match Entity::find_by_id(1).one(db).await? {
        Some(model) => FleetSettings::from_model(model),
        None => Ok(FleetSettings::defaults(brokers, topic_template)),
    }
}

/// What a change changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Names of the fields whose value changed.
    pub fields: Vec<&'static str>,
}

impl Changed {
    /// Whether the pod template changes (a rollout of every shipper).
    pub fn rolls_out(&self) -> bool {
        self.fields.iter().any(|f| *f != "config")
    }
}

/// A change applied to `current` in memory: validated (errors name the key), with what it
/// changes; nothing stored and no version bumped (the dashboard's preview, and [`update`]).
pub fn merge(
    current: &FleetSettings,
    change: FleetSettingsUpdate,
) -> Result<(FleetSettings, Changed)> {
    let mut next = current.clone();
    if let Some(image) = change.image {
        next.image = image.trim().to_owned();
    }
    if let Some(version) = change.version {
        next.version = version.trim().to_owned();
    }
    validate_image(&next.image, &next.version)?;
    if let Some(config) = change.config {
        parse_shipper_config(&config)?;
        next.config = config;
    }
    if let Some(resources) = change.resources {
        validate_resources(&resources)?;
        next.resources = resources;
    }
    if let Some(tolerations) = change.tolerations {
        validate_tolerations(&tolerations)?;
        next.tolerations = tolerations;
    }
    let mut fields = Vec::new();
    for (name, differs) in [
        ("image", next.image != current.image),
        ("version", next.version != current.version),
        ("config", next.config != current.config),
        ("resources", next.resources != current.resources),
        ("tolerations", next.tolerations != current.tolerations),
    ] {
        if differs {
            fields.push(name);
        }
    }
    Ok((next, Changed { fields }))
}

/// Validates and stores a change; bumps the config version when the config changed, and
/// records it as the template's when the pod template changes too.
pub async fn update(
    db: &DatabaseConnection,
    current: FleetSettings,
    change: FleetSettingsUpdate,
    actor: &str,
) -> Result<(FleetSettings, Changed)> {
    let (mut next, changed) = merge(&current, change)?;
    if changed.fields.is_empty() {
        return Ok((current, changed));
    }
    if changed.fields.contains(&"config") {
        next.config_version += 1;
    }
    if changed.rolls_out() {
        next.template_config_version = next.config_version;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    next.updated_by = Some(actor.to_owned());
    next.updated_at = Some(now.clone());
    let model = ActiveModel {
        id: Set(1),
        image: Set(next.image.clone()),
        version: Set(next.version.clone()),
        config_yaml: Set(next.config.clone()),
        resources: Set(next.resources.to_string()),
        tolerations: Set(next.tolerations.to_string()),
        config_version: Set(next.config_version),
        template_config_version: Set(next.template_config_version),
        updated_by: Set(actor.to_owned()),
        updated_at: Set(now),
    };
    if Entity::find_by_id(1).one(db).await?.is_some() {
        model.update(db).await?;
    } else {
        model.insert(db).await?;
    }
    Ok((next, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipper_config_errors_name_the_key() {
        let err = |yaml: &str| parse_shipper_config(yaml).unwrap_err().to_string();
        assert!(
            err("kafkaa: {}\n").contains("kafkaa"),
            "{}",
            err("kafkaa: {}\n")
        );
        assert!(err("kafka:\n  brokerz: x\n").contains("brokerz"));
        assert!(err("listen: nope\n").contains("listen"));
        assert!(err("node_name: n1\n").contains("node_name"));
        assert!(err(": : :\n").contains("YAML"));
        let facts = parse_shipper_config("listen: \"0.0.0.0:9200\"\n").unwrap();
        assert_eq!(facts.port, 9200);
        parse_shipper_config(&FleetSettings::defaults("k:9092", "logs.{namespace}").config)
            .unwrap();
    }

    #[test]
    fn resources_and_tolerations_are_checked() {
        assert!(
            validate_resources(&json!({ "requests": { "cpu": "100m", "memory": "64Mi" } })).is_ok()
        );
        let e = validate_resources(&json!({ "requests": { "cpu": "lots" } })).unwrap_err();
        assert!(e.to_string().contains("resources.requests.cpu"), "{e}");
        assert!(validate_tolerations(&json!([{ "operator": "Exists" }])).is_ok());
        let e = validate_tolerations(&json!([{ "operator": "Maybe" }])).unwrap_err();
        assert!(e.to_string().contains("tolerations[0].operator"), "{e}");
        assert!(validate_image("ghcr.io/x/y", "1.2.3").is_ok());
        assert!(validate_image("ghcr.io/x/y", "1 2")
            .unwrap_err()
            .to_string()
            .contains("version"));
    }
}
