//! The search page over real ingest: histogram, facets, highlighted hits, paging by cursor,
//! zooming by a histogram bar, auditors' reasons, and a viewer of another namespace seeing
//! none of it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{cli, LogDir, Server, Shipper};

fn cri_at(time: chrono::DateTime<chrono::Utc>, stream: &str, message: &str) -> String {
    let time = time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    format!("{time} {stream} F {message}")
}

/// `&amp;` back to `&` in an attribute value.
fn unescape(href: &str) -> String {
    href.replace("&amp;", "&")
}

/// Every `<a href="…" …>` on the page: (href, the rest of the opening tag).
fn links(html: &str) -> Vec<(String, String)> {
    html.split("<a href=\"")
        .skip(1)
        .filter_map(|piece| {
            let (href, rest) = piece.split_once('"')?;
            let (tag, _) = rest.split_once('>')?;
            Some((unescape(href), tag.to_owned()))
        })
        .collect()
}

/// The record ids (`id=old0042`, `id=new0003`) the rows show, and the number of rows.
fn ids(html: &str) -> (BTreeSet<String>, usize) {
    let rows = html.matches("<tr class=\"hit\"").count();
    let ids = html
        .split("id=")
        .skip(1)
        .filter_map(|piece| {
            let id: String = piece
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            (id.len() == 7 && (id.starts_with("old") || id.starts_with("new"))).then_some(id)
        })
        .collect();
    (ids, rows)
}

async fn page(server: &Server, path: &str, token: &str) -> String {
    let response = server.get_as(path, Some(token)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn search_page_shows_histogram_facets_highlights_and_pages() {
    let root = tempfile::tempdir().unwrap();
    let id = common::unique();
    let (ns, other) = (format!("td-{id}"), format!("tx-{id}"));
    let logs = LogDir::new(root.path());
    let now = chrono::Utc::now();
    // 120 records ten minutes ago (pod apiserver-x), 32 two seconds ago (pod frontend-x).
    let old_base = now - chrono::Duration::minutes(10);
    let old: Vec<String> = (0..120)
        .map(|i| {
            let at = old_base + chrono::Duration::milliseconds(i);
            cri_at(
                at,
                "stdout",
                &format!("old record id=old{i:04} needle in haystack"),
            )
        })
        .collect();
    let new_base = now - chrono::Duration::seconds(2);
    let mut new: Vec<String> = (0..30)
        .map(|i| {
            let at = new_base + chrono::Duration::microseconds(i);
            cri_at(
                at,
                "stdout",
                &format!("new record id=new{i:04} GET /cart 200"),
            )
        })
        .collect();
    new.push(cri_at(
        new_base + chrono::Duration::microseconds(40),
        "stderr",
        "<script>alert(1)</script> id=new0040 needle found",
    ));
    new.push(cri_at(
        new_base + chrono::Duration::microseconds(41),
        "stdout",
        r#"{"level":"error","msg":"id=new0041 payment failed"}"#,
    ));
    logs.append(&logs.file("apiserver-x", &ns, "api"), &old);
    logs.append(&logs.file("frontend-x", &ns, "web"), &new);
    let server = Server::start(&root.path().join("data"), &ns, None);
    let _shipper = Shipper::start(root.path(), &logs);
    assert_eq!(
        server.wait_total(&ns, 152, Duration::from_secs(60)).await,
        152
    );
    let admin = server.admin_token.clone();

    // Highlighted hits (escaped), the histogram, the facets, export links.
    let html = page(&server, &format!("/search?namespace={ns}&q=needle"), &admin).await;
    assert!(html.contains("121 matching"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; id=new0040 <mark>needle</mark> found"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("<svg") && html.contains("class=\"bar\""),
        "{html}"
    );
    let hrefs = links(&html);
    let has = |needle: &str| hrefs.iter().any(|(href, _)| href.contains(needle));
    assert!(has("q=needle%20pod%3Afrontend-x"), "{hrefs:?}");
    assert!(has("q=needle%20stream%3Astderr"), "{hrefs:?}");
    assert!(has(&format!(
        "/api/v1/export?namespace={ns}&q=needle&format=csv"
    )));
    assert!(has(&format!(
        "/api/v1/export?namespace={ns}&q=needle&format=ndjson"
    )));
    let (_, levels) = {
        let all = page(&server, &format!("/search?namespace={ns}"), &admin).await;
        (all.clone(), links(&all))
    };
    assert!(
        levels
            .iter()
            .any(|(h, _)| h.contains("q=fields.level%3Aerror")),
        "{levels:?}"
    );
    // The export link answers with the same selection.
    let export = page(
        &server,
        &format!("/api/v1/export?namespace={ns}&q=needle&format=ndjson"),
        &admin,
    )
    .await;
    assert_eq!(export.lines().count(), 121);

    // Paging: 100 newest, then the older rest through the link; no repeats.
    let started = Instant::now();
    let first = page(&server, &format!("/search?namespace={ns}"), &admin).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    println!("/search with 100 results served in {ms:.1} ms (debug build, search included)");
    assert!(ms < 1000.0, "{ms} ms");
    let (first_ids, rows) = ids(&first);
    assert_eq!((rows, first_ids.len()), (100, 100), "{first}");
    assert!(first_ids.contains("new0041") && first_ids.contains("old0119"));
    let (next, _) = links(&first)
        .into_iter()
        .find(|(_, tag)| tag.contains("rel=\"next\""))
        .expect("a next-page link");
    assert!(next.contains("cursor="), "{next}");
    let second = page(&server, &next, &admin).await;
    let (second_ids, rows) = ids(&second);
    assert_eq!((rows, second_ids.len()), (52, 52), "{second}");
    assert!(first_ids.is_disjoint(&second_ids), "repeats across pages");
    assert!(second_ids.iter().all(|id| id.starts_with("old")));
    let oldest_first_page = first_ids.iter().filter(|i| i.starts_with("old")).min();
    let newest_second_page = second_ids.iter().max();
    assert!(newest_second_page < oldest_first_page, "page 2 is older");
    assert!(second.contains("class=\"newest\"") && !second.contains("rel=\"next\""));

    // Zoom: the newest non-empty bar narrows the range to the recent records.
    let (zoom, label) = links(&first)
        .into_iter()
        .rev()
        .find(|(_, tag)| tag.contains("class=\"bar\"") && !tag.contains("aria-label=\"0 "))
        .expect("a non-empty bar");
    assert!(
        zoom.contains("from=") && zoom.contains("to="),
        "{zoom} {label}"
    );
    let zoomed = page(&server, &zoom, &admin).await;
    let (zoomed_ids, rows) = ids(&zoomed);
    assert!(
        rows > 0 && rows < 100,
        "{rows} rows after zooming to {zoom}"
    );
    assert!(
        zoomed_ids.iter().all(|id| id.starts_with("new")),
        "{zoomed_ids:?}"
    );

    // An auditor sees the reason field; without a reason, no data.
    let env = &server.env;
    cli(env, &["user", "add", "aude"], None);
    cli(
        env,
        &["binding", "add", "--user", "aude", "--role", "auditor"],
        None,
    );
    let out = cli(
        env,
        &["token", "create", "--subject", "aude", "--role", "auditor"],
        None,
    );
    let auditor = out.lines().last().unwrap().to_owned();
    let html = page(
        &server,
        &format!("/search?namespace={ns}&q=needle"),
        &auditor,
    )
    .await;
    assert!(html.contains("name=\"reason\""), "{html}");
    assert!(
        html.contains("state a reason") && !html.contains("id=old"),
        "{html}"
    );
    let html = page(
        &server,
        &format!("/search?namespace={ns}&q=needle&reason=INC-42"),
        &auditor,
    )
    .await;
    assert!(html.contains("121 matching") && html.contains("reason=INC-42&amp;cursor="));

    // A viewer of another namespace sees none of this one's data.
    cli(env, &["user", "add", "otto"], None);
    cli(
        env,
        &[
            "binding",
            "add",
            "--user",
            "otto",
            "--role",
            "viewer",
            "--pattern",
            &other,
        ],
        None,
    );
    let out = cli(
        env,
        &[
            "token",
            "create",
            "--subject",
            "otto",
            "--role",
            "viewer",
            "--namespaces",
            &other,
        ],
        None,
    );
    let viewer = out.lines().last().unwrap().to_owned();
    for path in [
        format!("/search?namespace={ns}&q=needle"),
        format!("/search?namespace={ns}"),
        "/search".to_owned(),
        "/search?q=needle".to_owned(),
        format!("/search?q=namespace:{ns}"),
    ] {
        let html = page(&server, &path, &viewer).await;
        for leak in [
            "id=old",
            "id=new",
            "apiserver-x",
            "frontend-x",
            "<mark>",
            "payment failed",
        ] {
            assert!(!html.contains(leak), "LEAK of {leak} via {path}: {html}");
        }
        assert!(!html.contains(&format!("<option value=\"{ns}\"")), "{path}");
        assert!(html.contains("0 matching"), "{path}: {html}");
        assert!(
            !html.contains("class=\"bar\""),
            "{path}: bars drawn: {html}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn page_script_is_served_and_public() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(
        &root.path().join("data"),
        &format!("ts-{}", common::unique()),
        None,
    );
    let response = server.get_as("/assets/app.js", None).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("getElementById(\"q\")"));
}
