//! Responses that stream: export (NDJSON or CSV, page by page, so memory stays fixed however
//! many records match) and live tail (Server-Sent Events; a client too slow to keep up is
//! dropped with a final event, it never holds up anything else).

use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures::Stream;
use tokio::sync::mpsc;

use super::{blocking, Read, ReadParams};
use crate::app::AppState;
use crate::authz::Principal;
use crate::search::{self, Hit, NewestFirst};
use crate::{Error, Result};

const EXPORT_PAGE: usize = 2_000;
const TAIL_POLL: Duration = Duration::from_millis(500);
const TAIL_BATCH: usize = 500;
/// Events a tail client may fall behind by before it is dropped.
const TAIL_BUFFER: usize = 1_024;
const TAIL_HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

fn channel_stream(rx: mpsc::Receiver<Result<Bytes>>) -> impl Stream<Item = Result<Bytes>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[utoipa::path(get, path = "/api/v1/export", tag = "logs", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "every matching record, streamed as NDJSON or CSV (`format`)", content_type = "application/x-ndjson"), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
pub async fn export(
    state: web::Data<AppState>,
    principal: Principal,
    request: actix_web::HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let format = match params.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        other => {
            return Err(Error::BadRequest(format!(
                "format {other:?}: use ndjson or csv"
            )))
        }
    };
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let selection = params.selection(&state, &read.scope)?;
    let registry = state.registry.clone();
    // The first page runs before the response starts, so a bad query is still a 400.
    let (walk, first) = {
        let registry = registry.clone();
        blocking(move || {
            let mut walk = NewestFirst::new(&registry, selection, EXPORT_PAGE)?;
            let first = walk.next_page(&registry)?;
            Ok((walk, first))
        })
        .await?
    };
    let detail =
        serde_json::json!({ "from": params.from, "to": params.to, "format": params.format });
    read.audit(&state, "export", walk.selection(), None, detail)
        .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut walk = walk;
        let mut page = first;
        if format == Format::Csv
            && tx
                .blocking_send(Ok(Bytes::from_static(
                    b"time,namespace,pod,container,stream,log\n",
                )))
                .is_err()
        {
            return;
        }
        while !page.is_empty() {
            let body = page
                .iter()
                .map(|hit| format_hit(hit, format))
                .collect::<String>();
            if tx.blocking_send(Ok(Bytes::from(body))).is_err() {
                return; // the client went away
            }
            page = match walk.next_page(&registry) {
                Ok(hits) => hits,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
        }
    });
    let (content_type, extension) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"bitesize-export.{extension}\""),
        ))
        .streaming(channel_stream(rx)))
}

fn format_hit(hit: &Hit, format: Format) -> String {
    match format {
        Format::Ndjson => format!("{}\n", hit.record),
        Format::Csv => {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            let k8s = &hit.record["kubernetes"];
            let row = [
                text(&hit.record["time"]),
                text(&k8s["namespace_name"]),
                text(&k8s["pod_name"]),
                text(&k8s["container_name"]),
                text(&hit.record["stream"]),
                text(&hit.record["log"]),
            ];
            let mut line = row
                .iter()
                .map(|cell| csv_cell(cell))
                .collect::<Vec<_>>()
                .join(",");
            line.push('\n');
            line
        }
    }
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet
/// does not run a log line as a formula.
pub(crate) fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[utoipa::path(get, path = "/api/v1/tail", tag = "logs", params(ReadParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "Server-Sent Events: `record` events as records are indexed; `dropped` when the client falls behind", content_type = "text/event-stream"), (status = 400, description = "bad parameter or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody)))]
pub async fn tail(
    state: web::Data<AppState>,
    principal: Principal,
    request: actix_web::HttpRequest,
    params: web::Query<ReadParams>,
) -> Result<HttpResponse> {
    let read = Read::authorize(&state, &principal, &request, &params).await?;
    let mut selection = params.selection(&state, &read.scope)?;
    selection.range = search::TimeRange::default();
    let registry = state.registry.clone();
    let mut position = {
        let (registry, selection) = (registry.clone(), selection.clone());
        // Checks the query too, so a bad one is a 400 before the stream starts.
        blocking(move || {
            search::page(&registry, &selection, 1, None, false)?;
            search::tail_start(&registry, &selection.namespaces)
        })
        .await?
    };
    read.audit(&state, "tail", &selection, None, serde_json::json!({}))
        .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(TAIL_BUFFER);
    tokio::spawn(async move {
        let mut last_sent = tokio::time::Instant::now();
        let _ = tx.send(Ok(Bytes::from_static(b": tail started\n\n"))).await;
        loop {
            tokio::time::sleep(TAIL_POLL).await;
            if tx.is_closed() {
                return;
            }
            let (registry, selection, mut pos) =
                (registry.clone(), selection.clone(), position.clone());
            let next = blocking(move || {
                search::tail_next(&registry, &selection, &mut pos, TAIL_BATCH).map(|h| (h, pos))
            })
            .await;
            let hits = match next {
                Ok((hits, pos)) => {
                    position = pos;
                    hits
                }
                Err(e) => {
                    let _ = tx.try_send(Ok(Bytes::from(format!("event: error\ndata: {}\n\n", e))));
                    return;
                }
            };
            for hit in hits {
                // Keep one slot for the final event; a client that fills the rest is too slow.
                if tx.capacity() <= 1 {
                    let _ = tx.try_send(Ok(Bytes::from_static(
                        b"event: dropped\ndata: {\"reason\":\"client too slow to keep up; reconnect to resume from now\"}\n\n",
                    )));
                    return;
                }
                let event = format!(
                    "event: record\nid: {}\ndata: {}\n\n",
                    hit.key.encode(),
                    hit.record
                );
                if tx.try_send(Ok(Bytes::from(event))).is_err() {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
            if last_sent.elapsed() >= TAIL_HEARTBEAT {
                if tx
                    .try_send(Ok(Bytes::from_static(b": keep-alive\n\n")))
                    .is_err()
                {
                    return;
                }
                last_sent = tokio::time::Instant::now();
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(channel_stream(rx)))
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
