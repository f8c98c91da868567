//! The pages around search: access (bindings and API tokens), the audit log, namespaces, and
//! the page that says what access is missing. Every control is a plain link, a GET form or
//! a POST form, so each works without JavaScript.

use leptos::prelude::*;

use crate::search::{href, urlencode};
use crate::{Header, Viewer};

/// One role binding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BindingRow {
    pub id: i64,
    /// `user` or `group`.
    pub subject_kind: String,
    pub subject: String,
    pub role: String,
    pub pattern: String,
    pub created_by: String,
    pub created_at: String,
}

/// One API token (never its secret).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub owner: String,
    pub name: String,
    /// `bsz_ab12…`: enough to recognise it.
    pub prefix: String,
    pub role: String,
    pub patterns: String,
    pub created_at: String,
    /// Empty: never.
    pub expires_at: String,
    /// Empty: never used.
    pub last_used_at: String,
    pub revoked: bool,
}

/// A token just created: its secret, shown this once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTokenSecret {
    pub name: String,
    pub secret: String,
}

/// `/access`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessPage {
    pub viewer: Viewer,
    /// Admins see and change every binding and see every token.
    pub admin: bool,
    pub bindings: Vec<BindingRow>,
    pub tokens: Vec<TokenRow>,
    pub new_token: Option<NewTokenSecret>,
    /// What the last change did, said plainly.
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// One audit event as the audit page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub namespaces: String,
    pub query: String,
    pub hits: String,
    pub reason: String,
    pub detail: String,
}

/// The audit page's filter, as typed (empty: any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub namespace: String,
    pub from: String,
    pub to: String,
}

impl AuditQuery {
    /// `path?actor=…` with the empty parameters left out, then `extra`.
    pub fn href(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let pairs = [
            ("actor", self.actor.as_str()),
            ("action", self.action.as_str()),
            ("namespace", self.namespace.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
        ];
        href(path, &pairs, extra)
    }
}

/// The hash chain's state, from verify.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainStatus {
    pub ok: bool,
    pub events: u64,
    /// The first broken link, said plainly.
    pub broken: Option<String>,
}

/// `/audit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    pub viewer: Viewer,
    pub query: AuditQuery,
    pub events: Vec<AuditRow>,
    pub chain: ChainStatus,
    /// The id to page on from (older events); none on the last page.
    pub older: Option<i64>,
    /// Whether this is a later page (`before_id` set).
    pub paged: bool,
    pub error: Option<String>,
}

/// One namespace as `/namespaces` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceRow {
    pub name: String,
    pub topic: String,
    /// Partitions of the topic, as the registry knows them (empty: not known).
    pub partitions: String,
    /// Kafka's retention of the topic (`3 days`, `unlimited`, empty: not known).
    pub kafka_retention: String,
    /// How long the index keeps records (`7 days`, or `server default`).
    pub index_retention: String,
    /// Records searchable and the index's size (`12 345 records, 3.4 MiB`; empty: none).
    pub indexed: String,
    /// Records in the Kafka topic (empty: not known).
    pub kafka_records: String,
    /// Records in Kafka not indexed yet (empty: not known).
    pub lag: String,
    pub archive: bool,
    /// The owning group, if any.
    pub owner: String,
    pub created_at: String,
    /// In the namespace registry (created or adopted by an admin), so it can be changed here.
    pub managed: bool,
    /// The viewer may change its retention (its owners and admins).
    pub editable: bool,
}

/// `/namespaces`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespacesPage {
    pub viewer: Viewer,
    pub namespaces: Vec<NamespaceRow>,
    /// Admins create and delete namespaces.
    pub admin: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The 403 page: what access is missing and who grants it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ForbiddenPage {
    pub viewer: Viewer,
    /// What was asked for (`/audit`).
    pub wanted: String,
    /// What is missing, said plainly.
    pub missing: String,
    /// The admins who can grant it.
    pub admins: Vec<String>,
}

#[component]
pub(crate) fn AccessView(page: AccessPage) -> impl IntoView {
    let AccessPage {
        viewer,
        admin,
        bindings,
        tokens,
        new_token,
        notice,
        error,
    } = page;
    let binding_rows = bindings
        .into_iter()
        .map(|b| {
            let remove = admin.then(|| {
                let action = format!("/access/bindings/{}/delete", b.id);
                let label = format!("Remove {} {} as {} of {}", b.subject_kind, b.subject, b.role, b.pattern);
                view! {
                    <form method="post" action=action class="inline">
                        <button type="submit" class="danger" aria-label=label>"Remove"</button>
                    </form>
                }
            });
            view! {
                <tr>
                    <td>{b.subject_kind}</td><td class="mono">{b.subject}</td><td>{b.role}</td>
                    <td class="mono">{b.pattern}</td><td>{b.created_by}</td><td class="mono">{b.created_at}</td>
                    <td>{remove}</td>
                </tr>
            }
        })
        .collect_view();
    let add_binding = admin.then(|| {
        view! {
            <form method="post" action="/access/bindings" class="card row" aria-label="Add a binding">
                <label>"Subject "<select name="subject_kind"><option value="user">"user"</option><option value="group">"group"</option></select></label>
                <label>"Name "<input name="subject" required=true placeholder="alice or shop-team"/></label>
                <label>"Role "<select name="role">
                    <option value="viewer">"viewer"</option><option value="owner">"owner"</option>
                    <option value="auditor">"auditor"</option><option value="admin">"admin"</option>
                </select></label>
                <label>"Namespaces "<input name="pattern" placeholder="shop or shop-* (viewer, owner)"/></label>
                <button type="submit">"Add binding"</button>
            </form>
        }
    });
    let bindings_section = admin.then(|| {
        view! {
            <section aria-labelledby="bindings-h">
                <h2 id="bindings-h">"Role bindings"</h2>
                <p class="help">"A binding gives a user or a group a role over the namespaces a pattern matches; it applies on the next page load."</p>
                {add_binding}
                <div class="table"><table class="grid">
                    <thead><tr><th scope="col">"Kind"</th><th scope="col">"Subject"</th><th scope="col">"Role"</th><th scope="col">"Namespaces"</th><th scope="col">"Added by"</th><th scope="col">"Added"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody id="bindings">{binding_rows}</tbody>
                </table></div>
            </section>
        }
    });
    let token_rows = tokens
        .into_iter()
        .map(|t| {
            let revoke = (!t.revoked).then(|| {
                let action = format!("/access/tokens/{}/revoke", t.id);
                let label = format!("Revoke token {}", t.name);
                view! {
                    <form method="post" action=action class="inline">
                        <button type="submit" class="danger" aria-label=label>"Revoke"</button>
                    </form>
                }
            });
            let state = if t.revoked { "revoked" } else { "active" };
            let or_never = |s: String| if s.is_empty() { "never".to_owned() } else { s };
            view! {
                <tr class=state>
                    <td>{t.owner}</td><td>{t.name}</td><td class="mono">{t.prefix}</td><td>{t.role}</td>
                    <td class="mono">{t.patterns}</td><td class="mono">{t.created_at}</td>
                    <td class="mono">{or_never(t.expires_at)}</td><td class="mono">{or_never(t.last_used_at)}</td>
                    <td>{state}</td><td>{revoke}</td>
                </tr>
            }
        })
        .collect_view();
    let secret = new_token.map(|t| {
        view! {
            <div class="card secret" role="status">
                <p>{format!("Token “{}” created. Copy it now: it is shown this once.", t.name)}</p>
                <pre class="mono" id="new-token">{t.secret}</pre>
            </div>
        }
    });
    let token_heading = if admin {
        "API tokens (everyone’s)"
    } else {
        "Your API tokens"
    };
    view! {
        <Header viewer=viewer current="/access"/>
        <main class="page" id="main">
            <h1 class="title">"Access"</h1>
            {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {bindings_section}
            <section aria-labelledby="tokens-h">
                <h2 id="tokens-h">{token_heading}</h2>
                <p class="help">"Send a token as Authorization: Bearer <token>. It carries at most your own permissions."</p>
                {secret}
                <form method="post" action="/access/tokens" class="card row" aria-label="Create a token">
                    <label>"Name "<input name="name" required=true placeholder="ci-checks"/></label>
                    <label>"Role "<select name="role">
                        <option value="viewer">"viewer"</option><option value="owner">"owner"</option>
                        <option value="auditor">"auditor"</option><option value="admin">"admin"</option>
                    </select></label>
                    <label>"Namespaces "<input name="namespaces" placeholder="shop, shop-* (viewer, owner)"/></label>
                    <label>"Expires in "<input name="expires_in" placeholder="30d" size="6"/></label>
                    <button type="submit">"Create token"</button>
                </form>
                <div class="table"><table class="grid">
                    <thead><tr><th scope="col">"Owner"</th><th scope="col">"Name"</th><th scope="col">"Prefix"</th><th scope="col">"Role"</th><th scope="col">"Namespaces"</th><th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col">"State"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                    <tbody id="tokens">{token_rows}</tbody>
                </table></div>
            </section>
        </main>
    }
}

#[component]
pub(crate) fn AuditView(page: AuditPage) -> impl IntoView {
    let AuditPage {
        viewer,
        query,
        events,
        chain,
        older,
        paged,
        error,
    } = page;
    let chain_view = if chain.ok {
        view! { <p class="chain ok" role="status">{format!("✔ Hash chain intact: {} events verified.", chain.events)}</p> }.into_any()
    } else {
        let broken = chain.broken.unwrap_or_default();
        view! { <p class="chain broken" role="alert">{format!("✘ Hash chain BROKEN: {broken}")}</p> }.into_any()
    };
    let shown = events.len();
    let rows = events
        .into_iter()
        .map(|e| {
            view! {
                <tr class="event">
                    <td class="mono time">{e.at}</td><td>{e.actor}</td><td class="mono">{e.action}</td>
                    <td class="mono">{e.namespaces}</td><td class="mono">{e.query}</td><td class="num">{e.hits}</td>
                    <td class="reason">{e.reason}</td>
                    <td><details><summary>{format!("#{}", e.id)}</summary><pre class="record">{e.detail}</pre></details></td>
                </tr>
            }
        })
        .collect_view();
    let ndjson = query.href("/audit/export", &[("format", "ndjson")]);
    let csv = query.href("/audit/export", &[("format", "csv")]);
    let paging = (paged || older.is_some()).then(|| {
        let newest = paged.then(|| {
            let href = query.href("/audit", &[]);
            view! { <a href=href class="newest">"↑ Newest"</a> }
        });
        let more = older.map(|id| {
            let href = query.href("/audit", &[("before_id", &id.to_string())]);
            view! { <a href=href class="more" rel="next">"Older ↓"</a> }
        });
        view! { <nav class="paging" aria-label="Pages">{newest}{more}</nav> }
    });
    view! {
        <Header viewer=viewer current="/audit"/>
        <main class="page" id="main">
            <h1 class="title">"Audit log"</h1>
            {chain_view}
            <form method="get" action="/audit" class="card row" aria-label="Filter events">
                <label>"Actor "<input name="actor" value=query.actor.clone() placeholder="alice"/></label>
                <label>"Action "<input name="action" value=query.action.clone() placeholder="search"/></label>
                <label>"Namespace "<input name="namespace" value=query.namespace.clone() placeholder="shop"/></label>
                <label>"From "<input name="from" value=query.from.clone() placeholder="now-24h" size="14"/></label>
                <label>"To "<input name="to" value=query.to.clone() placeholder="now" size="14"/></label>
                <button type="submit">"Filter"</button>
            </form>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="toolbar">
                <p class="summary" role="status">{format!("{shown} {}, newest first", if shown == 1 { "event" } else { "events" })}</p>
                <span class="export">"Export: "<a href=ndjson>"NDJSON"</a>" · "<a href=csv>"CSV"</a></span>
            </div>
            <div class="table"><table class="grid hits">
                <thead><tr><th scope="col">"Time (UTC)"</th><th scope="col">"Actor"</th><th scope="col">"Action"</th><th scope="col">"Namespaces"</th><th scope="col">"Query"</th><th scope="col">"Hits"</th><th scope="col">"Reason"</th><th scope="col">"Event"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table></div>
            {paging}
        </main>
    }
}

/// An unknown value as a dash.
fn dash(text: String) -> String {
    if text.is_empty() {
        "—".to_owned()
    } else {
        text
    }
}

#[component]
pub(crate) fn NamespacesView(page: NamespacesPage) -> impl IntoView {
    let NamespacesPage {
        viewer,
        namespaces,
        admin,
        notice,
        error,
    } = page;
    let empty = namespaces.is_empty();
    let rows = namespaces
        .into_iter()
        .map(|n| {
            let search = format!("/search?namespace={}", urlencode(&n.name));
            let path = format!("/namespaces/{}", urlencode(&n.name));
            let retention = (n.managed && n.editable).then(|| {
                let action = format!("{path}/retention");
                let label = format!("Index retention of {} in days (0: server default)", n.name);
                view! {
                    <form method="post" action=action class="inline">
                        <input name="retention_days" size="4" inputmode="numeric" aria-label=label placeholder="days"/>
                        " "<button type="submit" class="plain">"Set"</button>
                    </form>
                }
            });
            let delete = (n.managed && admin).then(|| {
                let action = format!("{path}/delete");
                let label = format!("Type {} to delete it and its topic", n.name);
                view! {
                    <form method="post" action=action class="inline">
                        <input name="confirm" size="10" aria-label=label.clone() placeholder="type the name" title=label/>
                        " "<button type="submit" class="danger">"Delete"</button>
                    </form>
                }
            });
            view! {
                <tr>
                    <td><a href=search class="mono">{n.name}</a></td><td class="mono">{n.topic}</td>
                    <td class="num">{dash(n.partitions)}</td><td>{dash(n.kafka_retention)}</td><td>{n.index_retention}</td>
                    <td class="num">{dash(n.indexed)}</td><td class="num">{dash(n.kafka_records)}</td><td class="num">{dash(n.lag)}</td>
                    <td>{if n.archive { "yes" } else { "no" }}</td><td>{dash(n.owner)}</td><td class="mono">{n.created_at}</td>
                    <td>{retention}</td><td>{delete}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <Header viewer=viewer current="/namespaces"/>
        <main class="page" id="main">
            <h1 class="title">"Namespaces"</h1>
            <p class="help">"The namespaces you may read: their Kafka topic, how long their logs are kept (— : not set in the namespace registry), what is searchable, what Kafka holds and how many records wait to be indexed (lag)."</p>
            {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {admin.then(|| view! {
                <form method="post" action="/namespaces" class="card row" aria-label="Create a namespace">
                    <label>"Name "<input name="name" required=true placeholder="shop"/></label>
                    <label>"Partitions "<input name="partitions" size="3" inputmode="numeric" placeholder="default"/></label>
                    <label>"Index retention (days) "<input name="retention_days" size="4" inputmode="numeric" placeholder="default"/></label>
                    <label>"Owner group "<input name="owner_group" placeholder="shop-team"/></label>
                    <button type="submit">"Create namespace"</button>
                </form>
            })}
            {empty.then(|| view! { <p class="notice">"No namespaces you may read yet: ask an admin for a binding."</p> })}
            <div class="table"><table class="grid">
                <thead><tr><th scope="col">"Namespace"</th><th scope="col">"Topic"</th><th scope="col">"Partitions"</th><th scope="col">"Kafka retention"</th><th scope="col">"Index retention"</th><th scope="col">"Indexed"</th><th scope="col">"In Kafka"</th><th scope="col">"Lag"</th><th scope="col">"Archive"</th><th scope="col">"Owner group"</th><th scope="col">"Since"</th><th scope="col">"Change retention"</th><th scope="col"><span class="visually-hidden">"Delete"</span></th></tr></thead>
                <tbody>{rows}</tbody>
            </table></div>
        </main>
    }
}

#[component]
pub(crate) fn ForbiddenView(page: ForbiddenPage) -> impl IntoView {
    let ForbiddenPage {
        viewer,
        wanted,
        missing,
        admins,
    } = page;
    let who = if admins.is_empty() {
        "No admin is set up yet: an operator grants the admin role with `bitesize binding add --role admin`.".to_owned()
    } else {
        format!(
            "Ask an admin to grant it under Access: {}.",
            admins.join(", ")
        )
    };
    view! {
        <Header viewer=viewer current=""/>
        <main class="page" id="main">
            <h1 class="title">"You do not have access to this page"</h1>
            <p class="error" role="alert">{format!("{wanted}: {missing}")}</p>
            <p>{who}</p>
            <p><a href="/search">"Back to search"</a></p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        render_access_page, render_audit_page, render_forbidden_page, render_namespaces_page,
    };

    fn viewer(admin: bool) -> Viewer {
        Viewer {
            user: "alice".into(),
            roles: vec![if admin { "admin" } else { "viewer of shop" }.into()],
            admin,
            audit_reader: admin,
        }
    }

    #[test]
    fn access_page_offers_binding_forms_to_admins_only() {
        let binding = BindingRow {
            id: 7,
            subject_kind: "group".into(),
            subject: "shop-team".into(),
            role: "viewer".into(),
            pattern: "shop-*".into(),
            ..Default::default()
        };
        let html = render_access_page(AccessPage {
            viewer: viewer(true),
            admin: true,
            bindings: vec![binding],
            ..Default::default()
        });
        assert!(
            html.contains(r#"action="/access/bindings/7/delete""#),
            "{html}"
        );
        assert!(html.contains(r#"action="/access/bindings""#));
        assert!(html.contains("shop-team") && html.contains("shop-*"));
        assert!(
            html.contains(r#"href="/audit""#),
            "admins see the audit link"
        );

        let html = render_access_page(AccessPage {
            viewer: viewer(false),
            tokens: vec![TokenRow {
                id: 3,
                name: "ci".into(),
                revoked: false,
                ..Default::default()
            }],
            new_token: Some(NewTokenSecret {
                name: "ci".into(),
                secret: "bsz_secret<1>".into(),
            }),
            ..Default::default()
        });
        assert!(!html.contains("/access/bindings"), "{html}");
        assert!(!html.contains(r#"href="/audit""#), "{html}");
        assert!(html.contains(r#"action="/access/tokens/3/revoke""#));
        assert!(html.contains("bsz_secret&lt;1&gt;") && html.contains("shown this once"));
        assert!(html.contains("Your API tokens"));
    }

    #[test]
    fn audit_page_shows_chain_status_filters_and_export() {
        let page = AuditPage {
            viewer: viewer(true),
            query: AuditQuery {
                actor: "aude".into(),
                ..Default::default()
            },
            events: vec![AuditRow {
                id: 9,
                actor: "aude".into(),
                action: "search".into(),
                reason: "INC-42 <b>".into(),
                ..Default::default()
            }],
            chain: ChainStatus {
                ok: true,
                events: 9,
                broken: None,
            },
            older: Some(9),
            ..Default::default()
        };
        let html = render_audit_page(page.clone());
        assert!(
            html.contains("Hash chain intact: 9 events verified"),
            "{html}"
        );
        assert!(html.contains("INC-42 &lt;b&gt;"));
        assert!(
            html.contains(r#"href="/audit/export?actor=aude&amp;format=csv""#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/audit?actor=aude&amp;before_id=9""#),
            "{html}"
        );
        assert!(html.contains(r#"name="actor" value="aude""#), "{html}");
        let html = render_audit_page(AuditPage {
            chain: ChainStatus {
                ok: false,
                events: 9,
                broken: Some("at event #4: hash does not match".into()),
            },
            ..page
        });
        assert!(html.contains("BROKEN: at event #4"), "{html}");
    }

    #[test]
    fn namespaces_and_forbidden_pages() {
        let html = render_namespaces_page(NamespacesPage {
            viewer: viewer(false),
            namespaces: vec![NamespaceRow {
                name: "shop".into(),
                topic: "logs.shop".into(),
                index_retention: "7 days".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(html.contains(r#"href="/search?namespace=shop""#), "{html}");
        assert!(html.contains("logs.shop") && html.contains("7 days"));
        assert!(html.contains(r#"aria-current="page""#));
        assert!(
            !html.contains("action=\"/namespaces"),
            "a viewer changes nothing: {html}"
        );

        // Admins: the create form, and per registry namespace retention and delete forms.
        let html = render_namespaces_page(NamespacesPage {
            viewer: viewer(true),
            admin: true,
            namespaces: vec![NamespaceRow {
                name: "shop".into(),
                managed: true,
                editable: true,
                ..Default::default()
            }],
            error: Some("confirm: type the namespace name".into()),
            ..Default::default()
        });
        assert!(html.contains(r#"action="/namespaces""#), "{html}");
        assert!(
            html.contains(r#"action="/namespaces/shop/retention""#),
            "{html}"
        );
        assert!(
            html.contains(r#"action="/namespaces/shop/delete""#),
            "{html}"
        );
        assert!(html.contains("confirm: type the namespace name"));

        let html = render_forbidden_page(ForbiddenPage {
            viewer: viewer(false),
            wanted: "/audit".into(),
            missing: "the audit log needs the auditor or the admin role".into(),
            admins: vec!["admin".into(), "members of group ops".into()],
        });
        assert!(
            html.contains("/audit: the audit log needs the auditor"),
            "{html}"
        );
        assert!(
            html.contains("Ask an admin to grant it under Access: admin, members of group ops.")
        );
    }
}
