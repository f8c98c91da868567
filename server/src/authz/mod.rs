//! Authorization, in one place: roles and bindings turn a [`Principal`] into a
//! [`NamespaceScope`], the only way to reach log data. Every data path (search, histogram,
//! facets, tail, export) takes a scope and filters by it itself, so no caller can forget.
//!
//! Roles: `admin` (everything), `auditor` (reads every namespace, each read with a stated
//! reason), `owner` and `viewer` of a namespace pattern (`shop`, `payments-*`, `*`).
//! Bindings give a role to a user or an OIDC group.

pub mod bindings;
pub mod routes;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A namespace name or a pattern with `*` wildcards (`shop`, `payments-*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern(String);

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern> {
        let text = text.trim();
        let valid = !text.is_empty()
            && text.len() <= 63
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*');
        if valid {
            Ok(Pattern(text.to_owned()))
        } else {
            Err(Error::BadRequest(format!(
                "namespace pattern {text:?}: use lowercase letters, digits, '-' and '*' (e.g. shop, payments-*, *)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Glob match: `*` matches any run of characters.
    pub fn matches(&self, namespace: &str) -> bool {
        glob_match(self.0.as_bytes(), namespace.as_bytes())
    }
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Auditor,
    Owner,
    Viewer,
}

impl Role {
    pub fn parse(text: &str) -> Result<Role> {
        match text {
            "admin" => Ok(Role::Admin),
            "auditor" => Ok(Role::Auditor),
            "owner" => Ok(Role::Owner),
            "viewer" => Ok(Role::Viewer),
            other => Err(Error::BadRequest(format!(
                "role {other:?}: use admin, auditor, owner or viewer"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Owner => "owner",
            Role::Viewer => "viewer",
        }
    }
}

/// A role over a pattern (admin and auditor always over `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub role: Role,
    pub pattern: Pattern,
}

/// Who is asking: a user (signed in, or through one of their API tokens).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub groups: Vec<String>,
    /// Set when the request came with an API token: the token's own limits.
    pub token: Option<TokenLimits>,
}

/// What an API token may do. A token created by a user is limited to a subset of that user's
/// permissions, checked again at every use; a token created on the command line by an
/// operator (`standalone`) carries its grant by itself.
#[derive(Debug, Clone)]
pub struct TokenLimits {
    pub id: i64,
    pub role: Role,
    pub patterns: Vec<Pattern>,
    pub standalone: bool,
}

/// The namespaces a principal may read, and what else it may do. Only [`scope_for`] builds
/// one: its fields are private.
#[derive(Debug, Clone)]
pub struct NamespaceScope {
    actor: String,
    grants: Vec<Grant>,
    /// A token's limits, applied on top of the grants.
    limit: Option<Vec<Grant>>,
}

impl NamespaceScope {
    /// Who the reads are recorded under.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    fn effective<'a>(&'a self, check: impl Fn(&Grant) -> bool + 'a) -> bool {
        self.grants.iter().any(&check)
            && self
                .limit
                .as_ref()
                .is_none_or(|limit| limit.iter().any(&check))
    }

    /// May read the logs of `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.effective(|g| match g.role {
            Role::Admin | Role::Auditor => true,
            Role::Owner | Role::Viewer => g.pattern.matches(namespace),
        })
    }

    /// The readable part of `namespaces`, in order.
    pub fn filter(&self, namespaces: Vec<String>) -> Vec<String> {
        namespaces.into_iter().filter(|n| self.allows(n)).collect()
    }

    pub fn is_admin(&self) -> bool {
        self.effective(|g| g.role == Role::Admin)
    }

    /// Reads need a stated reason: an auditor reading (an admin or a namespace's own team
    /// need none).
    pub fn requires_reason(&self) -> bool {
        !self.is_admin() && self.effective(|g| g.role == Role::Auditor)
    }

    /// May change `namespace`'s retention (owners) or anything (admins).
    pub fn owns(&self, namespace: &str) -> bool {
        self.effective(|g| match g.role {
            Role::Admin => true,
            Role::Owner => g.pattern.matches(namespace),
            Role::Auditor | Role::Viewer => false,
        })
    }

    /// The roles in force, for display.
    pub fn grants(&self) -> Vec<Grant> {
        match &self.limit {
            None => self.grants.clone(),
            Some(limit) => limit.clone(),
        }
    }
}

/// The scope of `principal`, from its bindings (and its token's limits). Bindings are read
/// at every request, so a change is effective on the next one.
pub async fn scope_for(db: &DatabaseConnection, principal: &Principal) -> Result<NamespaceScope> {
    let token_grants = principal.token.as_ref().map(|token| {
        token
            .patterns
            .iter()
            .map(|pattern| Grant {
                role: token.role,
                pattern: pattern.clone(),
            })
            .collect::<Vec<_>>()
    });
    let grants = match &principal.token {
        Some(token) if token.standalone => token_grants.clone().unwrap_or_default(),
        _ => bindings::grants_for(db, &principal.user, &principal.groups).await?,
    };
    let limit = match &principal.token {
        Some(token) if !token.standalone => token_grants,
        _ => None,
    };
    Ok(NamespaceScope {
        actor: principal.user.clone(),
        grants,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: Role, pattern: &str) -> Grant {
        Grant {
            role,
            pattern: Pattern::parse(pattern).unwrap(),
        }
    }

    fn scope(grants: Vec<Grant>, limit: Option<Vec<Grant>>) -> NamespaceScope {
        NamespaceScope {
            actor: "t".into(),
            grants,
            limit,
        }
    }

    #[test]
    fn patterns_glob() {
        let p = Pattern::parse("payments-*").unwrap();
        assert!(
            p.matches("payments-eu")
                && p.matches("payments-")
                && !p.matches("payments")
                && !p.matches("xpayments-eu")
        );
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        assert!(Pattern::parse("*-prod").unwrap().matches("shop-prod"));
        assert!(
            Pattern::parse("shop").unwrap().matches("shop")
                && !Pattern::parse("shop").unwrap().matches("shop2")
        );
        for bad in ["", "Shop", "a b", "shop;drop", "../x"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn viewer_sees_only_its_patterns() {
        let s = scope(
            vec![
                grant(Role::Viewer, "shop"),
                grant(Role::Viewer, "payments-*"),
            ],
            None,
        );
        assert_eq!(
            s.filter(vec!["auth".into(), "shop".into(), "payments-eu".into()]),
            ["shop", "payments-eu"]
        );
        assert!(!s.is_admin() && !s.requires_reason() && !s.owns("shop"));
    }

    #[test]
    fn auditor_reads_everything_with_a_reason() {
        let s = scope(vec![grant(Role::Auditor, "*")], None);
        assert!(s.allows("anything") && s.requires_reason() && !s.is_admin());
        let admin = scope(
            vec![grant(Role::Admin, "*"), grant(Role::Auditor, "*")],
            None,
        );
        assert!(!admin.requires_reason());
    }

    #[test]
    fn token_limits_narrow_and_never_widen() {
        let user = vec![grant(Role::Viewer, "shop")];
        let s = scope(user.clone(), Some(vec![grant(Role::Viewer, "*")]));
        assert!(
            s.allows("shop") && !s.allows("auth"),
            "a wider token does not widen the user"
        );
        let s = scope(
            vec![grant(Role::Admin, "*")],
            Some(vec![grant(Role::Viewer, "shop")]),
        );
        assert!(
            s.allows("shop") && !s.allows("auth") && !s.is_admin(),
            "a narrower token narrows an admin"
        );
        let s = scope(vec![], Some(vec![grant(Role::Viewer, "*")]));
        assert!(
            !s.allows("shop"),
            "no binding left: the token reads nothing"
        );
    }
}
