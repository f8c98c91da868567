//! The demo's people: an admin, an auditor, a viewer of `shop` and an owner of `payments`,
//! each a local account with a password. Passwords are made at the first start and kept in
//! `demo-logins.txt` (mode 0600) in the data directory, so every start can print them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::Rng;
use sea_orm::DatabaseConnection;

use crate::auth::tokens::{self, NewToken};
use crate::authz::bindings::{self, NewBinding};
use crate::authz::{Pattern, Role};
use crate::config::Secret;
use crate::{db, Error, Result};

/// (user, role, pattern)
const PEOPLE: [(&str, &str, Option<&str>); 4] = [
    ("admin", "admin", None),
    ("auditor", "auditor", None),
    ("shop-viewer", "viewer", Some("shop")),
    ("payments-owner", "owner", Some("payments")),
];

/// Creates what is missing; returns the login lines to print.
pub async fn prepare(
    db: &DatabaseConnection,
    data_dir: &Path,
    admin_token: Option<&Secret>,
) -> Result<Vec<String>> {
    let logins_path = data_dir.join("demo-logins.txt");
    let mut logins = std::fs::read_to_string(&logins_path).unwrap_or_default();
    for (user, role, pattern) in PEOPLE {
        if db::users::find(db, user).await?.is_some() {
            continue;
        }
        let password = random_password();
        db::users::add(db, user, Some(&password)).await?;
        let binding = NewBinding {
            subject_kind: "user".into(),
            subject: user.into(),
            role: role.into(),
            pattern: pattern.map(str::to_owned),
        };
        bindings::add(db, binding, "demo").await?;
        let what = match pattern {
            Some(p) => format!("{role} of {p}"),
            None => role.to_owned(),
        };
        logins.push_str(&format!("{user:<15} {password}   ({what})\n"));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&logins_path)
        .map_err(|e| Error::Io(format!("writing {}", logins_path.display()), e))?;
    file.write_all(logins.as_bytes())
        .map_err(|e| Error::Io(format!("writing {}", logins_path.display()), e))?;

    if let Some(secret) = admin_token {
        let exists = tokens::authenticate(db, secret.expose()).await?.is_some();
        if !exists {
            let token = NewToken {
                user: "admin".into(),
                name: "BITESIZE_DEMO_ADMIN_TOKEN".into(),
                role: Role::Admin,
                patterns: vec![Pattern::parse("*")?],
                expires_at: None,
                standalone: true,
                secret: Some(secret.expose().to_owned()),
            };
            tokens::create(db, token).await?;
        }
    }
    Ok(logins.lines().map(str::to_owned).collect())
}

fn random_password() -> String {
    const WORDS: [&str; 16] = [
        "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
        "kestrel", "lagoon", "maple", "nectar", "orchid", "pebble",
    ];
    let mut rng = rand::rng();
    let words: Vec<&str> = (0..3)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect();
    format!("{}-{}", words.join("-"), rng.random_range(10..100))
}
