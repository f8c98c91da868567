//! TLS and SASL to Kafka: the config keys (`kafka.tls`, `kafka.sasl`), their checks and the
//! librdkafka settings they become. Shared by the shipper and the server, so both speak one
//! vocabulary. Errors are `"<key>: <why>"`; each crate wraps them in its own error type.

use std::path::PathBuf;

#[cfg(feature = "agent")]
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// TLS to Kafka. Files are PEM; the key may be encrypted with `key_password`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaTls {
    /// CA certificates to trust (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
    /// Check the broker's host name against its certificate (default true).
    pub verify_hostname: Option<bool>,
}

/// SASL to Kafka: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`. The password comes from
/// `password` (e.g. `BITESIZE_KAFKA__SASL__PASSWORD`) or from `password_file`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSasl {
    pub mechanism: String,
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

/// The SASL mechanisms librdkafka is built with here.
pub const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSasl {
    /// The password, read from its file when it is given as one (trailing newline removed).
    pub fn password(&self) -> Result<Secret, String> {
        match (&self.password, &self.password_file) {
            (Some(password), None) => Ok(password.clone()),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|text| Secret::new(text.trim_end_matches(['\r', '\n'])))
                .map_err(|e| {
                    format!(
                        "kafka.sasl.password_file: cannot read {}: {e}",
                        file.display()
                    )
                }),
            (Some(_), Some(_)) => {
                Err("kafka.sasl.password_file: give password or password_file, not both".into())
            }
            (None, None) => {
                Err("kafka.sasl.password: missing (or set kafka.sasl.password_file)".into())
            }
        }
    }
}

/// TLS files exist (a certificate comes with its key), the SASL mechanism is known, the
/// user is named and the password is there.
pub fn validate(tls: Option<&KafkaTls>, sasl: Option<&KafkaSasl>) -> Result<(), String> {
    let bad = |key: &str, why: String| Err(format!("{key}: {why}"));
    if let Some(tls) = tls {
        for (key, file) in [
            ("kafka.tls.ca_file", &tls.ca_file),
            ("kafka.tls.cert_file", &tls.cert_file),
            ("kafka.tls.key_file", &tls.key_file),
        ] {
            if let Some(file) = file {
                if !file.is_file() {
                    return bad(key, format!("{} does not exist", file.display()));
                }
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return bad("kafka.tls.key_file", "must be set with cert_file".into())
            }
            (None, Some(_)) => {
                return bad("kafka.tls.cert_file", "must be set with key_file".into())
            }
            _ => {}
        }
    }
    if let Some(sasl) = sasl {
        if !SASL_MECHANISMS.contains(&sasl.mechanism.as_str()) {
            return bad(
                "kafka.sasl.mechanism",
                format!(
                    "{:?} is not known: use {}",
                    sasl.mechanism,
                    SASL_MECHANISMS.join(", ")
                ),
            );
        }
        if sasl.username.trim().is_empty() {
            return bad("kafka.sasl.username", "must be set".into());
        }
        sasl.password()?;
    }
    Ok(())
}

#[cfg(feature = "agent")]
/// Sets `security.protocol` from which of TLS and SASL are given, and their settings.
/// The result holds the passwords: never log or print the `ClientConfig`.
pub fn apply(
    client: &mut ClientConfig,
    tls: Option<&KafkaTls>,
    sasl: Option<&KafkaSasl>,
) -> Result<(), String> {
    let protocol = match (tls, sasl) {
        (None, None) => "plaintext",
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    client.set("security.protocol", protocol);
    if let Some(tls) = tls {
        if let Some(ca) = &tls.ca_file {
            client.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &tls.cert_file {
            client.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &tls.key_file {
            client.set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = &tls.key_password {
            client.set("ssl.key.password", password.expose());
        }
        if tls.verify_hostname == Some(false) {
            client.set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    if let Some(sasl) = sasl {
        client.set("sasl.mechanism", &sasl.mechanism);
        client.set("sasl.username", &sasl.username);
        client.set("sasl.password", sasl.password()?.expose());
    }
    Ok(())
}
