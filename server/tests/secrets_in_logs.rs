//! No secret in any log of a whole run. One run with every kind of secret Bitesize handles:
//! a broker of the test's own that requires a SASL/SCRAM login (real nisshi), the server at
//! debug level with the Kafka SASL password and an OIDC provider's client secret in its
//! settings, a local account whose password goes in through the CLI, an API token made by the
//! CLI, a password sign-in and a sign-in through the real OpenID Connect provider (code flow:
//! the server sends the client secret), and the shipper at debug level shipping over SASL with
//! its own copy of the password. Then every output of every process (the server's log, the
//! shipper's log, the CLI's stderr and its stdout but for the one line that is the new token)
//! is searched for every secret, as is and, for the client secret, as HTTP Basic's base64.
//!
//! The demo's generated accounts are checked in `demo.rs` (their passwords are printed once, on
//! the console banner, and nowhere else).

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{binary, cri, oidc_client, oidc_issuer, sasl_broker, unique, Browser, LogDir, Server};

/// The shipper with SASL to the test's broker, at debug level; its output goes to `log`.
struct SaslShipper(Child);

impl SaslShipper {
    fn start(
        root: &std::path::Path,
        logs: &LogDir,
        port: u16,
        password: &str,
        log: &std::path::Path,
    ) -> SaslShipper {
        let config = root.join("shipper.yaml");
        std::fs::write(
            &config,
            format!(
                "include: [\"{}/*.log\"]\nlisten: 127.0.0.1:0\ncheckpoint_dir: {}\nnode_name: test-node\n\
                 kafka:\n  brokers: 127.0.0.1:{port}\n  sasl:\n    mechanism: SCRAM-SHA-256\n    username: bitesize\n",
                logs.path.display(),
                root.join("shipper").display(),
            ),
        )
        .unwrap();
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(binary("bitesize-shipper"))
            .args(["run", "--config"])
            .arg(&config)
            .env("BITESIZE_KAFKA__SASL__PASSWORD", password)
            .env("BITESIZE_LOG", "debug")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start bitesize-shipper");
        SaslShipper(child)
    }
}

impl Drop for SaslShipper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a `bitesize` command; returns (stdout, stderr). Fails the test if it fails.
fn bitesize(env: &HashMap<String, String>, args: &[&str], stdin: &str) -> (String, String) {
    use std::io::Write;
    let mut child = Command::new(binary("bitesize"))
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bitesize");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "bitesize {args:?}: {stderr}");
    (stdout, stderr)
}

/// Standard base64 with padding (HTTP Basic), enough for the test's ASCII secrets.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Signs in through the test provider as `user`; returns the session cookie's value and the
/// authorization code the provider handed to the server.
async fn sso_sign_in(server: &Server, user: &str) -> (String, String) {
    let mut browser = Browser::new();
    let response = browser
        .get(&server.url("/auth/oidc/test/login?next=%2Fsearch"))
        .await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&oidc_issuer()), "{location}");
    let mut url = reqwest::Url::parse(&location).unwrap();
    url.query_pairs_mut().append_pair("test_user", user);
    let mut hops = 0;
    let callback = loop {
        hops += 1;
        assert!(hops <= 20, "the provider kept redirecting");
        let response = browser.get(url.as_str()).await;
        let location = response
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("{url}: {} without a redirect", response.status()))
            .to_str()
            .unwrap()
            .to_owned();
        let next = url.join(&location).unwrap();
        if next.as_str().starts_with(&server.url("/")) {
            break next;
        }
        url = next;
    };
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("the provider sends a code");
    let response = browser.get(callback.as_str()).await;
    assert_eq!(
        response.status(),
        303,
        "signed in: {:?}",
        response.text().await
    );
    let session = browser
        .cookie(&server.url("/"), "bitesize_session")
        .expect("a session");
    let me: serde_json::Value = browser
        .get(&server.url("/api/v1/me"))
        .await
        .json()
        .await
        .unwrap();
    assert!(me.to_string().contains(user), "{me}");
    (session, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_any_log_of_a_whole_run() {
    let root = tempfile::tempdir().unwrap();
    let id = unique();
    let kafka_password = format!("kafka-sasl-pw-{id}");
    let (_broker, port) = sasl_broker(root.path(), "bitesize", &kafka_password);

    let issuer = oidc_issuer();
    let (client_id, client_secret) = oidc_client();
    let namespace = format!("sec-{id}");
    let settings = [
        ("BITESIZE_LOG", "debug".to_owned()),
        ("BITESIZE_KAFKA__BROKERS", format!("127.0.0.1:{port}")),
        ("BITESIZE_KAFKA__SASL__MECHANISM", "SCRAM-SHA-256".to_owned()),
        ("BITESIZE_KAFKA__SASL__USERNAME", "bitesize".to_owned()),
        ("BITESIZE_KAFKA__SASL__PASSWORD", kafka_password.clone()),
        (
            "BITESIZE_OIDC",
            format!(
                r#"[{{name="test", display_name="Test IdP", issuer_url="{issuer}", client_id="{client_id}", client_secret="{client_secret}"}}]"#
            ),
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let server = Server::start_with_settings(
        &root.path().join("data"),
        &format!("^logs\\.{namespace}$"),
        None,
        &settings,
    );

    // The CLI, with the server's settings (debug level too): an account with a password, a
    // binding, and an API token for it.
    let user_password = format!("hal-password-{id}");
    let mut cli_output = String::new();
    for (args, stdin) in [
        (
            vec!["user", "add", "hal", "--password-stdin"],
            format!("{user_password}\n"),
        ),
        (
            vec![
                "binding",
                "add",
                "--user",
                "hal",
                "--role",
                "viewer",
                "--pattern",
                &namespace,
            ],
            String::new(),
        ),
    ] {
        let (stdout, stderr) = bitesize(&server.env, &args, &stdin);
        cli_output.push_str(&stdout);
        cli_output.push_str(&stderr);
    }
    let (stdout, stderr) = bitesize(
        &server.env,
        &["token", "create", "--subject", "hal", "--role", "viewer"],
        "",
    );
    let mut lines: Vec<&str> = stdout.lines().collect();
    let hal_token = lines.pop().expect("the token").to_owned();
    assert!(hal_token.len() >= 20, "{stdout}");
    cli_output.push_str(&lines.join("\n"));
    cli_output.push_str(&stderr);

    // The shipper ships over SASL; the server indexes over SASL; hal reads with the token.
    let logs = LogDir::new(root.path());
    let file = logs.file("web-1", &namespace, "web");
    logs.append(
        &file,
        &(0..5)
            .map(|i| cri("stdout", "F", &format!("line {i}")))
            .collect::<Vec<_>>(),
    );
    let shipper_log = root.path().join("shipper.log");
    let shipper = SaslShipper::start(root.path(), &logs, port, &kafka_password, &shipper_log);
    assert_eq!(
        server
            .wait_total(&namespace, 5, Duration::from_secs(60))
            .await,
        5,
        "lines went through the SASL broker; see {}",
        shipper_log.display()
    );
    let (status, body) = server
        .get_json_as(
            &format!("/api/v1/search?namespace={namespace}"),
            Some(&hal_token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 5, "{body}");

    // A password sign-in and an SSO sign-in (the server redeems the code with the secret).
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/auth/login"))
        .form(&[("user", "hal"), ("password", user_password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signed in with the password");
    let password_session = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let (sso_session, code) = sso_sign_in(&server, &format!("sso-{id}")).await;
    drop(shipper);

    let server_log = std::fs::read_to_string(server.data_dir.with_extension("server.log")).unwrap();
    let shipper_log = std::fs::read_to_string(&shipper_log).unwrap();
    assert!(
        server_log.contains("DEBUG"),
        "the server logged at debug level"
    );
    // (the shipper has little to say at debug level: its log shows it started and connected)
    assert!(
        shipper_log.contains("INFO"),
        "the shipper's log was captured: {shipper_log:.2000}"
    );
    let basic = base64(format!("{client_id}:{client_secret}").as_bytes());
    let secrets = [
        ("the Kafka SASL password", kafka_password.clone()),
        ("the OIDC client secret", client_secret.clone()),
        ("the OIDC client credentials (HTTP Basic)", basic),
        ("the account password", user_password.clone()),
        ("the admin API token", server.admin_token.clone()),
        ("the CLI-made API token", hal_token.clone()),
        ("the password session", password_session),
        ("the SSO session", sso_session),
        ("the authorization code", code),
    ];
    for (what, secret) in &secrets {
        // Every secret here is URL-safe, so its URL-encoded form is itself.
        assert!(
            secret.len() >= 8,
            "{what} is long enough to be searched for"
        );
        for (name, output) in [
            ("server log", &server_log),
            ("shipper log", &shipper_log),
            ("CLI output", &cli_output),
        ] {
            assert!(
                !output.contains(secret.as_str()),
                "{what} appears in the {name}"
            );
        }
    }
}
