//! The dashboard in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver (`BITESIZE_CHROMEDRIVER_BIN`, installed by `install_browser` in
//! scripts/services.sh), against a real server, shipper, broker, PostgreSQL-free SQLite
//! database and the test OpenID Connect provider. Saves a screenshot of every page to
//! `docs/screenshots/`.
//!
//! The WebDriver client is the few JSON-over-HTTP commands below, on the reqwest already in
//! the tree (a WebDriver crate would bring a second generation of the ICU crates).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cli, cri, oidc_client, oidc_issuer, unique, LogDir, Server, Shipper};
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromedriver_bin() -> String {
    std::env::var("BITESIZE_CHROMEDRIVER_BIN").unwrap_or_else(|_| {
        let default = "/usr/bin/chromedriver";
        assert!(
            std::path::Path::new(default).exists(),
            "this test needs chromium and chromedriver: run ./scripts/test (install_browser), \
             or apt-get install chromium chromium-driver"
        );
        default.to_owned()
    })
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// How a browser is started.
#[derive(Clone, Copy)]
struct Options {
    javascript: bool,
    dark: bool,
}

/// One chromedriver process with one headless chromium session.
struct Chrome {
    driver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
}

impl Chrome {
    async fn start(options: Options) -> Chrome {
        let port = common::free_port();
        let driver = Command::new(chromedriver_bin())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1440,960",
            "--hide-scrollbars",
        ];
        let mut chrome_options = json!({ "binary": "/usr/bin/chromium", "args": args });
        if !options.javascript {
            chrome_options["prefs"] =
                json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let response: Value = http
            .post(format!("{base}/session"))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": chrome_options } } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {response}"))
            .to_owned();
        let chrome = Chrome {
            driver,
            port,
            session,
            http,
        };
        // What a system set to dark (or light) reports to pages.
        let scheme = if options.dark { "dark" } else { "light" };
        chrome
            .post(
                "/goog/cdp/execute",
                json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                    "features": [{ "name": "prefers-color-scheme", "value": scheme }] } }),
            )
            .await;
        chrome
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        );
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = response["value"]["error"].as_str() {
            panic!(
                "WebDriver {path}: {error}: {}",
                response["value"]["message"]
            );
        }
        response["value"].clone()
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
        .collect()
    }

    /// The first element matching `css`, waiting up to 10 s for it: after a click or a
    /// form post the next page may still be loading.
    async fn find(&self, css: &str) -> String {
        let mut found = self.find_all(css).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while found.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            found = self.find_all(css).await;
        }
        assert!(
            !found.is_empty(),
            "no {css} on {}: {}",
            self.url().await,
            self.source().await
        );
        found[0].clone()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.get(&format!("/element/{element}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of every element `css` matches.
    async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = vec![];
        for element in self.find_all(css).await {
            let text = self.get(&format!("/element/{element}/text")).await;
            texts.push(text.as_str().unwrap_or_default().to_owned());
        }
        texts
    }

    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        self.get(&format!("/element/{element}/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Waits until `check` holds, for at most `within`; false when it never did.
    async fn wait_for(&self, within: Duration, css: &str, needle: &str) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .texts(css)
                .await
                .iter()
                .any(|text| text.contains(needle));
            if found {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let data = self.get("/screenshot").await;
        let png = base64_decode(data.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
    }

    /// Presses the left button at `from` and releases it at `to` (viewport coordinates).
    async fn drag(&self, from: (i64, i64), to: (i64, i64)) {
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "pointer", "id": "mouse",
                "parameters": { "pointerType": "mouse" },
                "actions": [
                    { "type": "pointerMove", "duration": 0, "x": from.0, "y": from.1, "origin": "viewport" },
                    { "type": "pointerDown", "button": 0 },
                    { "type": "pointerMove", "duration": 200, "x": (from.0 + to.0) / 2, "y": to.1, "origin": "viewport" },
                    { "type": "pointerMove", "duration": 200, "x": to.0, "y": to.1, "origin": "viewport" },
                    { "type": "pointerUp", "button": 0 }
                ] }] }),
        )
        .await;
    }

    /// Presses `key` (a character, or a WebDriver key code like "\u{e00c}" for Escape) with
    /// the focus where it is.
    async fn press(&self, key: &str) {
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard",
                "actions": [{ "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }] }] }),
        )
        .await;
    }

    /// Marks the page's window: the mark survives in-place updates, not a page load.
    async fn mark_window(&self) {
        self.execute("window.__bitesizeMark = 'still here'; return null")
            .await;
    }

    async fn window_marked(&self) -> bool {
        self.execute("return window.__bitesizeMark === 'still here'")
            .await
            == json!(true)
    }

    /// Waits until `script` returns true (up to 10 s).
    async fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.execute(script).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "never true: {script} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The header's sign-out button (local accounts: straight back to the sign-in page).
    async fn sign_out(&self) {
        self.click("form.signout button").await;
        self.wait_url("/login").await;
    }

    /// Forgets the session cookie (a user signed in through the provider, whose sign-out
    /// moves on to the provider's own logout page).
    async fn forget_session(&self) {
        self.command(reqwest::Method::DELETE, "/cookie", None).await;
    }

    async fn sign_in_locally(&self, server: &Server, user: &str, password: &str) {
        self.goto(&server.url("/login")).await;
        self.type_into("#user", user).await;
        self.type_into("#password", password).await;
        self.click("main.login button[type=submit]").await;
        self.wait_url("/search").await;
        assert!(self.text("header .who").await.contains(user));
    }

    async fn wait_url(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            assert!(Instant::now() < deadline, "still at {url}, not {part}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Chrome {
    /// Ends the session (which closes chromium), then chromedriver.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn cri_at(time: chrono::DateTime<chrono::Utc>, message: &str) -> String {
    let time = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!("{time} stdout F {message}")
}

/// The server with the test provider (`Test IdP`) and local accounts.
fn start_server(root: &std::path::Path, pattern: &str) -> Server {
    let (id, secret) = oidc_client();
    let provider = format!(
        r#"[{{name="test", display_name="Test IdP", issuer_url="{}", client_id="{id}", client_secret="{secret}"}}]"#,
        oidc_issuer()
    );
    Server::start_with_settings(
        &root.join("data"),
        pattern,
        None,
        &[("BITESIZE_OIDC".to_owned(), provider)],
    )
}

fn local_user(server: &Server, name: &str, password: &str) {
    cli(
        &server.env,
        &["user", "add", name, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
}

/// The namespaces the picker offers (without "All namespaces").
async fn picker(chrome: &Chrome) -> Vec<String> {
    let mut names = vec![];
    for option in chrome.find_all("#namespace option").await {
        let value = chrome
            .get(&format!("/element/{option}/attribute/value"))
            .await;
        if let Some(v) = value.as_str().filter(|v| !v.is_empty()) {
            names.push(v.to_owned());
        }
    }
    names
}

/// Namespace column of the result rows.
async fn row_namespaces(chrome: &Chrome) -> Vec<String> {
    chrome.texts("tr.hit td:nth-child(2)").await
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_a_real_browser() {
    let root = tempfile::tempdir().unwrap();
    let id = unique();
    let (a, b) = (format!("ba-{id}"), format!("bb-{id}"));
    let logs = LogDir::new(root.path());
    let now = chrono::Utc::now();
    // A: 130 records ten minutes ago, 20 two seconds ago; B: 15 records.
    let old: Vec<String> = (0..130)
        .map(|i| {
            let at = now - chrono::Duration::minutes(10) + chrono::Duration::milliseconds(i);
            let level = if i % 9 == 0 { "error" } else { "info" };
            cri_at(
                at,
                &format!(
                    r#"{{"level":"{level}","msg":"GET /cart/{i} served","id":"old{i:04}","ms":{}}}"#,
                    i % 37
                ),
            )
        })
        .collect();
    let new: Vec<String> = (0..20)
        .map(|i| {
            let at = now - chrono::Duration::seconds(2) + chrono::Duration::microseconds(i);
            cri_at(
                at,
                &format!("checkout payment accepted order=new{i:04} amount=42.00 EUR"),
            )
        })
        .collect();
    let b_lines: Vec<String> = (0..15)
        .map(|i| cri_at(now, &format!("secret of b id=bsec{i:04}")))
        .collect();
    let a_api = logs.file("api-7f9c", &a, "api");
    logs.append(&a_api, &old);
    logs.append(&logs.file("web-5d2e", &a, "web"), &new);
    logs.append(&logs.file("vault-0", &b, "vault"), &b_lines);
    let server = start_server(root.path(), &format!("^logs\\.b[ab]-{id}$"));
    let _shipper = Shipper::start(root.path(), &logs);
    assert_eq!(
        server.wait_total(&a, 150, Duration::from_secs(60)).await,
        150
    );
    assert_eq!(server.wait_total(&b, 15, Duration::from_secs(60)).await, 15);

    let env = &server.env;
    // alice comes from the provider (its default user); a viewer of A only.
    cli(env, &["user", "add", "alice"], None);
    cli(
        env,
        &[
            "binding",
            "add",
            "--user",
            "alice",
            "--role",
            "viewer",
            "--pattern",
            &a,
        ],
        None,
    );
    cli(
        env,
        &["user", "set-password", "admin"],
        Some("admin-pass-1\n"),
    );
    cli(
        env,
        &["binding", "add", "--user", "admin", "--role", "admin"],
        None,
    );
    local_user(&server, "aude", "aude-pass-1");
    cli(
        env,
        &["binding", "add", "--user", "aude", "--role", "auditor"],
        None,
    );

    let chrome = Chrome::start(Options {
        javascript: true,
        dark: false,
    })
    .await;

    // Signed out: /search sends the browser to the sign-in page.
    chrome
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    chrome.wait_url("/login?next=").await;
    chrome.screenshot("login").await;

    // Sign in through the OpenID Connect provider, back to the search asked for.
    chrome.click("a.sso").await;
    chrome.wait_url("/search").await;
    assert!(chrome.url().await.starts_with(&server.url("/search")));
    let who = chrome.text("header .who").await;
    assert!(
        who.contains("alice") && who.contains(&format!("viewer of {a}")),
        "{who}"
    );
    // A viewer of A sees only A, in the picker and in the results (even asking for all).
    assert_eq!(picker(&chrome).await, vec![a.clone()]);
    chrome.goto(&server.url("/search")).await;
    let namespaces = row_namespaces(&chrome).await;
    assert_eq!(namespaces.len(), 100, "the newest page");
    assert!(namespaces.iter().all(|n| n == &a), "{namespaces:?}");
    chrome
        .goto(&server.url(&format!("/search?namespace={b}")))
        .await;
    assert!(row_namespaces(&chrome).await.is_empty());
    assert!(!chrome.source().await.contains("bsec"));

    // Search: type a query, submit; matches highlighted.
    chrome.goto(&server.url("/search")).await;
    chrome.type_into("#q", "payment").await;
    chrome.click("form.search button[type=submit]").await;
    chrome.wait_url("q=payment").await;
    assert!(chrome.text(".summary").await.starts_with("20 matching"));
    assert_eq!(chrome.texts("tr.hit mark").await.len(), 20);
    chrome
        .goto(&server.url(&format!(
            "/search?namespace={a}&q=fields.level%3Aerror%20OR%20payment"
        )))
        .await;
    chrome.screenshot("search").await;

    // With JavaScript on, searching, paging, facets and going back update the page in place:
    // the window (and a mark set on it) survives, the URL follows.
    chrome
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    chrome.mark_window().await;
    chrome.type_into("#q", "GET").await;
    chrome.press("\u{e007}").await; // Enter in the query box
    chrome.wait_url("q=GET").await;
    assert!(chrome.text(".summary").await.starts_with("130 matching"));
    assert!(chrome.window_marked().await, "the search reloaded the page");
    let focused = chrome.execute("return document.activeElement.id").await;
    assert_eq!(focused, json!("q"), "the query box keeps the focus");
    chrome.click("nav.paging a.more").await;
    chrome.wait_url("cursor=").await;
    chrome
        .wait_until("return document.querySelectorAll('tr.hit').length === 130")
        .await;
    assert!(chrome.window_marked().await, "paging reloaded the page");
    let messages = chrome.texts("tr.hit td.message").await;
    let distinct: std::collections::BTreeSet<&String> = messages.iter().collect();
    assert_eq!(
        distinct.len(),
        130,
        "older lines appended below, none repeated"
    );
    assert!(chrome
        .text(".summary")
        .await
        .contains("showing the newest 130"));
    assert!(
        chrome.find_all("nav.paging a.more").await.is_empty(),
        "no older page"
    );
    // Keyboard: j moves to the lines, / back to the query, ? lists the shortcuts.
    chrome
        .execute("document.activeElement.blur(); return null")
        .await;
    chrome.press("j").await;
    let on_line = chrome
        .execute("return document.activeElement.closest('tr.hit') !== null")
        .await;
    assert_eq!(on_line, json!(true), "j goes to a log line");
    chrome.press("/").await;
    assert_eq!(
        chrome.execute("return document.activeElement.id").await,
        json!("q")
    );
    chrome.press("\u{e00c}").await; // Escape leaves the box
    chrome.press("?").await;
    assert!(chrome.text("#shortcuts").await.contains("Load more"));
    chrome.screenshot("search-shortcuts").await;
    chrome.press("\u{e00c}").await;
    assert!(chrome.find_all("#shortcuts").await.is_empty());
    // A facet click adds a filter in place; Back returns to the view before it (the older
    // page's URL: on its own, that page shows the 30 older lines).
    let before = chrome.url().await;
    chrome.click("aside.facets a").await;
    chrome.wait_url("pod%3A").await;
    assert!(
        chrome.window_marked().await,
        "a facet click reloaded the page"
    );
    chrome.execute("history.back(); return null").await;
    chrome
        .wait_until(&format!(
            "return location.href === {} && document.querySelectorAll('tr.hit').length === 30",
            json!(before)
        ))
        .await;
    assert!(chrome.window_marked().await, "Back reloaded the page");

    // Saved searches: save the view, see it listed and confirmed, open it, delete it — in
    // place as well.
    chrome
        .goto(&server.url(&format!("/search?namespace={a}&q=payment")))
        .await;
    chrome.mark_window().await;
    chrome.type_into("#save-name", "Payments in A").await;
    chrome.click("form.save button[type=submit]").await;
    chrome.wait_url("saved=").await;
    assert!(chrome
        .text("section.saved .notice")
        .await
        .contains("Saved “Payments in A”."));
    assert!(chrome.window_marked().await, "saving reloaded the page");
    chrome.screenshot("search-saved").await;
    chrome.goto(&server.url("/search")).await;
    assert!(chrome.text(".summary").await.starts_with("150 matching"));
    chrome.mark_window().await;
    chrome.click("a.saved-search").await;
    chrome.wait_url("q=payment").await;
    assert!(chrome.text(".summary").await.starts_with("20 matching"));
    assert!(chrome.window_marked().await);
    chrome
        .click("section.saved form[action^='/search/saved/'] button")
        .await;
    chrome
        .wait_until("return document.querySelector('a.saved-search') === null")
        .await;
    assert!(chrome.window_marked().await, "deleting reloaded the page");
    assert!(chrome.url().await.contains("q=payment"), "back to the view");

    // Histogram zoom: dragging over the newest tenth narrows the URL and the results.
    chrome
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    assert!(chrome.text(".summary").await.starts_with("150 matching"));
    let box_ = chrome
        .execute("var r = document.querySelector('.chart svg').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
        .await;
    let f = |i: usize| box_[i].as_f64().unwrap();
    let (left, top, width, height) = (f(0), f(1), f(2), f(3));
    let y = (top + height / 2.0) as i64;
    chrome
        .drag(
            ((left + width * 0.9) as i64, y),
            ((left + width - 2.0) as i64, y),
        )
        .await;
    chrome.wait_url("to=").await;
    let zoomed = chrome.url().await;
    assert!(
        zoomed.contains("from=") && zoomed.contains("to="),
        "{zoomed}"
    );
    let summary = chrome.text(".summary").await;
    assert!(summary.starts_with("20 matching"), "{summary} at {zoomed}");
    chrome.screenshot("search-zoomed").await;

    // Live tail: a line written now shows up within 3 s.
    chrome
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    chrome.click("#tail-toggle").await;
    assert_eq!(
        chrome
            .attribute("#tail-toggle", "aria-pressed")
            .await
            .as_deref(),
        Some("true")
    );
    tokio::time::sleep(Duration::from_millis(700)).await; // the tail has started
    let marker = format!("tail-marker-{id}");
    let written = Instant::now();
    logs.append(
        &a_api,
        &[cri("stdout", "F", &format!("live line {marker}"))],
    );
    let seen = chrome
        .wait_for(Duration::from_secs(3), "tr.hit.live td.message", &marker)
        .await;
    let took = written.elapsed();
    println!(
        "live tail showed the new line {} ms after it was written",
        took.as_millis()
    );
    assert!(seen, "the tailed line did not show within 3 s");
    chrome.screenshot("search-live-tail").await;

    // alice may not read the audit log: the 403 page says what is missing and who grants it.
    chrome.goto(&server.url("/audit")).await;
    let missing = chrome.text("main .error").await;
    assert!(missing.contains("auditor or the admin role"), "{missing}");
    assert!(chrome
        .text("main")
        .await
        .contains("Ask an admin to grant it under Access: admin"));
    chrome.screenshot("forbidden").await;
    chrome.goto(&server.url("/namespaces")).await;
    assert_eq!(
        chrome.texts("main tbody tr td:first-child").await,
        vec![a.clone()]
    );
    chrome.forget_session().await;

    // An admin adds a binding through the form; alice sees B on her next page load.
    chrome
        .sign_in_locally(&server, "admin", "admin-pass-1")
        .await;
    chrome.goto(&server.url("/access")).await;
    chrome.type_into("input[name=subject]", "alice").await;
    chrome.type_into("input[name=pattern]", &b).await;
    chrome.click("form[action='/access/bindings'] button").await;
    chrome.wait_url("done=binding-added").await;
    let bindings = chrome.text("#bindings").await;
    assert!(
        bindings.contains("alice") && bindings.contains(&b),
        "{bindings}"
    );
    // A token: shown once.
    chrome
        .type_into(
            "form[action='/access/tokens'] input[name=name]",
            "nightly-report",
        )
        .await;
    chrome.type_into("input[name=namespaces]", &a).await;
    chrome.click("form[action='/access/tokens'] button").await;
    let secret = chrome.text("#new-token").await;
    assert!(secret.starts_with("bsz_"), "{secret}");
    chrome.screenshot("access").await;
    // The token opens the pages too (Authorization header): scripted checks.
    let page = server
        .get_as("/namespaces", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&a));
    chrome.goto(&server.url("/namespaces")).await;
    chrome.screenshot("namespaces").await;

    // The fleet page (no cluster here): edit the shipper config, preview the diff, save.
    chrome.click("header nav a[href='/fleet']").await;
    chrome.wait_url("/fleet").await;
    assert!(chrome.text("main").await.contains("No cluster configured"));
    let config = chrome
        .execute("return document.getElementById('fleet-config').value")
        .await;
    let config = config.as_str().unwrap().to_owned();
    let edited = config.replace(
        "kafka:\n",
        "kafka:\n  compression: lz4\n  topic_partitions: 6\n",
    );
    assert_ne!(edited, config, "{config}");
    chrome.type_into("#fleet-config", &edited).await;
    chrome.click("button[value=preview]").await;
    assert!(
        chrome
            .wait_for(Duration::from_secs(10), "pre.diff", "+   compression: lz4")
            .await,
        "{}",
        chrome.source().await
    );
    // The whole page from the top (the form answer scrolls to the editor).
    chrome.execute("window.scrollTo(0, 0); return null").await;
    chrome.screenshot("fleet").await;
    chrome.click("button[value=save]").await;
    chrome.wait_url("done=saved").await;
    assert!(chrome
        .text("main")
        .await
        .contains("config version is now 2"));
    chrome.sign_out().await;

    chrome.goto(&server.url("/search")).await;
    chrome.wait_url("/login").await;
    chrome.click("a.sso").await;
    chrome.wait_url("/search").await;
    let mut offered = picker(&chrome).await;
    offered.sort();
    assert_eq!(offered, vec![a.clone(), b.clone()]);
    chrome.forget_session().await;

    // An auditor searches with a reason; the search shows on /audit with it.
    chrome.sign_in_locally(&server, "aude", "aude-pass-1").await;
    let reason = format!("INC-{id}");
    chrome
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    assert!(
        !chrome.source().await.contains("old0001"),
        "no data without a reason"
    );
    chrome.type_into("#q", "payment").await;
    chrome.type_into("#reason", &reason).await;
    chrome.click("form.search button[type=submit]").await;
    chrome.wait_url("reason=").await;
    assert!(chrome.text(".summary").await.starts_with("20 matching"));
    chrome
        .goto(&server.url("/audit?actor=aude&action=search"))
        .await;
    let rows = chrome.texts("tr.event").await;
    assert!(
        rows.iter()
            .any(|r| r.contains(&reason) && r.contains("payment")),
        "{rows:?}"
    );
    assert!(chrome.text(".chain").await.contains("Hash chain intact"));
    let export = chrome
        .attribute("a[href*='format=csv']", "href")
        .await
        .unwrap();
    assert!(
        export.contains("/audit/export?actor=aude&action=search"),
        "{export}"
    );
    chrome.screenshot("audit").await;
    drop(chrome);

    // JavaScript off: sign in, search and page through plain forms and links.
    let plain = Chrome::start(Options {
        javascript: false,
        dark: false,
    })
    .await;
    plain
        .sign_in_locally(&server, "admin", "admin-pass-1")
        .await;
    plain
        .goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    assert!(
        plain.find_all("#tail-toggle").await.is_empty(),
        "the script did not run"
    );
    plain.type_into("#q", "GET").await;
    plain.click("form.search button[type=submit]").await;
    plain.wait_url("q=GET").await;
    assert!(plain.text(".summary").await.starts_with("130 matching"));
    let first = plain.texts("tr.hit td.message").await;
    assert_eq!(first.len(), 100);
    plain.click("a.more").await;
    plain.wait_url("cursor=").await;
    let second = plain.texts("tr.hit td.message").await;
    assert_eq!(second.len(), 30);
    assert!(
        second.iter().all(|m| !first.contains(m)),
        "no repeats across pages"
    );
    drop(plain);

    // Dark theme, as a system set to dark would get it.
    let dark = Chrome::start(Options {
        javascript: true,
        dark: true,
    })
    .await;
    dark.sign_in_locally(&server, "admin", "admin-pass-1").await;
    let background = dark
        .execute("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(background, json!("rgb(18, 21, 28)"), "the dark theme");
    dark.goto(&server.url(&format!(
        "/search?namespace={a}&q=fields.level%3Aerror%20OR%20payment"
    )))
    .await;
    dark.screenshot("search-dark").await;
    dark.goto(&server.url("/audit")).await;
    dark.screenshot("audit-dark").await;

    // Down to a small laptop screen, no page needs scrolling sideways (wide tables scroll
    // inside themselves).
    for (width, height) in [(1280, 800), (1024, 700)] {
        dark.post("/window/rect", json!({ "width": width, "height": height }))
            .await;
        for page in [
            format!("/search?namespace={a}"),
            "/access".into(),
            "/audit".into(),
            "/namespaces".into(),
            "/fleet".into(),
        ] {
            dark.goto(&server.url(&page)).await;
            let overflow = dark
                .execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
                .await;
            if overflow.as_i64().unwrap_or(1) > 0 {
                // Name what sticks out, so a failure says where to look.
                let wide = dark
                    .execute(
                        "const w = document.documentElement.clientWidth;
                         return [...document.querySelectorAll('body *')]
                           .filter(e => e.getBoundingClientRect().right > w)
                           .slice(-5)
                           .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
                    )
                    .await;
                panic!("{page} at {width}px is {overflow} px too wide: {wide}");
            }
        }
    }
    dark.goto(&server.url(&format!("/search?namespace={a}")))
        .await;
    dark.screenshot("search-laptop-1024").await;
}
