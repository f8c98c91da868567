//! Kafka governance: the one place every Kafka client of the server is configured
//! ([`client_config`]: brokers, TLS, SASL), the topic admin ([`admin`]), the namespace
//! registry that creates and changes topics ([`registry`]), the server's consumer lag
//! ([`lag`]), the consume endpoint's reader ([`consume`]) and the ACL plan ([`acl`]).

pub mod acl;
pub mod admin;
pub mod consume;
pub mod lag;
pub mod registry;

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;
use crate::Result;

/// The base configuration of every Kafka client the server builds: bootstrap servers and
/// the connection's security (TLS, SASL). Callers add what their role needs.
///
/// The result holds the SASL password and the key password: never log or print it
/// (`ClientConfig`'s `Debug` would show them).
pub fn client_config(kafka: &KafkaConfig) -> Result<ClientConfig> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.brokers);
    bitesize_shipper::kafka_security::apply(&mut client, kafka.tls.as_ref(), kafka.sasl.as_ref())
        .map_err(crate::Error::Config)?;
    Ok(client)
}

/// Whether `topic` is one the server indexes (matches `kafka.topic_pattern`).
pub fn topic_pattern(kafka: &KafkaConfig) -> Result<regex::Regex> {
    regex::Regex::new(&kafka.topic_pattern).map_err(|e| {
        crate::Error::Config(format!(
            "kafka.topic_pattern: not a regular expression: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KafkaSasl, KafkaTls};

    fn get(config: &ClientConfig, key: &str) -> Option<String> {
        config.get(key).map(str::to_owned)
    }

    #[test]
    fn security_protocol_follows_tls_and_sasl() {
        let mut kafka = KafkaConfig::default();
        let plain = client_config(&kafka).unwrap();
        assert_eq!(
            get(&plain, "security.protocol").as_deref(),
            Some("plaintext")
        );
        kafka.tls = Some(KafkaTls {
            ca_file: Some("/etc/ca.pem".into()),
            ..Default::default()
        });
        let tls = client_config(&kafka).unwrap();
        assert_eq!(get(&tls, "security.protocol").as_deref(), Some("ssl"));
        assert_eq!(get(&tls, "ssl.ca.location").as_deref(), Some("/etc/ca.pem"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").unwrap();
        kafka.sasl = Some(KafkaSasl {
            mechanism: "SCRAM-SHA-512".into(),
            username: "bitesize".into(),
            password: None,
            password_file: Some(file),
        });
        let both = client_config(&kafka).unwrap();
        assert_eq!(get(&both, "security.protocol").as_deref(), Some("sasl_ssl"));
        assert_eq!(get(&both, "sasl.password").as_deref(), Some("s3cret"));
        assert_eq!(
            get(&both, "sasl.mechanism").as_deref(),
            Some("SCRAM-SHA-512")
        );
        assert!(!format!("{kafka:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_password_file_names_the_key() {
        let kafka = KafkaConfig {
            sasl: Some(KafkaSasl {
                mechanism: "PLAIN".into(),
                username: "u".into(),
                password: None,
                password_file: Some("/nonexistent/password".into()),
            }),
            ..Default::default()
        };
        let err = client_config(&kafka).unwrap_err().to_string();
        assert!(err.contains("kafka.sasl.password_file"), "{err}");
    }
}
