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
    pub retention: RetentionConfig,
    /// The address browsers reach this server at (`https://logs.example.com`), for the
    /// sign-in redirect URLs; default `http://` + `listen`.
    pub public_url: Option<String>,
    /// Local accounts (password form and `POST /auth/login`); off: single sign-on only.
    pub local_accounts: bool,
    /// OpenID Connect providers people can sign in with (`[[oidc]]` tables).
    pub oidc: Vec<OidcProvider>,
    /// The shipper DaemonSet this server manages (`[fleet]`); off when no cluster is named.
    pub fleet: FleetConfig,
    /// The archive to object storage and rehydrates (`[archive]`, see `archive`).
    pub archive: ArchiveConfig,
}

/// The archive (`[archive]`): every record as NDJSON compressed with zstd, per namespace and
/// hour, in an object store, and rehydrates back into the index (see `archive`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Run the archive stage (listing and rehydrating work either way).
    pub enabled: bool,
    /// `file:///absolute/dir` or `s3://bucket/prefix`; default `archive/` in the data directory.
    pub url: Option<String>,
    /// Archive the namespaces the registry has no `archive` setting for (the ones the indexer
    /// found by itself) and new registry entries created without `archive`.
    pub by_default: bool,
    /// The archive stage's own consumer group; default `{kafka.group_id}-archive`.
    pub group_id: Option<String>,
    /// A partition's records are written once they reach this many bytes of NDJSON...
    pub flush_bytes: u64,
    /// ...or once the first of them has waited this long.
    pub flush_interval_secs: u64,
    /// Most NDJSON bytes buffered over all partitions; past it the largest go early.
    pub max_buffered_bytes: u64,
    /// zstd level of the objects, 1 (fastest) to 19 (smallest).
    pub zstd_level: i32,
    /// Days retention leaves a rehydrated range in the index (a request may set its own).
    pub rehydrate_keep_days: u32,
    /// The most days a rehydrate request may ask to keep its range.
    pub rehydrate_max_keep_days: u32,
    /// S3-compatible storage (`[archive.s3]`), for an `s3://` URL.
    pub s3: ArchiveS3,
}

/// Settings of an S3-compatible store. Unset values come from the usual `AWS_*` variables
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...) or the instance role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveS3 {
    pub region: Option<String>,
    /// The endpoint of an S3-compatible service (`https://minio.example.com:9000`).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    /// Prefer `BITESIZE_ARCHIVE__S3__SECRET_ACCESS_KEY` or `secret_access_key_file`.
    pub secret_access_key: Option<Secret>,
    /// A file holding the secret access key (a mounted Secret); trailing newlines removed.
    pub secret_access_key_file: Option<PathBuf>,
    pub session_token: Option<Secret>,
    /// Plain `http://` to the endpoint.
    pub allow_http: bool,
    /// `https://bucket.endpoint/` requests instead of `https://endpoint/bucket/`.
    pub virtual_hosted_style: bool,
}

impl ArchiveS3 {
    /// The secret access key from `secret_access_key` or `secret_access_key_file`; errors
    /// name the key, never the secret.
    pub fn secret_access_key(&self) -> std::result::Result<Option<Secret>, String> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(_), Some(_)) => Err(
                "archive.s3.secret_access_key_file: give secret_access_key or secret_access_key_file, not both".into(),
            ),
            (Some(secret), None) => Ok(Some(secret.clone())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|text| Some(Secret::new(text.trim_end_matches(['\r', '\n']))))
                .map_err(|e| {
                    format!(
                        "archive.s3.secret_access_key_file: cannot read {}: {e}",
                        file.display()
                    )
                }),
            (None, None) => Ok(None),
        }
    }
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            url: None,
            by_default: true,
            group_id: None,
            flush_bytes: 64 * 1024 * 1024,
            flush_interval_secs: 300,
            max_buffered_bytes: 512 * 1024 * 1024,
            zstd_level: 3,
            rehydrate_keep_days: 7,
            rehydrate_max_keep_days: 90,
            s3: ArchiveS3::default(),
        }
    }
}

/// Which clusters' shipper fleets this server manages (`[fleet]`, see `fleet`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Kubeconfig contexts, one cluster each (named after the context).
    pub contexts: Vec<String>,
    /// The kubeconfig file the contexts are in; default `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Also manage the cluster this server runs in (its service account).
    pub in_cluster: bool,
    /// The in-cluster cluster's name in status.
    pub in_cluster_name: String,
    /// Namespace of the shipper's ServiceAccount, ConfigMap and DaemonSet.
    pub namespace: String,
    /// How often drift is looked for and re-applied (it also is on every change).
    pub reconcile_interval_secs: u64,
    /// How often pods are listed and shippers' metrics scraped for the status.
    pub status_interval_secs: u64,
    /// Set by the demo: its local shipper, shown as the one node when no cluster is managed.
    pub local_shipper: Option<LocalShipper>,
}

/// The demo's shipper process (no Kubernetes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalShipper {
    pub node_name: String,
    /// Its `/metrics` URL, scraped for the status when set.
    pub metrics_url: Option<String>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            contexts: Vec::new(),
            kubeconfig: None,
            in_cluster: false,
            in_cluster_name: "in-cluster".to_owned(),
            namespace: "bitesize".to_owned(),
            reconcile_interval_secs: 300,
            status_interval_secs: 15,
            local_shipper: None,
        }
    }
}

/// One OpenID Connect provider (`[[oidc]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProvider {
    /// Slug used in URLs: `/auth/oidc/{name}/login`.
    pub name: String,
    /// What the sign-in button says: "Sign in with {display_name}" (default: `name`).
    pub display_name: Option<String>,
    /// The issuer; its `/.well-known/openid-configuration` is read (https, or http on loopback).
    pub issuer_url: String,
    pub client_id: String,
    /// `None` for a public client (PKCE alone). Prefer `client_secret_file` or
    /// `client_secret_env` over writing the secret into the file.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (e.g. a mounted Kubernetes Secret); read at each
    /// sign-in, so a rotated secret applies without a restart. Trailing newlines are removed.
    pub client_secret_file: Option<PathBuf>,
    /// The name of an environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Default: `{public_url}/auth/oidc/{name}/callback`.
    pub redirect_url: Option<String>,
    pub scopes: Vec<String>,
    /// The claim that lists the user's groups (a JSON array of strings, or one string).
    pub groups_claim: String,
    /// Where the groups claim is read: `id_token` or `userinfo`.
    pub groups_from: GroupsFrom,
    /// The claim that becomes the Bitesize user name (falls back to `sub` when absent).
    pub username_claim: String,
    /// Tolerated difference between this server's clock and the provider's, for ID token
    /// expiry and issue time.
    pub clock_skew_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupsFrom {
    IdToken,
    Userinfo,
}

impl Default for OidcProvider {
    fn default() -> Self {
        OidcProvider {
            name: String::new(),
            display_name: None,
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            client_secret_env: None,
            redirect_url: None,
            scopes: ["openid", "profile", "email", "groups"]
                .map(String::from)
                .to_vec(),
            groups_claim: "groups".to_owned(),
            groups_from: GroupsFrom::IdToken,
            username_claim: "preferred_username".to_owned(),
            clock_skew_secs: 60,
        }
    }
}

impl OidcProvider {
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The client secret from `client_secret`, `client_secret_file` or `client_secret_env`
    /// (at most one of them); `None`: a public client. Errors name the key (`key_prefix` is
    /// `oidc[i]`), never the secret.
    pub fn client_secret(&self, key_prefix: &str) -> std::result::Result<Option<Secret>, String> {
        let given = [
            self.client_secret.is_some(),
            self.client_secret_file.is_some(),
            self.client_secret_env.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(format!(
                "{key_prefix}.client_secret: give one of client_secret, client_secret_file and client_secret_env"
            ));
        }
        if let Some(file) = &self.client_secret_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                format!(
                    "{key_prefix}.client_secret_file: cannot read {}: {e}",
                    file.display()
                )
            })?;
            let secret = text.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                return Err(format!(
                    "{key_prefix}.client_secret_file: {} is empty",
                    file.display()
                ));
            }
            return Ok(Some(Secret::new(secret)));
        }
        if let Some(name) = &self.client_secret_env {
            return match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ => Err(format!(
                    "{key_prefix}.client_secret_env: the environment variable {name} is not set"
                )),
            };
        }
        Ok(self.client_secret.clone())
    }
}

/// TLS and SASL to Kafka: the shipper's keys and checks, one vocabulary for both.
pub use bitesize_shipper::kafka_security::{KafkaSasl, KafkaTls, SASL_MECHANISMS};
/// A secret from configuration: usable, but never printed (`Debug` shows `***`).
pub use bitesize_shipper::secret::Secret;

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
    /// TLS to the brokers (`[kafka.tls]`); absent: plaintext.
    pub tls: Option<KafkaTls>,
    /// SASL authentication (`[kafka.sasl]`); absent: none.
    pub sasl: Option<KafkaSasl>,
    /// Settings of the topics the namespace registry creates (`[kafka.topics]`).
    pub topics: TopicDefaults,
    /// Limits of `GET /api/v1/namespaces/{ns}/stream` (`[kafka.stream]`).
    pub stream: StreamLimits,
    /// Principals named in the ACL plan (`[kafka.acl]`).
    pub acl: AclPrincipals,
}

/// Defaults and bounds for the topics of the namespace registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDefaults {
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms` of a new topic (`-1`: unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` per partition of a new topic (`-1`: unlimited).
    pub retention_bytes: i64,
    /// Most partitions one topic may have.
    pub max_partitions: i32,
    /// The range of `retention.ms` a namespace's owners may set themselves (admins: any).
    pub owner_min_retention_ms: i64,
    pub owner_max_retention_ms: i64,
    /// Largest `retention.bytes` owners may set (`-1`: no bound; unlimited stays admin-only).
    pub owner_max_retention_bytes: i64,
    /// Most index retention days owners may set.
    pub owner_max_retention_days: i32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            partitions: 3,
            replication_factor: 1,
            retention_ms: 7 * 86_400_000,
            retention_bytes: -1,
            max_partitions: 1_000,
            owner_min_retention_ms: 3_600_000,
            owner_max_retention_ms: 30 * 86_400_000,
            owner_max_retention_bytes: -1,
            owner_max_retention_days: 90,
        }
    }
}

/// Per-principal limits of the consume endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamLimits {
    /// Streams one principal may have open at once; more answer 429.
    pub max_concurrent_per_principal: usize,
    /// Records per second one principal receives over all its streams (the stream slows
    /// down to this; nothing is dropped).
    pub max_records_per_second: u32,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_concurrent_per_principal: 4,
            max_records_per_second: 10_000,
        }
    }
}

/// The Kafka principals of the ACL plan (`User:name` as the broker sees them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclPrincipals {
    /// The shippers' principal: WRITE on the topic prefix.
    pub shipper: String,
    /// This server's principal: READ on the topics and its consumer group.
    pub server: String,
    /// How a team's consumer principal is named; `{group}` is the namespace's owner group.
    pub team_template: String,
}

impl Default for AclPrincipals {
    fn default() -> Self {
        AclPrincipals {
            shipper: "User:bitesize-shipper".to_owned(),
            server: "User:bitesize-server".to_owned(),
            team_template: "User:{group}".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How often indexed records become searchable (index commit, then Kafka commit).
    pub commit_interval_ms: u64,
    /// Memory for each namespace's index writer.
    pub writer_memory_mb: usize,
    /// Batches (of up to 1024 records) queued for each namespace's writer before the
    /// consumer waits for it.
    pub queued_batches: usize,
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
            retention: RetentionConfig::default(),
            public_url: None,
            local_accounts: true,
            oidc: Vec::new(),
            fleet: FleetConfig::default(),
            archive: ArchiveConfig::default(),
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
            tls: None,
            sasl: None,
            topics: TopicDefaults::default(),
            stream: StreamLimits::default(),
            acl: AclPrincipals::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a namespace's index keeps records unless the namespace sets its own.
    pub default_days: u32,
    /// How often expired records are deleted.
    pub check_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            default_days: 30,
            check_interval_secs: 3600,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            commit_interval_ms: 1000,
            writer_memory_mb: 50,
            queued_batches: 8,
        }
    }
}

/// An absolute http(s) URL with a host; `https_unless_loopback`: plain http only on loopback.
fn is_web_url(text: &str, https_unless_loopback: bool) -> bool {
    let Ok(url) = openidconnect::url::Url::parse(text) else {
        return false;
    };
    let loopback = match url.host() {
        Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return false,
    };
    match url.scheme() {
        "https" => true,
        "http" => !https_unless_loopback || loopback,
        _ => false,
    }
}

/// Variables that share the prefix but are not settings of this file.
const OTHER_VARIABLES: [&str; 2] = ["BITESIZE_LOG", "BITESIZE_TOKEN"];

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

    /// The base URL browsers reach this server at, without a trailing `/`.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Where `provider` sends browsers back to.
    pub fn oidc_redirect_url(&self, provider: &OidcProvider) -> String {
        match &provider.redirect_url {
            Some(url) => url.clone(),
            None => format!(
                "{}/auth/oidc/{}/callback",
                self.public_base(),
                provider.name
            ),
        }
    }

    fn validate_sign_in(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("{key}: {why}")));
        if let Some(url) = &self.public_url {
            if !is_web_url(url, false) {
                return bad(
                    "public_url",
                    "must be an http:// or https:// URL like https://logs.example.com",
                );
            }
        }
        if !self.local_accounts && self.oidc.is_empty() {
            return bad(
                "local_accounts",
                "cannot be false while no [[oidc]] provider is configured: nobody could sign in",
            );
        }
        let listen_is_unspecified = self
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        for (i, provider) in self.oidc.iter().enumerate() {
            let key = |field: &str| format!("oidc[{i}].{field}");
            let name_ok = !provider.name.is_empty()
                && provider.name.len() <= 40
                && provider
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !name_ok {
                return bad(
                    &key("name"),
                    "must be 1 to 40 of a-z, 0-9 and '-' (it is used in URLs)",
                );
            }
            if self.oidc[..i].iter().any(|p| p.name == provider.name) {
                return bad(&key("name"), "is used by another provider");
            }
            if !is_web_url(&provider.issuer_url, true) {
                return bad(
                    &key("issuer_url"),
                    "must be an https:// URL (http:// only on a loopback address)",
                );
            }
            if provider.client_id.trim().is_empty() {
                return bad(&key("client_id"), "must be set");
            }
            match &provider.redirect_url {
                Some(url) if !is_web_url(url, false) => {
                    return bad(&key("redirect_url"), "must be an http:// or https:// URL");
                }
                None if self.public_url.is_none() && listen_is_unspecified => {
                    return bad(
                        "public_url",
                        "must be set when listen is a wildcard address and an [[oidc]] provider has no redirect_url",
                    );
                }
                _ => {}
            }
            if !provider.scopes.iter().any(|s| s == "openid") {
                return bad(&key("scopes"), "must include openid");
            }
            if provider.groups_claim.trim().is_empty() {
                return bad(&key("groups_claim"), "must be set");
            }
            if provider.username_claim.trim().is_empty() {
                return bad(&key("username_claim"), "must be set");
            }
            if provider.clock_skew_secs > 600 {
                return bad(&key("clock_skew_secs"), "must be at most 600");
            }
            provider
                .client_secret(&format!("oidc[{i}]"))
                .map_err(Error::Config)?;
        }
        Ok(())
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
        if self.ingest.queued_batches == 0 {
            return bad("ingest.queued_batches", "must be at least 1");
        }
        if self.ingest.writer_memory_mb < 15 {
            return bad("ingest.writer_memory_mb", "must be at least 15");
        }
        if self.retention.default_days == 0 {
            return bad("retention.default_days", "must be at least 1");
        }
        if self.retention.check_interval_secs == 0 {
            return bad("retention.check_interval_secs", "must be at least 1");
        }
        if self.fleet.reconcile_interval_secs == 0 {
            return bad("fleet.reconcile_interval_secs", "must be at least 1");
        }
        if self.fleet.status_interval_secs == 0 {
            return bad("fleet.status_interval_secs", "must be at least 1");
        }
        if self.fleet.namespace.is_empty() {
            return bad("fleet.namespace", "must name a namespace");
        }
        self.validate_kafka_security()?;
        self.validate_archive()?;
        self.validate_kafka_topics()?;
        self.validate_sign_in()
    }

    /// TLS files exist, the SASL mechanism is known and its password is there.
    fn validate_kafka_security(&self) -> Result<()> {
        bitesize_shipper::kafka_security::validate(
            self.kafka.tls.as_ref(),
            self.kafka.sasl.as_ref(),
        )
        .map_err(Error::Config)
    }

    fn validate_kafka_topics(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("kafka.topics.{key}: {why}")));
        let t = &self.kafka.topics;
        if t.max_partitions < 1 {
            return bad("max_partitions", "must be at least 1");
        }
        if t.partitions < 1 || t.partitions > t.max_partitions {
            return bad("partitions", "must be between 1 and max_partitions");
        }
        if t.replication_factor < 1 {
            return bad("replication_factor", "must be at least 1");
        }
        if t.retention_ms < -1 || t.retention_ms == 0 {
            return bad("retention_ms", "must be positive, or -1 for unlimited");
        }
        if t.retention_bytes < -1 || t.retention_bytes == 0 {
            return bad("retention_bytes", "must be positive, or -1 for unlimited");
        }
        if t.owner_min_retention_ms < 1 || t.owner_max_retention_ms < t.owner_min_retention_ms {
            return bad(
                "owner_max_retention_ms",
                "owner_min_retention_ms must be at least 1 and at most owner_max_retention_ms",
            );
        }
        if self.kafka.stream.max_concurrent_per_principal == 0 {
            return Err(Error::Config(
                "kafka.stream.max_concurrent_per_principal: must be at least 1".into(),
            ));
        }
        if self.kafka.stream.max_records_per_second == 0 {
            return Err(Error::Config(
                "kafka.stream.max_records_per_second: must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn validate_archive(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("archive.{key}: {why}")));
        let a = &self.archive;
        if let Some(url) = &a.url {
            let ok = match openidconnect::url::Url::parse(url) {
                Ok(u) if u.scheme() == "file" => u.to_file_path().is_ok(),
                Ok(u) if u.scheme() == "s3" => u.host_str().is_some_and(|h| !h.is_empty()),
                _ => false,
            };
            if !ok {
                return bad(
                    "url",
                    "must be file:///absolute/dir or s3://bucket[/prefix]",
                );
            }
        }
        if a.group_id
            .as_ref()
            .is_some_and(|g| g.trim().is_empty() || *g == self.kafka.group_id)
        {
            return bad(
                "group_id",
                "must not be empty or kafka.group_id (the indexers' group)",
            );
        }
        if a.flush_bytes < 1024 {
            return bad("flush_bytes", "must be at least 1024");
        }
        if a.flush_interval_secs == 0 {
            return bad("flush_interval_secs", "must be at least 1");
        }
        if a.max_buffered_bytes < a.flush_bytes {
            return bad("max_buffered_bytes", "must be at least flush_bytes");
        }
        if !(1..=19).contains(&a.zstd_level) {
            return bad("zstd_level", "must be between 1 and 19");
        }
        if a.rehydrate_max_keep_days == 0 {
            return bad("rehydrate_max_keep_days", "must be at least 1");
        }
        if a.rehydrate_keep_days == 0 || a.rehydrate_keep_days > a.rehydrate_max_keep_days {
            return bad(
                "rehydrate_keep_days",
                "must be between 1 and rehydrate_max_keep_days",
            );
        }
        if let Some(endpoint) = &a.s3.endpoint {
            if !is_web_url(endpoint, false) {
                return bad("s3.endpoint", "must be an http:// or https:// URL");
            }
        }
        a.s3.secret_access_key().map(|_| ()).map_err(Error::Config)
    }

    /// The archive stage's consumer group.
    pub fn archive_group_id(&self) -> String {
        self.archive
            .group_id
            .clone()
            .unwrap_or_else(|| format!("{}-archive", self.kafka.group_id))
    }

    /// Where the archive is: `archive.url`, or `archive/` in the data directory.
    pub fn archive_url(&self) -> String {
        match &self.archive.url {
            Some(url) => url.clone(),
            None => {
                let dir = std::path::absolute(self.data_dir.join("archive"))
                    .unwrap_or_else(|_| self.data_dir.join("archive"));
                openidconnect::url::Url::from_directory_path(&dir)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|()| format!("file://{}", dir.display()))
            }
        }
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
    fn oidc_providers_from_file_and_environment() {
        Jail::expect_with(|jail| {
            let text = "public_url = \"https://logs.example.com/\"\nlocal_accounts = false\n\
                        [[oidc]]\nname = \"corp\"\ndisplay_name = \"Corp SSO\"\n\
                        issuer_url = \"https://idp.example.com\"\nclient_id = \"bitesize\"\n\
                        client_secret = \"s3cret\"\ngroups_from = \"userinfo\"\n";
            let config = load_toml(jail, text).unwrap();
            assert!(!config.local_accounts);
            let corp = &config.oidc[0];
            assert_eq!(corp.display_name(), "Corp SSO");
            assert_eq!(corp.groups_from, GroupsFrom::Userinfo);
            assert_eq!(corp.groups_claim, "groups");
            assert_eq!(corp.username_claim, "preferred_username");
            assert_eq!(corp.scopes, ["openid", "profile", "email", "groups"]);
            assert_eq!(
                config.oidc_redirect_url(corp),
                "https://logs.example.com/auth/oidc/corp/callback"
            );
            assert!(
                !format!("{config:?}").contains("s3cret"),
                "secrets never print"
            );

            jail.set_env(
                "BITESIZE_OIDC",
                r#"[{name="test", issuer_url="http://127.0.0.1:9000", client_id="c"}]"#,
            );
            jail.set_env("BITESIZE_LISTEN", "127.0.0.1:8181");
            let config = load_toml(jail, "").unwrap();
            assert_eq!(config.oidc[0].name, "test");
            assert_eq!(config.oidc[0].display_name(), "test");
            assert_eq!(
                config.oidc_redirect_url(&config.oidc[0]),
                "http://127.0.0.1:8181/auth/oidc/test/callback"
            );
            assert!(config.local_accounts, "on by default");
            Ok(())
        });
    }

    #[test]
    fn oidc_client_secret_from_file_or_environment() {
        Jail::expect_with(|jail| {
            let provider = |extra: &str| {
                format!("[[oidc]]\nname = \"corp\"\nissuer_url = \"https://idp.example.com\"\nclient_id = \"c\"\n{extra}")
            };
            jail.create_file("client-secret", "from-a-file\n").unwrap();
            let config =
                load_toml(jail, &provider("client_secret_file = \"client-secret\"\n")).unwrap();
            let secret = config.oidc[0].client_secret("oidc[0]").unwrap().unwrap();
            assert_eq!(secret.expose(), "from-a-file");
            jail.set_env("CORP_OIDC_SECRET", "from-the-environment");
            let config = load_toml(
                jail,
                &provider("client_secret_env = \"CORP_OIDC_SECRET\"\n"),
            )
            .unwrap();
            let secret = config.oidc[0].client_secret("oidc[0]").unwrap().unwrap();
            assert_eq!(secret.expose(), "from-the-environment");
            assert!(!format!("{config:?}").contains("from-the-environment"));
            for (extra, key) in [
                (
                    "client_secret_file = \"missing\"\n",
                    "oidc[0].client_secret_file",
                ),
                (
                    "client_secret_env = \"NOT_SET_ANYWHERE\"\n",
                    "oidc[0].client_secret_env",
                ),
                (
                    "client_secret = \"x\"\nclient_secret_env = \"CORP_OIDC_SECRET\"\n",
                    "oidc[0].client_secret",
                ),
            ] {
                let err = load_toml(jail, &provider(extra)).unwrap_err().to_string();
                assert!(err.contains(key), "{extra}: {err}");
                assert!(!err.contains("from-the-environment"), "{err}");
            }
            Ok(())
        });
    }

    #[test]
    fn oidc_errors_name_the_key() {
        Jail::expect_with(|jail| {
            let provider = |extra: &str| {
                format!("[[oidc]]\nname = \"corp\"\nissuer_url = \"https://idp.example.com\"\nclient_id = \"c\"\n{extra}")
            };
            for (text, key) in [
                (provider("colour = \"blue\"\n"), "colour"),
                (provider("groups_from = \"ldap\"\n"), "groups_from"),
                (
                    "[[oidc]]\nname = \"Corp SSO\"\nissuer_url = \"https://i\"\nclient_id = \"c\"\n".into(),
                    "oidc[0].name",
                ),
                (
                    "[[oidc]]\nname = \"corp\"\nissuer_url = \"http://idp.example.com\"\nclient_id = \"c\"\n".into(),
                    "oidc[0].issuer_url",
                ),
                (
                    "[[oidc]]\nname = \"corp\"\nissuer_url = \"https://i\"\n".into(),
                    "oidc[0].client_id",
                ),
                (provider("scopes = [\"profile\"]\n"), "oidc[0].scopes"),
                (
                    format!("{}{}", provider(""), provider("")),
                    "oidc[1].name",
                ),
                (
                    format!("listen = \"0.0.0.0:8080\"\n{}", provider("")),
                    "public_url",
                ),
                ("local_accounts = false\n".into(), "local_accounts"),
                ("public_url = \"logs.example.com\"\n".into(), "public_url"),
            ] {
                let err = load_toml(jail, &text).unwrap_err().to_string();
                assert!(err.contains(key), "{text}: {err}");
            }
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
