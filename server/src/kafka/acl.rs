//! The Kafka ACL plan: from the namespace registry and the role bindings, the ACLs each
//! Kafka principal needs, and no more:
//!
//! - the shippers: WRITE (and DESCRIBE) on the topic prefix of the topic template;
//! - this server: READ and DESCRIBE on the topic prefix, READ on its consumer group, and
//!   CREATE / ALTER / ALTER_CONFIGS / DESCRIBE_CONFIGS / DELETE on the prefix for the
//!   namespace registry;
//! - each team (an OIDC group that owns a namespace, or is bound as owner or viewer over
//!   it): READ and DESCRIBE on that namespace's topic, and READ on consumer groups named
//!   after the team (prefix `{group}.`).
//!
//! [`apply`] creates the plan's ACLs with the admin API's CreateAcls (rdkafka 0.39 does not
//! wrap it; `kafka::admin` calls librdkafka's C API). A broker without an authorizer refuses,
//! and apply says so; the plan also carries the `kafka-acls` command of each entry.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::authz::bindings;
use crate::authz::{Pattern, Role};
use crate::config::KafkaConfig;
use crate::db::namespaces;
use crate::{Error, Result};

/// One ACL: `principal` may do `operation` on the resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct AclEntry {
    /// `User:name`, as the broker authenticates it.
    pub principal: String,
    /// `topic` or `group`.
    pub resource_type: String,
    /// `literal` or `prefixed`.
    pub pattern_type: String,
    pub resource_name: String,
    /// Kafka operation: `READ`, `WRITE`, `DESCRIBE`, `CREATE`, `ALTER`, `ALTER_CONFIGS`,
    /// `DESCRIBE_CONFIGS`, `DELETE`.
    pub operation: String,
    /// Why the principal needs it.
    pub reason: String,
}

impl AclEntry {
    /// The `kafka-acls` command that adds this ACL.
    pub fn command(&self, bootstrap: &str) -> String {
        let operation = self
            .operation
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next().map_or(String::new(), |f| {
                    f.to_string() + &c.as_str().to_ascii_lowercase()
                })
            })
            .collect::<String>();
        format!(
            "kafka-acls --bootstrap-server {bootstrap} --add --allow-principal '{}' --operation {operation} --{} '{}' --resource-pattern-type {}",
            self.principal, self.resource_type, self.resource_name, self.pattern_type
        )
    }
}

/// The plan as the API and the CLI show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AclPlan {
    pub acls: Vec<AclEntry>,
    /// `kafka-acls` commands that apply the plan, one per ACL (or `bitesize kafka acls
    /// --apply`, through the admin API).
    pub commands: Vec<String>,
}

fn entry(
    principal: &str,
    resource_type: &str,
    pattern_type: &str,
    resource_name: &str,
    operation: &str,
    reason: &str,
) -> AclEntry {
    AclEntry {
        principal: principal.to_owned(),
        resource_type: resource_type.to_owned(),
        pattern_type: pattern_type.to_owned(),
        resource_name: resource_name.to_owned(),
        operation: operation.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The ACLs the registry's namespaces and the bindings need.
pub fn plan(
    kafka: &KafkaConfig,
    registry: &[namespaces::Model],
    bindings: &[bindings::Model],
) -> Vec<AclEntry> {
    let mut acls = BTreeSet::new();
    let prefix = kafka
        .topic_template
        .split_once("{namespace}")
        .map(|(prefix, _)| prefix)
        .unwrap_or_default();
    // Topic grants to a whole-template principal: the prefix when the template has one,
    // else each registered topic.
    let topics: Vec<(&str, &str)> = if prefix.is_empty() {
        registry
            .iter()
            .filter(|ns| ns.managed)
            .map(|ns| ("literal", ns.topic.as_str()))
            .collect()
    } else {
        vec![("prefixed", prefix)]
    };
    let shipper = kafka.acl.shipper.as_str();
    let server = kafka.acl.server.as_str();
    for &(pattern_type, name) in &topics {
        for op in ["WRITE", "DESCRIBE"] {
            acls.insert(entry(
                shipper,
                "topic",
                pattern_type,
                name,
                op,
                "the shippers produce every namespace's records",
            ));
        }
        for op in ["READ", "DESCRIBE"] {
            acls.insert(entry(
                server,
                "topic",
                pattern_type,
                name,
                op,
                "the server indexes and streams every namespace",
            ));
        }
        for op in [
            "CREATE",
            "ALTER",
            "ALTER_CONFIGS",
            "DESCRIBE_CONFIGS",
            "DELETE",
        ] {
            acls.insert(entry(
                server,
                "topic",
                pattern_type,
                name,
                op,
                "the namespace registry creates, changes and deletes topics",
            ));
        }
    }
    acls.insert(entry(
        server,
        "group",
        "literal",
        &kafka.group_id,
        "READ",
        "the indexers' consumer group",
    ));
    let mut team_topics: BTreeSet<(String, String)> = BTreeSet::new();
    for ns in registry.iter().filter(|ns| ns.managed) {
        if let Some(group) = &ns.owner_group {
            team_topics.insert((group.clone(), ns.topic.clone()));
        }
        for binding in bindings.iter().filter(|b| b.subject_kind == "group") {
            let readable = matches!(
                Role::parse(&binding.role),
                Ok(Role::Owner) | Ok(Role::Viewer)
            );
            let covers = Pattern::parse(&binding.pattern).is_ok_and(|p| p.matches(&ns.name));
            if readable && covers {
                team_topics.insert((binding.subject.clone(), ns.topic.clone()));
            }
        }
    }
    for (group, topic) in team_topics {
        let principal = kafka.acl.team_template.replace("{group}", &group);
        for op in ["READ", "DESCRIBE"] {
            acls.insert(entry(
                &principal,
                "topic",
                "literal",
                &topic,
                op,
                "the team reads its own namespace's topic",
            ));
        }
        acls.insert(entry(
            &principal,
            "group",
            "prefixed",
            &format!("{group}."),
            "READ",
            "the team's consumer groups",
        ));
    }
    acls.into_iter().collect()
}

/// The plan with its commands and whether it can be applied here.
pub fn describe(kafka: &KafkaConfig, acls: Vec<AclEntry>) -> AclPlan {
    AclPlan {
        commands: acls.iter().map(|a| a.command(&kafka.brokers)).collect(),
        acls,
    }
}

/// Creates the plan's ACLs through the admin API (existing ones stay as they are: Kafka
/// treats creating an existing ACL as success). Returns how many were applied; a broker
/// that does not support ACLs, or refuses one, is an error that says which and why.
pub async fn apply(kafka: &KafkaConfig, plan: &[AclEntry]) -> Result<usize> {
    let admin = super::admin::TopicAdmin::new(kafka)?;
    let outcomes = admin.create_acls(plan).await?;
    let refused: Vec<String> = plan
        .iter()
        .zip(&outcomes)
        .filter_map(|(acl, outcome)| {
            outcome.as_ref().err().map(|why| {
                format!(
                    "{} {} on {} {}: {why}",
                    acl.principal, acl.operation, acl.resource_type, acl.resource_name
                )
            })
        })
        .collect();
    let first = outcomes.iter().find_map(|o| o.as_ref().err());
    if let Some(why) = first.filter(|why| outcomes.iter().all(|o| o.as_ref().err() == Some(why))) {
        return Err(Error::BadRequest(format!(
            "the Kafka broker refused every ACL: {why} It does not enforce ACLs as configured; enable its authorizer, or apply the plan with the kafka-acls commands shown"
        )));
    }
    if !refused.is_empty() {
        return Err(Error::BadRequest(format!(
            "the broker refused {} of {} ACLs: {}",
            refused.len(),
            plan.len(),
            refused.join("; ")
        )));
    }
    Ok(outcomes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str, owner_group: Option<&str>, managed: bool) -> namespaces::Model {
        namespaces::Model {
            name: name.into(),
            topic: format!("logs.{name}"),
            created_at: chrono::Utc::now(),
            retention_days: None,
            managed,
            partitions: Some(3),
            replication_factor: Some(1),
            retention_ms: None,
            retention_bytes: None,
            archive: false,
            owner_group: owner_group.map(str::to_owned),
        }
    }

    fn binding(kind: &str, subject: &str, role: &str, pattern: &str) -> bindings::Model {
        bindings::Model {
            id: 1,
            subject_kind: kind.into(),
            subject: subject.into(),
            role: role.into(),
            pattern: pattern.into(),
            created_by: "t".into(),
            created_at: chrono::Utc::now(),
        }
    }

    fn has(plan: &[AclEntry], principal: &str, kind: &str, name: &str, op: &str) -> bool {
        plan.iter().any(|a| {
            a.principal == principal
                && a.resource_type == kind
                && a.resource_name == name
                && a.operation == op
        })
    }

    #[test]
    fn plan_gives_each_principal_what_it_needs_and_no_more() {
        let kafka = KafkaConfig::default();
        let registry = [
            namespace("shop", Some("shop-team"), true),
            namespace("payments-eu", None, true),
            namespace("auth", None, true),
            namespace("seen-only", Some("ghosts"), false),
        ];
        let bindings = [
            binding("group", "payments", "viewer", "payments-*"),
            binding("group", "security", "auditor", "*"),
            binding("user", "alice", "owner", "auth"),
        ];
        let plan = plan(&kafka, &registry, &bindings);
        let shipper = "User:bitesize-shipper";
        let server = "User:bitesize-server";
        assert!(has(&plan, shipper, "topic", "logs.", "WRITE"));
        assert!(
            !has(&plan, shipper, "topic", "logs.", "READ"),
            "shippers only write"
        );
        assert!(has(&plan, server, "topic", "logs.", "READ"));
        assert!(has(&plan, server, "group", "bitesize-indexer", "READ"));
        assert!(
            !has(&plan, server, "topic", "logs.", "WRITE"),
            "the server never produces"
        );
        assert!(plan
            .iter()
            .filter(|a| a.principal == shipper || a.principal == server)
            .all(|a| a.resource_type == "group" || a.pattern_type == "prefixed"));
        // Teams: the owner group and group bindings over registered namespaces.
        assert!(has(&plan, "User:shop-team", "topic", "logs.shop", "READ"));
        assert!(has(&plan, "User:shop-team", "group", "shop-team.", "READ"));
        assert!(has(
            &plan,
            "User:payments",
            "topic",
            "logs.payments-eu",
            "READ"
        ));
        assert!(!has(&plan, "User:payments", "topic", "logs.shop", "READ"));
        assert!(!has(
            &plan,
            "User:shop-team",
            "topic",
            "logs.payments-eu",
            "READ"
        ));
        assert!(
            !plan.iter().any(|a| a.principal == "User:security"),
            "auditors read through the server"
        );
        assert!(
            !plan.iter().any(|a| a.principal == "User:alice"),
            "users are not Kafka principals"
        );
        assert!(
            !plan.iter().any(|a| a.principal == "User:ghosts"),
            "only registry entries"
        );
        assert!(!plan.iter().any(|a| a.principal.starts_with("User:")
            && a.operation == "WRITE"
            && a.principal != shipper));
        let mut sorted = plan.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, plan, "sorted, no duplicates");
    }

    #[test]
    fn a_template_without_prefix_grants_each_topic() {
        let kafka = KafkaConfig {
            topic_template: "{namespace}-logs".into(),
            ..Default::default()
        };
        let mut shop = namespace("shop", None, true);
        shop.topic = "shop-logs".into();
        let plan = plan(&kafka, &[shop], &[]);
        assert!(has(
            &plan,
            "User:bitesize-shipper",
            "topic",
            "shop-logs",
            "WRITE"
        ));
        assert!(plan.iter().all(|a| a.pattern_type == "literal"));
    }

    #[test]
    fn commands() {
        let a = entry("User:x", "topic", "prefixed", "logs.", "ALTER_CONFIGS", "r");
        assert_eq!(
            a.command("k:9092"),
            "kafka-acls --bootstrap-server k:9092 --add --allow-principal 'User:x' --operation AlterConfigs --topic 'logs.' --resource-pattern-type prefixed"
        );
    }
}
