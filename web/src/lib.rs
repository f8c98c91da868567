//! The Bitesize dashboard: Leptos components rendered to HTML on the server.
//!
//! This crate knows nothing of indexes or databases: the server fetches the data (through
//! its search module) and hands this crate plain view models to render.

use leptos::prelude::*;

/// One result line as the search page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HitRow {
    pub time: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub stream: String,
    pub message: String,
}

/// Who is signed in, for the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Viewer {
    pub user: String,
    /// Roles in force, e.g. `viewer of shop`.
    pub roles: Vec<String>,
}

/// Everything the search page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub viewer: Viewer,
    /// Namespaces the picker offers.
    pub namespaces: Vec<String>,
    /// The selected namespace; empty means all.
    pub namespace: String,
    pub query: String,
    pub hits: Vec<HitRow>,
    pub total: u64,
    /// Why the search failed (e.g. a query that does not parse), said plainly.
    pub error: Option<String>,
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --bg:#fff; --fg:#1d2330; --muted:#6b7385; --line:#e4e7ee; --accent:#2f6fed; --err:#b42318; }
@media (prefers-color-scheme: dark) { :root { --bg:#12151c; --fg:#e6e9f0; --muted:#98a0b3; --line:#262b36; --accent:#6d9bff; --err:#ff8a80; } }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:1rem; padding:.6rem 1.2rem; border-bottom:1px solid var(--line); }
header h1 { font-size:1.1rem; margin:0; }
header nav a { color:var(--fg); }
header .who { margin-left:auto; color:var(--muted); }
header form.signout button { font:inherit; background:none; border:1px solid var(--line); color:var(--fg); border-radius:6px; padding:.2rem .6rem; cursor:pointer; }
main.login { max-width:22rem; }
main.login input { width:100%; padding:.45rem .6rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
main.login button { padding:.45rem .9rem; font:inherit; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; }
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
main { padding:1rem 1.2rem; }
form.search { display:flex; gap:.5rem; flex-wrap:wrap; margin-bottom:1rem; }
form.search input[type=search] { flex:1; min-width:16rem; padding:.45rem .6rem; font:inherit; border:1px solid var(--line); border-radius:6px; background:var(--bg); color:var(--fg); }
form.search select, form.search button { padding:.45rem .7rem; font:inherit; border-radius:6px; border:1px solid var(--line); background:var(--bg); color:var(--fg); }
form.search button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
.summary { color:var(--muted); margin:.2rem 0 .8rem; }
.error { color:var(--err); font-weight:600; }
table.hits { width:100%; border-collapse:collapse; font:13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
table.hits th { text-align:left; color:var(--muted); font-weight:500; border-bottom:1px solid var(--line); padding:.3rem .4rem; }
table.hits td { border-bottom:1px solid var(--line); padding:.25rem .4rem; vertical-align:top; }
table.hits td.message { white-space:pre-wrap; word-break:break-word; }
td.stderr { color:var(--err); }
"#;

fn document(title: &str, body: String) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Bitesize · {title}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
}

/// Renders the whole search page as an HTML document.
pub fn render_search_page(page: SearchPage) -> String {
    document(
        "Search",
        Owner::new().with(|| view! { <SearchView page=page/> }.to_html()),
    )
}

/// The sign-in page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginPage {
    /// Where to go after signing in.
    pub next: String,
    /// Why the last attempt failed, said plainly.
    pub error: Option<String>,
}

pub fn render_login_page(page: LoginPage) -> String {
    document(
        "Sign in",
        Owner::new().with(|| view! { <LoginView page=page/> }.to_html()),
    )
}

#[component]
fn LoginView(page: LoginPage) -> impl IntoView {
    view! {
        <header><h1>"Bitesize"</h1></header>
        <main class="login">
            <h2>"Sign in"</h2>
            {page.error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <form method="post" action="/auth/login">
                <input type="hidden" name="next" value=page.next/>
                <p><label for="user">"User"</label><br/>
                <input id="user" name="user" autocomplete="username" required=true autofocus=true/></p>
                <p><label for="password">"Password"</label><br/>
                <input id="password" name="password" type="password" autocomplete="current-password" required=true/></p>
                <button type="submit">"Sign in"</button>
            </form>
        </main>
    }
}

#[component]
fn Header(viewer: Viewer) -> impl IntoView {
    let roles = viewer.roles.join(", ");
    view! {
        <header>
            <h1>"Bitesize"</h1>
            <nav><a href="/search">"Search"</a></nav>
            <span class="who">{viewer.user}" · "<span class="roles">{roles}</span></span>
            <form method="post" action="/auth/logout" class="signout"><button type="submit">"Sign out"</button></form>
        </header>
    }
}

#[component]
fn SearchView(page: SearchPage) -> impl IntoView {
    let SearchPage {
        viewer,
        namespaces,
        namespace,
        query,
        hits,
        total,
        error,
    } = page;
    let shown = hits.len();
    let options = namespaces
        .into_iter()
        .map(|name| {
            let selected = name == namespace;
            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let rows = hits
        .into_iter()
        .map(|hit| {
            let stream_class = if hit.stream == "stderr" { "stderr" } else { "" };
            view! {
                <tr>
                    <td>{hit.time}</td>
                    <td>{hit.namespace}</td>
                    <td>{hit.pod}</td>
                    <td>{hit.container}</td>
                    <td class=stream_class>{hit.stream}</td>
                    <td class="message">{hit.message}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <Header viewer=viewer/>
        <main>
            <form class="search" method="get" action="/search" role="search">
                <label for="namespace" class="visually-hidden">"Namespace"</label>
                <select id="namespace" name="namespace">
                    <option value="" selected=namespace.is_empty()>"All namespaces"</option>
                    {options}
                </select>
                <label for="q" class="visually-hidden">"Query"</label>
                <input id="q" type="search" name="q" value=query placeholder="error AND pod:web-*" autofocus=true/>
                <button type="submit">"Search"</button>
            </form>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <p class="summary">{format!("{total} matching, showing the newest {shown}")}</p>
            <table class="hits">
                <thead><tr><th>"Time"</th><th>"Namespace"</th><th>"Pod"</th><th>"Container"</th><th>"Stream"</th><th>"Message"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </main>
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
        });
        assert!(html.contains(r#"value="/search?q=x""#), "{html}");
        assert!(html.contains("wrong user or password"));
        assert!(html.contains(r#"action="/auth/login""#));
    }

    #[test]
    fn header_shows_who_is_signed_in() {
        let html = render_search_page(SearchPage {
            viewer: Viewer {
                user: "alice".into(),
                roles: vec!["viewer of shop".into()],
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
