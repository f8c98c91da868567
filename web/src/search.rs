//! The search page: query form, time range, histogram, facets, results, paging, export.
//! Every state is in the URL; every control is a GET form or a plain link.

use std::ops::Range;

use leptos::prelude::*;

use crate::highlight;
use crate::{Header, Viewer};

/// One result line as the search page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HitRow {
    /// As shown (e.g. `2026-11-25 10:00:00.123`).
    pub time: String,
    /// The record's own time, in full (the tooltip).
    pub time_full: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub stream: String,
    pub message: String,
    /// Byte ranges of `message` to highlight (see [`crate::highlight`]).
    pub highlights: Vec<Range<usize>>,
    /// The whole record as formatted JSON, shown when the row is expanded.
    pub record_json: String,
}

/// One histogram bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramBar {
    /// Start (inclusive) and end (exclusive) as RFC 3339: the zoom link's `from` and `to`.
    pub start: String,
    pub end: String,
    /// The start as the axis shows it.
    pub label: String,
    pub count: u64,
}

/// Matches over time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub bars: Vec<HistogramBar>,
    /// The bucket width said plainly (`1 min`).
    pub bucket: String,
}

/// Top values of one field among the matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetGroup {
    /// The query field (`pod`, `fields.level`).
    pub field: String,
    /// Its heading (`Pods`).
    pub title: String,
    pub values: Vec<FacetCount>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// A saved search in the page's list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SavedSearchRow {
    pub id: i64,
    pub name: String,
    /// `/search?…`: opening it runs the search under the viewer's own scope.
    pub href: String,
    pub owner: String,
    /// Saved by the viewer (who may delete it).
    pub mine: bool,
    /// Shared with the owners of its namespaces.
    pub shared: bool,
    pub namespaces: Vec<String>,
}

/// Everything the search page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub viewer: Viewer,
    /// Namespaces the picker offers.
    pub namespaces: Vec<String>,
    /// The selected namespace; empty means all.
    pub namespace: String,
    pub query: String,
    /// The time range as typed (`now-15m`, RFC 3339, or empty).
    pub from: String,
    pub to: String,
    /// The page's cursor; empty: the newest page.
    pub cursor: String,
    /// Show the reason field (auditors state a reason for every read).
    pub reason_required: bool,
    pub reason: String,
    pub hits: Vec<HitRow>,
    pub total: u64,
    /// The next (older) page's cursor; none on the last page.
    pub next_cursor: Option<String>,
    pub histogram: Option<Histogram>,
    pub facets: Vec<FacetGroup>,
    /// Why the search failed (e.g. a query that does not parse), said plainly.
    pub error: Option<String>,
    /// The viewer's saved searches and those shared with them.
    pub saved: Vec<SavedSearchRow>,
    /// Why saving failed, said plainly (the form keeps what was typed).
    pub save_error: Option<String>,
    /// What the save form held when saving failed.
    pub save_name: String,
    /// "Saved “name”.", after a save.
    pub notice: Option<String>,
}

/// Time range presets: (label, `from`).
pub const PRESETS: [(&str, &str); 4] = [
    ("15 m", "now-15m"),
    ("1 h", "now-1h"),
    ("24 h", "now-24h"),
    ("7 d", "now-7d"),
];

/// `path?k=v&…` over `pairs` then `extra`, empty values left out, values URL-encoded.
pub fn href(path: &str, pairs: &[(&str, &str)], extra: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .chain(extra)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (for query strings).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The selection a link or form carries: what `/search` and `/api/v1/export` both read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub namespace: String,
    pub q: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl Selection {
    /// `path?namespace=…&q=…` with the empty parameters left out, then `extra`.
    pub fn href(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let pairs = [
            ("namespace", self.namespace.as_str()),
            ("q", self.q.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("reason", self.reason.as_str()),
        ];
        href(path, &pairs, extra)
    }

    fn with_range(&self, from: &str, to: &str) -> Selection {
        Selection {
            from: from.to_owned(),
            to: to.to_owned(),
            ..self.clone()
        }
    }

    /// The query with `field:value` added (ANDed).
    fn with_filter(&self, field: &str, value: &str) -> Selection {
        let clause = format!("{field}:{}", quote_value(value));
        let q = if self.q.trim().is_empty() {
            clause
        } else {
            format!("{} {clause}", self.q.trim())
        };
        Selection { q, ..self.clone() }
    }
}

/// A field value as the query language reads it back exactly: bare when it can be,
/// otherwise quoted with `\` before `"` and `\`.
pub fn quote_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value.starts_with(['>', '<', '[', '-'])
        && !value.ends_with('*')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '"' | '\\'));
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Histogram drawing size (SVG user units; the SVG stretches to the page width).
const CHART_WIDTH: f64 = 1000.0;
const CHART_HEIGHT: f64 = 100.0;

#[component]
fn HistogramView(histogram: Histogram, selection: Selection) -> impl IntoView {
    let bars = histogram.bars;
    let n = bars.len().max(1);
    let max = bars.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let width = CHART_WIDTH / n as f64;
    let gap = if width > 4.0 { 1.0 } else { 0.0 };
    let total: u64 = bars.iter().map(|b| b.count).sum();
    let axis: Vec<String> = match bars.len() {
        0 => vec![],
        1 => vec![bars[0].label.clone()],
        len => vec![
            bars[0].label.clone(),
            bars[len / 2].label.clone(),
            bars[len - 1].label.clone(),
        ],
    };
    let drawn = bars
        .into_iter()
        .enumerate()
        .map(|(i, bar)| {
            let x = i as f64 * width;
            let h = if bar.count == 0 {
                0.0
            } else {
                (bar.count as f64 / max as f64 * CHART_HEIGHT).max(1.5)
            };
            let title = format!(
                "{} {} from {} to {}",
                bar.count,
                if bar.count == 1 { "match" } else { "matches" },
                bar.start,
                bar.end
            );
            let href = selection.with_range(&bar.start, &bar.end).href("/search", &[]);
            let label = title.clone();
            view! {
                <a href=href class="bar" aria-label=label data-start=bar.start.clone() data-end=bar.end.clone()>
                    <title>{title}</title>
                    <rect class="zone" x=format!("{x:.2}") y="0" width=format!("{width:.2}") height=format!("{CHART_HEIGHT}")></rect>
                    <rect class="fill" x=format!("{:.2}", x + gap / 2.0) y=format!("{:.2}", CHART_HEIGHT - h)
                        width=format!("{:.2}", (width - gap).max(0.5)) height=format!("{h:.2}")></rect>
                </a>
            }
        })
        .collect_view();
    let axis = axis
        .into_iter()
        .map(|label| view! { <span>{label}</span> })
        .collect_view();
    view! {
        <figure class="histogram" aria-labelledby="histogram-caption">
            <figcaption id="histogram-caption">
                {format!("Matches over time (UTC), {} per bar, most {max}; total {total}. Select a bar to zoom in.", histogram.bucket)}
            </figcaption>
            <div class="chart">
                <span class="ymax" aria-hidden="true">{max}</span>
                <svg viewBox=format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}") preserveAspectRatio="none" role="img"
                    aria-label="Histogram of matches over time" focusable="false">
                    {drawn}
                </svg>
            </div>
            <div class="axis" aria-hidden="true">{axis}</div>
        </figure>
    }
}

#[component]
fn FacetsPanel(facets: Vec<FacetGroup>, selection: Selection) -> impl IntoView {
    let groups = facets
        .into_iter()
        .map(|group| {
            let field = group.field.clone();
            let values = group
                .values
                .into_iter()
                .map(|v| {
                    let href = selection.with_filter(&field, &v.value).href("/search", &[]);
                    let shown = if v.value.is_empty() { "(empty)".to_owned() } else { v.value.clone() };
                    let label = format!("Add {field}:{} to the query ({} matches)", quote_value(&v.value), v.count);
                    view! {
                        <li><a href=href title=label.clone() aria-label=label><span class="value">{shown}</span><span class="count">{v.count}</span></a></li>
                    }
                })
                .collect_view();
            view! {
                <section>
                    <h3>{group.title}</h3>
                    <ul>{values}</ul>
                </section>
            }
        })
        .collect_view();
    view! {
        <aside class="facets" aria-label="Top values">
            <h2>"Top values"</h2>
            {groups}
        </aside>
    }
}

/// Saved searches: open one, delete one's own, save the current view (optionally shared with
/// the owners of its namespaces). Plain links and form posts.
#[component]
fn SavedPanel(
    saved: Vec<SavedSearchRow>,
    selection: Selection,
    error: Option<String>,
    name: String,
    notice: Option<String>,
) -> impl IntoView {
    // The view being looked at, without the auditor's reason (it belongs to one read).
    let current = Selection {
        reason: String::new(),
        ..selection.clone()
    }
    .href("/search", &[]);
    let back = selection.href("/search", &[]);
    let empty = saved.is_empty();
    let items = saved
        .into_iter()
        .map(|s| {
            let whose = if s.mine {
                if s.shared {
                    format!("shared with the owners of {}", s.namespaces.join(", "))
                } else {
                    "only you".to_owned()
                }
            } else {
                format!("shared by {}", s.owner)
            };
            let delete = s.mine.then(|| {
                let label = format!("Delete the saved search {}", s.name);
                view! {
                    <form method="post" action=format!("/search/saved/{}/delete", s.id) class="inline">
                        <input type="hidden" name="back" value=back.clone()/>
                        <button type="submit" class="plain" aria-label=label title="Delete">"✕"</button>
                    </form>
                }
            });
            view! {
                <li>
                    <a href=s.href class="saved-search">{s.name}</a>
                    <span class="whose">{whose}</span>
                    {delete}
                </li>
            }
        })
        .collect_view();
    let share = if selection.namespace.is_empty() {
        view! { <p class="help">"Pick a namespace to share a search with its owners."</p> }
            .into_any()
    } else {
        view! {
            <label class="check"><input type="checkbox" name="shared" value="true"/>
                {format!(" Share with the owners of {}", selection.namespace)}</label>
        }
        .into_any()
    };
    view! {
        <section class="saved" aria-labelledby="saved-title">
            <h2 id="saved-title">"Saved searches"</h2>
            {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {empty.then(|| view! { <p class="help">"None yet: save the view you are looking at below."</p> })}
            <ul class="saved-list">{items}</ul>
            <form method="post" action="/search/saved" class="save">
                <input type="hidden" name="url" value=current/>
                <label for="save-name">"Save this view as"</label>
                <input id="save-name" name="name" value=name required=true maxlength="100" placeholder="e.g. checkout errors"
                    aria-invalid=error.is_some().then_some("true") aria-describedby=error.is_some().then_some("save-error")/>
                {share}
                {error.map(|e| view! { <p class="error" id="save-error" role="alert">{e}</p> })}
                <button type="submit">"Save"</button>
            </form>
        </section>
    }
}

fn message_view(hit: &HitRow) -> impl IntoView {
    highlight::pieces(&hit.message, &hit.highlights)
        .into_iter()
        .map(|(text, marked)| {
            let text = text.to_owned();
            if marked {
                view! { <mark>{text}</mark> }.into_any()
            } else {
                text.into_any()
            }
        })
        .collect_view()
}

#[component]
pub(crate) fn SearchView(page: SearchPage) -> impl IntoView {
    let SearchPage {
        viewer,
        namespaces,
        namespace,
        query,
        from,
        to,
        cursor,
        reason_required,
        reason,
        hits,
        total,
        next_cursor,
        histogram,
        facets,
        error,
        saved,
        save_error,
        save_name,
        notice,
    } = page;
    let selection = Selection {
        namespace: namespace.clone(),
        q: query.clone(),
        from: from.clone(),
        to: to.clone(),
        reason: if reason_required {
            reason.clone()
        } else {
            String::new()
        },
    };
    let shown = hits.len();
    let options = namespaces
        .into_iter()
        .map(|name| {
            let selected = name == namespace;
            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    let presets = PRESETS
        .iter()
        .map(|(label, value)| {
            let current = from == *value && to.is_empty();
            let href = selection.with_range(value, "").href("/search", &[]);
            view! { <a href=href class="preset" aria-current=current.then_some("true")>{*label}</a> }
        })
        .collect_view();
    let all_time = from.is_empty() && to.is_empty();
    let all_href = selection.with_range("", "").href("/search", &[]);
    let rows = hits
        .into_iter()
        .map(|hit| {
            let stream_class = if hit.stream == "stderr" {
                "stream stderr"
            } else {
                "stream"
            };
            let message = message_view(&hit);
            view! {
                <tr class="hit">
                    <td class="time" title=hit.time_full>{hit.time}</td>
                    <td>{hit.namespace}</td>
                    <td>{hit.pod}</td>
                    <td>{hit.container}</td>
                    <td class=stream_class>{hit.stream}</td>
                    <td class="message">
                        <details>
                            <summary>{message}</summary>
                            <pre class="record">{hit.record_json}</pre>
                        </details>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let paging = (!cursor.is_empty() || next_cursor.is_some()).then(|| {
        let newest = (!cursor.is_empty()).then(|| {
            let href = selection.href("/search", &[]);
            view! { <a href=href class="newest">"↑ Newest"</a> }
        });
        let more = next_cursor.map(|next| {
            let href = selection.href("/search", &[("cursor", &next)]);
            view! { <a href=href class="more" rel="next">"Load more (older) ↓"</a> }
        });
        view! { <nav class="paging" aria-label="Pages">{newest}{more}</nav> }
    });
    let export_ndjson = selection.href("/api/v1/export", &[("format", "ndjson")]);
    let export_csv = selection.href("/api/v1/export", &[("format", "csv")]);
    // Live tail (app.js): the same selection from now on, whatever the range.
    let tail_href = selection.with_range("", "").href("/api/v1/tail", &[]);
    let summary = if cursor.is_empty() {
        format!("{total} matching, showing the newest {shown}")
    } else {
        format!("{total} matching, showing {shown} older")
    };
    let reason_field = reason_required.then(|| {
        view! {
            <div class="reason">
                <label for="reason">"Reason for this search"</label>
                <input id="reason" name="reason" value=reason required=true placeholder="ticket or case, e.g. INC-1234"/>
            </div>
        }
    });
    let histogram = histogram
        .filter(|h| !h.bars.is_empty())
        .map(|h| view! { <HistogramView histogram=h selection=selection.clone()/> });
    let has_facets = facets.iter().any(|f| !f.values.is_empty());
    let facets =
        has_facets.then(|| view! { <FacetsPanel facets=facets selection=selection.clone()/> });
    let saved = view! {
        <SavedPanel saved=saved selection=selection.clone() error=save_error name=save_name notice=notice/>
    };
    view! {
        <Header viewer=viewer current="/search"/>
        <main class="search" id="main">
            <form class="search" method="get" action="/search" role="search">
                <div class="row">
                    <label for="namespace" class="visually-hidden">"Namespace"</label>
                    <select id="namespace" name="namespace">
                        <option value="" selected=namespace.is_empty()>"All namespaces"</option>
                        {options}
                    </select>
                    <label for="q" class="visually-hidden">"Query"</label>
                    <input id="q" type="search" name="q" value=query placeholder="error AND pod:web-*" autofocus=true aria-describedby="q-help"/>
                    <button type="submit">"Search"</button>
                </div>
                <div class="row range">
                    <label for="from">"From"</label>
                    <input id="from" name="from" value=from.clone() placeholder="now-1h or 2026-11-25T10:00:00Z" size="22"/>
                    <label for="to">"To"</label>
                    <input id="to" name="to" value=to.clone() placeholder="now" size="22"/>
                    <span class="presets" aria-label="Time range presets">
                        {presets}
                        <a href=all_href class="preset" aria-current=all_time.then_some("true")>"All"</a>
                    </span>
                </div>
                {reason_field}
                <p id="q-help" class="help">
                    "Words, \"phrases\", conn*, pod:web-1, fields.level:error, a OR b, -word, (grouping). Press / to jump here, ? for every keyboard shortcut."
                </p>
            </form>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {histogram}
            <div class="layout">
                <div class="side">
                    {saved}
                    {facets}
                </div>
                <section class="results" id="results" aria-label="Results" data-tail=tail_href>
                    <div class="toolbar">
                        <p class="summary" role="status">{summary}</p>
                        <span class="export">"Export: "
                            <a href=export_ndjson>"NDJSON"</a>" · "<a href=export_csv>"CSV"</a>
                        </span>
                    </div>
                    <div class="table">
                        <table class="hits">
                            <thead><tr><th scope="col">"Time (UTC)"</th><th scope="col">"Namespace"</th><th scope="col">"Pod"</th><th scope="col">"Container"</th><th scope="col">"Stream"</th><th scope="col">"Message"</th></tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                    {paging}
                </section>
            </div>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_search_page;

    fn hit(message: &str, query: &str) -> HitRow {
        HitRow {
            time: "2026-11-25 10:00:00.123".into(),
            time_full: "2026-11-25T10:00:00.123456789Z".into(),
            namespace: "shop".into(),
            pod: "web-1".into(),
            container: "web".into(),
            stream: "stdout".into(),
            message: message.into(),
            highlights: highlight::ranges(message, &highlight::plain_words(query)),
            record_json: serde_like_json(message),
        }
    }

    fn serde_like_json(message: &str) -> String {
        format!("{{\n  \"log\": \"{message}\"\n}}")
    }

    fn page() -> SearchPage {
        SearchPage {
            namespaces: vec!["shop".into()],
            namespace: "shop".into(),
            query: "needle".into(),
            from: "now-1h".into(),
            ..Default::default()
        }
    }

    #[test]
    fn highlights_are_escaped_and_marked() {
        let message = "<script>alert('needle')</script> found the Needle & more";
        let html = render_search_page(SearchPage {
            hits: vec![hit(message, "needle")],
            total: 1,
            ..page()
        });
        assert!(
            html.contains("&lt;script&gt;alert(&#39;<mark>needle</mark>&#39;)&lt;/script&gt; found the <mark>Needle</mark> &amp; more")
                || html.contains("&lt;script&gt;alert('<mark>needle</mark>')&lt;/script&gt; found the <mark>Needle</mark> &amp; more"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        // The full record, expandable without JavaScript.
        assert!(html.contains("<details><summary>"), "{html}");
        assert!(
            html.contains("<pre class=\"record\">{\n  &quot;log&quot;")
                || html.contains("<pre class=\"record\">{\n  \"log\""),
            "{html}"
        );
    }

    #[test]
    fn histogram_bars_zoom_the_range() {
        let bars = vec![
            HistogramBar {
                start: "2026-11-25T10:00:00Z".into(),
                end: "2026-11-25T10:01:00Z".into(),
                label: "10:00".into(),
                count: 4,
            },
            HistogramBar {
                start: "2026-11-25T10:01:00Z".into(),
                end: "2026-11-25T10:02:00Z".into(),
                label: "10:01".into(),
                count: 0,
            },
            HistogramBar {
                start: "2026-11-25T10:02:00Z".into(),
                end: "2026-11-25T10:03:00Z".into(),
                label: "10:02".into(),
                count: 8,
            },
        ];
        let html = render_search_page(SearchPage {
            histogram: Some(Histogram {
                bars,
                bucket: "1 min".into(),
            }),
            ..page()
        });
        assert!(html.contains("<svg"), "{html}");
        assert_eq!(html.matches("class=\"bar\"").count(), 3);
        assert!(
            html.contains("href=\"/search?namespace=shop&amp;q=needle&amp;from=2026-11-25T10%3A02%3A00Z&amp;to=2026-11-25T10%3A03%3A00Z\""),
            "{html}"
        );
        assert!(
            html.contains(
                "<title>8 matches from 2026-11-25T10:02:00Z to 2026-11-25T10:03:00Z</title>"
            ),
            "{html}"
        );
        assert!(html.contains("<title>1 match") || !html.contains("1 matches"));
        // The tallest bar fills the chart, the empty one has no height.
        assert!(
            html.contains("y=\"0.00\" width=\"332.33\" height=\"100.00\""),
            "{html}"
        );
        assert!(html.contains("height=\"0.00\""));
        assert!(
            html.contains("<span>10:00</span><span>10:01</span><span>10:02</span>"),
            "{html}"
        );
    }

    #[test]
    fn facet_values_add_a_filter_to_the_query() {
        let html = render_search_page(SearchPage {
            facets: vec![
                FacetGroup {
                    field: "pod".into(),
                    title: "Pods".into(),
                    values: vec![FacetCount {
                        value: "web-1".into(),
                        count: 3,
                    }],
                },
                FacetGroup {
                    field: "fields.level".into(),
                    title: "Levels".into(),
                    values: vec![FacetCount {
                        value: "very \"bad\"".into(),
                        count: 1,
                    }],
                },
            ],
            ..page()
        });
        assert!(
            html.contains(
                "href=\"/search?namespace=shop&amp;q=needle%20pod%3Aweb-1&amp;from=now-1h\""
            ),
            "{html}"
        );
        assert!(
            html.contains(&format!(
                "q={}",
                urlencode("needle fields.level:\"very \\\"bad\\\"\"")
            )),
            "{html}"
        );
        assert_eq!(quote_value("web-1"), "web-1");
        assert_eq!(quote_value("a b"), "\"a b\"");
        assert_eq!(quote_value(""), "\"\"");
        assert_eq!(quote_value("x*"), "\"x*\"");
        assert_eq!(quote_value("c:\\d"), "\"c:\\\\d\"");
    }

    #[test]
    fn paging_and_export_links_carry_the_selection() {
        let html = render_search_page(SearchPage {
            next_cursor: Some("abc+/=".into()),
            ..page()
        });
        assert!(html.contains("href=\"/search?namespace=shop&amp;q=needle&amp;from=now-1h&amp;cursor=abc%2B%2F%3D\""), "{html}");
        assert!(!html.contains("Newest"));
        assert!(html.contains("href=\"/api/v1/export?namespace=shop&amp;q=needle&amp;from=now-1h&amp;format=ndjson\""), "{html}");
        assert!(html.contains(
            "href=\"/api/v1/export?namespace=shop&amp;q=needle&amp;from=now-1h&amp;format=csv\""
        ));
        let html = render_search_page(SearchPage {
            cursor: "abc".into(),
            ..page()
        });
        assert!(html.contains("class=\"newest\""), "{html}");
        assert!(!html.contains("Load more"));
        // Presets: 15 m … 7 d and all time, the current one marked.
        assert!(
            html.contains("href=\"/search?namespace=shop&amp;q=needle&amp;from=now-15m\""),
            "{html}"
        );
        assert!(
            html.contains("from=now-1h\" aria-current=\"true\" class=\"preset\""),
            "{html}"
        );
        assert!(html.contains("value=\"now-1h\""));
    }

    #[test]
    fn reason_field_only_when_asked() {
        let html = render_search_page(page());
        assert!(!html.contains("name=\"reason\""));
        let html = render_search_page(SearchPage {
            reason_required: true,
            reason: "INC-7".into(),
            next_cursor: Some("c".into()),
            ..page()
        });
        assert!(
            html.contains("name=\"reason\" value=\"INC-7\" required"),
            "{html}"
        );
        assert!(html.contains("reason=INC-7&amp;cursor=c"), "{html}");
        assert!(html.contains("reason=INC-7&amp;format=csv"), "{html}");
    }

    #[test]
    fn renders_a_hundred_results_quickly() {
        let hits: Vec<HitRow> = (0..100)
            .map(|i| {
                hit(
                    &format!("GET /cart/{i} needle 200 {}", "x".repeat(200)),
                    "needle",
                )
            })
            .collect();
        let facets = ["pod", "container", "stream", "node", "fields.level"]
            .iter()
            .map(|f| FacetGroup {
                field: f.to_string(),
                title: f.to_string(),
                values: (0..10)
                    .map(|i| FacetCount {
                        value: format!("v{i}"),
                        count: i,
                    })
                    .collect(),
            })
            .collect();
        let bars = (0..100)
            .map(|i| HistogramBar {
                start: format!("s{i}"),
                end: format!("e{i}"),
                label: format!("l{i}"),
                count: i,
            })
            .collect();
        let page = SearchPage {
            hits,
            total: 1000,
            next_cursor: Some("c".into()),
            facets,
            histogram: Some(Histogram {
                bars,
                bucket: "1 min".into(),
            }),
            ..page()
        };
        let started = std::time::Instant::now();
        let html = render_search_page(page);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "rendered the search page with 100 results in {ms:.1} ms ({} bytes)",
            html.len()
        );
        assert_eq!(html.matches("<tr class=\"hit\"").count(), 100);
        assert!(ms < 1000.0, "{ms} ms");
    }
}
