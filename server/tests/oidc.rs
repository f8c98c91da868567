//! Single sign-on end to end: the real `bitesize` binary signs people in through a real
//! OpenID Connect provider (node-oidc-provider in `scripts/oidc-provider`, started by
//! `./scripts/test`, found through `TEST_OIDC_ISSUER`). The provider has no login form: the
//! test names the user, its groups and any misbehaviour (`test_mode`) with extra parameters
//! on the authorization URL before following it.

mod common;

use std::time::Duration;

use common::{cli, cri, oidc_client, oidc_issuer, unique, Browser, LogDir, Server, Shipper};

/// Two providers over the one test issuer: `test` reads groups from the ID token,
/// `test-userinfo` from the userinfo endpoint.
fn sso_settings(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let (_, secret) = oidc_client();
    sso_settings_with_secret(&format!(r#"client_secret="{secret}""#), extra)
}

/// Like [`sso_settings`], the client secret given by `secret_setting` (one of the
/// `client_secret*` keys).
fn sso_settings_with_secret(secret_setting: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let issuer = oidc_issuer();
    let (id, _) = oidc_client();
    let provider = |name: &str, display: &str, more: &str| {
        format!(
            r#"{{name="{name}", display_name="{display}", issuer_url="{issuer}", client_id="{id}", {secret_setting}{more}}}"#
        )
    };
    let mut settings = vec![(
        "BITESIZE_OIDC".to_owned(),
        format!(
            "[{}, {}]",
            provider("test", "Test IdP", ""),
            provider(
                "test-userinfo",
                "Test IdP (userinfo)",
                r#", groups_from="userinfo""#
            )
        ),
    )];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    settings
}

/// A server with the SSO settings, indexing no topic.
fn start_server(root: &std::path::Path, database_url: Option<&str>) -> Server {
    Server::start_with_settings(
        &root.join("data"),
        &format!("^logs\\.none-{}$", unique()),
        database_url,
        &sso_settings(&[]),
    )
}

/// How the provider should sign the user in.
struct As<'a> {
    user: &'a str,
    groups: &'a [&'a str],
    mode: Option<&'a str>,
}

impl As<'_> {
    fn user(user: &str) -> As<'_> {
        As {
            user,
            groups: &[],
            mode: None,
        }
    }
}

/// Starts a sign-in at the server with `provider` and goes through the test provider until
/// it sends the browser back; returns that callback URL, not yet followed. `tamper` may
/// change the authorization URL first (the test's parameters are added after it).
async fn through_provider(
    browser: &mut Browser,
    server: &Server,
    provider: &str,
    who: &As<'_>,
    tamper: impl FnOnce(reqwest::Url) -> reqwest::Url,
) -> String {
    let start = server.url(&format!(
        "/auth/oidc/{provider}/login?next=%2Fsearch%3Fq%3Dx"
    ));
    let response = browser.get(&start).await;
    assert_eq!(
        response.status(),
        303,
        "{start}: {:?}",
        response.text().await
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&oidc_issuer()),
        "the sign-in goes to the provider: {location}"
    );
    let url = reqwest::Url::parse(&location).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        param("code_challenge_method").as_deref(),
        Some("S256"),
        "PKCE: {location}"
    );
    assert!(
        param("state").is_some() && param("nonce").is_some(),
        "{location}"
    );
    assert!(
        browser
            .cookie(&server.url("/"), "bitesize_oidc_state")
            .as_deref()
            == param("state").as_deref(),
        "the state is bound to this browser"
    );

    let mut url = tamper(url);
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("test_user", who.user);
        query.append_pair("test_groups", &who.groups.join(","));
        if let Some(mode) = who.mode {
            query.append_pair("test_mode", mode);
        }
    }
    for _ in 0..20 {
        let response = browser.get(url.as_str()).await;
        let status = response.status().as_u16();
        let Some(location) = response.headers().get("location") else {
            panic!(
                "{url}: {status} without a redirect: {}",
                response.text().await.unwrap()
            );
        };
        let next = url.join(location.to_str().unwrap()).unwrap();
        if next.as_str().starts_with(&server.url("/")) {
            return next.to_string();
        }
        url = next;
    }
    panic!("the provider kept redirecting");
}

/// The whole sign-in; returns the server's answer to the callback.
async fn sign_in(
    browser: &mut Browser,
    server: &Server,
    provider: &str,
    who: &As<'_>,
) -> reqwest::Response {
    let callback = through_provider(browser, server, provider, who, |u| u).await;
    browser.get(&callback).await
}

async fn me(browser: &mut Browser, server: &Server) -> (u16, serde_json::Value) {
    let response = browser.get(&server.url("/api/v1/me")).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A refused callback: the login page with a 4xx status and the reason; no session.
async fn assert_refused(
    response: reqwest::Response,
    browser: &Browser,
    server: &Server,
    reason: &str,
) {
    let status = response.status().as_u16();
    let session_set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("bitesize_session=s_"));
    let body = response.text().await.unwrap();
    assert!(
        (400..500).contains(&status),
        "refused with a 4xx, got {status}: {body}"
    );
    assert!(!session_set, "no session for a refused sign-in");
    assert!(browser
        .cookie(&server.url("/"), "bitesize_session")
        .is_none());
    assert!(
        body.contains("Sign in with Test IdP"),
        "the login page: {body}"
    );
    assert!(body.contains(reason), "says why ({reason:?}): {body}");
}

/// Audit events of `action` by `actor`.
async fn audit_events(server: &Server, action: &str, actor: &str) -> Vec<serde_json::Value> {
    let (status, body) = server
        .get_json(&format!("/api/v1/audit?action={action}&actor={actor}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("audit list: {body}"))
}

#[tokio::test]
async fn sso_sign_in_with_groups_gets_the_group_bindings() {
    let root = tempfile::tempdir().unwrap();
    let id = unique();
    let (a, b) = (format!("sa-{id}"), format!("sb-{id}"));
    let logs = LogDir::new(root.path());
    let line = |text: &str| {
        (0..3)
            .map(|i| cri("stdout", "F", &format!("{text} {i}")))
            .collect::<Vec<_>>()
    };
    logs.append(&logs.file("web-a", &a, "web"), &line("team line"));
    logs.append(&logs.file("web-b", &b, "web"), &line("secret line"));
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.s[ab]-{id}$"),
        None,
        &sso_settings(&[]),
    );
    let _shipper = Shipper::start(root.path(), &logs);
    assert_eq!(server.wait_total(&a, 3, Duration::from_secs(60)).await, 3);
    assert_eq!(server.wait_total(&b, 3, Duration::from_secs(60)).await, 3);

    let team = format!("shop-team-{id}");
    cli(
        &server.env,
        &[
            "binding",
            "add",
            "--group",
            &team,
            "--role",
            "viewer",
            "--pattern",
            &a,
        ],
        None,
    );
    let user = format!("alice-{id}");

    let mut browser = Browser::new();
    let callback = through_provider(
        &mut browser,
        &server,
        "test",
        &As {
            user: &user,
            groups: &[&team, "other"],
            mode: None,
        },
        |u| u,
    )
    .await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    assert_eq!(
        response.headers()["location"],
        "/search?q=x",
        "back to where the user was going"
    );
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("bitesize_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let (status, who) = me(&mut browser, &server).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["user"], user.as_str());
    assert_eq!(
        who["groups"],
        serde_json::json!(["other", team]),
        "sorted: {who}"
    );
    assert_eq!(
        who["grants"],
        serde_json::json!([{"role": "viewer", "pattern": a}]),
        "{who}"
    );

    // The group's namespace, and only it.
    let response = browser
        .get(&server.url(&format!("/api/v1/search?namespace={a}&limit=10")))
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["total"], 3, "{body}");
    for path in [
        format!("/api/v1/search?namespace={b}"),
        "/api/v1/search?q=secret".into(),
        format!("/search?namespace={b}"),
    ] {
        let response = browser.get(&server.url(&path)).await;
        let text = response.text().await.unwrap();
        assert!(!text.contains("secret line"), "LEAK via {path}: {text}");
    }

    // The user row was created, and the sign-in audited.
    assert!(cli(&server.env, &["user", "list"], None).contains(&user));
    let events = audit_events(&server, "login.success", &user).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].to_string().contains("oidc"), "{events:?}");

    // The same callback again (its state cookie put back): used once, so refused.
    let state = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut replay = Browser::new();
    replay.set_cookie(&server.url("/"), "bitesize_oidc_state", &state);
    let response = replay.get(&callback).await;
    assert_refused(response, &replay, &server, "already used").await;
}

#[tokio::test]
async fn tampered_state_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    let user = format!("mallory-{}", unique());
    let mut browser = Browser::new();
    let callback = through_provider(&mut browser, &server, "test", &As::user(&user), |u| u).await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    url.query_pairs_mut().clear();
    for (k, v) in pairs {
        let v = if k == "state" { format!("{v}x") } else { v };
        url.query_pairs_mut().append_pair(&k, &v);
    }
    let response = browser.get(url.as_str()).await;
    assert_refused(response, &browser, &server, "state does not match").await;

    // The untouched callback, but in another browser (no state cookie: login CSRF).
    let mut other = Browser::new();
    let response = other.get(&callback).await;
    assert_refused(response, &other, &server, "state does not match").await;

    let events = audit_events(&server, "login.failure", "oidc:test").await;
    assert!(events.len() >= 2, "failures are audited: {events:?}");
}

#[tokio::test]
async fn wrong_nonce_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);

    // The nonce changed on the way to the provider: the ID token carries another one.
    let user = format!("nonce-{}", unique());
    let mut browser = Browser::new();
    let callback = through_provider(&mut browser, &server, "test", &As::user(&user), |mut u| {
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        u.query_pairs_mut().clear();
        for (k, v) in pairs {
            let v = if k == "nonce" {
                "a-nonce-of-the-attacker".into()
            } else {
                v
            };
            u.query_pairs_mut().append_pair(&k, &v);
        }
        u
    })
    .await;
    let response = browser.get(&callback).await;
    assert_refused(response, &browser, &server, "nonce mismatch").await;

    // The provider itself puts a wrong nonce in the token.
    let user = format!("nonce2-{}", unique());
    let mut browser = Browser::new();
    let who = As {
        mode: Some("wrong_nonce"),
        ..As::user(&user)
    };
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_refused(response, &browser, &server, "nonce mismatch").await;
}

#[tokio::test]
async fn expired_id_token_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    let user = format!("late-{}", unique());
    let mut browser = Browser::new();
    let who = As {
        mode: Some("expired"),
        ..As::user(&user)
    };
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_refused(response, &browser, &server, "has expired").await;
    let events = audit_events(&server, "login.failure", "oidc:test").await;
    assert!(
        events.iter().any(|e| e.to_string().contains("expired")),
        "{events:?}"
    );
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    let user = format!("aud-{}", unique());
    let mut browser = Browser::new();
    let who = As {
        mode: Some("wrong_audience"),
        ..As::user(&user)
    };
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_refused(
        response,
        &browser,
        &server,
        "issued for another application",
    )
    .await;
}

#[tokio::test]
async fn forged_signature_and_refusal_are_rejected() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    let user = format!("forged-{}", unique());
    let mut browser = Browser::new();
    let who = As {
        mode: Some("bad_signature"),
        ..As::user(&user)
    };
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_refused(response, &browser, &server, "signature is not valid").await;

    let user = format!("no-{}", unique());
    let mut browser = Browser::new();
    let who = As {
        mode: Some("deny"),
        ..As::user(&user)
    };
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_refused(
        response,
        &browser,
        &server,
        "did not sign you in: access_denied",
    )
    .await;
}

#[tokio::test]
async fn groups_can_come_from_userinfo() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    let user = format!("bob-{}", unique());
    let mut browser = Browser::new();
    // The ID token has no groups in this mode: only userinfo has them.
    let who = As {
        user: &user,
        groups: &["ops", "payments-team"],
        mode: Some("userinfo_groups"),
    };
    let response = sign_in(&mut browser, &server, "test-userinfo", &who).await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let (status, body) = me(&mut browser, &server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["groups"],
        serde_json::json!(["ops", "payments-team"]),
        "{body}"
    );

    // The same user through the ID-token provider: no groups there in this mode.
    let mut browser = Browser::new();
    let response = sign_in(&mut browser, &server, "test", &who).await;
    assert_eq!(response.status(), 303);
    let (_, body) = me(&mut browser, &server).await;
    assert_eq!(body["groups"], serde_json::json!([]), "{body}");
}

/// The `id_token_sealed` column of `user`'s sessions, read straight from the database.
async fn stored_id_tokens(database_url: &str, user: &str) -> Vec<Option<String>> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(database_url).await.unwrap();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT id_token_sealed FROM sessions WHERE user_name = '{user}'"),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            row.try_get::<Option<String>>("", "id_token_sealed")
                .unwrap()
        })
        .collect()
}

/// Signs in, signs out; the session is gone and the browser goes on to the provider. The
/// ID token kept for that is not stored in plain text. `database_url`: the server's.
async fn sign_in_and_out(server: &Server, database_url: &str) {
    let user = format!("carol-{}", unique());
    let mut browser = Browser::new();
    let response = sign_in(&mut browser, server, "test", &As::user(&user)).await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let session = browser
        .cookie(&server.url("/"), "bitesize_session")
        .expect("session");
    assert_eq!(me(&mut browser, server).await.0, 200);
    let stored = stored_id_tokens(database_url, &user).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let sealed = stored[0]
        .clone()
        .expect("the session keeps the logout hint");
    assert!(
        sealed.starts_with("v1:") && !sealed.contains("eyJ"),
        "sealed, not a JWT: {sealed}"
    );

    let response = browser.post(&server.url("/auth/logout")).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let href = page
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("a way on to the provider: {page}"))
        .replace("&amp;", "&");
    let end = reqwest::Url::parse(&href).unwrap();
    assert!(
        href.starts_with(&format!("{}/session/end", oidc_issuer())),
        "{href}"
    );
    let params: Vec<(String, String)> = end.query_pairs().into_owned().collect();
    let hint = params
        .iter()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("an id_token_hint: {href}"));
    assert_eq!(hint.split('.').count(), 3, "{href}");
    // The browser's cookie unsealed it; the database never held it in the clear.
    for stored in stored_id_tokens(database_url, &user).await {
        let stored = stored.unwrap_or_default();
        assert!(!stored.contains(&hint) && !stored.contains(hint.split('.').nth(1).unwrap()));
    }
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "post_logout_redirect_uri" && *v == server.url("/login")),
        "{href}"
    );
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");

    // Ended here: the old cookie is worth nothing, even sent again.
    assert!(browser
        .cookie(&server.url("/"), "bitesize_session")
        .is_none());
    browser.set_cookie(&server.url("/"), "bitesize_session", &session);
    assert_eq!(me(&mut browser, server).await.0, 401);

    // And the provider accepts the end-session request (its confirmation page).
    let response = browser.get(&href).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let events = audit_events(server, "logout", &user).await;
    assert_eq!(events.len(), 1, "{events:?}");
}

/// The client secret in the server's log, at debug level: never.
fn assert_secret_not_logged(server: &Server) {
    let (_, secret) = oidc_client();
    let log = std::fs::read_to_string(server.data_dir.with_extension("server.log")).unwrap();
    assert!(log.contains("serving"), "the log was captured");
    assert!(
        !log.contains(&secret),
        "the client secret appears in the server log"
    );
}

/// The client secret from a file (SQLite), and from an environment variable (PostgreSQL).
#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider() {
    let root = tempfile::tempdir().unwrap();
    let (_, secret) = oidc_client();
    let secret_file = root.path().join("oidc-client-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let settings = sso_settings_with_secret(
        &format!(r#"client_secret_file="{}""#, secret_file.display()),
        &[("BITESIZE_LOG", "debug")],
    );
    let data = root.path().join("data");
    let server = Server::start_with_settings(
        &data,
        &format!("^logs\\.none-{}$", unique()),
        None,
        &settings,
    );
    let database = format!("sqlite://{}?mode=ro", data.join("bitesize.db").display());
    sign_in_and_out(&server, &database).await;
    assert_secret_not_logged(&server);
}

#[tokio::test]
async fn sso_on_postgres() {
    let root = tempfile::tempdir().unwrap();
    let url = common::fresh_postgres_database().await;
    let (_, secret) = oidc_client();
    let settings = sso_settings_with_secret(
        r#"client_secret_env="TEST_IDP_CLIENT_SECRET""#,
        &[
            ("TEST_IDP_CLIENT_SECRET", &secret),
            ("BITESIZE_LOG", "debug"),
        ],
    );
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.none-{}$", unique()),
        Some(&url),
        &settings,
    );
    sign_in_and_out(&server, &url).await;
    assert_secret_not_logged(&server);
}

/// A wrong client secret is the provider's refusal, said plainly; a missing secret file
/// stops the server at start-up naming the key.
#[tokio::test]
async fn a_missing_secret_file_is_a_config_error_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let settings = sso_settings_with_secret(
        &format!(
            r#"client_secret_file="{}""#,
            root.path().join("no-such-file").display()
        ),
        &[],
    );
    let mut env: std::collections::HashMap<String, String> = settings.into_iter().collect();
    env.insert(
        "BITESIZE_DATA_DIR".into(),
        root.path().join("data").display().to_string(),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bitesize"))
        .arg("migrate")
        .envs(&env)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("oidc[0].client_secret_file") && stderr.contains("no-such-file"),
        "{stderr}"
    );
}

/// Refused callbacks count as failed sign-ins: after ten, even an honest sign-in through
/// the provider gets 429, and so does the password form.
#[tokio::test]
async fn failed_callbacks_count_in_the_login_throttle() {
    let root = tempfile::tempdir().unwrap();
    let server = start_server(root.path(), None);
    for i in 0..10 {
        let mut browser = Browser::new();
        browser.set_cookie(
            &server.url("/"),
            "bitesize_oidc_state",
            &format!("guess-{i}"),
        );
        let response = browser
            .get(&server.url(&format!(
                "/auth/oidc/test/callback?state=guess-{i}&code=guessed-code"
            )))
            .await;
        assert_eq!(response.status(), 401, "attempt {i}");
    }
    let mut browser = Browser::new();
    let response = sign_in(&mut browser, &server, "test", &As::user("honest-dave")).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let page = response.text().await.unwrap();
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    assert!(browser
        .cookie(&server.url("/"), "bitesize_session")
        .is_none());
    let response = reqwest::Client::new()
        .post(server.url("/auth/login"))
        .form(&[("user", "admin"), ("password", "whatever-it-is")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn local_accounts_can_be_turned_off() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.none-{}$", unique()),
        None,
        &sso_settings(&[("BITESIZE_LOCAL_ACCOUNTS", "false")]),
    );
    cli(
        &server.env,
        &["user", "set-password", "admin"],
        Some("a-long-password\n"),
    );
    let mut browser = Browser::new();
    let page = browser
        .get(&server.url("/login?next=/search"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sign in with Test IdP") && page.contains("Sign in with Test IdP (userinfo)"),
        "{page}"
    );
    assert!(
        page.contains("href=\"/auth/oidc/test/login?next=/search\""),
        "{page}"
    );
    assert!(
        !page.contains("type=\"password\""),
        "no password form: {page}"
    );
    let response = reqwest::Client::new()
        .post(server.url("/auth/login"))
        .form(&[("user", "admin"), ("password", "a-long-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Local accounts are turned off"));
}
