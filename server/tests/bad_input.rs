//! The server's half of the bad-input catalogue (`docs/bad-input.md`): one test per case,
//! each asserting the documented outcome — a marked record, an answer, or a clear 4xx with
//! the reason — never a 500, a crash or a lost record. Records are produced straight to the
//! real broker (`TEST_KAFKA_BOOTSTRAP`) and read back through the real `bitesize serve`, on
//! SQLite, and on PostgreSQL (`TEST_POSTGRES_URL`) where the database is what is at stake.

mod common;

use std::time::{Duration, Instant};

use common::{cli, create_topic, fresh_postgres_database, kafka_bootstrap, unique, Server};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// Text that would change an SQL statement if it were pasted into one.
const SQL_LOOKING: [&str; 6] = [
    "'; DROP TABLE users; --",
    "\" OR \"1\"=\"1",
    "1 OR 1=1; SELECT * FROM api_tokens",
    "x'); DELETE FROM audit_events; --",
    "%_\\ LIKE '%' ESCAPE '\\'",
    "$1 ?; /* */ ' OR ''='",
];

/// Sends `payloads` to `topic` in order, each acknowledged before the test goes on.
async fn produce(topic: &str, payloads: &[Vec<u8>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("message.max.bytes", "20000000")
        .set("compression.codec", "zstd")
        .create()
        .unwrap();
    for payload in payloads {
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {} bytes: {e}", payload.len()));
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `GET /api/v1/search` as the admin: (status, body).
async fn search(server: &Server, namespace: &str, q: &str) -> (u16, Value) {
    let response = server
        .get_as("/api/v1/search", Some(server.admin_token.as_str()))
        .query(&[("namespace", namespace), ("q", q), ("limit", "100")])
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A GET written on a plain socket, for request lines longer than the HTTP client allows
/// (64 KiB): (status, body).
fn raw_get(server: &Server, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut url = reqwest::Url::parse(&server.url(path)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    let request = format!(
        "GET {}?{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        url.path(),
        url.query().unwrap_or_default(),
        server.port,
        server.admin_token
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // A refused head may be answered before it is all written.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The JSON object in a raw response body (chunk sizes around it ignored).
fn json_of(body: &str) -> Value {
    let (start, end) = (body.find('{'), body.rfind('}'));
    match (start, end) {
        (Some(start), Some(end)) => serde_json::from_str(&body[start..=end]).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `search` over a raw socket: (status, body).
fn raw_search(server: &Server, namespace: &str, q: &str) -> (u16, Value) {
    let (status, body) = raw_get(
        server,
        "/api/v1/search",
        &[("namespace", namespace), ("q", q), ("limit", "100")],
    );
    (status, json_of(&body))
}

/// The hits of `q`, which must be answered.
async fn hits(server: &Server, namespace: &str, q: &str) -> Vec<Value> {
    let (status, body) = search(server, namespace, q).await;
    assert_eq!(status, 200, "{q:?}: {body}");
    body["hits"].as_array().unwrap().clone()
}

/// A 4xx with the JSON error body every handler gives; returns its `detail`.
fn refused(status: u16, body: &Value, what: &str) -> String {
    assert!((400..500).contains(&status), "{what}: {status} {body}");
    assert!(body["error"].is_string(), "{what}: {body}");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

/// The server answers and its log shows no panic and no internal error.
async fn assert_healthy(server: &Server) {
    let (status, _) = server.get_json("/healthz").await;
    assert_eq!(status, 200);
    let log = server_log(server);
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("request failed"), "a 500 was logged:\n{log}");
}

fn server_log(server: &Server) -> String {
    std::fs::read_to_string(server.data_dir.with_extension("server.log")).unwrap_or_default()
}

/// `key` written so the query language reads it as a label key (see docs/query.md).
fn escape_key(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if matches!(c, '\\' | ':' | '"' | '(' | ')' | '*') || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `value` as a quoted query value.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Starts a server over a fresh topic of its own; returns (server, namespace, topic, dir).
async fn server_with_topic(prefix: &str) -> (Server, String, String, tempfile::TempDir) {
    let namespace = format!("{prefix}-{}", unique());
    let topic = format!("logs.{namespace}");
    create_topic(&topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &namespace, None);
    (server, namespace, topic, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_namespace_and_label_names_are_plain_data_in_records_and_queries() {
    let (server, namespace, topic, _dir) = server_with_topic("hostile").await;
    let labels = [
        ("quote\"key", "va\"lue"),
        ("single'key", "it's"),
        ("back\\slash", "c:\\path\\"),
        ("app.kubernetes.io/name", "web"),
        ("colon:key", "a:b"),
        ("space key", "two words"),
        ("paren(key)", "(x)"),
        ("ключ", "значение"),
        ("emoji🦀", "🦀🦀"),
        ("rtl\u{202e}key", "\u{202e}evil"),
        ("<script>", "</script><b>"),
        ("'; DROP TABLE namespaces; --", "1' OR '1'='1"),
    ];
    let hostile_namespace = "'; DROP TABLE namespaces; --\"<b>";
    let mut payloads: Vec<Vec<u8>> = labels
        .iter()
        .map(|(key, value)| {
            json!({
                "time": now(), "stream": "stdout", "log": format!("labelled {value}"),
                "kubernetes": {
                    "namespace_name": hostile_namespace, "pod_name": "p\"o'd\\",
                    "container_name": "ctr", "labels": { *key: *value },
                },
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    let many: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("k{i}"), json!(format!("v{i}"))))
        .collect();
    payloads.push(
        json!({
            "time": now(), "stream": "stdout", "log": "ten thousand labels",
            "kubernetes": { "namespace_name": hostile_namespace, "pod_name": "many", "labels": many },
        })
        .to_string()
        .into_bytes(),
    );
    produce(&topic, &payloads).await;
    let total = server
        .wait_total(&namespace, payloads.len() as u64, Duration::from_secs(60))
        .await;
    assert_eq!(total, payloads.len() as u64);

    // The namespace a record claims is not where it goes: the topic decides.
    for hit in hits(&server, &namespace, "labelled").await {
        assert_eq!(hit["kubernetes"]["namespace_name"], json!(namespace));
        assert_eq!(hit["kubernetes"]["pod_name"], json!("p\"o'd\\"));
    }
    // Every hostile label key and value is found exactly, and only its own record.
    for (key, value) in labels {
        let q = format!("labels.{}:{}", escape_key(key), quote(value));
        let found = hits(&server, &namespace, &q).await;
        assert_eq!(found.len(), 1, "{q}");
        assert_eq!(found[0]["kubernetes"]["labels"][key], json!(value), "{q}");
    }
    // The record with 10 000 labels: indexed, found by any of them, returned whole.
    let found = hits(&server, &namespace, "labels.k9999:v9999").await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["kubernetes"]["labels"]
            .as_object()
            .map(|l| l.len()),
        Some(10_000)
    );
    assert_eq!(hits(&server, &namespace, "labels.k5000:*").await.len(), 1);
    let (status, facets) = server
        .get_json(&format!(
            "/api/v1/facets?namespace={namespace}&field=labels.k1"
        ))
        .await;
    assert_eq!(status, 200, "{facets}");

    // Hostile names in queries: as a parameter, a 400 naming the rule; in the query, a
    // value like any other.
    for bad in [
        hostile_namespace,
        "../../etc/passwd",
        "ключ",
        "UPPER",
        "%",
        "*",
        "a".repeat(300).as_str(),
    ] {
        let (status, body) = search(&server, bad, "").await;
        let detail = refused(status, &body, bad);
        assert!(detail.contains("invalid namespace"), "{bad}: {detail}");
    }
    let q = format!("namespace:{}", quote(hostile_namespace));
    assert!(hits(&server, "", &q).await.is_empty());
    // And in paths.
    for path in [
        "/api/v1/admin/namespaces/'%3B%20DROP%20TABLE%20namespaces%3B%20--",
        "/api/v1/namespaces/%E2%80%AEevil/stream",
        "/api/v1/namespaces/..%2F..%2Fetc/stream",
    ] {
        let (status, body) = server.get_json(path).await;
        refused(status, &body, path);
    }
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_1_mb_are_indexed_and_returned_whole() {
    let (server, namespace, topic, _dir) = server_with_topic("big").await;
    let mut text = String::from("needlestart ");
    let mut i = 0;
    while text.len() < 1_000_000 - 10 {
        text.push_str(&format!("w{i} "));
        i += 1;
    }
    text.truncate(1_000_000 - 10);
    text.push_str(" needleend");
    assert_eq!(text.len(), 1_000_000);
    let message = json!({ "level": "warn", "msg": text }).to_string();
    let payloads = vec![
        json!({ "time": now(), "stream": "stdout", "log": text })
            .to_string()
            .into_bytes(),
        json!({ "time": now(), "stream": "stdout", "log": message,
                "fields": { "level": "warn", "msg": text } })
        .to_string()
        .into_bytes(),
    ];
    assert!(payloads.iter().all(|p| p.len() > 1_000_000));
    produce(&topic, &payloads).await;
    assert_eq!(
        server
            .wait_total(&namespace, 2, Duration::from_secs(60))
            .await,
        2
    );
    let found = hits(&server, &namespace, "needleend -fields.level:warn").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["log"], json!(text), "the whole message comes back");
    let found = hits(&server, &namespace, "fields.msg:needleend").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["fields"]["msg"], json!(text));
    let (status, export) = server
        .get_text(&format!("/api/v1/export?namespace={namespace}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(export.lines().count(), 2);
    assert!(export.len() > 3_000_000);
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_json_is_kept_without_blowing_the_stack() {
    let (server, namespace, topic, _dir) = server_with_topic("deep").await;
    let nested = |depth: usize, bottom: &str| {
        format!(
            "{}\"{bottom}\"{}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        )
    };
    let payloads = vec![
        // The record itself nests 10 000 levels (in `fields`).
        format!(
            r#"{{"time":"{}","log":"deepfields","fields":{}}}"#,
            now(),
            nested(10_000, "bottomfields")
        )
        .into_bytes(),
        // The record nests 10 000 levels in a field the record format does not name.
        format!(
            r#"{{"time":"{}","log":"deepextra","extra":{}}}"#,
            now(),
            nested(10_000, "bottomextra")
        )
        .into_bytes(),
        // A message that is 10 000 levels of JSON, as text.
        json!({ "time": now(), "log": nested(10_000, "bottomtext") })
            .to_string()
            .into_bytes(),
        // 100 levels: within what is parsed, so `fields` are indexed.
        format!(
            r#"{{"time":"{}","log":"hundred","fields":{}}}"#,
            now(),
            nested(100, "bottomhundred")
        )
        .into_bytes(),
        json!({ "time": now(), "log": "after the deep ones" })
            .to_string()
            .into_bytes(),
    ];
    produce(&topic, &payloads).await;
    assert_eq!(
        server
            .wait_total(&namespace, 5, Duration::from_secs(60))
            .await,
        5,
        "every record indexed, the last one too: ingest goes on"
    );
    for (word, raw) in [
        ("bottomfields", &payloads[0]),
        ("bottomextra", &payloads[1]),
    ] {
        let found = hits(&server, &namespace, word).await;
        assert_eq!(found.len(), 1, "{word}");
        assert_eq!(found[0]["marks"], json!(["not_json"]), "{word}");
        assert_eq!(
            found[0]["log"].as_str().unwrap().as_bytes(),
            raw.as_slice(),
            "kept as it came"
        );
    }
    let found = hits(&server, &namespace, "bottomtext").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["log"], json!(nested(10_000, "bottomtext")));
    assert!(found[0].get("fields").is_none() && found[0].get("marks").is_none());
    let path = format!("fields.{}:bottomhundred", vec!["a"; 100].join("."));
    assert_eq!(hits(&server, &namespace, &path).await.len(), 1);
    assert_eq!(hits(&server, &namespace, "after").await.len(), 1);
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_of_100_kb_and_10_000_terms_are_answered_or_refused_with_the_reason() {
    let (server, namespace, topic, _dir) = server_with_topic("bigq").await;
    produce(
        &topic,
        &[json!({ "time": now(), "log": "t7 t9999 word" })
            .to_string()
            .into_bytes()],
    )
    .await;
    assert_eq!(
        server
            .wait_total(&namespace, 1, Duration::from_secs(60))
            .await,
        1
    );
    let terms = |n: usize, join: &str| {
        (0..n)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(join)
    };
    // 10 000 terms (58 890 bytes): answered. 10 001: refused with the reason.
    let started = Instant::now();
    let (status, body) = raw_search(&server, &namespace, &terms(10_000, " "));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(0));
    eprintln!(
        "a query of 10 000 terms answered in {:?}",
        started.elapsed()
    );
    let (status, body) = raw_search(&server, &namespace, &terms(10_001, " "));
    let detail = refused(status, &body, "10 001 terms");
    assert!(
        detail.contains("too many clauses: at most 10000"),
        "{detail}"
    );
    // Nesting past the limit.
    let deep = format!("{}t7{}", "(".repeat(10_000), ")".repeat(10_000));
    let (status, body) = raw_search(&server, &namespace, &deep);
    let detail = refused(status, &body, "10 000 parentheses");
    assert!(detail.contains("nests too deeply"), "{detail}");
    // The search page says the same, on the page.
    let (status, page) = raw_get(
        &server,
        "/search",
        &[
            ("namespace", namespace.as_str()),
            ("q", terms(10_001, " ").as_str()),
        ],
    );
    assert_eq!(status, 200);
    assert!(page.contains("too many clauses"));

    // A query travels in the URL, which the HTTP layer caps at 65 534 bytes: 60 000 bytes of
    // query are answered; 100 000 bytes are refused with 400 (no body) before any handler.
    let word = |i: usize| format!("w{i:018}"); // 19 bytes, + 1 space
    let query = |bytes: usize| {
        let mut q: String = (0..bytes / 20).map(|i| word(i) + " ").collect();
        q.pop();
        q.push('x');
        q
    };
    let (status, body) = raw_search(&server, &namespace, &query(60_000));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], json!(0));
    let (status, body) = raw_search(&server, &namespace, &query(100_000));
    assert_eq!(status, 400, "{body}");
    // A request head over 128 KiB (here 300 000 bytes once percent-encoded): 431.
    let wide = "é".repeat(50_000);
    let (status, _) = raw_get(&server, "/api/v1/search", &[("q", wide.as_str())]);
    assert_eq!(status, 431);
    assert_healthy(&server).await;
}

/// Signs in through the login form; returns the `name=value` of the session cookie.
async fn sign_in(server: &Server, user: &str, password: &str) -> String {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/auth/login"))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "sign-in redirects");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// Every text input that reaches the database gets SQL-looking text, and keeps it as text.
async fn sql_looking_text_is_stored_as_text(database_url: Option<&str>) {
    let namespace = format!("sql-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("^logs\\.{namespace}(-.*)?$");
    let server = Server::start_with_pattern(&dir.path().join("data"), &pattern, database_url);
    let client = reqwest::Client::new();
    let admin = server.admin_token.clone();
    // A signed-in admin (tokens cannot create tokens).
    cli(
        &server.env,
        &["user", "add", "sqladmin", "--password-stdin"],
        Some("sqladmin-password-1\n"),
    );
    cli(
        &server.env,
        &["binding", "add", "--user", "sqladmin", "--role", "admin"],
        None,
    );
    let cookie = sign_in(&server, "sqladmin", "sqladmin-password-1").await;
    let origin = server.url("");

    for (i, text) in SQL_LOOKING.iter().enumerate() {
        // A user name (the command line) and a binding for it (the API).
        cli(&server.env, &["user", "add", *text], None);
        let response = client
            .post(server.url("/api/v1/bindings"))
            .bearer_auth(&admin)
            .json(&json!({"subject_kind": "user", "subject": text, "role": "viewer", "pattern": "shop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "binding for {text:?}");
        // A binding pattern: refused, saying why.
        let response = client
            .post(server.url("/api/v1/bindings"))
            .bearer_auth(&admin)
            .json(
                &json!({"subject_kind": "user", "subject": "x", "role": "viewer", "pattern": text}),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        let detail = refused(status, &body, text);
        assert!(detail.contains("namespace pattern"), "{detail}");
        // A token name.
        let response = client
            .post(server.url("/api/v1/tokens"))
            .header("cookie", &cookie)
            .header("origin", &origin)
            .json(&json!({"name": text, "role": "viewer", "namespaces": ["shop"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "token named {text:?}");
        // A query, with an auditor-style reason: answered or refused, and audited as given.
        let response = client
            .get(server.url("/api/v1/search"))
            .bearer_auth(&admin)
            .query(&[
                ("q", *text),
                ("reason", *text),
                ("namespace", namespace.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(status == 200 || status == 400, "query {text:?}: {status}");
        // The namespace parameter: refused.
        let (status, body) = search(&server, text, "").await;
        refused(status, &body, text);
        // The audit log's filters: plain values, wildcards included.
        for filter in ["actor", "action", "namespace"] {
            let response = client
                .get(server.url("/api/v1/audit"))
                .bearer_auth(&admin)
                .query(&[(filter, *text)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{filter}={text:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["events"], json!([]), "{filter}={text:?}");
        }
        // A saved field: a registry namespace's owner group.
        let name = format!("{namespace}-{i}");
        let response = client
            .post(server.url("/api/v1/admin/namespaces"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "owner_group": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "owner group {text:?}");
        let (status, body) = server
            .get_json(&format!("/api/v1/admin/namespaces/{name}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.to_string().contains(&json!(text).to_string()),
            "{body}"
        );
        // The sign-in form.
        let response = client
            .post(server.url("/auth/login"))
            .form(&[("user", *text), ("password", *text)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "sign-in as {text:?}");
    }
    // A saved field that is free text: the shipper config, with every string in a comment.
    let (_, current) = server.get_json("/api/v1/admin/fleet/config").await;
    let mut config = current["config"].as_str().unwrap_or_default().to_owned();
    for text in SQL_LOOKING {
        config.push_str(&format!("\n# {text}"));
    }
    config.push('\n');
    let response = client
        .put(server.url("/api/v1/admin/fleet/config"))
        .bearer_auth(&admin)
        .json(&json!({ "config": config }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let (_, stored) = server.get_json("/api/v1/admin/fleet/config").await;
    assert_eq!(stored["config"], json!(config));

    // Everything came back exactly as given, and nothing else changed.
    let (_, bindings) = server.get_json("/api/v1/bindings").await;
    let (_, tokens) = server.get_json("/api/v1/tokens").await;
    let (_, audit) = server.get_json("/api/v1/audit?limit=1000").await;
    for text in SQL_LOOKING {
        let subjects: Vec<&Value> = bindings["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["subject"] == json!(text))
            .collect();
        assert_eq!(subjects.len(), 1, "binding subject {text:?}: {bindings}");
        assert!(
            tokens["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == json!(text)),
            "token name {text:?}"
        );
        let searches: Vec<&Value> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == json!("search") && e["query"] == json!(text))
            .collect();
        assert!(
            searches.iter().all(|e| e["reason"] == json!(text)),
            "{searches:?}"
        );
    }
    let users = cli(&server.env, &["user", "list"], None);
    for text in SQL_LOOKING {
        assert!(users.contains(text), "user {text:?} in\n{users}");
    }
    let (status, verified) = server.get_json("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verified["ok"], json!(true), "{verified}");
    let (status, _) = server.get_json("/api/v1/me").await;
    assert_eq!(status, 200, "the admin token still works");
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_looking_text_is_stored_as_text_on_sqlite() {
    sql_looking_text_is_stored_as_text(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_looking_text_is_stored_as_text_on_postgresql() {
    let url = fresh_postgres_database().await;
    sql_looking_text_is_stored_as_text(Some(&url)).await;
}

/// A NUL character cannot be stored in PostgreSQL text: there, every input that reaches the
/// database with one is refused with a 400 saying so; SQLite stores it as given. Never a 500.
async fn nul_characters_are_refused_or_stored_never_500(database_url: Option<&str>) {
    let postgres = database_url.is_some();
    let namespace = format!("nul-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("^logs\\.{namespace}(-.*)?$");
    let server = Server::start_with_pattern(&dir.path().join("data"), &pattern, database_url);
    let client = reqwest::Client::new();
    let admin = server.admin_token.clone();
    let text = "null\0byte";
    let expect = |status: u16, body: &Value, what: &str, stored: u16| {
        if postgres {
            let detail = refused(status, body, what);
            assert!(detail.contains("NUL"), "{what}: {detail}");
        } else {
            assert_eq!(status, stored, "{what}: {body}");
        }
    };
    let response = client
        .post(server.url("/api/v1/bindings"))
        .bearer_auth(&admin)
        .json(
            &json!({"subject_kind": "user", "subject": text, "role": "viewer", "pattern": "shop"}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    expect(status, &body, "binding subject", 201);
    let (status, body) = search(&server, &namespace, text).await;
    expect(status, &body, "query", 200);
    let response = client
        .get(server.url("/api/v1/search"))
        .bearer_auth(&admin)
        .query(&[("reason", text), ("namespace", namespace.as_str())])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    expect(status, &body, "reason", 200);
    for filter in ["actor", "action", "namespace"] {
        let response = client
            .get(server.url("/api/v1/audit"))
            .bearer_auth(&admin)
            .query(&[(filter, text)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if filter == "namespace" {
            // Matched as JSON text (`\u0000`): no NUL reaches the database.
            assert_eq!(status, 200, "{body}");
        } else {
            expect(status, &body, filter, 200);
        }
    }
    let response = client
        .post(server.url("/api/v1/admin/namespaces"))
        .bearer_auth(&admin)
        .json(&json!({"name": format!("{namespace}-x"), "owner_group": text}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    expect(status, &body, "owner group", 201);
    let response = client
        .post(server.url("/auth/login"))
        .form(&[("user", text), ("password", text)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if postgres {
        assert_eq!(status, 400, "sign-in");
    } else {
        assert_eq!(status, 401, "sign-in");
    }
    let (status, verified) = server.get_json("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verified["ok"], json!(true), "{verified}");
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_stored_on_sqlite() {
    nul_characters_are_refused_or_stored_never_500(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_refused_on_postgresql() {
    let url = fresh_postgres_database().await;
    nul_characters_are_refused_or_stored_never_500(Some(&url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_bodies_get_413_with_a_json_error() {
    let namespace = format!("body-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &namespace, None);
    let client = reqwest::Client::new();
    let big = "x".repeat(1024 * 1024);
    let json_body = json!({"name": big, "role": "viewer", "namespaces": ["shop"]}).to_string();
    let requests = [
        (reqwest::Method::POST, "/api/v1/tokens", "application/json"),
        (
            reqwest::Method::POST,
            "/api/v1/bindings",
            "application/json",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/admin/namespaces",
            "application/json",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/admin/fleet/config",
            "application/json",
        ),
        (
            reqwest::Method::POST,
            "/auth/login",
            "application/x-www-form-urlencoded",
        ),
        (
            reqwest::Method::POST,
            "/access/tokens",
            "application/x-www-form-urlencoded",
        ),
    ];
    for (method, path, content_type) in requests {
        let body = if content_type.contains("json") {
            json_body.clone()
        } else {
            format!("user={big}&password=x")
        };
        // Announced by Content-Length, and streamed without one (chunked).
        for chunked in [false, true] {
            let mut request = client
                .request(method.clone(), server.url(path))
                .bearer_auth(&server.admin_token)
                .header("content-type", content_type);
            request = if chunked {
                let chunks: Vec<Result<String, std::io::Error>> = body
                    .as_bytes()
                    .chunks(64 * 1024)
                    .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
                    .collect();
                request.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            } else {
                request.body(body.clone())
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(status, 413, "{method} {path} chunked={chunked}: {text}");
            let error: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
            assert_eq!(error["error"], json!("payload_too_large"), "{text}");
            assert!(
                error["detail"].as_str().unwrap().contains("65536"),
                "{text}"
            );
        }
    }
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_cookies_and_tokens_get_401_and_nothing_leaks() {
    let namespace = format!("auth-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &namespace, None);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let long_token = format!("bsz_{}", "A".repeat(60_000));
    let sql_token = "bsz_' OR '1'='1' --";
    let authorizations: Vec<Vec<u8>> = vec![
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer  \t ".to_vec(),
        b"bearer bsz_lowercase-scheme-secret-1".to_vec(),
        b"Basic YWRtaW46YWRtaW4=".to_vec(),
        b"Bearer bsz_not-a-real-token-000000".to_vec(),
        format!("Bearer {sql_token}").into_bytes(),
        format!("Bearer {long_token}").into_bytes(),
        b"Bearer bsz_caf\xe9-latin1-secret".to_vec(),
        format!("Bearer {} ", server.admin_token)
            .replace("bsz_", "bsz-")
            .into_bytes(),
    ];
    let cookies: Vec<Vec<u8>> = vec![
        b"bitesize_session=".to_vec(),
        b"bitesize_session=%%%zz".to_vec(),
        b"bitesize_session=\"quoted-secret-value\"".to_vec(),
        b"bitesize_session=s_aaaa; bitesize_session=s_bbbb".to_vec(),
        b"=;;;=;bitesize_session".to_vec(),
        b"bitesize_session=s_' OR '1'='1".to_vec(),
        format!("bitesize_session=s_{}", "B".repeat(30_000)).into_bytes(),
        b"bitesize_session=s_caf\xe9-latin1".to_vec(),
    ];
    let mut presented: Vec<String> = Vec::new();
    let mut send = |header: &'static str, value: &[u8], path: &'static str| {
        presented.push(String::from_utf8_lossy(value).into_owned());
        let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
        client.get(server.url(path)).header(header, value).send()
    };
    for value in &authorizations {
        let response = send("authorization", value.as_slice(), "/api/v1/me")
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 401, "{}: {body}", String::from_utf8_lossy(value));
        assert_eq!(body["error"], json!("unauthenticated"));
        // Pages send a signed-out caller to the sign-in page.
        let response = send("authorization", value.as_slice(), "/search")
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{}", String::from_utf8_lossy(value));
        assert!(response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login"));
    }
    for value in &cookies {
        let response = send("cookie", value.as_slice(), "/api/v1/me")
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{}", String::from_utf8_lossy(value));
        let response = send("cookie", value.as_slice(), "/search").await.unwrap();
        assert_eq!(response.status(), 302, "{}", String::from_utf8_lossy(value));
    }
    // The real token still works, and nothing presented above was written to the log.
    let (status, _) = server.get_json("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_healthy(&server).await;
    let log = server_log(&server);
    for value in presented {
        let secret = value
            .trim_start_matches("Bearer")
            .trim_start_matches("bearer")
            .trim_start_matches("Basic")
            .trim();
        if secret.len() >= 8 {
            assert!(!log.contains(secret), "{secret:.40}… appears in the log");
        }
    }
    assert!(
        !log.contains(&server.admin_token),
        "the admin token is logged"
    );
}
