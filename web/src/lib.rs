//! The Bitesize dashboard: Leptos components rendered to HTML on the server.
//!
//! This crate knows nothing of indexes or databases: the server fetches the data (through
//! its search module) and hands this crate plain view models to render.

use leptos::prelude::*;

mod fleet;
pub mod highlight;
mod pages;
mod search;

pub use pages::{
    AccessPage, AuditPage, AuditQuery, AuditRow, BindingRow, ChainStatus, ForbiddenPage,
    NamespaceRow, NamespacesPage, NewTokenSecret, TokenRow,
};

pub use fleet::{
    line_diff, DiffKind, DiffLine, FleetCluster, FleetDesired, FleetForm, FleetNode, FleetPage,
    FleetPreview,
};

pub use search::{
    quote_value, urlencode, FacetCount, FacetGroup, Histogram, HistogramBar, HitRow,
    SavedSearchRow, SearchPage, Selection, PRESETS,
};

/// The page script (`/` focuses the query box), served by the server at [`APP_JS_PATH`];
/// every page works without it.
pub const APP_JS: &str = include_str!("../assets/app.js");
pub const APP_JS_PATH: &str = "/assets/app.js";

/// Who is signed in, for the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Viewer {
    pub user: String,
    /// Roles in force, e.g. `viewer of shop`.
    pub roles: Vec<String>,
    /// Admins manage bindings and everyone's tokens.
    pub admin: bool,
    /// Admins and auditors read the audit log.
    pub audit_reader: bool,
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --bg:#fff; --fg:#1d2330; --muted:#6b7385; --line:#e4e7ee; --accent:#2f6fed; --err:#b42318; }
@media (prefers-color-scheme: dark) { :root { --bg:#12151c; --fg:#e6e9f0; --muted:#98a0b3; --line:#262b36; --accent:#6d9bff; --err:#ff8a80; } }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:1rem; padding:.6rem 1.2rem; border-bottom:1px solid var(--line); }
header h1 { font-size:1.1rem; margin:0; }
header a.brand { color:var(--fg); text-decoration:none; }
header nav { display:flex; gap:.2rem; }
header nav a { color:var(--fg); text-decoration:none; padding:.25rem .6rem; border-radius:6px; }
header nav a:hover { background:var(--line); }
header nav a[aria-current] { background:var(--line); font-weight:600; }
header .roles { font-size:.85rem; }
main.page h1.title { font-size:1.3rem; margin:.2rem 0 .8rem; }
main.page h2 { font-size:1.05rem; margin:1.4rem 0 .4rem; }
.card { border:1px solid var(--line); border-radius:8px; padding:.7rem .8rem; margin:.6rem 0; }
.card.row { display:flex; flex-wrap:wrap; gap:.6rem; align-items:center; }
.card label { color:var(--muted); font-size:.9rem; }
.card input, .card select { padding:.35rem .5rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
.card button, form.inline button { padding:.35rem .8rem; font:inherit; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
form.inline { margin:0; }
form.inline input { padding:.15rem .4rem; font:inherit; font-size:.85rem; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
form.inline button.plain { background:none; color:var(--accent); padding:.15rem .6rem; font-size:.85rem; }
form.inline button.danger { background:none; color:var(--err); border-color:var(--err); padding:.15rem .6rem; font-size:.85rem; }
.card.secret { border-color:var(--accent); }
.card.secret pre { margin:.3rem 0 0; padding:.5rem; background:var(--line); border-radius:6px; user-select:all; overflow-x:auto; }
.mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
table.grid { width:100%; border-collapse:collapse; font-size:.9rem; }
table.grid th { text-align:left; color:var(--muted); font-weight:500; border-bottom:1px solid var(--line); padding:.3rem .4rem; white-space:nowrap; }
table.grid td { border-bottom:1px solid var(--line); padding:.3rem .4rem; vertical-align:top; }
table.grid td.num { text-align:right; font-variant-numeric:tabular-nums; }
table.grid tr.revoked { color:var(--muted); text-decoration:line-through; }
.notice { color:var(--accent); font-weight:600; }
.card textarea { width:100%; padding:.4rem .5rem; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
.card button.secondary { background:none; color:var(--accent); }
.stale { color:#b26b00; font-weight:600; }
tr.stale td { background:rgba(255,170,0,.08); }
.ok { color:#2e9e5b; }
pre.diff { margin:.3rem 0; padding:.5rem; background:var(--line); border-radius:6px; overflow-x:auto; }
pre.diff .added { color:#2e9e5b; } pre.diff .removed { color:var(--err); } pre.diff .same { color:var(--muted); }
.chain { padding:.5rem .8rem; border-radius:8px; font-weight:600; }
.chain.ok { border:1px solid #2e9e5b; color:#2e9e5b; }
.chain.broken { border:1px solid var(--err); color:var(--err); }
button.tail { padding:.25rem .7rem; font:inherit; font-size:.85rem; border-radius:999px; border:1px solid var(--line); background:none; color:var(--fg); cursor:pointer; }
button.tail[aria-pressed=true] { border-color:#2e9e5b; color:#2e9e5b; font-weight:600; }
.tail-status { color:var(--muted); font-size:.85rem; }
tr.live td { animation: flash 1.5s ease-out; }
@keyframes flash { from { background:var(--line); } to { background:transparent; } }
.chart svg.dragging { cursor:col-resize; }
.chart .brush { position:absolute; top:0; bottom:0; background:var(--accent); opacity:.2; pointer-events:none; }
header .who { margin-left:auto; color:var(--muted); }
header form.signout button { font:inherit; background:none; border:1px solid var(--line); color:var(--fg); border-radius:6px; padding:.2rem .6rem; cursor:pointer; }
main.login { max-width:22rem; }
main.login input { width:100%; padding:.45rem .6rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
main.login a.sso { display:block; text-align:center; padding:.5rem .9rem; border-radius:6px; border:1px solid var(--accent); color:var(--accent); text-decoration:none; font-weight:600; }
main.login p.or { color:var(--muted); text-align:center; }
main.login button { padding:.45rem .9rem; font:inherit; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; }
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
main { padding:1rem 1.2rem; }
a { color:var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline:2px solid var(--accent); outline-offset:2px; }
form.search { display:flex; flex-direction:column; gap:.5rem; margin-bottom:.8rem; }
form.search .row { display:flex; gap:.5rem; flex-wrap:wrap; align-items:center; }
form.search input, form.search select { padding:.4rem .6rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
form.search input[type=search] { flex:1; min-width:16rem; font-family:ui-monospace, SFMono-Regular, Menlo, monospace; }
form.search button { padding:.4rem .9rem; font:inherit; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
form.search .range label, form.search .reason label { color:var(--muted); }
.presets { display:inline-flex; gap:.25rem; margin-left:.4rem; }
a.preset { padding:.25rem .55rem; border:1px solid var(--line); border-radius:999px; text-decoration:none; color:var(--fg); font-size:.85rem; }
a.preset[aria-current] { border-color:var(--accent); color:var(--accent); font-weight:600; }
form.search .reason { display:flex; gap:.5rem; align-items:center; }
form.search .reason input { flex:1; max-width:32rem; border-color:var(--accent); }
.help { color:var(--muted); font-size:.8rem; margin:0; }
.summary { color:var(--muted); margin:0; }
.error { color:var(--err); font-weight:600; }
figure.histogram { margin:0 0 1rem; }
figure.histogram figcaption { color:var(--muted); font-size:.8rem; margin-bottom:.25rem; }
.chart { position:relative; border-bottom:1px solid var(--line); }
.chart .ymax { position:absolute; right:0; top:-1.1rem; font-size:.7rem; color:var(--muted); }
.chart svg { display:block; width:100%; height:96px; }
.chart rect.zone { fill:transparent; }
.chart rect.fill { fill:var(--accent); opacity:.75; }
.chart a.bar:hover rect.fill, .chart a.bar:focus rect.fill { opacity:1; }
.chart a.bar:hover rect.zone, .chart a.bar:focus rect.zone { fill:var(--line); }
.axis { display:flex; justify-content:space-between; font-size:.75rem; color:var(--muted); font-family:ui-monospace, SFMono-Regular, Menlo, monospace; }
.layout { display:grid; grid-template-columns:minmax(12rem, 15rem) minmax(0, 1fr); gap:1.2rem; align-items:start; }
.layout > .results:only-child { grid-column:1 / -1; }
@media (max-width: 900px) { .layout { grid-template-columns:minmax(0, 1fr); } }
aside.facets h2 { font-size:.95rem; margin:0 0 .4rem; }
aside.facets h3 { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:.8rem 0 .2rem; }
aside.facets ul { list-style:none; margin:0; padding:0; }
aside.facets a { display:flex; justify-content:space-between; gap:.5rem; padding:.15rem .3rem; border-radius:4px; text-decoration:none; color:var(--fg); font:12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
aside.facets a:hover { background:var(--line); }
aside.facets .value { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
aside.facets .count { color:var(--muted); }
.toolbar { display:flex; justify-content:space-between; align-items:baseline; flex-wrap:wrap; gap:.5rem; margin-bottom:.4rem; }
.export { color:var(--muted); font-size:.9rem; }
.table { overflow-x:auto; position:relative; }
table.hits { width:100%; border-collapse:collapse; font:12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
table.hits th { text-align:left; color:var(--muted); font-weight:500; border-bottom:1px solid var(--line); padding:.3rem .4rem; white-space:nowrap; }
table.hits td { border-bottom:1px solid var(--line); padding:.25rem .4rem; vertical-align:top; white-space:nowrap; }
table.hits td.time { white-space:nowrap; color:var(--muted); }
table.hits td.message { white-space:pre-wrap; word-break:break-word; width:100%; }
table.hits summary { cursor:pointer; list-style-position:inside; }
table.hits pre.record { margin:.4rem 0; padding:.5rem; background:var(--line); border-radius:6px; overflow-x:auto; white-space:pre; }
mark { background:#ffe58a; color:#1d2330; border-radius:2px; }
@media (prefers-color-scheme: dark) { mark { background:#8a6d00; color:#fff; } }
td.stderr { color:var(--err); }
nav.paging { display:flex; gap:1rem; justify-content:center; margin:1rem 0; }
nav.paging a { padding:.35rem .8rem; border:1px solid var(--line); border-radius:6px; text-decoration:none; }
nav.paging { color:var(--muted); }
.side { display:flex; flex-direction:column; gap:1.2rem; min-width:0; }
section.saved h2 { font-size:.95rem; margin:0 0 .4rem; }
ul.saved-list { list-style:none; margin:0 0 .6rem; padding:0; }
ul.saved-list li { display:flex; flex-wrap:wrap; align-items:center; gap:0 .4rem; padding:.2rem 0; border-bottom:1px solid var(--line); }
ul.saved-list a.saved-search { font-weight:600; text-decoration:none; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; max-width:100%; }
ul.saved-list .whose { color:var(--muted); font-size:.75rem; flex-basis:100%; order:3; }
ul.saved-list form.inline { margin-left:auto; }
form.save { display:flex; flex-direction:column; gap:.3rem; font-size:.9rem; }
form.save label { color:var(--muted); }
form.save input[type=text], form.save input:not([type]) { padding:.3rem .5rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
form.save input[aria-invalid] { border-color:var(--err); }
form.save label.check { color:var(--fg); }
form.save button { align-self:flex-start; padding:.3rem .8rem; font:inherit; border-radius:6px; border:1px solid var(--accent); background:none; color:var(--accent); cursor:pointer; }
form.save .error { margin:0; font-size:.85rem; }
a.skip { position:absolute; left:-999px; top:.4rem; padding:.3rem .6rem; background:var(--bg); border:2px solid var(--accent); border-radius:6px; z-index:10; }
a.skip:focus { left:.6rem; }
main:focus { outline:none; }
body.loading main { opacity:.55; transition:opacity .15s .1s; }
.shortcuts { position:fixed; right:1.2rem; bottom:1.2rem; z-index:20; max-width:24rem; padding:.8rem 1rem; background:var(--bg); border:1px solid var(--line); border-radius:8px; box-shadow:0 6px 24px rgba(0,0,0,.25); }
.shortcuts h2 { font-size:1rem; margin:0 0 .5rem; }
.shortcuts dl { display:grid; grid-template-columns:auto 1fr; gap:.25rem .8rem; margin:0 0 .6rem; font-size:.9rem; }
.shortcuts dd { margin:0; }
kbd { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; padding:.05rem .35rem; border:1px solid var(--line); border-bottom-width:2px; border-radius:4px; }
header { flex-wrap:wrap; }
header .who { min-width:0; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; max-width:40vw; }
@media (max-width: 1100px) { .layout { grid-template-columns:minmax(11rem, 13rem) minmax(0, 1fr); gap:.9rem; } main { padding:.8rem; } }
"#;

fn document(title: &str, body: String) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Bitesize · {title}</title><style>{STYLE}</style>\
         <script src=\"{APP_JS_PATH}\" defer></script></head><body>{body}</body></html>"
    )
}

/// Renders the whole search page as an HTML document.
pub fn render_search_page(page: SearchPage) -> String {
    document(
        "Search",
        Owner::new().with(|| view! { <search::SearchView page=page/> }.to_html()),
    )
}

/// `/access`: role bindings and API tokens.
pub fn render_access_page(page: AccessPage) -> String {
    document(
        "Access",
        Owner::new().with(|| view! { <pages::AccessView page=page/> }.to_html()),
    )
}

/// `/audit`: the audit log with its chain status.
pub fn render_audit_page(page: AuditPage) -> String {
    document(
        "Audit log",
        Owner::new().with(|| view! { <pages::AuditView page=page/> }.to_html()),
    )
}

/// `/namespaces`.
pub fn render_namespaces_page(page: NamespacesPage) -> String {
    document(
        "Namespaces",
        Owner::new().with(|| view! { <pages::NamespacesView page=page/> }.to_html()),
    )
}

/// `/fleet`: the shippers of every node and the editor of their settings.
pub fn render_fleet_page(page: FleetPage) -> String {
    document(
        "Fleet",
        Owner::new().with(|| view! { <fleet::FleetView page=page/> }.to_html()),
    )
}

/// The 403 page.
pub fn render_forbidden_page(page: ForbiddenPage) -> String {
    document(
        "No access",
        Owner::new().with(|| view! { <pages::ForbiddenView page=page/> }.to_html()),
    )
}

/// The sign-in page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginPage {
    /// Where to go after signing in.
    pub next: String,
    /// Why the last attempt failed, said plainly.
    pub error: Option<String>,
    /// Single sign-on providers, one button each.
    pub providers: Vec<LoginProvider>,
    /// Show the user name and password form.
    pub local_accounts: bool,
}

/// A single sign-on provider on the sign-in page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginProvider {
    /// "Sign in with {display_name}".
    pub display_name: String,
    /// Where the button goes (the server's sign-in route for the provider, with `next`).
    pub href: String,
}

pub fn render_login_page(page: LoginPage) -> String {
    document(
        "Sign in",
        Owner::new().with(|| view! { <LoginView page=page/> }.to_html()),
    )
}

#[component]
fn LoginView(page: LoginPage) -> impl IntoView {
    let LoginPage {
        next,
        error,
        providers,
        local_accounts,
    } = page;
    let nothing = providers.is_empty() && !local_accounts;
    let both = !providers.is_empty() && local_accounts;
    let buttons = providers
        .into_iter()
        .map(|p| {
            view! { <p><a class="sso" href=p.href>{format!("Sign in with {}", p.display_name)}</a></p> }
        })
        .collect_view();
    let form = local_accounts.then(|| {
        view! {
            {both.then(|| view! { <p class="or">"or with a local account"</p> })}
            <form method="post" action="/auth/login">
                <input type="hidden" name="next" value=next/>
                <p><label for="user">"User"</label><br/>
                <input id="user" name="user" autocomplete="username" required=true autofocus=true/></p>
                <p><label for="password">"Password"</label><br/>
                <input id="password" name="password" type="password" autocomplete="current-password" required=true/></p>
                <button type="submit">"Sign in"</button>
            </form>
        }
    });
    view! {
        <header><h1>"Bitesize"</h1></header>
        <main class="login">
            <h2>"Sign in"</h2>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {buttons}
            {form}
            {nothing.then(|| view! { <p class="error">"No way to sign in is configured: an administrator must set up a provider or local accounts."</p> })}
        </main>
    }
}

/// After signing out here: on to the identity provider to end the session there too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigningOutPage {
    /// The provider's name as the sign-in button shows it.
    pub provider: String,
    /// Its end-session URL (with the ID token hint and the way back).
    pub url: String,
}

/// A page that moves on to the provider by itself (a meta refresh: a redirect answering the
/// sign-out form would be blocked by the `form-action 'self'` content security policy).
pub fn render_signing_out_page(page: SigningOutPage) -> String {
    let refresh = format!(
        "<meta http-equiv=\"refresh\" content=\"0; url={}\">",
        escape_attribute(&page.url)
    );
    let body = Owner::new().with(|| view! { <SigningOutView page=page/> }.to_html());
    document("Signing out", format!("{refresh}{body}"))
}

pub(crate) fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[component]
fn SigningOutView(page: SigningOutPage) -> impl IntoView {
    view! {
        <header><h1>"Bitesize"</h1></header>
        <main class="login">
            <h2>"Signed out of Bitesize"</h2>
            <p>{format!("Now signing you out of {} too…", page.provider)}</p>
            <p><a class="sso" id="continue" href=page.url>{format!("Continue to {}", page.provider)}</a></p>
        </main>
    }
}

#[component]
pub(crate) fn Header(viewer: Viewer, current: &'static str) -> impl IntoView {
    let roles = if viewer.roles.is_empty() {
        "no roles".to_owned()
    } else {
        viewer.roles.join(", ")
    };
    let mut pages = vec![
        ("/search", "Search"),
        ("/namespaces", "Namespaces"),
        ("/access", "Access"),
    ];
    if viewer.audit_reader {
        pages.push(("/audit", "Audit"));
    }
    if viewer.admin {
        pages.push(("/fleet", "Fleet"));
    }
    let links = pages
        .into_iter()
        .map(|(href, label)| {
            view! { <a href=href aria-current=(href == current).then_some("page")>{label}</a> }
        })
        .collect_view();
    view! {
        <a class="skip" href="#main">"Skip to content"</a>
        <header>
            <a class="brand" href="/search"><h1>"Bitesize"</h1></a>
            <nav aria-label="Pages">{links}</nav>
            <span class="who">{viewer.user}" · "<span class="roles">{roles}</span></span>
            <form method="post" action="/auth/logout" class="signout"><button type="submit">"Sign out"</button></form>
        </header>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_hits_and_escapes_them() {
        let html = render_search_page(SearchPage {
            namespaces: vec!["shop".into(), "auth".into()],
            namespace: "shop".into(),
            query: "GET".into(),
            hits: vec![HitRow {
                message: "<script>alert(1)</script> GET /cart".into(),
                stream: "stdout".into(),
                ..Default::default()
            }],
            total: 1,
            error: None,
            ..Default::default()
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; GET /cart"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("1 matching"));
        assert!(html.contains(r#"value="GET""#));
    }

    #[test]
    fn login_page_keeps_next_and_says_errors() {
        let html = render_login_page(LoginPage {
            next: "/search?q=x".into(),
            error: Some("wrong user or password".into()),
            local_accounts: true,
            ..Default::default()
        });
        assert!(html.contains(r#"value="/search?q=x""#), "{html}");
        assert!(html.contains("wrong user or password"));
        assert!(html.contains(r#"action="/auth/login""#));
        assert!(!html.contains("Sign in with"));
    }

    #[test]
    fn login_page_offers_each_provider_and_hides_the_form_when_local_accounts_are_off() {
        let providers = vec![
            LoginProvider {
                display_name: "Corp <SSO>".into(),
                href: "/auth/oidc/corp/login?next=%2Fsearch".into(),
            },
            LoginProvider {
                display_name: "GitLab".into(),
                href: "/auth/oidc/gitlab/login?next=%2Fsearch".into(),
            },
        ];
        let html = render_login_page(LoginPage {
            next: "/search".into(),
            providers: providers.clone(),
            local_accounts: false,
            error: Some("The ID token has expired.".into()),
        });
        assert!(html.contains("Sign in with Corp &lt;SSO&gt;"), "{html}");
        assert!(html.contains("Sign in with GitLab"));
        assert!(html.contains(r#"href="/auth/oidc/gitlab/login?next=%2Fsearch""#));
        assert!(html.contains("The ID token has expired."));
        assert!(
            !html.contains("/auth/login\"") && !html.contains("password"),
            "{html}"
        );

        let html = render_login_page(LoginPage {
            next: "/search".into(),
            providers,
            local_accounts: true,
            error: None,
        });
        assert!(html.contains("Sign in with GitLab") && html.contains(r#"action="/auth/login""#));

        let html = render_login_page(LoginPage::default());
        assert!(html.contains("No way to sign in is configured"));
    }

    #[test]
    fn signing_out_page_moves_on_to_the_provider() {
        let html = render_signing_out_page(SigningOutPage {
            provider: "Test IdP".into(),
            url: "https://idp.example/end?id_token_hint=a.b.c&x=\"><script>".into(),
        });
        assert!(
            html.contains(r#"content="0; url=https://idp.example/end?id_token_hint=a.b.c&amp;x=&quot;&gt;&lt;script&gt;""#),
            "{html}"
        );
        assert!(html.contains("Continue to Test IdP") && !html.contains("<script>"));
    }

    #[test]
    fn header_shows_who_is_signed_in() {
        let html = render_search_page(SearchPage {
            viewer: Viewer {
                user: "alice".into(),
                roles: vec!["viewer of shop".into()],
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(
            html.contains("alice")
                && html.contains("viewer of shop")
                && html.contains("/auth/logout")
        );
    }

    #[test]
    fn shows_errors_plainly() {
        let html = render_search_page(SearchPage {
            error: Some("query does not parse".into()),
            ..Default::default()
        });
        assert!(html.contains("query does not parse"));
    }
}
