//! `/fleet`: the shipper on every node of every managed cluster, and the editor of the
//! fleet's desired state (shipper config, image, version, resources, tolerations). The
//! editor is one plain POST form: "Preview" answers with the validation error or a line
//! diff of what would change, "Save" applies it; both work without JavaScript.

use leptos::prelude::*;

use crate::{Header, Viewer};

/// `/fleet`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetPage {
    pub viewer: Viewer,
    /// Whether a cluster is configured.
    pub enabled: bool,
    pub desired: FleetDesired,
    pub clusters: Vec<FleetCluster>,
    /// What the editor shows: the stored settings, or what was just posted.
    pub form: FleetForm,
    pub preview: Option<FleetPreview>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The desired state the clusters are reconciled to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetDesired {
    pub image: String,
    pub version: String,
    pub config_version: i64,
    /// Empty: never changed (the defaults).
    pub updated_by: String,
    pub updated_at: String,
}

/// The editor's fields, as text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetForm {
    pub image: String,
    pub version: String,
    /// The shipper's YAML config.
    pub config: String,
    /// YAML or JSON.
    pub resources: String,
    /// YAML or JSON.
    pub tolerations: String,
}

/// One cluster and its nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetCluster {
    pub name: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub last_contact: String,
    pub last_reconcile: String,
    /// `Kind/name` of what the last reconcile re-applied.
    pub last_applied: Vec<String>,
    /// The config version in the cluster's ConfigMap.
    pub config_version_applied: Option<i64>,
    pub nodes: Vec<FleetNode>,
    /// "3 nodes, 3 ready, 0 restarts, 120.5 lines/s, 0 errors".
    pub totals: String,
}

/// The shipper on one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetNode {
    pub node: String,
    pub pod: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i64,
    pub image: String,
    pub version: String,
    pub config_version: Option<i64>,
    /// `metrics` or `pod-template`.
    pub config_source: String,
    /// Runs another config version than the desired one.
    pub stale: bool,
    pub lines_per_second: String,
    pub errors: String,
    /// Why `/metrics` could not be read.
    pub metrics_error: Option<String>,
    pub last_seen: String,
}

/// What "Save" would change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetPreview {
    /// The names of the fields that change (empty: nothing).
    pub changed: Vec<String>,
    /// Whether every shipper restarts (anything but the config changes the pod template).
    pub rolls_out: bool,
    /// Line diffs of the text fields that change: (field, lines).
    pub diffs: Vec<(String, Vec<DiffLine>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    Same,
    Added,
    Removed,
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: DiffKind,
    pub text: String,
}

/// Cells of the alignment table beyond which the changed middle is shown as replaced whole
/// (16 MB: a 2000-line config rewritten completely still aligns).
const MAX_TABLE: usize = 4_000_000;

/// The line diff turning `old` into `new` (a longest common subsequence of lines; removed
/// lines before added ones at each change).
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let line = |kind, text: &str| DiffLine {
        kind,
        text: text.to_owned(),
    };
    // Common head and tail first: edits are usually small, the table stays small.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if ma.len().saturating_mul(mb.len()) > MAX_TABLE {
        // Too big to align cheaply: the whole middle as replaced.
        let mut out: Vec<DiffLine> = a[..head].iter().map(|t| line(DiffKind::Same, t)).collect();
        out.extend(ma.iter().map(|t| line(DiffKind::Removed, t)));
        out.extend(mb.iter().map(|t| line(DiffKind::Added, t)));
        out.extend(a[a.len() - tail..].iter().map(|t| line(DiffKind::Same, t)));
        return out;
    }
    // lcs[i][j]: the longest common subsequence of ma[i..] and mb[j..].
    let mut lcs = vec![vec![0u32; mb.len() + 1]; ma.len() + 1];
    for i in (0..ma.len()).rev() {
        for j in (0..mb.len()).rev() {
            lcs[i][j] = if ma[i] == mb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out: Vec<DiffLine> = a[..head].iter().map(|t| line(DiffKind::Same, t)).collect();
    let (mut i, mut j) = (0, 0);
    while i < ma.len() || j < mb.len() {
        if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
            out.push(line(DiffKind::Same, ma[i]));
            i += 1;
            j += 1;
        } else if i < ma.len() && (j == mb.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(line(DiffKind::Removed, ma[i]));
            i += 1;
        } else {
            out.push(line(DiffKind::Added, mb[j]));
            j += 1;
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|t| line(DiffKind::Same, t)));
    out
}

/// Unchanged lines further than this from a change fold into "… n unchanged lines".
const CONTEXT: usize = 3;

/// The diff as `pre` text lines: `+`/`-`/` ` prefixed, long unchanged runs folded.
fn diff_rows(lines: &[DiffLine]) -> Vec<(DiffKind, String)> {
    let near_change = |i: usize| {
        let from = i.saturating_sub(CONTEXT);
        let to = (i + CONTEXT + 1).min(lines.len());
        lines[from..to].iter().any(|l| l.kind != DiffKind::Same)
    };
    let mut rows = Vec::new();
    let mut folded = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.kind == DiffKind::Same && !near_change(i) {
            folded += 1;
            continue;
        }
        if folded > 0 {
            rows.push((DiffKind::Same, format!("  … {folded} unchanged lines")));
            folded = 0;
        }
        let mark = match l.kind {
            DiffKind::Same => ' ',
            DiffKind::Added => '+',
            DiffKind::Removed => '-',
        };
        rows.push((l.kind, format!("{mark} {}", l.text)));
    }
    if folded > 0 {
        rows.push((DiffKind::Same, format!("  … {folded} unchanged lines")));
    }
    rows
}

/// A textarea's content, escaped here: Leptos writes a textarea's text child unescaped, so a
/// config holding `</textarea>` would end the element early.
fn textarea_text(text: &str) -> String {
    crate::escape_attribute(text)
}

fn dash(text: String) -> String {
    if text.is_empty() {
        "—".to_owned()
    } else {
        text
    }
}

#[component]
fn ClusterView(cluster: FleetCluster, desired_version: i64) -> impl IntoView {
    let FleetCluster {
        name,
        reachable,
        error,
        last_contact,
        last_reconcile,
        last_applied,
        config_version_applied,
        nodes,
        totals,
    } = cluster;
    let state = if reachable {
        view! { <span class="ok">"reachable"</span> }.into_any()
    } else {
        view! { <span class="error">"not reachable"</span> }.into_any()
    };
    let configmap = config_version_applied.map(|v| {
        let stale = v != desired_version;
        view! {
            <span class=if stale { "stale" } else { "" }>
                {format!("ConfigMap at config version {v}{}", if stale { " (not yet the desired one)" } else { "" })}
            </span>
        }
    });
    let applied = (!last_applied.is_empty())
        .then(|| format!("; last re-applied: {}", last_applied.join(", ")));
    let empty = nodes.is_empty();
    let rows = nodes
        .into_iter()
        .map(|n| {
            let config = match n.config_version {
                Some(v) => format!("{v} ({})", n.config_source),
                None => "—".to_owned(),
            };
            let title = n.metrics_error.clone().unwrap_or_default();
            view! {
                <tr class=if n.stale { "stale" } else { "" }>
                    <td class="mono">{n.node}<br/><span class="help">{n.pod}</span></td>
                    <td>{n.phase}</td>
                    <td>{if n.ready { "yes" } else { "no" }}</td>
                    <td class="num">{n.restarts}</td>
                    <td class="mono">{dash(n.image)}<br/><span class="help">{dash(n.version)}</span></td>
                    <td class="num">{config}{n.stale.then(|| view! { <br/><span class="stale">{format!("desired {desired_version}")}</span> })}</td>
                    <td class="num" title=title.clone()>{dash(n.lines_per_second)}</td>
                    <td class="num">{dash(n.errors)}</td>
                    <td class="mono">{dash(n.last_seen)}{n.metrics_error.map(|e| view! { <br/><span class="error">{format!("metrics: {e}")}</span> })}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="card" aria-label=format!("Cluster {name}")>
            <h2>{format!("Cluster {name}")}" · "{state}</h2>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <p class="help">
                {totals}" · last contact "{dash(last_contact)}" · last reconcile "{dash(last_reconcile)}{applied}
                {configmap.map(|c| view! { " · "{c} })}
            </p>
            {empty.then(|| view! { <p class="notice">"No shipper pods found in this cluster."</p> })}
            <div class="table"><table class="grid">
                <thead><tr><th scope="col">"Node / pod"</th><th scope="col">"Phase"</th><th scope="col">"Ready"</th><th scope="col">"Restarts"</th><th scope="col">"Image / version"</th><th scope="col">"Config version"</th><th scope="col">"Lines/s"</th><th scope="col">"Errors"</th><th scope="col">"Last seen"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table></div>
        </section>
    }
}

#[component]
fn PreviewView(preview: FleetPreview) -> impl IntoView {
    let FleetPreview {
        changed,
        rolls_out,
        diffs,
    } = preview;
    if changed.is_empty() {
        return view! { <p class="notice" role="status">"Valid, and nothing changes."</p> }
            .into_any();
    }
    let effect = if rolls_out {
        "Saving restarts every shipper (the pod template changes)."
    } else {
        "Saving updates the ConfigMap only: the shippers reload it without restarting."
    };
    let diffs = diffs
        .into_iter()
        .map(|(field, lines)| {
            let rows = diff_rows(&lines)
                .into_iter()
                .map(|(kind, text)| {
                    let class = match kind {
                        DiffKind::Same => "same",
                        DiffKind::Added => "added",
                        DiffKind::Removed => "removed",
                    };
                    view! { <span class=class>{text}"\n"</span> }
                })
                .collect_view();
            view! {
                <h3>{field.clone()}</h3>
                <pre class="diff mono" aria-label=format!("Changes to {field}")>{rows}</pre>
            }
        })
        .collect_view();
    view! {
        <div class="card preview" role="status">
            <p class="notice">{format!("Valid. Changes: {}. ", changed.join(", "))}{effect}</p>
            {diffs}
        </div>
    }
    .into_any()
}

#[component]
pub(crate) fn FleetView(page: FleetPage) -> impl IntoView {
    let FleetPage {
        viewer,
        enabled,
        desired,
        clusters,
        form,
        preview,
        notice,
        error,
    } = page;
    let desired_version = desired.config_version;
    let changed_by = if desired.updated_by.is_empty() {
        "the defaults (never changed)".to_owned()
    } else {
        format!(
            "changed by {} at {}",
            desired.updated_by, desired.updated_at
        )
    };
    let clusters = clusters
        .into_iter()
        .map(|c| view! { <ClusterView cluster=c desired_version=desired_version/> })
        .collect_view();
    view! {
        <Header viewer=viewer current="/fleet"/>
        <main class="page" id="main">
            <h1 class="title">"Fleet"</h1>
            <p class="help">"The log shipper on every node: what it runs, whether it keeps up, and the config it should run."</p>
            {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            <p>
                "Desired: "<span class="mono">{format!("{}:{}", desired.image, desired.version)}</span>
                {format!(", config version {desired_version}; {changed_by}.")}
            </p>
            {(!enabled).then(|| view! { <p class="notice">"No cluster configured (fleet.contexts or fleet.in_cluster in the server's config): the server deploys no shippers. The desired state below is kept and applied once a cluster is added."</p> })}
            {clusters}
            <h2 id="editor">"Shipper config"</h2>
            {error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {preview.map(|p| view! { <PreviewView preview=p/> })}
            <form method="post" action="/fleet/config#editor" class="card editor" aria-label="Shipper settings">
                <p class="row">
                    <label>"Image "<input name="image" value=form.image size="40" class="mono" required=true/></label>
                    " "<label>"Version "<input name="version" value=form.version size="12" class="mono" required=true/></label>
                </p>
                <p><label for="fleet-config">"Config (YAML, the shipper's config file)"</label><br/>
                <textarea id="fleet-config" name="config" rows="14" class="mono" spellcheck="false" inner_html=textarea_text(&form.config)></textarea></p>
                <p><label for="fleet-resources">"Resources (YAML or JSON: requests and limits)"</label><br/>
                <textarea id="fleet-resources" name="resources" rows="6" class="mono" spellcheck="false" inner_html=textarea_text(&form.resources)></textarea></p>
                <p><label for="fleet-tolerations">"Tolerations (YAML or JSON list)"</label><br/>
                <textarea id="fleet-tolerations" name="tolerations" rows="4" class="mono" spellcheck="false" inner_html=textarea_text(&form.tolerations)></textarea></p>
                <p class="row">
                    <button type="submit" name="action" value="preview" class="secondary">"Preview changes"</button>
                    " "<button type="submit" name="action" value="save">"Save"</button>
                    " "<span class="help">"Preview checks every field and shows what changes; Save checks again and applies."</span>
                </p>
            </form>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_fleet_page;

    fn kinds(diff: &[DiffLine]) -> String {
        diff.iter()
            .map(|l| match l.kind {
                DiffKind::Same => '=',
                DiffKind::Added => '+',
                DiffKind::Removed => '-',
            })
            .collect()
    }

    #[test]
    fn line_diff_finds_the_changed_lines() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        let diff = line_diff(old, new);
        assert_eq!(kinds(&diff), "=-+==+");
        assert_eq!(diff[1].text, "b");
        assert_eq!(diff[2].text, "B");
        assert_eq!(diff[5].text, "e");
        assert_eq!(kinds(&line_diff("x\n", "x\n")), "=");
        assert_eq!(kinds(&line_diff("", "x\ny")), "++");
        assert_eq!(kinds(&line_diff("x\ny", "")), "--");
        // A moved line: one removal and one addition, the rest kept.
        assert_eq!(kinds(&line_diff("a\nb\nc", "b\nc\na")), "-==+");
        // Huge and different everywhere: replaced whole, without a huge table.
        let old: String = (0..3000).map(|i| format!("o{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("n{i}\n")).collect();
        let diff = line_diff(&format!("top\n{old}end\n"), &format!("top\n{new}end\n"));
        assert_eq!(diff.len(), 6002);
        assert_eq!(
            (diff[0].kind, diff[1].kind),
            (DiffKind::Same, DiffKind::Removed)
        );
        assert_eq!(
            (diff[3001].kind, diff[6001].kind),
            (DiffKind::Added, DiffKind::Same)
        );
    }

    #[test]
    fn long_unchanged_runs_fold() {
        let old: String = (0..20).map(|i| format!("l{i}\n")).collect();
        let new = old.replace("l10\n", "changed\n");
        let rows = diff_rows(&line_diff(&old, &new));
        let text: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(text[0], "  … 7 unchanged lines");
        assert!(text.contains(&"- l10") && text.contains(&"+ changed"));
        assert_eq!(*text.last().unwrap(), "  … 6 unchanged lines");
    }

    #[test]
    fn fleet_page_shows_nodes_stale_versions_and_the_preview() {
        let page = FleetPage {
            viewer: Viewer {
                user: "root".into(),
                admin: true,
                ..Default::default()
            },
            enabled: true,
            desired: FleetDesired {
                config_version: 3,
                ..Default::default()
            },
            clusters: vec![FleetCluster {
                name: "prod".into(),
                reachable: true,
                nodes: vec![FleetNode {
                    node: "node-a".into(),
                    config_version: Some(2),
                    config_source: "metrics".into(),
                    stale: true,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            form: FleetForm {
                config: "kafka: <x>\n".into(),
                ..Default::default()
            },
            preview: Some(FleetPreview {
                changed: vec!["config".into()],
                rolls_out: false,
                diffs: vec![("config".into(), line_diff("a: 1\n", "a: 2\n"))],
            }),
            ..Default::default()
        };
        let html = render_fleet_page(page);
        assert!(
            html.contains("Cluster prod") && html.contains("node-a"),
            "{html}"
        );
        assert!(html.contains(r#"<tr class="stale">"#) && html.contains("desired 3"));
        assert!(
            html.contains("kafka: &lt;x&gt;"),
            "the editor escapes: {html}"
        );
        assert!(html.contains("- a: 1") && html.contains("+ a: 2"));
        assert!(html.contains(r#"href="/fleet""#), "admins see the link");
        assert!(!html.contains("No cluster configured"));
    }
}
