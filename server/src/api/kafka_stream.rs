//! `GET /api/v1/namespaces/{ns}/stream`: a namespace's records straight from its Kafka topic,
//! as NDJSON (or Server-Sent Events with `Accept: text/event-stream`), for teams and tools
//! that want their raw logs without Kafka credentials.
//!
//! Each record line carries `cursor`, the next offset of every partition after it; a client
//! that reconnects with `cursor=` (or SSE's `Last-Event-ID`) gets every later record exactly
//! once. Lines without `record` are control lines: `heartbeat` (with the cursor, which moves
//! past filtered records too), `gap` (records the cursor asked for were already removed by
//! Kafka retention) and `end` (why the stream ended). Only principals whose scope holds the
//! namespace may stream it; start, end (with the records sent) and refusals are audited;
//! each principal has a limit of concurrent streams and of records per second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use bitesize_record::{Mark, Record};
use rdkafka::message::{BorrowedMessage, Message};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Read, ReadParams};
use crate::app::AppState;
use crate::authz::Principal;
use crate::config::StreamLimits;
use crate::kafka::consume::{Cursor, Start, TopicReader};
use crate::metrics::NamespaceLabel;
use crate::search::query::RecordFilter;
use crate::{audit, db, Error, Result};

/// Records read from Kafka before the filter runs over them and they are sent.
const BATCH: usize = 500;
const POLL: Duration = Duration::from_millis(200);
const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/namespaces/{ns}/stream", web::get().to(stream));
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// `earliest`, `latest` (default), or a time (RFC 3339 or relative like `now-15m`):
    /// the first record at or after it. Ignored when a cursor is given.
    pub from: Option<String>,
    /// The `cursor` of the last line received: resume right after it.
    pub cursor: Option<String>,
    /// Only records matching this query (the search language).
    pub q: Option<String>,
    /// End after this many records.
    pub limit: Option<u64>,
    /// `false`: end once the records that existed at the start are sent.
    pub follow: Option<bool>,
    /// Why the data is read; required of auditors (or the `X-Bitesize-Reason` header).
    pub reason: Option<String>,
}

/// Open streams per principal.
static OPEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// One open stream of a principal; closing it (drop) frees the slot.
struct Slot(String);

impl Slot {
    fn take(actor: &str, limits: &StreamLimits) -> Option<Slot> {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let count = open
            .get_or_insert_with(HashMap::new)
            .entry(actor.to_owned())
            .or_default();
        if *count >= limits.max_concurrent_per_principal {
            return None;
        }
        *count += 1;
        Some(Slot(actor.to_owned()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.as_mut().and_then(|o| o.get_mut(&self.0)) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Records-per-second budget per principal, shared by its streams (a token bucket holding
/// at most one second's worth).
static BUDGET: Mutex<Option<HashMap<String, (f64, Instant)>>> = Mutex::new(None);

/// How long to wait before `actor` may send one more record (and takes it when zero).
fn wait_for_budget(actor: &str, per_second: u32) -> Duration {
    let rate = f64::from(per_second);
    let mut budget = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let (tokens, at) = budget
        .get_or_insert_with(HashMap::new)
        .entry(actor.to_owned())
        .or_insert((rate, Instant::now()));
    let now = Instant::now();
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        Duration::ZERO
    } else {
        Duration::from_secs_f64((1.0 - *tokens) / rate)
    }
}

fn too_many(detail: String) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", "5"))
        .json(serde_json::json!({ "error": "too_many_requests", "detail": detail }))
}

/// Who streams what, as the audit log records each step of a stream.
#[derive(Clone)]
struct StreamAudit {
    db: sea_orm::DatabaseConnection,
    actor: String,
    namespace: String,
    query: Option<String>,
    reason: Option<String>,
}

impl StreamAudit {
    async fn record(
        &self,
        action: &str,
        hits: Option<u64>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let event = audit::NewEvent {
            actor: self.actor.clone(),
            action: action.to_owned(),
            namespaces: vec![self.namespace.clone()],
            query: self.query.clone(),
            hits,
            reason: self.reason.clone(),
            detail,
        };
        audit::record(&self.db, event).await?;
        Ok(())
    }
}

/// The record in a message, as ingest reads it (text that is not JSON is kept, marked),
/// and its time in nanoseconds.
fn decode(message: &BorrowedMessage<'_>, namespace: &str) -> (Record, i64) {
    let payload = message.payload().unwrap_or_default();
    let mut record = Record::decode(payload).unwrap_or_else(|_| Record {
        log: String::from_utf8_lossy(payload).into_owned(),
        marks: vec![Mark::NotJson],
        ..Default::default()
    });
    record.kubernetes.namespace_name = namespace.to_owned();
    let time = record
        .time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .or_else(|| message.timestamp().to_millis().map(|ms| ms * 1_000_000))
        .unwrap_or(0);
    (record, time)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Ndjson,
    Sse,
}

impl Framing {
    fn frame(self, event: &str, cursor: &Cursor, body: &serde_json::Value) -> Bytes {
        match self {
            Framing::Ndjson => Bytes::from(format!("{body}\n")),
            Framing::Sse => Bytes::from(format!(
                "event: {event}\nid: {}\ndata: {body}\n\n",
                cursor.encode()
            )),
        }
    }
}

/// What the reading thread reports when it stops.
struct Ended {
    sent: u64,
    reason: String,
    cursor: String,
}

#[utoipa::path(get, path = "/api/v1/namespaces/{ns}/stream", tag = "kafka", params(("ns" = String, Path, description = "namespace"), StreamParams), security(("bearer" = []), ("session" = [])),
    responses((status = 200, description = "NDJSON lines `{cursor, partition, offset, timestamp, record}` (control lines: `heartbeat`, `gap`, `end`), or Server-Sent Events (`record`, `heartbeat`, `gap`, `end`; `id` is the cursor) with `Accept: text/event-stream`", content_type = "application/x-ndjson"), (status = 400, description = "bad cursor, time or query, with the reason", body = crate::error::ErrorBody), (status = 401, description = "not signed in", body = crate::error::ErrorBody), (status = 403, description = "the namespace is outside the caller's scope (audited)", body = crate::error::ErrorBody), (status = 404, description = "the namespace has no topic", body = crate::error::ErrorBody), (status = 429, description = "too many open streams for this principal")))]
pub async fn stream(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    namespace: web::Path<String>,
    params: web::Query<StreamParams>,
) -> Result<HttpResponse> {
    let namespace = namespace.into_inner();
    bitesize_record::validate_namespace(&namespace)
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let read_params = ReadParams {
        reason: params.reason.clone(),
        ..Default::default()
    };
    let read = Read::authorize(&state, &principal, &request, &read_params).await?;
    let actor = read.scope.actor().to_owned();
    let auditor = StreamAudit {
        db: state.db.clone(),
        actor: actor.clone(),
        namespace: namespace.clone(),
        query: params.q.clone(),
        reason: read.reason.clone(),
    };
    if !read.scope.allows(&namespace) {
        auditor
            .record("stream.denied", None, serde_json::json!({}))
            .await?;
        return Err(Error::Forbidden(format!(
            "namespace {namespace:?} is not in your scope"
        )));
    }
    let config = state.config.clone();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let framing = match header("accept") {
        Some(accept) if accept.contains("text/event-stream") => Framing::Sse,
        _ => Framing::Ndjson,
    };
    let cursor_text = params
        .cursor
        .clone()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| header("last-event-id").filter(|c| !c.trim().is_empty()));
    let start = match (&cursor_text, params.from.as_deref().map(str::trim)) {
        (Some(cursor), _) => Start::Cursor(Cursor::decode(cursor)?),
        (None, None | Some("") | Some("latest")) => Start::Latest,
        (None, Some("earliest")) => Start::Earliest,
        (None, Some(time)) => {
            let nanos = crate::search::time::parse_instant(time, chrono::Utc::now())
                .map_err(|e| Error::BadRequest(format!("from: {e}; or use earliest or latest")))?;
            Start::Time(nanos / 1_000_000)
        }
    };
    let query = params.q.clone().unwrap_or_default();
    let mut filter = RecordFilter::new(&query).map_err(|e| Error::BadRequest(format!("q: {e}")))?;
    let topic = match db::namespaces::find(&state.db, &namespace).await? {
        Some(row) => row.topic,
        None => bitesize_record::topic_for(&config.kafka.topic_template, &namespace)
            .map_err(|e| Error::BadRequest(e.to_string()))?,
    };
    let Some(slot) = Slot::take(&actor, &config.kafka.stream) else {
        return Ok(too_many(format!(
            "at most {} open streams per principal (kafka.stream.max_concurrent_per_principal); close one first",
            config.kafka.stream.max_concurrent_per_principal
        )));
    };
    let reader = {
        let (kafka, topic, start) = (config.kafka.clone(), topic.clone(), start.clone());
        tokio::task::spawn_blocking(move || TopicReader::open(&kafka, &topic, &start))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??
    };
    let start_text = match &start {
        Start::Earliest => "earliest".to_owned(),
        Start::Latest => "latest".to_owned(),
        Start::Time(ms) => format!("time:{ms}"),
        Start::Cursor(c) => format!("cursor:{}", c.encode()),
    };
    let detail = serde_json::json!({ "topic": topic, "start": start_text, "cursor": reader.position.encode(), "limit": params.limit });
    auditor.record("stream.start", None, detail).await?;

    let (tx, rx) = mpsc::channel::<Result<Bytes>>(16);
    let limit = params.limit.unwrap_or(u64::MAX);
    let follow = params.follow.unwrap_or(true);
    let rate = config.kafka.stream.max_records_per_second;
    let metrics = state.metrics.clone();
    let (ns, actor_for_loop) = (namespace.clone(), actor.clone());
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("stream".into())
        .spawn(move || {
            let _slot = slot;
            let ended = pump(
                reader,
                &mut filter,
                &tx,
                PumpSettings {
                    namespace: &ns,
                    actor: &actor_for_loop,
                    framing,
                    limit,
                    follow,
                    rate,
                },
                &metrics,
            );
            let detail = serde_json::json!({ "reason": ended.reason, "cursor": ended.cursor });
            let result = runtime.block_on(auditor.record("stream.end", Some(ended.sent), detail));
            if let Err(e) = result {
                tracing::error!(error = %e, "auditing the end of a stream failed");
            }
        })
        .map_err(|e| Error::Io("starting a stream thread".into(), e))?;
    let content_type = match framing {
        Framing::Ndjson => "application/x-ndjson",
        Framing::Sse => "text/event-stream",
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
}

struct PumpSettings<'a> {
    namespace: &'a str,
    actor: &'a str,
    framing: Framing,
    limit: u64,
    follow: bool,
    rate: u32,
}

/// Reads, filters and sends until the client leaves, the limit is reached, or (without
/// `follow`) the records that existed at the start are sent.
fn pump(
    mut reader: TopicReader,
    filter: &mut Option<RecordFilter>,
    tx: &mpsc::Sender<Result<Bytes>>,
    settings: PumpSettings<'_>,
    metrics: &crate::metrics::Metrics,
) -> Ended {
    let label = NamespaceLabel {
        namespace: settings.namespace.to_owned(),
    };
    let framing = settings.framing;
    let mut sent = 0u64;
    let send = |event: &str, cursor: &Cursor, body: serde_json::Value| {
        tx.blocking_send(Ok(framing.frame(event, cursor, &body)))
            .is_ok()
    };
    let end = |sent: u64, reason: &str, cursor: &Cursor| {
        let body = serde_json::json!({ "cursor": cursor.encode(), "end": reason });
        let _ = tx.blocking_send(Ok(framing.frame("end", cursor, &body)));
        Ended {
            sent,
            reason: reason.to_owned(),
            cursor: cursor.encode(),
        }
    };
    for &(partition, asked, first) in &reader.gaps {
        let body = serde_json::json!({
            "cursor": reader.position.encode(),
            "gap": { "partition": partition, "from": asked, "to": first },
            "detail": "these records were removed by Kafka retention before they were read",
        });
        if !send("gap", &reader.position, body) {
            return Ended {
                sent,
                reason: "client left".into(),
                cursor: reader.position.encode(),
            };
        }
    }
    let mut last_sent = Instant::now();
    let mut reported = reader.position.clone();
    loop {
        if sent >= settings.limit {
            return end(sent, "limit", &reader.position);
        }
        if !settings.follow && reader.caught_up() {
            return end(sent, "caught_up", &reader.position);
        }
        if tx.is_closed() {
            return Ended {
                sent,
                reason: "client left".into(),
                cursor: reader.position.encode(),
            };
        }
        // A batch: what arrives within one poll interval, up to BATCH records.
        let mut batch: Vec<(i32, i64, Option<i64>, Record, i64)> = Vec::new();
        let deadline = Instant::now() + POLL;
        while batch.len() < BATCH {
            let wait = deadline.saturating_duration_since(Instant::now());
            match reader.consumer.poll(wait) {
                Some(Ok(message)) => {
                    if message.topic() != reader.topic {
                        continue;
                    }
                    let (record, time) = decode(&message, settings.namespace);
                    batch.push((
                        message.partition(),
                        message.offset(),
                        message.timestamp().to_millis(),
                        record,
                        time,
                    ));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stream consume error");
                    break;
                }
                None => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let keep = match filter.as_mut() {
            None => vec![true; batch.len()],
            Some(filter) => {
                let records: Vec<(&Record, i64)> = batch.iter().map(|b| (&b.3, b.4)).collect();
                match filter.matches(&records) {
                    Ok(keep) => keep,
                    Err(e) => {
                        tracing::error!(error = %e, "stream filter failed");
                        return end(sent, "filter failed", &reader.position);
                    }
                }
            }
        };
        for ((partition, offset, timestamp, record, time), keep) in batch.into_iter().zip(keep) {
            // Records below the position were already sent (a refetch): never twice.
            if reader
                .position
                .0
                .get(&partition)
                .is_some_and(|&at| offset < at)
            {
                continue;
            }
            reader.position.0.insert(partition, offset + 1);
            if !keep {
                continue;
            }
            loop {
                let wait = wait_for_budget(settings.actor, settings.rate);
                if wait.is_zero() {
                    break;
                }
                std::thread::sleep(wait);
            }
            let body = serde_json::json!({
                "cursor": reader.position.encode(),
                "partition": partition,
                "offset": offset,
                "timestamp": timestamp
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "time": crate::search::time::format_nanos(time),
                "record": record,
            });
            if !send("record", &reader.position, body) {
                return Ended {
                    sent,
                    reason: "client left".into(),
                    cursor: reader.position.encode(),
                };
            }
            sent += 1;
            metrics.kafka.streamed.get_or_create(&label).inc();
            last_sent = Instant::now();
            reported = reader.position.clone();
            if sent >= settings.limit {
                return end(sent, "limit", &reader.position);
            }
        }
        if last_sent.elapsed() >= HEARTBEAT
            || (reported != reader.position && last_sent.elapsed() >= POLL * 5)
        {
            let body = serde_json::json!({ "cursor": reader.position.encode(), "heartbeat": true });
            if !send("heartbeat", &reader.position, body) {
                return Ended {
                    sent,
                    reason: "client left".into(),
                    cursor: reader.position.encode(),
                };
            }
            last_sent = Instant::now();
            reported = reader.position.clone();
        }
    }
}
