//! The tamper-evident audit log: who read or changed what, and when.
//!
//! Events are appended to the `audit_events` table by [`record`] and never updated. Each
//! event stores the hash of the event before it (`prev_hash`) and its own hash over
//! `prev_hash` and all its fields ([`event_hash`]; the encoding is documented in `chain.rs`),
//! so the table is one hash chain, with ids 1, 2, 3, … without gaps. [`verify`] walks the
//! chain and reports the first broken link; [`list`] reads events back with filters.
//!
//! # What verification detects
//!
//! - **An edited row** (any column changed, the stored hash left alone): reported at that
//!   row, whose content no longer matches its hash.
//! - **An edited row whose hash was recomputed**: reported at the next row, whose
//!   `prev_hash` no longer matches.
//! - **A deleted row, or several consecutive rows, anywhere but at the end** (the first row
//!   included): reported at the next remaining row, whose `prev_hash` no longer matches and
//!   whose id does not follow its predecessor's.
//! - **A gap in the ids** (even where the hashes still link): reported at the row after it.
//!
//! # What it cannot detect
//!
//! - **A truncated tail**: deleting the last row (or last rows) leaves a shorter chain that is
//!   intact in itself. A hash chain alone cannot tell; only the newest event's id and hash
//!   (or the event count of an earlier `verify`) kept outside the database can.
//! - **A rewritten tail**: the hash has no secret key, so someone who can write the table
//!   can recompute every hash from the edited row to the end (an edited *last* row with a
//!   recomputed hash is the simplest case). Again only an externally kept newest hash shows it.
//!
//! # Concurrency
//!
//! [`record`] reads the newest event and inserts the next one in one transaction that first
//! takes the table's append lock: `LOCK TABLE … IN SHARE ROW EXCLUSIVE MODE` on PostgreSQL
//! (appenders queue, readers are not blocked), a write statement that takes SQLite's write
//! lock at once (so several connections or processes on one SQLite file queue on the
//! database lock too). The id is assigned as previous id + 1 inside that lock, so the chain
//! stays linear with several server processes appending at once, and a rolled-back append
//! leaves no gap. `record` must be the only writer of the table; the id column's sequence is
//! not used.

mod chain;
mod entity;

pub use chain::{event_hash, GENESIS_HASH};
pub use entity::{ActiveModel, Column, Entity, Model};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;

/// Events read per query while verifying.
const VERIFY_PAGE: u64 = 1_000;
/// Events returned by [`list`] unless the filter says otherwise.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
/// Most events one [`list`] call returns; page on with [`AuditFilter::before_id`].
pub const MAX_LIST_LIMIT: u64 = 10_000;

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Who: a user name, `token:<id>`, or for a failed login the name that was tried.
    pub actor: String,
    /// What, dotted: `search`, `histogram`, `login.success`, `login.failure`,
    /// `binding.create`, …
    pub action: String,
    /// Namespaces read or changed; stored sorted and without duplicates.
    pub namespaces: Vec<String>,
    /// The query text of a read.
    pub query: Option<String>,
    /// How many records a read matched.
    pub hits: Option<u64>,
    /// The reason an auditor stated for a read.
    pub reason: Option<String>,
    /// Anything else, as a JSON object (`null` is stored as `{}`).
    pub detail: serde_json::Value,
}

/// Appends `event` to the chain and returns it as stored (with id, time and hashes).
///
/// The time is this server's clock, read once the append lock is held (so events of one
/// server are in time order too), truncated to microseconds so it reads back identically
/// from SQLite and PostgreSQL. A `detail` that is neither an object nor `null`,
/// or `hits` above `i64::MAX`, is an [`crate::Error::Internal`] (a caller's mistake).
pub async fn record(db: &DatabaseConnection, event: NewEvent) -> crate::Result<Model> {
    let mut namespaces = event.namespaces;
    namespaces.sort();
    namespaces.dedup();
    let namespaces = to_json(&namespaces)?;
    let detail = match &event.detail {
        serde_json::Value::Null => "{}".to_owned(),
        value @ serde_json::Value::Object(_) => to_json(value)?,
        other => {
            return Err(crate::Error::Internal(format!(
                "audit detail must be a JSON object, not {other}"
            )))
        }
    };
    let hits = event
        .hits
        .map(i64::try_from)
        .transpose()
        .map_err(|_| crate::Error::Internal("audit hits above i64::MAX".into()))?;

    let txn = db.begin().await?;
    match txn.get_database_backend() {
        DatabaseBackend::Postgres => {
            txn.execute_unprepared("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
                .await?;
        }
        DatabaseBackend::Sqlite => {
            // A deferred transaction would take the write lock only at the insert, after the
            // read, and fail instead of waiting if another connection wrote meanwhile. A write
            // statement first takes it now, waiting (busy timeout) for other appenders.
            txn.execute_unprepared("UPDATE audit_events SET id = id WHERE 1 = 0")
                .await?;
        }
        // Not a supported catalog; the primary key still rejects a second event with the
        // same id, so two appenders can never fork the chain.
        DatabaseBackend::MySql => {}
    }
    let last = Entity::find()
        .select_only()
        .columns([Column::Id, Column::Hash])
        .order_by_desc(Column::Id)
        .into_tuple::<(i64, String)>()
        .one(&txn)
        .await?;
    let (id, prev_hash) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut model = Model {
        id,
        at: Utc::now().trunc_subsecs(6),
        actor: event.actor,
        action: event.action,
        namespaces,
        query: event.query,
        hits,
        reason: event.reason,
        detail,
        prev_hash,
        hash: String::new(),
    };
    model.hash = event_hash(&model);
    let row = ActiveModel {
        id: Set(model.id),
        at: Set(model.at),
        actor: Set(model.actor.clone()),
        action: Set(model.action.clone()),
        namespaces: Set(model.namespaces.clone()),
        query: Set(model.query.clone()),
        hits: Set(model.hits),
        reason: Set(model.reason.clone()),
        detail: Set(model.detail.clone()),
        prev_hash: Set(model.prev_hash.clone()),
        hash: Set(model.hash.clone()),
    };
    Entity::insert(row).exec_without_returning(&txn).await?;
    txn.commit().await?;
    Ok(model)
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> crate::Result<String> {
    serde_json::to_string(value).map_err(|e| crate::Error::Internal(format!("audit json: {e}")))
}

/// The outcome of [`verify`]. Serialises as `{"ok":true,"events":N}` when the chain is
/// intact, and with `"first_broken":{"id":…,"reason":…}` added when it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    /// Events in the table (all of them, including those after a broken link).
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<BrokenLink>,
}

/// The first event, in id order, at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    /// The id of the event where the break shows: the edited event itself, or the first
    /// event after deleted ones.
    pub id: i64,
    /// What is wrong, for people.
    pub reason: String,
}

/// Walks the whole chain in id order, a page at a time, and reports the first broken link
/// (see the module documentation for what can and cannot be detected). Events appended while
/// it runs are checked too if they land before it reaches the end.
pub async fn verify(db: &DatabaseConnection) -> crate::Result<Verification> {
    let mut events = 0u64;
    let mut first_broken = None;
    let mut previous: Option<(i64, String)> = None;
    loop {
        let mut page = Entity::find().order_by_asc(Column::Id).limit(VERIFY_PAGE);
        if let Some((id, _)) = &previous {
            page = page.filter(Column::Id.gt(*id));
        }
        let rows = page.all(db).await?;
        let full = rows.len() as u64 == VERIFY_PAGE;
        for row in rows {
            events += 1;
            if first_broken.is_none() {
                first_broken = check(previous.as_ref(), &row);
            }
            previous = Some((row.id, row.hash));
        }
        if !full {
            break;
        }
    }
    Ok(Verification {
        ok: first_broken.is_none(),
        events,
        first_broken,
    })
}

/// Whether `row` is a sound link after `previous` (id and hash of the row before it).
fn check(previous: Option<&(i64, String)>, row: &Model) -> Option<BrokenLink> {
    let broken = |reason: String| Some(BrokenLink { id: row.id, reason });
    if event_hash(row) != row.hash {
        return broken(format!(
            "event {} was altered: its content does not match its hash",
            row.id
        ));
    }
    let (expected_id, expected_prev, before) = match previous {
        None => (1, GENESIS_HASH, "the start of the chain".to_owned()),
        Some((id, hash)) => (id + 1, hash.as_str(), format!("event {id}")),
    };
    let missing = if row.id == expected_id {
        None
    } else if row.id == expected_id + 1 {
        Some(format!("event {expected_id} is missing"))
    } else {
        Some(format!(
            "events {expected_id} to {} are missing",
            row.id - 1
        ))
    };
    match (row.prev_hash != expected_prev, missing) {
        (false, None) => None,
        (true, Some(missing)) => broken(format!(
            "{missing} (deleted): event {} does not link to {before}",
            row.id
        )),
        (true, None) if previous.is_none() => broken(format!(
            "event {} does not start from the genesis hash",
            row.id
        )),
        (true, None) => broken(format!(
            "event {} does not link to {before}: {before} was rewritten (its hash recomputed), \
             or this link was",
            row.id
        )),
        (false, Some(missing)) => broken(format!(
            "{missing}: the ids have a gap although event {} links to {before}",
            row.id
        )),
    }
}

/// Which events [`list`] returns. Every field left `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Events whose namespaces include this one.
    pub namespace: Option<String>,
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events before this time.
    pub to: Option<DateTime<Utc>>,
    /// Only events older than this id: pass the last id of a page to get the next page.
    pub before_id: Option<i64>,
    /// At most this many events (capped at [`MAX_LIST_LIMIT`]); the default is
    /// [`DEFAULT_LIST_LIMIT`].
    pub limit: u64,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            actor: None,
            action: None,
            namespace: None,
            from: None,
            to: None,
            before_id: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

/// Events matching `filter`, newest (highest id) first.
pub async fn list(db: &DatabaseConnection, filter: &AuditFilter) -> crate::Result<Vec<Model>> {
    let limit = filter.limit.min(MAX_LIST_LIMIT);
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let mut query = Entity::find();
    if let Some(actor) = &filter.actor {
        query = query.filter(Column::Actor.eq(actor.as_str()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(Column::At.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(Column::At.lt(to));
    }
    if let Some(namespace) = &filter.namespace {
        // The stored array contains the namespace's JSON string; LIKE narrows the rows
        // (SQLite's LIKE ignores case), the exact check below decides.
        let pattern = format!("%{}%", like_escape(&to_json(namespace)?));
        query = query.filter(Column::Namespaces.like(LikeExpr::new(pattern).escape('\\')));
    }
    let mut before = filter.before_id;
    loop {
        let mut page = query.clone().order_by_desc(Column::Id).limit(limit);
        if let Some(id) = before {
            page = page.filter(Column::Id.lt(id));
        }
        let rows = page.all(db).await?;
        let full = rows.len() as u64 == limit;
        for row in rows {
            before = Some(row.id);
            let wanted = filter
                .namespace
                .as_ref()
                .is_none_or(|ns| row.namespace_list().contains(ns));
            if wanted {
                found.push(row);
                if found.len() as u64 == limit {
                    return Ok(found);
                }
            }
        }
        if !full {
            return Ok(found);
        }
    }
}

/// `text` with LIKE's wildcards and the escape character escaped by `\`.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
