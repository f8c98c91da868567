//! Server configuration as one serde struct, layered: defaults → TOML file (`--config`) →
//! `BITESIZE_*` environment variables (`__` separates nested keys, e.g.
//! `BITESIZE_KAFKA__BROKERS`) → command-line flags. Unknown keys and bad values are errors
//! that name the key.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Index, SQLite database and (in the demo) broker data, logs and checkpoints.
    pub data_dir: PathBuf,
    /// Address of the HTTP API and dashboard.
    pub listen: String,
    /// `sqlite://...` or `postgres://...`; default: `bitesize.db` in the data directory.
    pub database_url: Option<String>,
    /// The broker binary the demo starts (default: `nisshi` on PATH or in the tool cache).
    pub broker_bin: Option<PathBuf>,
    /// The shipper binary the demo starts (default: next to this binary).
    pub shipper_bin: Option<PathBuf>,
    /// Demo only: this string becomes a valid admin API token, for scripting.
    pub demo_admin_token: Option<Secret>,
    pub kafka: KafkaConfig,
    pub ingest: IngestConfig,
}

/// A secret from configuration: usable, but never printed (`Debug` shows `***`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Consumer group of the indexers.
    pub group_id: String,
    /// Regex of the topics to index (librdkafka syntax, must start with `^`).
    pub topic_pattern: String,
    /// How a topic name carries its namespace; `{namespace}` marks the place.
    pub topic_template: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How often indexed records become searchable (index commit, then Kafka commit).
    pub commit_interval_ms: u64,
    /// Memory for each namespace's index writer.
    pub writer_memory_mb: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("bitesize-data"),
            listen: "127.0.0.1:8080".to_owned(),
            database_url: None,
            broker_bin: None,
            shipper_bin: None,
            demo_admin_token: None,
            kafka: KafkaConfig::default(),
            ingest: IngestConfig::default(),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            group_id: "bitesize-indexer".to_owned(),
            topic_pattern: r"^logs\..*".to_owned(),
            topic_template: bitesize_record::DEFAULT_TOPIC_TEMPLATE.to_owned(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            commit_interval_ms: 1000,
            writer_memory_mb: 50,
        }
    }
}

/// Variables that share the prefix but are not settings of this file.
const OTHER_VARIABLES: [&str; 1] = ["BITESIZE_LOG"];

/// `BITESIZE_*` variables for the server. A variable whose first key is not a server setting
/// (the shipper's settings share the prefix and often the environment) is ignored with a
/// warning naming it; a wrong nested key (`BITESIZE_KAFKA__BROKERZ`) is an error.
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
        if !OTHER_VARIABLES.contains(&name.as_str()) && !is_known(&key) {
            tracing::warn!(variable = %name, "not a server setting; ignored");
        }
    }
    Env::prefixed("BITESIZE_")
        .split("__")
        .filter(move |key| is_known(key.as_str()))
}

impl Config {
    /// Defaults, then the file, then the environment, then `overrides` (from flags).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(env_overrides()).merge(overrides);
        let config: Config = figment
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot; each error names its key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("{key}: {why}")));
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen", "must be an address like 127.0.0.1:8080");
        }
        if !self.kafka.topic_pattern.starts_with('^') {
            return bad("kafka.topic_pattern", "must be a regex starting with ^");
        }
        if bitesize_record::topic_for(&self.kafka.topic_template, "probe").is_err() {
            return bad(
                "kafka.topic_template",
                "must contain {namespace} and give legal topic names",
            );
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return bad("database_url", "must start with sqlite: or postgres://");
            }
        }
        if self.ingest.commit_interval_ms == 0 {
            return bad("ingest.commit_interval_ms", "must be greater than 0");
        }
        if self.ingest.writer_memory_mb < 15 {
            return bad("ingest.writer_memory_mb", "must be at least 15");
        }
        Ok(())
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// The database URL in use: the configured one or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("bitesize.db").display()
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error, not ours
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads `text` inside a jail: a temp directory and environment changes no other test sees.
    fn load_toml(jail: &mut Jail, text: &str) -> Result<Config> {
        jail.create_file("bitesize.toml", text)
            .expect("write config");
        Config::load(Some(Path::new("bitesize.toml")), Figment::new())
    }

    #[test]
    fn layers_defaults_file_env_and_flags() {
        Jail::expect_with(|jail| {
            let text = "listen = \"127.0.0.1:9999\"\n[kafka]\nbrokers = \"file:1\"\n";
            let config = load_toml(jail, text).unwrap();
            assert_eq!(config.listen, "127.0.0.1:9999");
            assert_eq!(config.kafka.brokers, "file:1");
            assert_eq!(config.ingest.commit_interval_ms, 1000);

            jail.set_env("BITESIZE_KAFKA__BROKERS", "env:1");
            jail.set_env("BITESIZE_LOG_DIR", "a shipper setting, ignored here");
            assert_eq!(load_toml(jail, text).unwrap().kafka.brokers, "env:1");

            jail.create_file("bitesize.toml", text).unwrap();
            let flags = Figment::from(Serialized::defaults(
                serde_json::json!({"listen": "127.0.0.1:7777"}),
            ));
            let config = Config::load(Some(Path::new("bitesize.toml")), flags).unwrap();
            assert_eq!(config.listen, "127.0.0.1:7777");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            for (text, key) in [
                ("[kafka]\nbrokerz = \"x\"\n", "brokerz"),
                (
                    "[ingest]\ncommit_interval_ms = \"soon\"\n",
                    "commit_interval_ms",
                ),
                ("listen = \"nowhere\"\n", "listen"),
                ("database_url = \"mysql://x\"\n", "database_url"),
                ("[kafka]\ntopic_pattern = \"logs\"\n", "kafka.topic_pattern"),
            ] {
                let err = load_toml(jail, text).unwrap_err().to_string();
                assert!(err.contains(key), "{text}: {err}");
            }
            jail.set_env("BITESIZE_INGEST__COMMIT_INTERVAL_MS", "soon");
            let err = load_toml(jail, "").unwrap_err().to_string().to_lowercase();
            assert!(err.contains("ingest.commit_interval_ms"), "{err}");
            Ok(())
        });
    }
}
