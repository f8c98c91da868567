//! Namespace and topic naming: Kubernetes DNS-1123 labels in, Kafka topic names out.

use crate::{Error, Result};

/// The topic a namespace's records go to unless configured otherwise.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "logs.{namespace}";

/// Checks that `name` is a Kubernetes namespace name: a DNS-1123 label.
pub fn validate_namespace(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidNamespace {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("empty");
    }
    if name.len() > 63 {
        return fail("longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("only lowercase letters, digits and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return fail("must start and end with a letter or digit");
    }
    Ok(())
}

/// Checks that `name` is a legal Kafka topic name.
pub fn validate_topic(name: &str) -> Result<()> {
    let fail = |reason| {
        Err(Error::InvalidTopic {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("empty");
    }
    if name == "." || name == ".." {
        return fail("'.' and '..' are reserved");
    }
    if name.len() > 249 {
        return fail("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return fail("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The topic for `namespace` under `template` (`{namespace}` is replaced).
pub fn topic_for(template: &str, namespace: &str) -> Result<String> {
    if !template.contains("{namespace}") {
        return Err(Error::InvalidTemplate {
            template: template.to_owned(),
            reason: "must contain {namespace}",
        });
    }
    validate_namespace(namespace)?;
    let topic = template.replace("{namespace}", namespace);
    validate_topic(&topic)?;
    Ok(topic)
}

/// The namespace a topic carries under `template`, if the topic follows the template.
pub fn namespace_from_topic(template: &str, topic: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once("{namespace}")?;
    let namespace = topic.strip_prefix(prefix)?.strip_suffix(suffix)?;
    validate_namespace(namespace).ok()?;
    Some(namespace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_dns_1123() {
        for good in ["shop", "payments-eu", "a", "k8s-1"] {
            assert_eq!(validate_namespace(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Shop",
            "-shop",
            "shop-",
            "sh_op",
            "sh.op",
            &"x".repeat(64),
            "shöp",
        ] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_follow_kafka_rules() {
        assert_eq!(
            topic_for(DEFAULT_TOPIC_TEMPLATE, "shop").unwrap(),
            "logs.shop"
        );
        assert!(validate_topic("..").is_err());
        assert!(validate_topic("logs/shop").is_err());
        assert!(validate_topic(&"x".repeat(250)).is_err());
        assert!(topic_for("logs", "shop").is_err());
        assert!(topic_for("logs.{namespace}", "Bad").is_err());
    }

    #[test]
    fn topic_round_trips_to_namespace() {
        assert_eq!(
            namespace_from_topic("logs.{namespace}", "logs.shop").as_deref(),
            Some("shop")
        );
        assert_eq!(
            namespace_from_topic("k8s-{namespace}-v1", "k8s-shop-v1").as_deref(),
            Some("shop")
        );
        assert_eq!(
            namespace_from_topic("logs.{namespace}", "metrics.shop"),
            None
        );
        assert_eq!(namespace_from_topic("logs.{namespace}", "logs.Shop"), None);
    }
}
