//! Schema, per-namespace indexes, and every read of log data: search (newest first, cursor
//! paging), histogram, facets, and the offsets-based feed behind live tail.

pub mod collectors;
pub mod index;
pub mod time;
pub mod time_query;

// The query language and the schema live in their own crate (`query/`), so the fuzz target
// builds without the server's dependencies; re-exported under their old paths.
pub use bitesize_query as query;
pub use bitesize_query::schema;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound;
use std::time::Instant;

use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Searcher, TantivyDocument, Term};

pub use collectors::SortKey;
pub use index::{IndexRegistry, IndexStats, NamespaceIndex, Offsets};
pub use time::TimeRange;

use crate::{Error, Result};

pub const MAX_LIMIT: usize = 10_000;
/// Most buckets a histogram may have.
pub const MAX_BUCKETS: i64 = 2_000;
/// Fields the facets panel always shows.
pub const DEFAULT_FACETS: [&str; 4] = ["pod", "container", "stream", "node"];

/// What to read: which namespaces, which records, which time range.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub namespaces: Vec<String>,
    pub query: String,
    pub range: TimeRange,
}

/// A search: a selection, a page size and where the previous page ended.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub selection: Selection,
    pub limit: usize,
    pub after: Option<SortKey>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// Matching records, newest first.
    pub hits: Vec<serde_json::Value>,
    /// How many records match the selection in all (every page reports the same total).
    pub total: u64,
    /// Always true here: `total` is an exact count, not a lower bound.
    pub total_exact: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub took_ms: u64,
}

/// One hit with its place in the order.
pub struct Hit {
    pub key: SortKey,
    pub record: serde_json::Value,
}

/// Runs `request`; namespaces without an index have no hits.
pub fn search(registry: &IndexRegistry, request: &SearchRequest) -> Result<SearchResponse> {
    let started = Instant::now();
    if request.limit == 0 || request.limit > MAX_LIMIT {
        return Err(Error::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let (hits, total) = page(
        registry,
        &request.selection,
        request.limit,
        request.after.as_ref(),
        true,
    )?;
    let next_cursor = (hits.len() == request.limit)
        .then(|| hits.last().map(|h| h.key.encode()))
        .flatten();
    Ok(SearchResponse {
        hits: hits.into_iter().map(|h| h.record).collect(),
        total,
        total_exact: true,
        next_cursor,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// The `limit` newest hits strictly after `after` in the order, and (when `count_total`)
/// how many records the selection matches in all.
pub fn page(
    registry: &IndexRegistry,
    selection: &Selection,
    limit: usize,
    after: Option<&SortKey>,
    count_total: bool,
) -> Result<(Vec<Hit>, u64)> {
    page_within(registry, selection, limit, after, None, count_total)
}

/// [`page`] among the records at or after `lower` (nanoseconds) only.
fn page_within(
    registry: &IndexRegistry,
    selection: &Selection,
    limit: usize,
    after: Option<&SortKey>,
    lower: Option<i64>,
    count_total: bool,
) -> Result<(Vec<Hit>, u64)> {
    let mut hits: Vec<Hit> = Vec::new();
    let mut total = 0;
    for namespace in &selection.namespaces {
        let Some(index) = registry.get(namespace) else {
            continue;
        };
        let searcher = index.searcher();
        let matching = selection_query(&index, selection)?;
        if count_total {
            total += searcher.search(&matching, &Count)? as u64;
        }

        // Documents at the cursor's exact time may sort on either side of it: fetch enough
        // to drop those at or before the cursor and still fill the page.
        let (query, extra) = match after {
            None => (matching, 0),
            Some(key) => {
                let at_cursor_time = and(vec![
                    matching.box_clone(),
                    time_query(&index, Some(key.time), Some(key.time + 1)),
                ]);
                let extra = searcher.search(&at_cursor_time, &Count)?;
                (
                    and(vec![
                        matching,
                        time_query(&index, lower, Some(key.time + 1)),
                    ]),
                    extra,
                )
            }
        };
        for ((time, partition, offset), address) in newest(&searcher, &*query, limit + extra)? {
            let key = SortKey {
                time,
                namespace: namespace.clone(),
                partition,
                offset,
            };
            if after.is_some_and(|after| key >= *after) {
                continue;
            }
            hits.push(Hit {
                key,
                record: stored_record(&index, &searcher, address)?,
            });
        }
    }
    hits.sort_by(|a, b| b.key.cmp(&a.key));
    hits.truncate(limit);
    Ok((hits, total))
}

/// Every record a selection matches, newest first, a page at a time (for export). After
/// the first page, each page reads only a window of time just older than the previous
/// page, sized from the span of that page and widened while it holds too few records, so a
/// walk over N records reads about N records, not N² / page size.
pub struct NewestFirst {
    selection: Selection,
    limit: usize,
    after: Option<SortKey>,
    /// Width of the next page's time window (nanoseconds); `None`: unbounded.
    window: Option<i64>,
    /// No record of the selection is older than this: a window reaching it is unbounded.
    floor: Option<i64>,
    done: bool,
}

impl NewestFirst {
    pub fn new(registry: &IndexRegistry, selection: Selection, limit: usize) -> Result<Self> {
        let indexes: Vec<_> = selection
            .namespaces
            .iter()
            .filter_map(|n| registry.get(n))
            .collect();
        let (oldest, _) = time_bounds(&indexes)?;
        let floor = match (selection.range.from, oldest) {
            (Some(from), Some(oldest)) => Some(from.max(oldest)),
            (from, oldest) => from.or(oldest),
        };
        Ok(NewestFirst {
            selection,
            limit: limit.max(1),
            after: None,
            window: None,
            floor,
            done: false,
        })
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The next page; empty when every record has been returned.
    pub fn next_page(&mut self, registry: &IndexRegistry) -> Result<Vec<Hit>> {
        if self.done {
            return Ok(Vec::new());
        }
        loop {
            let lower = match (&self.after, self.window) {
                (Some(after), Some(window)) => Some(after.time.saturating_sub(window)),
                _ => None,
            }
            .filter(|&lower| self.floor.is_some_and(|floor| lower > floor));
            let (hits, _) = page_within(
                registry,
                &self.selection,
                self.limit,
                self.after.as_ref(),
                lower,
                false,
            )?;
            if hits.len() < self.limit && lower.is_some() {
                // Too narrow (a quiet stretch): older records may lie beyond the window.
                self.window = self.window.map(|window| window.saturating_mul(4));
                continue;
            }
            if let (Some(newest), Some(oldest)) = (hits.first(), hits.last()) {
                let span = (newest.key.time - oldest.key.time).max(1);
                self.window = Some(span.saturating_mul(2));
            }
            self.done = hits.len() < self.limit;
            if let Some(last) = hits.last() {
                self.after = Some(last.key.clone());
            }
            return Ok(hits);
        }
    }
}

/// A document and its place in the order: (time, partition, offset).
type Keyed = ((i64, u64, u64), DocAddress);

/// The `limit` newest documents `query` matches, by (time, partition, offset), newest
/// first. Segments are visited by the newest record they hold (fast-field metadata), and
/// the walk stops at a segment whose newest record is older than the page's oldest: records
/// arrive roughly in time order, so the newest page reads only the newest segments, and
/// each page of an export reads only the segments around its cursor.
fn newest(searcher: &Searcher, query: &dyn Query, limit: usize) -> Result<Vec<Keyed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let readers = searcher.segment_readers();
    let mut segments: Vec<(i64, usize)> = Vec::with_capacity(readers.len());
    for (ord, reader) in readers.iter().enumerate() {
        if reader.num_docs() > 0 {
            let newest = reader.fast_fields().date("time")?.max_value();
            segments.push((newest.into_timestamp_nanos(), ord));
        }
    }
    segments.sort_unstable_by(|a, b| b.cmp(a));
    // The page so far, its oldest on top.
    let mut page: BinaryHeap<Reverse<Keyed>> = BinaryHeap::with_capacity(limit + 1);
    for (segment_newest, ord) in segments {
        let oldest_kept = page.peek().filter(|_| page.len() >= limit);
        if oldest_kept.is_some_and(|Reverse((key, _))| key.0 > segment_newest) {
            break;
        }
        let reader = &readers[ord];
        let key = collectors::segment_sort_key(reader);
        let alive = reader.alive_bitset();
        weight.for_each_no_score(reader, &mut |docs| {
            for &doc in docs {
                if alive.is_some_and(|alive| !alive.is_alive(doc)) {
                    continue;
                }
                let keyed = (key(doc), DocAddress::new(ord as u32, doc));
                if page.len() < limit {
                    page.push(Reverse(keyed));
                } else if page.peek().is_some_and(|Reverse(oldest)| keyed > *oldest) {
                    page.pop();
                    page.push(Reverse(keyed));
                }
            }
        })?;
    }
    let mut newest_first: Vec<Keyed> = page.into_iter().map(|Reverse(keyed)| keyed).collect();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    Ok(newest_first)
}

fn stored_record(
    index: &NamespaceIndex,
    searcher: &Searcher,
    address: DocAddress,
) -> Result<serde_json::Value> {
    let doc: TantivyDocument = searcher.doc(address)?;
    Ok(doc
        .get_first(index.fields.record)
        .and_then(|v| v.as_str())
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null))
}

/// The query text and time range of `selection` as one Tantivy query for `index`.
fn selection_query(index: &NamespaceIndex, selection: &Selection) -> Result<Box<dyn Query>> {
    let text = parse_query(index, &selection.query)?;
    if selection.range == TimeRange::default() {
        return Ok(text);
    }
    Ok(and(vec![
        text,
        time_query(index, selection.range.from, selection.range.to),
    ]))
}

fn and(clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        clauses.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

/// `from <= time < to` (either bound optional).
fn time_query(index: &NamespaceIndex, from: Option<i64>, to: Option<i64>) -> Box<dyn Query> {
    Box::new(time_query::TimeRangeQuery::new(index.fields.time, from, to))
}

/// The Bitesize query language (docs/query.md); a query that does not parse is a 400 that
/// says why and where.
fn parse_query(index: &NamespaceIndex, text: &str) -> Result<Box<dyn Query>> {
    query::parse(text, index.tantivy_index(), &index.fields)
        .map_err(|e| Error::BadRequest(format!("query: {e}")))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistogramResponse {
    /// Start of the first bucket and end of the last (RFC 3339).
    pub from: Option<String>,
    pub to: Option<String>,
    pub bucket_ms: i64,
    pub buckets: Vec<Bucket>,
    pub total: u64,
    pub took_ms: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub start: String,
    pub count: u64,
}

/// Counts of matching records per time bucket. Without a range, the range is that of the
/// data; without a bucket size, one is chosen to give at most 100 buckets.
pub fn histogram(
    registry: &IndexRegistry,
    selection: &Selection,
    bucket_ms: Option<i64>,
) -> Result<HistogramResponse> {
    let started = Instant::now();
    let indexes: Vec<_> = selection
        .namespaces
        .iter()
        .filter_map(|n| registry.get(n))
        .collect();
    let (mut from, mut to) = (selection.range.from, selection.range.to);
    if from.is_none() || to.is_none() {
        let (min, max) = time_bounds(&indexes)?;
        from = from.or(min);
        to = to.or(max.map(|m| m + 1));
    }
    let (Some(from), Some(to)) = (from, to) else {
        let bucket_ms = bucket_ms.unwrap_or(60_000);
        return Ok(HistogramResponse {
            from: None,
            to: None,
            bucket_ms,
            buckets: vec![],
            total: 0,
            took_ms: 0,
        });
    };
    let to = to.max(from + 1);
    let bucket = match bucket_ms {
        Some(ms) if ms <= 0 => return Err(Error::BadRequest("bucket_ms must be positive".into())),
        Some(ms) => ms.saturating_mul(1_000_000),
        None => nice_bucket((to - from) / 100),
    };
    let start = from - from.rem_euclid(bucket);
    let count = (to - start + bucket - 1) / bucket;
    if count > MAX_BUCKETS {
        return Err(Error::BadRequest(format!(
            "{count} buckets is too many (at most {MAX_BUCKETS}): use a larger bucket_ms"
        )));
    }
    let collector = collectors::Histogram {
        from: start,
        bucket,
        buckets: count as usize,
    };
    let mut counts = vec![0u64; count as usize];
    let bounded = Selection {
        range: TimeRange {
            from: Some(from),
            to: Some(to),
        },
        ..selection.clone()
    };
    for index in &indexes {
        let query = selection_query(index, &bounded)?;
        for (sum, n) in counts
            .iter_mut()
            .zip(index.searcher().search(&query, &collector)?)
        {
            *sum += n;
        }
    }
    let buckets = counts
        .iter()
        .enumerate()
        .map(|(i, &count)| Bucket {
            start: time::format_nanos(start + i as i64 * bucket),
            count,
        })
        .collect();
    Ok(HistogramResponse {
        from: Some(time::format_nanos(start)),
        to: Some(time::format_nanos(start + count * bucket)),
        bucket_ms: bucket / 1_000_000,
        buckets,
        total: counts.iter().sum(),
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// The smallest of 1 s, 5 s, 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h, 12 h, 1 d, 7 d
/// that is at least `nanos`.
fn nice_bucket(nanos: i64) -> i64 {
    const SECOND: i64 = 1_000_000_000;
    const STEPS: [i64; 14] = [
        1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400, 604800,
    ];
    STEPS
        .iter()
        .map(|s| s * SECOND)
        .find(|&step| step >= nanos)
        .unwrap_or(nanos.max(604800 * SECOND))
}

/// Earliest and latest record time over `indexes`, from fast-field metadata.
fn time_bounds(indexes: &[std::sync::Arc<NamespaceIndex>]) -> Result<(Option<i64>, Option<i64>)> {
    let (mut min, mut max): (Option<i64>, Option<i64>) = (None, None);
    for index in indexes {
        for segment in index.searcher().segment_readers() {
            if segment.num_docs() == 0 {
                continue;
            }
            let column = segment.fast_fields().date("time")?;
            let (lo, hi) = (
                column.min_value().into_timestamp_nanos(),
                column.max_value().into_timestamp_nanos(),
            );
            min = Some(min.map_or(lo, |m| m.min(lo)));
            max = Some(max.map_or(hi, |m| m.max(hi)));
        }
    }
    Ok((min, max))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetsResponse {
    /// For each field, its most frequent values among matching records, most frequent first.
    pub facets: BTreeMap<String, Vec<FacetValue>>,
    pub took_ms: u64,
}

/// Top `size` values of each of `fields` (metadata fields, `labels.<key>`, `fields.<path>`
/// with text values) among the records `selection` matches.
pub fn facets(
    registry: &IndexRegistry,
    selection: &Selection,
    fields: &[String],
    size: usize,
) -> Result<FacetsResponse> {
    let started = Instant::now();
    for field in fields {
        let known = DEFAULT_FACETS.contains(&field.as_str())
            || ["namespace", "image"].contains(&field.as_str())
            || field.strip_prefix("labels.").is_some_and(|k| !k.is_empty())
            || field.strip_prefix("fields.").is_some_and(|k| !k.is_empty());
        if !known {
            return Err(Error::BadRequest(format!(
                "cannot facet on {field:?}: use pod, container, stream, node, namespace, image, labels.<key> or fields.<path>"
            )));
        }
    }
    let mut counts: Vec<HashMap<String, u64>> = vec![HashMap::new(); fields.len()];
    for namespace in &selection.namespaces {
        let Some(index) = registry.get(namespace) else {
            continue;
        };
        let query = selection_query(&index, selection)?;
        let searcher = index.searcher();
        for (field, total) in fields.iter().zip(counts.iter_mut()) {
            for (value, n) in searcher.search(
                &query,
                &collectors::TopValues {
                    field: field.clone(),
                },
            )? {
                *total.entry(value).or_insert(0) += n;
            }
        }
    }
    let facets = fields
        .iter()
        .zip(counts)
        .map(|(field, values)| {
            let mut values: Vec<FacetValue> = values
                .into_iter()
                .map(|(value, count)| FacetValue { value, count })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(size);
            (field.clone(), values)
        })
        .collect();
    Ok(FacetsResponse {
        facets,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Next offset to show per namespace and partition: where a live tail stands.
pub type TailPosition = HashMap<(String, u64), u64>;

/// Where a tail starts: after everything the indexes had committed when it was asked.
pub fn tail_start(registry: &IndexRegistry, namespaces: &[String]) -> Result<TailPosition> {
    let mut position = TailPosition::new();
    for namespace in namespaces {
        let Some(index) = registry.get(namespace) else {
            continue;
        };
        for partitions in index.committed_offsets()?.into_values() {
            for (partition, next) in partitions {
                position.insert(
                    (namespace.clone(), partition.max(0) as u64),
                    next.max(0) as u64,
                );
            }
        }
    }
    Ok(position)
}

/// Records indexed since `position` that match `selection`, oldest first (up to `limit`);
/// advances `position` past them.
pub fn tail_next(
    registry: &IndexRegistry,
    selection: &Selection,
    position: &mut TailPosition,
    limit: usize,
) -> Result<Vec<Hit>> {
    let mut hits = Vec::new();
    for namespace in &selection.namespaces {
        let Some(index) = registry.get(namespace) else {
            continue;
        };
        let searcher = index.searcher();
        let mut newer: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut known: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(AllQuery))];
        for ((_, partition), &next) in position.iter().filter(|((ns, _), _)| ns == namespace) {
            let in_partition: Box<dyn Query> = Box::new(TermQuery::new(
                Term::from_field_u64(index.fields.partition, *partition),
                IndexRecordOption::Basic,
            ));
            let after: Box<dyn Query> = Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(index.fields.offset, next)),
                Bound::Unbounded,
            ));
            newer.push((Occur::Should, and(vec![in_partition.box_clone(), after])));
            known.push((Occur::MustNot, in_partition));
        }
        // Partitions not seen yet are new in full.
        newer.push((Occur::Should, Box::new(BooleanQuery::new(known))));
        let query = and(vec![
            selection_query(&index, selection)?,
            Box::new(BooleanQuery::new(newer)),
        ]);
        let top = TopDocs::with_limit(limit).custom_score(|reader: &tantivy::SegmentReader| {
            let key = collectors::segment_sort_key(reader);
            // Oldest first: the smallest offsets score highest.
            move |doc| {
                let (time, partition, offset) = key(doc);
                (std::cmp::Reverse(offset), partition, time)
            }
        });
        for ((std::cmp::Reverse(offset), partition, time), address) in
            searcher.search(&query, &top)?
        {
            let next = position.entry((namespace.clone(), partition)).or_insert(0);
            *next = (*next).max(offset + 1);
            hits.push(Hit {
                key: SortKey {
                    time,
                    namespace: namespace.clone(),
                    partition,
                    offset,
                },
                record: stored_record(&index, &searcher, address)?,
            });
        }
    }
    Ok(hits)
}
