//! Hosts the dashboard: fetches what a page shows through the search module and has
//! `bitesize-web` render it.

use actix_web::{http::header, web, HttpResponse};
use bitesize_web::{render_search_page, HitRow, SearchPage};

use crate::api::{run_search, ReadParams};
use crate::app::AppState;
use crate::{db, Error, Result};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async {
            HttpResponse::Found()
                .insert_header((header::LOCATION, "/search"))
                .finish()
        }),
    )
    .route("/search", web::get().to(search_page));
}

async fn search_page(
    state: web::Data<AppState>,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let namespaces = db::namespaces::list(&state.db).await?;
    let mut page = SearchPage {
        namespaces,
        namespace: params.namespace.clone().unwrap_or_default(),
        query: params.q.clone().unwrap_or_default(),
        ..Default::default()
    };
    let result = match params.search_request(&state) {
        Ok(request) => run_search(&state, request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => {
            page.total = response.total;
            page.hits = response.hits.iter().map(hit_row).collect();
        }
        Err(Error::BadRequest(reason)) => page.error = Some(reason),
        Err(e) => return Err(e),
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(render_search_page(page)))
}

fn hit_row(record: &serde_json::Value) -> HitRow {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let k8s = &record["kubernetes"];
    HitRow {
        time: text(&record["time"]),
        namespace: text(&k8s["namespace_name"]),
        pod: text(&k8s["pod_name"]),
        container: text(&k8s["container_name"]),
        stream: text(&record["stream"]),
        message: text(&record["log"]),
    }
}
