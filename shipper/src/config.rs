//! Shipper configuration: a YAML file (the mounted ConfigMap) overlaid with `BITESIZE_*`
//! environment variables (`__` separates nested keys, e.g. `BITESIZE_KAFKA__BROKERS`).
//! Unknown keys and bad values are errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of container log files named `<pod>_<namespace>_<container>-<id>.log`.
    pub log_dir: PathBuf,
    /// Where file positions are saved.
    pub checkpoint_dir: PathBuf,
    /// Cluster name added to every record.
    pub cluster: Option<String>,
    /// This node's name (`kubernetes.host`); defaults to the `NODE_NAME` environment variable.
    pub node_name: Option<String>,
    /// Kafka topic per namespace; `{namespace}` is replaced.
    pub topic_template: String,
    /// Longest message kept whole; longer ones are split into marked pieces.
    pub max_line_bytes: usize,
    /// How often files are checked for new lines when nothing was read.
    pub poll_interval_ms: u64,
    /// Records per batch handed from the tailer to the producer.
    pub batch_records: usize,
    /// Batches in flight between stages; bounds memory when Kafka is slow.
    pub in_flight_batches: usize,
    pub kafka: KafkaConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    /// Create a namespace's topic when the first line for it appears.
    pub create_topics: bool,
    /// Partitions of topics the shipper creates.
    pub topic_partitions: i32,
    /// Extra librdkafka producer properties.
    pub properties: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_dir: PathBuf::from("/var/log/containers"),
            checkpoint_dir: PathBuf::from("/var/lib/bitesize-shipper"),
            cluster: None,
            node_name: None,
            topic_template: bitesize_record::DEFAULT_TOPIC_TEMPLATE.to_owned(),
            max_line_bytes: 1024 * 1024,
            poll_interval_ms: 100,
            batch_records: 2000,
            in_flight_batches: 16,
            kafka: KafkaConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            compression: "zstd".to_owned(),
            create_topics: true,
            topic_partitions: 1,
            properties: BTreeMap::new(),
        }
    }
}

/// `BITESIZE_*` variables for the shipper. A variable whose first key is not a shipper
/// setting (the server's settings share the prefix and often the environment) is ignored
/// with a warning naming it; a wrong nested key (`BITESIZE_KAFKA__BROKERZ`) is an error.
fn env_overrides() -> Env {
    let known: Vec<String> = match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let is_known = move |key: &str| {
        let top = key
            .split('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        known.contains(&top)
    };
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("BITESIZE_")) {
        let key = name["BITESIZE_".len()..].replace("__", ".");
        if name != "BITESIZE_LOG" && !is_known(&key) {
            tracing::warn!(variable = %name, "not a shipper setting; ignored");
        }
    }
    Env::prefixed("BITESIZE_")
        .split("__")
        .filter(move |key| is_known(key.as_str()))
}

impl Config {
    /// Defaults, then the file (if given), then `BITESIZE_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Yaml::file(file));
        }
        figment = figment.merge(env_overrides());
        let mut config: Config = figment
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        if config.node_name.is_none() {
            config.node_name = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot; each error names its key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("{key}: {why}")));
        if let Err(e) = bitesize_record::topic_for(&self.topic_template, "probe") {
            return bad("topic_template", e.to_string());
        }
        if self.max_line_bytes == 0 {
            return bad("max_line_bytes", "must be greater than 0".into());
        }
        if self.batch_records == 0 {
            return bad("batch_records", "must be greater than 0".into());
        }
        if self.in_flight_batches == 0 {
            return bad("in_flight_batches", "must be greater than 0".into());
        }
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers", "must not be empty".into());
        }
        if !matches!(
            self.kafka.compression.as_str(),
            "none" | "gzip" | "snappy" | "lz4" | "zstd"
        ) {
            return bad(
                "kafka.compression",
                format!(
                    "{:?} is not one of none, gzip, snappy, lz4, zstd",
                    self.kafka.compression
                ),
            );
        }
        if self.kafka.topic_partitions < 1 {
            return bad("kafka.topic_partitions", "must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error, not ours
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads `yaml` inside a jail: a temp directory and environment changes that no other
    /// test sees.
    fn load_yaml(jail: &mut Jail, yaml: &str) -> Result<Config> {
        jail.create_file("shipper.yaml", yaml)
            .expect("write config");
        Config::load(Some(Path::new("shipper.yaml")))
    }

    #[test]
    fn file_values_override_defaults() {
        Jail::expect_with(|jail| {
            let config = load_yaml(jail, "log_dir: /logs\nkafka:\n  brokers: k:1\n").unwrap();
            assert_eq!(config.log_dir, PathBuf::from("/logs"));
            assert_eq!(config.kafka.brokers, "k:1");
            assert_eq!(config.kafka.compression, "zstd");
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_and_foreign_variables_are_ignored() {
        Jail::expect_with(|jail| {
            jail.set_env("BITESIZE_KAFKA__BROKERS", "from-env:9092");
            jail.set_env("BITESIZE_DATABASE_URL", "postgres://a-server-setting");
            let config = load_yaml(jail, "kafka:\n  brokers: from-file:9092\n").unwrap();
            assert_eq!(config.kafka.brokers, "from-env:9092");
            jail.set_env("BITESIZE_KAFKA__BROKERZ", "typo");
            let err = load_yaml(jail, "").unwrap_err().to_string();
            assert!(err.contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named() {
        Jail::expect_with(|jail| {
            let err = load_yaml(jail, "kafka:\n  brokerz: x\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_value_is_named() {
        Jail::expect_with(|jail| {
            let err = load_yaml(jail, "max_line_bytes: lots\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("max_line_bytes"), "{err}");
            let err = load_yaml(jail, "kafka:\n  compression: brotli\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("kafka.compression"), "{err}");
            let err = load_yaml(jail, "topic_template: logs\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("topic_template"), "{err}");
            Ok(())
        });
    }
}
