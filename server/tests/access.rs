//! Access control over real ingest: a viewer of one namespace sees nothing of another,
//! through every route of the route table (`authz::routes::ROUTES`: a route added without
//! probes here fails the suite) and every way of naming it, signed in with a session cookie
//! or with an API token, on SQLite and on PostgreSQL; revoked tokens stop at once; auditors
//! state reasons and every read is in the audit log.

mod common;

use std::time::Duration;

use common::{cli, cri, unique, LogDir, Server, Shipper};

struct Setup {
    server: Server,
    _shipper: Shipper,
    _root: tempfile::TempDir,
    a: String,
    b: String,
    /// B's log file (the suite appends to it while it probes the live tail).
    b_file: std::path::PathBuf,
    logs: LogDir,
}

/// Two namespaces with data: A (3 lines) and B (5 lines, all containing "secret").
async fn setup(database_url: Option<&str>) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let id = unique();
    let (a, b) = (format!("ta-{id}"), format!("tb-{id}"));
    let logs = LogDir::new(root.path());
    let lines_a: Vec<String> = (0..3)
        .map(|i| cri("stdout", "F", &format!("public line {i}")))
        .collect();
    let lines_b: Vec<String> = (0..5)
        .map(|i| cri("stdout", "F", &format!("secret line {i}")))
        .collect();
    logs.append(&logs.file("web-a", &a, "web"), &lines_a);
    let b_file = logs.file("web-b", &b, "web");
    logs.append(&b_file, &lines_b);
    // One server indexing both namespaces.
    let server = Server::start_with_pattern(
        &root.path().join("data"),
        &format!("^logs\\.t[ab]-{id}$"),
        database_url,
    );
    let shipper = Shipper::start(root.path(), &logs);
    assert_eq!(server.wait_total(&a, 3, Duration::from_secs(60)).await, 3);
    assert_eq!(server.wait_total(&b, 5, Duration::from_secs(60)).await, 5);
    Setup {
        server,
        _shipper: shipper,
        _root: root,
        a,
        b,
        b_file,
        logs: LogDir {
            path: logs.path.clone(),
        },
    }
}

/// Signs in through the login form; returns the session cookie.
async fn sign_in(server: &Server, user: &str, password: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(server.url("/auth/login"))
        .form(&[("user", user), ("password", password), ("next", "/search")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "sign-in redirects");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

async fn get_with_cookie(server: &Server, path: &str, cookie: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// One request of the isolation suite.
struct Probe {
    method: reqwest::Method,
    path: String,
    body: Body,
    /// Statuses that are not a failure (a refusal or a bad-request answer is no leak).
    ok: &'static [u16],
    /// B's name must not appear in the answer (routes that do not echo what was asked).
    no_b_name: bool,
    /// A stream (tail, Kafka stream): read what arrives within a few seconds.
    streaming: bool,
}

enum Body {
    None,
    Form(Vec<(&'static str, String)>),
    Json(serde_json::Value),
}

const READ: &[u16] = &[200, 400];
const REFUSED: &[u16] = &[400, 403, 404, 429];
const PAGE: &[u16] = &[200];

fn get(path: String, ok: &'static [u16]) -> Probe {
    Probe {
        method: reqwest::Method::GET,
        path,
        body: Body::None,
        ok,
        no_b_name: false,
        streaming: false,
    }
}

fn send(method: reqwest::Method, path: String, body: Body) -> Probe {
    Probe {
        method,
        path,
        body,
        ok: REFUSED,
        no_b_name: false,
        streaming: false,
    }
}

fn without_b_name(mut probe: Probe) -> Probe {
    probe.no_b_name = true;
    probe
}

fn streaming(mut probe: Probe) -> Probe {
    probe.streaming = true;
    probe
}

/// What B's owner (bob) made, for the probes that name it.
struct BobsThings {
    binding: i64,
    token: i64,
    saved_search: i64,
    saved_search_name: String,
    token_name: String,
}

/// Every way of naming B in a read: the namespace parameter (alone, with A, as a pattern,
/// absent) times the query (B's words, B by field name, a wildcard).
fn namings(a: &str, b: &str) -> Vec<String> {
    let prefix = &b[..3]; // "tb-": a pattern for B
    let mut out = Vec::new();
    for namespace in [
        format!("namespace={b}"),
        format!("namespace={a},{b}"),
        format!("namespace={b},{a}"),
        format!("namespace={prefix}*"),
        String::new(),
    ] {
        for q in [
            String::new(),
            "q=secret".to_owned(),
            format!("q=namespace:{b}"),
            format!("q=kubernetes.namespace_name:{b}"),
            format!("q=namespace:{prefix}*"),
            "q=*".to_owned(),
        ] {
            out.push(
                [namespace.as_str(), q.as_str()]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
    }
    out
}

/// Routes that carry no namespace data at all, and why. Everything else in the route table
/// must have probes in [`probes_for`].
const NO_NAMESPACE_DATA: &[(&str, &str)] = &[
    ("/healthz", "liveness only"),
    ("/readyz", "database and ingest up or not"),
    ("/", "a redirect to /search"),
    ("/login", "the sign-in page"),
    ("/auth/login", "signs in; answers nothing about namespaces"),
    ("/auth/logout", "signs out"),
    ("/auth/oidc/{provider}/login", "a redirect to the provider"),
    ("/auth/oidc/{provider}/callback", "starts a session"),
    ("/assets/app.js", "a static script"),
    ("/api/v1/openapi.json", "the API description"),
];

/// The probes of one route of the route table; `None`: the suite does not know the route.
fn probes_for(route: &str, a: &str, b: &str, bob: &BobsThings) -> Option<Vec<Probe>> {
    use reqwest::Method as M;
    let reads = |path: &str, extra: &str| -> Vec<Probe> {
        namings(a, b)
            .into_iter()
            .map(|n| get(format!("{path}?{n}{extra}"), READ))
            .collect()
    };
    let form = |pairs: &[(&'static str, &str)]| {
        Body::Form(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    };
    let probes = match route {
        "/search" => reads("/search", ""),
        "/api/v1/search" => reads("/api/v1/search", "&limit=100"),
        "/api/v1/histogram" => reads("/api/v1/histogram", ""),
        "/api/v1/facets" => reads("/api/v1/facets", "&field=fields.level,pod"),
        "/api/v1/export" => {
            let mut probes = reads("/api/v1/export", "");
            probes.extend(reads("/api/v1/export", "&format=csv"));
            probes
        }
        "/api/v1/tail" => namings(a, b)
            .into_iter()
            .map(|n| streaming(get(format!("/api/v1/tail?{n}"), READ)))
            .collect(),
        "/api/v1/namespaces/{ns}/stream" => {
            let mut probes = vec![];
            for ns in [b.to_owned(), format!("{}*", &b[..3])] {
                probes.push(streaming(get(
                    format!("/api/v1/namespaces/{ns}/stream?from=earliest&follow=false"),
                    REFUSED,
                )));
            }
            for q in ["secret", &format!("namespace:{b}"), "*"] {
                probes.push(streaming(get(
                    format!("/api/v1/namespaces/{a}/stream?from=earliest&follow=false&q={q}"),
                    &[200, 400, 429],
                )));
            }
            probes
        }
        "/api/v1/namespaces" | "/api/v1/me" | "/access" | "/namespaces" => {
            vec![without_b_name(get(route.to_owned(), PAGE))]
        }
        "/api/v1/tokens" => vec![
            without_b_name(get(route.to_owned(), PAGE)),
            send(
                M::POST,
                route.to_owned(),
                Body::Json(serde_json::json!({"name": "b", "role": "viewer", "namespaces": [b]})),
            ),
            send(
                M::POST,
                route.to_owned(),
                Body::Json(serde_json::json!({"name": "b", "role": "admin"})),
            ),
        ],
        "/api/v1/tokens/{id}" => vec![send(
            M::DELETE,
            format!("/api/v1/tokens/{}", bob.token),
            Body::None,
        )],
        "/api/v1/bindings" => vec![
            get(route.to_owned(), REFUSED),
            send(
                M::POST,
                route.to_owned(),
                Body::Json(
                    serde_json::json!({"subject_kind": "user", "subject": "vera", "role": "viewer", "pattern": b}),
                ),
            ),
        ],
        "/api/v1/bindings/{id}" => vec![send(
            M::DELETE,
            format!("/api/v1/bindings/{}", bob.binding),
            Body::None,
        )],
        "/api/v1/audit" => vec![
            get(format!("/api/v1/audit?namespace={b}"), REFUSED),
            get("/api/v1/audit?actor=bob".into(), REFUSED),
        ],
        "/api/v1/audit/verify" => vec![get(route.to_owned(), REFUSED)],
        "/audit" => vec![
            get(format!("/audit?namespace={b}"), REFUSED),
            get("/audit?actor=bob".into(), REFUSED),
        ],
        "/audit/export" => vec![
            get(format!("/audit/export?namespace={b}&format=csv"), REFUSED),
            get("/audit/export?actor=bob&format=ndjson".into(), REFUSED),
        ],
        "/access/bindings" => vec![send(
            M::POST,
            route.to_owned(),
            form(&[
                ("subject_kind", "user"),
                ("subject", "vera"),
                ("role", "viewer"),
                ("pattern", b),
            ]),
        )],
        "/access/bindings/{id}/delete" => vec![send(
            M::POST,
            format!("/access/bindings/{}/delete", bob.binding),
            form(&[]),
        )],
        "/access/tokens" => vec![send(
            M::POST,
            route.to_owned(),
            form(&[("name", "b"), ("role", "viewer"), ("namespaces", b)]),
        )],
        "/access/tokens/{id}/revoke" => vec![send(
            M::POST,
            format!("/access/tokens/{}/revoke", bob.token),
            form(&[]),
        )],
        "/namespaces/{name}/retention" => vec![send(
            M::POST,
            format!("/namespaces/{b}/retention"),
            form(&[("retention_days", "1")]),
        )],
        "/namespaces/{name}/delete" => vec![send(
            M::POST,
            format!("/namespaces/{b}/delete"),
            form(&[("confirm", b)]),
        )],
        "/fleet" => vec![get(route.to_owned(), REFUSED)],
        "/fleet/config" => vec![send(
            M::POST,
            route.to_owned(),
            form(&[("action", "save"), ("config", "{}")]),
        )],
        "/metrics" | "/api/v1/fleet" | "/api/v1/admin/kafka/acls" => {
            vec![get(route.to_owned(), REFUSED)]
        }
        "/api/v1/admin/fleet/config" => vec![
            get(route.to_owned(), REFUSED),
            send(M::PUT, route.to_owned(), Body::Json(serde_json::json!({}))),
        ],
        "/api/v1/admin/namespaces" => vec![
            get(route.to_owned(), REFUSED),
            send(
                M::POST,
                route.to_owned(),
                Body::Json(serde_json::json!({"name": b, "adopt": true})),
            ),
        ],
        "/api/v1/admin/namespaces/{name}" => {
            let path = format!("/api/v1/admin/namespaces/{b}");
            vec![
                get(path.clone(), REFUSED),
                send(
                    M::PATCH,
                    path.clone(),
                    Body::Json(serde_json::json!({"retention_days": 1})),
                ),
                send(
                    M::DELETE,
                    path,
                    Body::Json(serde_json::json!({"confirm": b})),
                ),
            ]
        }
        "/api/v1/saved-searches" => vec![
            without_b_name(get(route.to_owned(), PAGE)),
            send(
                M::POST,
                route.to_owned(),
                Body::Json(
                    serde_json::json!({"name": "b", "url": format!("/search?namespace={b}"), "shared": true}),
                ),
            ),
        ],
        "/api/v1/saved-searches/{id}" => {
            let path = format!("/api/v1/saved-searches/{}", bob.saved_search);
            vec![
                get(path.clone(), REFUSED),
                send(M::DELETE, path, Body::None),
            ]
        }
        "/api/v1/archive" => reads("/api/v1/archive", "")
            .into_iter()
            .map(without_b_name)
            .collect(),
        "/api/v1/archive/rehydrate" => vec![send(
            M::POST,
            route.to_owned(),
            Body::Json(serde_json::json!({"namespace": b, "from": "now-1h", "to": "now"})),
        )],
        // No rehydrate was started here: whatever the id, nothing of B.
        "/api/v1/archive/rehydrate/{id}" => (1..=3)
            .map(|id| get(format!("/api/v1/archive/rehydrate/{id}"), REFUSED))
            .collect(),
        "/search/saved" => vec![send(
            M::POST,
            route.to_owned(),
            form(&[
                ("name", "b"),
                ("url", &format!("/search?namespace={b}")),
                ("shared", "true"),
            ]),
        )],
        "/search/saved/{id}/delete" => vec![send(
            M::POST,
            format!("/search/saved/{}/delete", bob.saved_search),
            form(&[("back", "/search")]),
        )],
        _ => return None,
    };
    Some(probes)
}

/// How the viewer authenticates.
#[derive(Clone, Copy)]
enum As<'a> {
    Cookie(&'a str),
    Token(&'a str),
}

/// Sends `probe`; returns its status and what came back (for a stream: what arrived within
/// 2 s).
async fn run_probe(server: &Server, who: As<'_>, probe: &Probe) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.request(probe.method.clone(), server.url(&probe.path));
    request = match who {
        // The dashboard's own pages send the Origin with their writes.
        As::Cookie(cookie) => request
            .header("cookie", cookie)
            .header("origin", server.url("")),
        As::Token(token) => request.bearer_auth(token),
    };
    request = match &probe.body {
        Body::None => request,
        Body::Form(pairs) => request.form(pairs),
        Body::Json(json) => request.json(json),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if !probe.streaming {
        return (status, response.text().await.unwrap());
    }
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        seen.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&seen).into_owned())
}

fn assert_no_leak(probe: &Probe, status: u16, body: &str, b: &str, bob: &BobsThings) {
    let path = &probe.path;
    assert!(
        probe.ok.contains(&status),
        "{} {path}: status {status} is not one of {:?}: {body}",
        probe.method,
        probe.ok
    );
    assert!(
        !body.contains("secret line"),
        "LEAK of B's records via {} {path}: {body}",
        probe.method
    );
    for (what, name) in [
        ("saved search", &bob.saved_search_name),
        ("token", &bob.token_name),
    ] {
        assert!(
            !body.contains(name.as_str()),
            "LEAK of bob's {what} via {} {path}: {body}",
            probe.method
        );
    }
    if probe.no_b_name {
        assert!(!body.contains(b), "LEAK of B's name via {path}: {body}");
    }
    if path.starts_with("/search") && probe.method == reqwest::Method::GET {
        // The page echoes the query typed in, but must not offer B in the picker.
        assert!(
            !body.contains(&format!("<option value=\"{b}\"")),
            "LEAK of B in the picker via {path}"
        );
    }
    if status == 200
        && (path.starts_with("/api/v1/search") || path.starts_with("/api/v1/histogram"))
    {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["total"].as_u64().unwrap_or(0) <= 3,
            "{path}: counts B: {body}"
        );
    }
}

/// Probes every route of the route table as `who`; returns how many probes ran.
async fn probe_every_route(s: &Setup, who: As<'_>, bob: &BobsThings) -> usize {
    use bitesize_server::authz::routes::{Access, ROUTES};
    use futures::StreamExt;
    let mut probes = Vec::new();
    for (route, access) in ROUTES {
        if let Some((_, why)) = NO_NAMESPACE_DATA.iter().find(|(r, _)| r == route) {
            assert!(!why.is_empty());
            continue;
        }
        assert_ne!(
            *access,
            Access::Public,
            "{route} is public but not listed as carrying no namespace data"
        );
        let found = probes_for(route, &s.a, &s.b, bob).unwrap_or_else(|| {
            panic!(
                "route {route} is in the route table but the isolation suite has no probes \
                 for it: add them to probes_for in server/tests/access.rs (or, if it carries \
                 no namespace data, to NO_NAMESPACE_DATA)"
            )
        });
        assert!(!found.is_empty(), "{route}: no probes");
        probes.extend(found);
    }
    let count = probes.len();
    let server = &s.server;
    let results: Vec<(usize, u16, String)> = futures::stream::iter(probes.iter().enumerate())
        .map(|(i, probe)| async move {
            let (status, body) = run_probe(server, who, probe).await;
            (i, status, body)
        })
        .buffer_unordered(12)
        .collect()
        .await;
    for (i, status, body) in results {
        assert_no_leak(&probes[i], status, &body, &s.b, bob);
    }
    count
}

/// B's owner: bob, with a token and a saved search of B shared with B's owners.
async fn bobs_things(s: &Setup) -> BobsThings {
    let env = &s.server.env;
    cli(
        env,
        &["user", "add", "bob", "--password-stdin"],
        Some("bob-password-1\n"),
    );
    cli(
        env,
        &[
            "binding",
            "add",
            "--user",
            "bob",
            "--role",
            "owner",
            "--pattern",
            &s.b,
        ],
        None,
    );
    let (_, bindings) = s.server.get_json("/api/v1/bindings").await;
    let binding = bindings["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["subject"] == "bob")
        .unwrap_or_else(|| panic!("bob's binding: {bindings}"))["id"]
        .as_i64()
        .unwrap();
    let cookie = sign_in(&s.server, "bob", "bob-password-1").await;
    let client = reqwest::Client::new();
    let token_name = format!("bobs-token-{}", unique());
    let response = client
        .post(s.server.url("/api/v1/tokens"))
        .header("cookie", &cookie)
        .header("origin", s.server.url(""))
        .json(&serde_json::json!({"name": token_name, "role": "viewer", "namespaces": [s.b]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token: serde_json::Value = response.json().await.unwrap();
    let saved_search_name = format!("bobs-view-of-b-{}", unique());
    let response = client
        .post(s.server.url("/api/v1/saved-searches"))
        .header("cookie", &cookie)
        .header("origin", s.server.url(""))
        .json(&serde_json::json!({"name": saved_search_name, "url": format!("/search?namespace={}&q=secret", s.b), "shared": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let saved: serde_json::Value = response.json().await.unwrap();
    BobsThings {
        binding,
        token: token["id"].as_i64().unwrap(),
        saved_search: saved["id"].as_i64().unwrap(),
        saved_search_name,
        token_name,
    }
}

/// The isolation suite on one database.
async fn viewer_of_a_sees_nothing_of_b(database_url: Option<&str>) {
    let s = setup(database_url).await;
    let env = &s.server.env;
    cli(
        env,
        &["user", "add", "vera", "--password-stdin"],
        Some("vera-password-1\n"),
    );
    cli(
        env,
        &[
            "binding",
            "add",
            "--user",
            "vera",
            "--role",
            "viewer",
            "--pattern",
            &s.a,
        ],
        None,
    );
    let bob = bobs_things(&s).await;
    let cookie = sign_in(&s.server, "vera", "vera-password-1").await;

    // The viewer can read A.
    let (status, body) = get_with_cookie(
        &s.server,
        &format!("/api/v1/search?namespace={}", s.a),
        &cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("public line 0"), "{body}");

    // New lines keep arriving in B while the suite probes, so the live tail has something
    // it must not show.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (writing, dir, file) = (writing.clone(), s.logs.path.clone(), s.b_file.clone());
        std::thread::spawn(move || {
            let logs = LogDir { path: dir };
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                logs.append(
                    &file,
                    &[cri("stdout", "F", &format!("secret line live {n}"))],
                );
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    // Control: the tail does deliver B's new lines to someone allowed to read B, so the
    // probes below could see a leak if there were one.
    let admin_tail = get(format!("/api/v1/tail?namespace={}", s.b), PAGE);
    let admin_tail = streaming(admin_tail);
    let mut seen = String::new();
    for _ in 0..5 {
        let (status, got) =
            run_probe(&s.server, As::Token(&s.server.admin_token), &admin_tail).await;
        assert_eq!(status, 200);
        seen = got;
        if seen.contains("secret line live") {
            break;
        }
    }
    assert!(
        seen.contains("secret line live"),
        "the admin's tail of B shows B's new lines: {seen}"
    );

    let mut checked = probe_every_route(&s, As::Cookie(&cookie), &bob).await;

    // A token the viewer makes is limited to what the viewer has.
    let client = reqwest::Client::new();
    let response = client
        .post(s.server.url("/api/v1/tokens"))
        .header("cookie", &cookie)
        .header("origin", s.server.url(""))
        .json(&serde_json::json!({"name": "ci", "role": "viewer", "namespaces": [s.b.clone()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "cannot mint a token for B");
    let response = client
        .post(s.server.url("/api/v1/tokens"))
        .header("cookie", &cookie)
        .header("origin", s.server.url(""))
        .json(&serde_json::json!({"name": "ci", "role": "viewer", "namespaces": [s.a.clone()], "expires_in": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    checked += probe_every_route(&s, As::Token(&token), &bob).await;
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    println!("isolation: {checked} probes over every route, 0 leaks");

    // Nothing the viewer tried changed B or bob's things.
    let (_, body) = s
        .server
        .get_json(&format!(
            "/api/v1/search?namespace={}&q=%22secret%20line%22&limit=1",
            s.b
        ))
        .await;
    assert!(body["total"].as_u64().unwrap() >= 5, "{body}");
    let (_, listed) = s.server.get_json("/api/v1/namespaces").await;
    assert!(
        listed["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == s.b.as_str()),
        "B is still there: {listed}"
    );
    let (_, bindings) = s.server.get_json("/api/v1/bindings").await;
    let bindings = bindings["bindings"].as_array().unwrap().clone();
    assert!(
        bindings.iter().any(|b| b["id"] == bob.binding),
        "bob's binding stays"
    );
    assert!(
        !bindings
            .iter()
            .any(|b| b["subject"] == "vera" && b["pattern"] == s.b.as_str()),
        "vera did not bind herself to B: {bindings:?}"
    );
    let bob_cookie = sign_in(&s.server, "bob", "bob-password-1").await;
    let (status, body) = get_with_cookie(&s.server, "/api/v1/saved-searches", &bob_cookie).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&bob.saved_search_name),
        "bob's saved search stays: {body}"
    );
    let (_, body) = get_with_cookie(&s.server, "/api/v1/tokens", &bob_cookie).await;
    let tokens: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bobs = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == bob.token)
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert!(bobs["revoked_at"].is_null(), "bob's token stays: {bobs}");
    assert!(checked > 400, "{checked} probes");

    // Opening bob's saved search as vera (it is only a URL) shows her nothing of B.
    let (status, page) = get_with_cookie(
        &s.server,
        &format!("/search?namespace={}&q=secret", s.b),
        &cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("0 matching") && !page.contains("secret line"),
        "{page}"
    );

    let (status, body) = s
        .server
        .get_json_as(&format!("/api/v1/search?namespace={}", s.a), Some(&token))
        .await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(3)));

    // Revoked: 401 at once.
    let id = created["id"].as_i64().unwrap();
    let response = client
        .delete(s.server.url(&format!("/api/v1/tokens/{id}")))
        .header("cookie", &cookie)
        .header("origin", s.server.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = s
        .server
        .get_json_as(&format!("/api/v1/search?namespace={}", s.a), Some(&token))
        .await;
    assert_eq!(status, 401);

    // Signed out is 401 (API) or a redirect (pages).
    let (status, body) = s.server.get_json_as("/api/v1/search", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = s
        .server
        .get_json_as("/api/v1/search", Some("bsz_not-a-real-token-at-all-000000"))
        .await;
    assert_eq!(status, 401);
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = page.get(s.server.url("/search?q=x")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "/login?next=/search%3Fq%3Dx"
    );

    // A binding added by an admin is effective on the next request.
    let response = client
        .post(s.server.url("/api/v1/bindings"))
        .bearer_auth(&s.server.admin_token)
        .json(&serde_json::json!({"subject_kind": "user", "subject": "vera", "role": "viewer", "pattern": s.b.clone()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (_, body) = get_with_cookie(
        &s.server,
        &format!("/api/v1/search?namespace={}", s.b),
        &cookie,
    )
    .await;
    assert!(body.contains("secret line"), "now granted: {body}");
    // Now a viewer of B (not an owner), she still does not get bob's shared search: it is
    // shared with B's owners.
    let (_, body) = get_with_cookie(&s.server, "/api/v1/saved-searches", &cookie).await;
    assert!(!body.contains(&bob.saved_search_name), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_of_a_sees_nothing_of_b_on_sqlite() {
    viewer_of_a_sees_nothing_of_b(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_of_a_sees_nothing_of_b_on_postgres() {
    let url = common::fresh_postgres_database().await;
    viewer_of_a_sees_nothing_of_b(Some(&url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auditors_state_reasons_and_every_read_is_audited() {
    let s = setup(None).await;
    let env = &s.server.env;
    cli(
        env,
        &["user", "add", "ada", "--password-stdin"],
        Some("ada-password-12\n"),
    );
    cli(
        env,
        &["binding", "add", "--user", "ada", "--role", "auditor"],
        None,
    );
    let cookie = sign_in(&s.server, "ada", "ada-password-12").await;

    let (status, body) = get_with_cookie(
        &s.server,
        &format!("/api/v1/search?namespace={}", s.b),
        &cookie,
    )
    .await;
    assert_eq!(status, 400, "no reason, no read: {body}");
    assert!(body.contains("reason"));
    let path = format!(
        "/api/v1/search?namespace={}&q=secret&reason=INC-4711%20fraud%20review",
        s.b
    );
    let (status, body) = get_with_cookie(&s.server, &path, &cookie).await;
    assert_eq!(status, 200);
    assert!(body.contains("secret line"));

    let (status, body) =
        get_with_cookie(&s.server, "/api/v1/audit?actor=ada&action=search", &cookie).await;
    assert_eq!(status, 200, "{body}");
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    let event = &events["events"][0];
    assert_eq!(event["reason"], "INC-4711 fraud review");
    assert_eq!(event["hits"], 5);
    assert_eq!(event["query"], "secret");
    let (_, body) = get_with_cookie(&s.server, "/api/v1/audit?action=login.success", &cookie).await;
    assert!(body.contains("\"ada\""), "logins are audited: {body}");
    let (status, body) = get_with_cookie(&s.server, "/api/v1/audit/verify", &cookie).await;
    assert_eq!(status, 200);
    let verify: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verify["ok"], true, "{body}");
    let out = cli(env, &["audit", "verify"], None);
    assert!(out.contains("\"ok\":true"), "{out}");

    // Wrong passwords are refused and audited, with the same answer for unknown users.
    let client = reqwest::Client::new();
    for user in ["ada", "nobody"] {
        let response = client
            .post(s.server.url("/auth/login"))
            .form(&[("user", user), ("password", "wrong-password")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password."));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_writes_headers_body_limits_and_login_throttling() {
    let root = tempfile::tempdir().unwrap();
    // Debug logging, so the secrets check at the end covers the chattiest the server gets.
    let pattern = format!("^logs\\.h-{}$", unique());
    let settings = [("BITESIZE_LOG".to_owned(), "debug".to_owned())];
    let server = Server::start_with_settings(&root.path().join("data"), &pattern, None, &settings);
    cli(
        &server.env,
        &["user", "add", "hal", "--password-stdin"],
        Some("hal-password-99\n"),
    );
    cli(
        &server.env,
        &[
            "binding",
            "add",
            "--user",
            "hal",
            "--role",
            "viewer",
            "--pattern",
            "shop",
        ],
        None,
    );
    let cookie = sign_in(&server, "hal", "hal-password-99").await;
    let client = reqwest::Client::new();
    let token_body = serde_json::json!({"name": "x", "role": "viewer", "namespaces": ["shop"]});

    // The session cookie from another site, or with no origin at all: refused.
    for origin in [Some("http://evil.example"), None] {
        let mut request = client
            .post(server.url("/api/v1/tokens"))
            .header("cookie", &cookie)
            .json(&token_body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "origin {origin:?}");
    }
    let response = client
        .post(server.url("/api/v1/tokens"))
        .header("cookie", &cookie)
        .header("origin", server.url(""))
        .json(&token_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "same origin is fine");

    // Security headers on pages and API alike.
    for path in ["/login", "/api/v1/search", "/healthz"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }

    // Oversized bodies are refused before they reach a handler.
    let huge =
        serde_json::json!({"name": "x".repeat(200_000), "role": "viewer", "namespaces": ["shop"]});
    let response = client
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(&server.admin_token)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert!(
        response.status() == 413 || response.status() == 400,
        "{}",
        response.status()
    );

    // Ten failed sign-ins from one address, then 429 even with the right password.
    for _ in 0..10 {
        let response = client
            .post(server.url("/auth/login"))
            .form(&[("user", "hal"), ("password", "nope-nope")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = client
        .post(server.url("/auth/login"))
        .form(&[("user", "hal"), ("password", "hal-password-99")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);

    // None of the secrets used above shows up in the server's log.
    let log = std::fs::read_to_string(server.data_dir.with_extension("server.log")).unwrap();
    let session = cookie.split_once('=').unwrap().1;
    for (what, secret) in [
        ("admin token", server.admin_token.as_str()),
        ("password", "hal-password-99"),
        ("session", session),
    ] {
        assert!(
            !log.contains(secret),
            "the {what} appears in the server log"
        );
    }
    assert!(log.contains("serving"), "the log was captured");
}
