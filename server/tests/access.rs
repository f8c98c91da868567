//! Access control over real ingest: a viewer of one namespace sees nothing of another,
//! through every data endpoint and every way of naming it, signed in with a session cookie
//! or with an API token; revoked tokens stop at once; auditors state reasons and every read
//! is in the audit log.

mod common;

use std::time::Duration;

use common::{cli, cri, unique, LogDir, Server, Shipper};

struct Setup {
    server: Server,
    _shipper: Shipper,
    _root: tempfile::TempDir,
    a: String,
    b: String,
}

/// Two namespaces with data: A (3 lines) and B (5 lines, all containing "secret").
async fn setup() -> Setup {
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
    logs.append(&logs.file("web-b", &b, "web"), &lines_b);
    // One server indexing both namespaces.
    let server = Server::start_with_pattern(
        &root.path().join("data"),
        &format!("^logs\\.t[ab]-{id}$"),
        None,
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

/// Every data endpoint, every way of naming B: none of B's content may come back.
fn probes(a: &str, b: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for namespace in [
        format!("namespace={b}"),
        format!("namespace={a},{b}"),
        String::new(),
    ] {
        for q in [
            "",
            "&q=secret",
            &format!("&q=namespace:{b}"),
            &format!("&q=kubernetes.namespace_name:{b}"),
        ] {
            paths.push(format!("/api/v1/search?{namespace}{q}&limit=100"));
            paths.push(format!("/api/v1/export?{namespace}{q}"));
            paths.push(format!("/api/v1/export?{namespace}{q}&format=csv"));
            paths.push(format!("/api/v1/histogram?{namespace}{q}"));
            paths.push(format!("/api/v1/facets?{namespace}{q}&field=fields.level"));
            paths.push(format!("/search?{namespace}{q}"));
        }
    }
    paths.push("/api/v1/namespaces".into());
    paths
}

fn assert_no_leak(path: &str, status: u16, body: &str, b: &str) {
    assert!(status == 200 || status == 400, "{path}: {status} {body}");
    assert!(
        !body.contains("secret line"),
        "LEAK of B's records via {path}: {body}"
    );
    if path.contains("/api/v1/namespaces") {
        assert!(!body.contains(b), "LEAK of B's name via {path}: {body}");
    }
    if path.starts_with("/search") {
        // The page echoes the query typed in, but must not offer B in the picker.
        assert!(
            !body.contains(&format!("<option value=\"{b}\"")),
            "LEAK of B in the picker via {path}"
        );
    }
    if path.contains("/api/v1/search") || path.contains("/api/v1/histogram") {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["total"].as_u64().unwrap_or(0) <= 3,
            "{path}: counts B: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_of_a_sees_nothing_of_b_by_cookie_or_token() {
    let s = setup().await;
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

    let mut checked = 0;
    for path in probes(&s.a, &s.b) {
        let (status, body) = get_with_cookie(&s.server, &path, &cookie).await;
        assert_no_leak(&path, status, &body, &s.b);
        checked += 1;
    }

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
    for path in probes(&s.a, &s.b) {
        let response = s.server.get_as(&path, Some(&token)).send().await.unwrap();
        let status = response.status().as_u16();
        assert_no_leak(&path, status, &response.text().await.unwrap(), &s.b);
        checked += 1;
    }
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

    // Admin-only routes are 403 for the viewer; signed out is 401 (API) or a redirect (pages).
    let (status, _) = get_with_cookie(&s.server, "/api/v1/bindings", &cookie).await;
    assert_eq!(status, 403);
    let (status, _) = get_with_cookie(&s.server, "/api/v1/audit", &cookie).await;
    assert_eq!(status, 403);
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
    assert!(checked > 100, "{checked} probes");
}

#[tokio::test(flavor = "multi_thread")]
async fn auditors_state_reasons_and_every_read_is_audited() {
    let s = setup().await;
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
