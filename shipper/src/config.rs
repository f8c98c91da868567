//! Shipper configuration: a YAML file (the mounted ConfigMap) overlaid with `BITESIZE_*`
//! environment variables (`__` separates nested keys, e.g. `BITESIZE_KAFKA__BROKERS`).
//! Unknown keys and bad values are errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::kafka_security::{KafkaSasl, KafkaTls, SASL_MECHANISMS};
use crate::{Error, Result};

/// Where the kubelet links every container's log file.
pub const DEFAULT_INCLUDE: &str = "/var/log/containers/*.log";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Globs of container log files to follow, named `<pod>_<namespace>_<container>-<id>.log`;
    /// symlinks (kubelet's `/var/log/containers` entries) are followed.
    pub include: Vec<String>,
    /// Globs of paths found by `include` to leave alone.
    pub exclude: Vec<String>,
    /// Deprecated shorthand for `include: ["<log_dir>/*.log"]`; cannot be combined with a
    /// non-default `include`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<PathBuf>,
    /// How often the globs are expanded again even without a file-system event.
    pub rescan_interval_ms: u64,
    /// Where files already present at the very first start (no checkpoint file yet) begin.
    pub read_from: ReadFrom,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
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
    /// Redaction of the message before the record leaves the node.
    pub redact: RedactConfig,
    /// Field add / rename / drop on the finished record (fluentd's `record_transformer`).
    pub transforms: TransformConfig,
    /// Multi-line joining (stack traces): the first rule whose `namespace` and `container`
    /// globs match a file applies to it.
    pub multiline: Vec<MultilineRule>,
    /// Metadata from the Kubernetes API.
    pub kubernetes: KubernetesConfig,
}

/// Redaction rules, applied in order (presets first) to the message; `fields` are parsed
/// from the redacted message, so they are redacted too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Named rules: `card_numbers` (13-19 digits passing the Luhn check), `bearer_tokens`,
    /// `emails`.
    pub presets: Vec<String>,
    pub rules: Vec<RedactRuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRuleConfig {
    /// A name for metrics and errors; defaults to `rules[<index>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// What replaces each match; `$1` / `${name}` refer to capture groups.
    #[serde(default = "default_replacement")]
    pub replacement: String,
}

fn default_replacement() -> String {
    "[REDACTED]".to_owned()
}

/// Field changes on the record, as dotted paths (`kubernetes.labels.team`): renames first,
/// then additions (which overwrite), then drops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Path → value (any YAML value) set on every record.
    pub add: BTreeMap<String, serde_json::Value>,
    /// Old path → new path; a missing old path is no change.
    pub rename: BTreeMap<String, String>,
    /// Paths removed from every record.
    pub drop: Vec<String>,
}

/// Joins the lines of one multi-line message (a stack trace) into one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineRule {
    /// Glob on the namespace.
    #[serde(default = "match_all")]
    pub namespace: String,
    /// Glob on the container name.
    #[serde(default = "match_all")]
    pub container: String,
    /// Regex matching the first line of a message; other lines are appended to the
    /// message before them (with a newline).
    pub start_pattern: String,
    /// A message is complete when no line was added to it for this long.
    #[serde(default = "default_multiline_timeout")]
    pub timeout_ms: u64,
    /// A longer message is cut here; its pieces are marked `split`.
    #[serde(default = "default_multiline_max")]
    pub max_bytes: usize,
}

fn match_all() -> String {
    "*".to_owned()
}
fn default_multiline_timeout() -> u64 {
    1000
}
fn default_multiline_max() -> usize {
    512 * 1024
}

/// Pod metadata from the Kubernetes API (a watch over this node's pods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// Off for local and demo runs: records carry file-name metadata only.
    pub enabled: bool,
    /// A kubeconfig file; without it the in-cluster service account is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Pod annotations copied to `kubernetes.annotations` (none unless listed).
    pub annotations: Vec<String>,
    /// Also watch namespaces and add their labels as `kubernetes.namespace_labels`.
    pub namespace_labels: bool,
    /// How long a deleted pod's metadata is kept for its last lines.
    pub deleted_pod_grace_secs: u64,
    /// Longest wait between retries of a failed watch (retries double from 250 ms).
    pub retry_max_ms: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            kubeconfig: None,
            annotations: Vec::new(),
            namespace_labels: false,
            deleted_pod_grace_secs: 300,
            retry_max_ms: 10_000,
        }
    }
}

/// Where a file found at the very first start begins; files appearing later, and files
/// with a checkpoint, never follow this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Ship what the file already holds.
    Beginning,
    /// Skip what the file already holds (up to its last complete line).
    End,
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
    /// TLS to the brokers (`kafka.tls`); absent: plaintext. Same keys as the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// SASL authentication (`kafka.sasl`); absent: none. Same keys as the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// Extra librdkafka producer properties (applied last, so they can override).
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    fn validate_security(&self) -> Result<()> {
        crate::kafka_security::validate(self.tls.as_ref(), self.sasl.as_ref())
            .map_err(Error::Config)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            include: vec![DEFAULT_INCLUDE.to_owned()],
            exclude: Vec::new(),
            log_dir: None,
            rescan_interval_ms: 1000,
            read_from: ReadFrom::Beginning,
            listen: "0.0.0.0:9102".to_owned(),
            checkpoint_dir: PathBuf::from("/var/lib/bitesize-shipper"),
            cluster: None,
            node_name: None,
            topic_template: bitesize_record::DEFAULT_TOPIC_TEMPLATE.to_owned(),
            max_line_bytes: 1024 * 1024,
            poll_interval_ms: 100,
            batch_records: 2000,
            in_flight_batches: 16,
            kafka: KafkaConfig::default(),
            redact: RedactConfig::default(),
            transforms: TransformConfig::default(),
            multiline: Vec::new(),
            kubernetes: KubernetesConfig::default(),
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
            tls: None,
            sasl: None,
            properties: BTreeMap::new(),
        }
    }
}

/// `BITESIZE_*` variables for the shipper. A variable whose first key is not a shipper
/// setting (the server's settings share the prefix and often the environment) is ignored
/// with a warning naming it; a wrong nested key (`BITESIZE_KAFKA__BROKERZ`) is an error.
fn env_overrides() -> Env {
    let mut known: Vec<String> = match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    known.push("log_dir".to_owned()); // skipped when unset, still a setting
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
        if let Some(dir) = config.log_dir.take() {
            if config.include != [DEFAULT_INCLUDE] {
                return Err(Error::Config(
                    "log_dir: cannot be combined with include; use include alone".into(),
                ));
            }
            config.include = vec![format!("{}/*.log", dir.display())];
        }
        if config.node_name.is_none() {
            config.node_name = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot; each error names its key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("{key}: {why}")));
        if self.include.is_empty() {
            return bad("include", "must name at least one glob".into());
        }
        for (key, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, glob) in globs.iter().enumerate() {
                if let Err(e) = glob::Pattern::new(glob) {
                    return bad(
                        &format!("{key}[{i}]"),
                        format!("{glob:?} is not a glob: {e}"),
                    );
                }
            }
        }
        if self.rescan_interval_ms == 0 {
            return bad("rescan_interval_ms", "must be greater than 0".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "listen",
                format!("{:?} is not an address like 0.0.0.0:9102", self.listen),
            );
        }
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
        self.kafka.validate_security()?;
        crate::transform::Redactor::new(&self.redact)?;
        crate::transform::FieldTransforms::new(&self.transforms)?;
        crate::multiline::MultilineRules::new(&self.multiline)?;
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
            let config = load_yaml(
                jail,
                "include: [/logs/*.log]\nread_from: end\nkafka:\n  brokers: k:1\n",
            )
            .unwrap();
            assert_eq!(config.include, ["/logs/*.log"]);
            assert_eq!(config.read_from, ReadFrom::End);
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
    fn log_dir_is_a_shorthand_for_one_include() {
        Jail::expect_with(|jail| {
            let config = load_yaml(jail, "log_dir: /logs\n").unwrap();
            assert_eq!(config.include, ["/logs/*.log"]);
            assert_eq!(config.log_dir, None);
            let err = load_yaml(jail, "log_dir: /logs\ninclude: ['/x/*.log']\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("log_dir") && err.contains("include"), "{err}");
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
            let err = load_yaml(jail, "exclude: ['/a/*.log', '/b/[x.log']\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("exclude[1]"), "{err}");
            let err = load_yaml(jail, "read_from: middle\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("read_from"), "{err}");
            let err = load_yaml(jail, "listen: nowhere\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("listen"), "{err}");
            let err = load_yaml(jail, "topic_template: logs\n")
                .unwrap_err()
                .to_string();
            assert!(err.contains("topic_template"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn sasl_password_from_env_or_file_never_in_debug() {
        Jail::expect_with(|jail| {
            jail.set_env("BITESIZE_KAFKA__SASL__PASSWORD", "env-s3cret");
            let config = load_yaml(
                jail,
                "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: shipper\n",
            )
            .unwrap();
            let sasl = config.kafka.sasl.as_ref().unwrap();
            assert_eq!(sasl.password().unwrap().expose(), "env-s3cret");
            let debug = format!("{config:?}");
            assert!(!debug.contains("env-s3cret"), "{debug}");
            assert!(debug.contains("***"), "{debug}");
            jail.clear_env();

            jail.create_file("password", "file-s3cret\n").unwrap();
            jail.create_file("key.pem", "k").unwrap();
            jail.create_file("cert.pem", "c").unwrap();
            let config = load_yaml(
                jail,
                "kafka:\n  tls:\n    cert_file: cert.pem\n    key_file: key.pem\n    \
                 key_password: key-s3cret\n    verify_hostname: false\n  sasl:\n    \
                 mechanism: PLAIN\n    username: shipper\n    password_file: password\n",
            )
            .unwrap();
            let sasl = config.kafka.sasl.as_ref().unwrap();
            assert_eq!(sasl.password().unwrap().expose(), "file-s3cret");
            let tls = config.kafka.tls.as_ref().unwrap();
            assert_eq!(tls.verify_hostname, Some(false));
            let debug = format!("{config:?} {config:#?}");
            assert!(!debug.contains("key-s3cret"), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn tls_and_sasl_errors_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("password", "p").unwrap();
            jail.create_file("cert.pem", "c").unwrap();
            let sasl = |body: &str| format!("kafka:\n  sasl:\n    username: shipper\n{body}");
            for (yaml, key, why) in [
                (
                    sasl("    mechanism: GSSAPI\n    password: p\n"),
                    "kafka.sasl.mechanism",
                    "GSSAPI",
                ),
                (
                    sasl("    mechanism: PLAIN\n    password: p\n    password_file: password\n"),
                    "kafka.sasl.password_file",
                    "not both",
                ),
                (
                    sasl("    mechanism: PLAIN\n"),
                    "kafka.sasl.password",
                    "missing",
                ),
                (
                    sasl("    mechanism: PLAIN\n    password_file: nowhere\n"),
                    "kafka.sasl.password_file",
                    "nowhere",
                ),
                (
                    "kafka:\n  sasl:\n    mechanism: PLAIN\n    password: p\n".to_owned(),
                    "kafka.sasl.username",
                    "must be set",
                ),
                (
                    "kafka:\n  tls:\n    ca_file: missing-ca.pem\n".to_owned(),
                    "kafka.tls.ca_file",
                    "missing-ca.pem",
                ),
                (
                    "kafka:\n  tls:\n    cert_file: cert.pem\n".to_owned(),
                    "kafka.tls.key_file",
                    "cert_file",
                ),
                (
                    "kafka:\n  tls:\n    verify_hostnam: false\n".to_owned(),
                    "verify_hostnam",
                    "",
                ),
            ] {
                let err = load_yaml(jail, &yaml).unwrap_err().to_string();
                assert!(err.contains(key) && err.contains(why), "{yaml}: {err}");
                assert!(!err.contains("password: p"), "{err}");
            }
            Ok(())
        });
    }
}
