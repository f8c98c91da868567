//! A FAKE Kubernetes API server for Bitesize's tests.
//!
//! No real apiserver (nor kind/k3s) can run in the test environment, so the fleet manager's
//! and the shipper's Kubernetes code is tested against this in-process fake. It is NOT a
//! Kubernetes implementation: it keeps objects in memory and answers the subset of the REST
//! API that kube-rs clients use, JSON only, plain HTTP, no authentication.
//!
//! Supported resources: core/v1 `pods`, `namespaces`, `configmaps`, `serviceaccounts`;
//! apps/v1 `daemonsets`; rbac.authorization.k8s.io/v1 `clusterroles`, `clusterrolebindings`.
//!
//! Supported requests:
//! - discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`;
//! - `GET` a collection (namespaced, or across namespaces) with `labelSelector`
//!   (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`) and `fieldSelector`
//!   (`<dotted.json.path>=v`, `==`, `!=`, e.g. `spec.nodeName=node-1`, `metadata.name=x`);
//! - `GET ...?watch=true`: chunked JSON lines of `ADDED`/`MODIFIED`/`DELETED` events after
//!   `resourceVersion` (absent or `0`: synthetic `ADDED` for every current object first),
//!   filtered by the selectors, ended after `timeoutSeconds`; an `ERROR` event with a 410
//!   `Expired` status when [`FakeKube::expire_next_watch`] was called;
//! - `GET`, `PUT` (replace; `metadata.resourceVersion` is checked when given), `DELETE` one
//!   object; `POST` creates one;
//! - `PATCH` with `application/apply-patch+yaml` (server-side apply; body JSON or YAML;
//!   `fieldManager` required, `force` accepted): fields the same manager applied before and
//!   no longer applies are removed, then the applied config is merged in (maps merged,
//!   lists and scalars replaced). There is no conflict detection between managers.
//!   `application/merge-patch+json` and `application/strategic-merge-patch+json` are both
//!   applied as a JSON merge patch (RFC 7386).
//!
//! Every write that changes an object bumps the store's `resourceVersion` (a no-op apply
//! does not, as on a real server) and `metadata.generation` when `spec` changed.
//! Differences from a real server (documented so no test relies on them): no admission,
//! defaulting, validation, finalizers, owner references or garbage collection; objects that
//! stop matching a watch's label selector get no `DELETED` event; no pagination.
//!
//! Test controls on [`FakeKube`]: [`FakeKube::upsert`] / [`FakeKube::remove`] /
//! [`FakeKube::get`] / [`FakeKube::list`] objects (emitting watch events),
//! [`FakeKube::expire_next_watch`], [`FakeKube::set_availability`] (503 or closed
//! connections, and back), and [`FakeKube::requests`] / [`FakeKube::take_requests`]: every
//! request received (method, path, query, content type, JSON body).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::channel::mpsc;
use futures::SinkExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// One resource type the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Every resource type the fake serves.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
    },
];

fn resource_by_plural(plural: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

fn resource_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Serves requests.
    Up,
    /// Answers every request with 503 and a `ServiceUnavailable` status; ends open watches.
    ServiceUnavailable,
    /// Closes every connection without answering; ends open watches.
    CloseConnections,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub content_type: Option<String>,
    /// The body, when it was JSON (or YAML for apply patches).
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// A decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether the request could change state (not GET).
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// Whether this is a server-side apply.
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH"
            && self
                .content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/apply-patch"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    plural: &'static str,
    /// Empty for cluster-scoped objects.
    namespace: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Event {
    resource_version: u64,
    kind: &'static str,
    plural: &'static str,
    namespace: String,
    object: Value,
}

#[derive(Default)]
struct Store {
    resource_version: u64,
    objects: BTreeMap<ObjectKey, Value>,
    /// The last config each field manager applied to each object.
    applied: BTreeMap<(ObjectKey, String), Value>,
    log: Vec<Event>,
    expire_next_watches: usize,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Event>,
    availability: watch::Sender<Availability>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Starts a fake API server on a free local port.
pub async fn start() -> FakeKube {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind the fake Kubernetes API server");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let (events, _) = broadcast::channel(4096);
    let (availability, _) = watch::channel(Availability::Up);
    let shared = Arc::new(Shared {
        store: Mutex::new(Store::default()),
        events,
        availability,
    });
    let accept = tokio::spawn(accept_loop(listener, shared.clone()));
    FakeKube {
        url,
        shared,
        accept,
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) ends every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        if *shared.availability.borrow() == Availability::CloseConnections {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl FakeKube {
    /// The base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kube client pointed at the fake (plain HTTP, no authentication, default
    /// namespace `default`).
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("kube client for the fake")
    }

    /// The kube config [`FakeKube::client`] uses.
    pub fn kube_config(&self) -> kube::Config {
        kube::Config::new(self.url.parse().expect("fake URL is a URI"))
    }

    /// Creates or replaces an object (`apiVersion`, `kind`, `metadata.name`, and
    /// `metadata.namespace` for namespaced kinds required), emitting `ADDED` or `MODIFIED`.
    /// Returns the stored object (with its new `resourceVersion`).
    pub fn upsert(&self, object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("object has apiVersion");
        let kind = object["kind"].as_str().expect("object has kind");
        let rt = resource_by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("the fake does not serve {api_version} {kind}"));
        let name = object["metadata"]["name"]
            .as_str()
            .expect("object has metadata.name");
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        assert_eq!(
            rt.namespaced,
            !namespace.is_empty(),
            "metadata.namespace for {kind}"
        );
        let key = ObjectKey {
            plural: rt.plural,
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut store = self.shared.store();
        let kind_of_event = if store.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        commit(&self.shared, &mut store, rt, key, object, kind_of_event)
    }

    /// Deletes an object, emitting `DELETED`; returns it if it existed.
    pub fn remove(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let rt = resource_by_plural(plural).expect("a served resource");
        let key = ObjectKey {
            plural: rt.plural,
            namespace: namespace.unwrap_or_default().into(),
            name: name.into(),
        };
        let mut store = self.shared.store();
        delete_object(&self.shared, &mut store, key)
    }

    /// One stored object.
    pub fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let key = ObjectKey {
            plural: resource_by_plural(plural)
                .expect("a served resource")
                .plural,
            namespace: namespace.unwrap_or_default().into(),
            name: name.into(),
        };
        self.shared.store().objects.get(&key).cloned()
    }

    /// Every stored object of a resource type, across namespaces.
    pub fn list(&self, plural: &str) -> Vec<Value> {
        self.shared
            .store()
            .objects
            .iter()
            .filter(|(k, _)| k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The store's current `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version
    }

    /// The next watch request is answered with an `ERROR` event (410 `Expired`), as a real
    /// server does when the requested `resourceVersion` was compacted away.
    pub fn expire_next_watch(&self) {
        self.shared.store().expire_next_watches += 1;
    }

    /// Makes the server unavailable (or available again). Open watches end.
    pub fn set_availability(&self, availability: Availability) {
        self.shared.availability.send_replace(availability);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.store().requests.clone()
    }

    /// Every request received so far, and forgets them.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut self.shared.store().requests)
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("valid response")
}

fn status_value(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status_value(code, reason, message),
    )
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let body = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .or_else(|| serde_yaml::from_slice::<Value>(&bytes).ok())
    };
    shared.store().requests.push(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
    });
    match *shared.availability.borrow() {
        Availability::Up => {}
        Availability::ServiceUnavailable => {
            return Ok(status_response(
                503,
                "ServiceUnavailable",
                "the fake API server is unavailable",
            ))
        }
        Availability::CloseConnections => {
            return Err(std::io::Error::other(
                "the fake API server closes connections",
            ))
        }
    }
    if !bytes.is_empty() && body.is_none() {
        return Ok(status_response(
            400,
            "BadRequest",
            "the body is neither JSON nor YAML",
        ));
    }
    let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    Ok(route(
        &shared,
        &method,
        &path,
        &params,
        content_type.as_deref(),
        body,
    ))
}

/// What a path names.
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    };
    let (rt, namespace, name) = match rest {
        [plural] => (find(plural)?, None, None),
        ["namespaces", ns, plural] => (find(plural)?, Some(*ns), None),
        ["namespaces", ns, plural, name] => (find(plural)?, Some(*ns), Some(*name)),
        [plural, name] => (find(plural)?, None, Some(*name)),
        _ => return None,
    };
    if namespace.is_some() && !rt.namespaced {
        return None;
    }
    Some(Target {
        rt,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

fn route(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    params: &BTreeMap<String, String>,
    content_type: Option<&str>,
    body: Option<Value>,
) -> Response<Body> {
    if method == "GET" {
        if let Some(found) = discovery(path) {
            return json_response(StatusCode::OK, &found);
        }
    }
    let Some(target) = parse_path(path) else {
        return status_response(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    let result = match (method, &target.name) {
        ("GET", None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch_response(shared, &target, params)
        }
        ("GET", None) => list(shared, &target, params),
        ("GET", Some(name)) => get_one(shared, &target, name),
        ("POST", None) => create(shared, &target, body),
        ("PUT", Some(name)) => replace(shared, &target, name, body),
        ("PATCH", Some(name)) => patch(shared, &target, name, params, content_type, body),
        ("DELETE", Some(name)) => {
            let key = key_for(&target, name);
            let mut store = shared.store();
            match delete_object(shared, &mut store, key) {
                Some(_) => Ok((
                    200,
                    json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": { "name": name, "kind": target.rt.plural },
                    }),
                )),
                None => Err(not_found(&target, name)),
            }
        }
        _ => Err(status_value(
            405,
            "MethodNotAllowed",
            &format!("{method} is not supported on {path}"),
        )),
    };
    match result {
        Ok((code, value)) => {
            json_response(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), &value)
        }
        Err(status) => {
            let code = status["code"].as_u64().unwrap_or(500) as u16;
            json_response(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &status,
            )
        }
    }
}

fn discovery(path: &str) -> Option<Value> {
    let path = path.trim_end_matches('/');
    if path == "/version" {
        return Some(json!({
            "major": "1", "minor": "30", "gitVersion": "v1.30.0-bitesize-fake",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "none", "compiler": "none", "platform": "linux/amd64",
        }));
    }
    if path == "/api" {
        return Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        );
    }
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    if path == "/apis" {
        let groups: Vec<Value> = groups
            .iter()
            .map(|(g, v)| {
                let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
            })
            .collect();
        return Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
    }
    let group_version = if path == "/api/v1" {
        "v1".to_owned()
    } else {
        path.strip_prefix("/apis/")?.to_owned()
    };
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.api_version() == group_version)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.kind.to_ascii_lowercase(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn key_for(target: &Target, name: &str) -> ObjectKey {
    ObjectKey {
        plural: target.rt.plural,
        namespace: target.namespace.clone().unwrap_or_default(),
        name: name.to_owned(),
    }
}

fn not_found(target: &Target, name: &str) -> Value {
    status_value(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", target.rt.plural),
    )
}

type Outcome = Result<(u16, Value), Value>;

/// A parsed `labelSelector` and `fieldSelector`.
struct Selectors {
    labels: Vec<LabelRequirement>,
    fields: Vec<(String, bool, String)>,
}

enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Splits on commas outside parentheses.
fn split_top_level(selector: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth) = (Vec::new(), String::new(), 0usize);
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_requirement(term: &str) -> Result<LabelRequirement, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("bad set in label selector term {term:?}"))?;
        Ok(inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect())
    };
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            k.trim().into(),
            v.trim().into(),
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, rest)) = term.split_once(" notin ") {
        return Ok(LabelRequirement::NotIn(k.trim().into(), set(rest)?));
    }
    if let Some((k, rest)) = term.split_once(" in ") {
        return Ok(LabelRequirement::In(k.trim().into(), set(rest)?));
    }
    if let Some(k) = term.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(k.trim().into()));
    }
    if term.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
        return Err(format!("unsupported label selector term {term:?}"));
    }
    Ok(LabelRequirement::Exists(term.into()))
}

impl Selectors {
    fn parse(params: &BTreeMap<String, String>) -> Result<Selectors, Value> {
        let bad = |m: String| status_value(400, "BadRequest", &m);
        let mut labels = Vec::new();
        for term in split_top_level(
            params
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or(""),
        ) {
            labels.push(parse_label_requirement(&term).map_err(bad)?);
        }
        let mut fields = Vec::new();
        for term in split_top_level(
            params
                .get("fieldSelector")
                .map(String::as_str)
                .unwrap_or(""),
        ) {
            let (path, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k, true, v)
            } else {
                return Err(bad(format!("bad field selector term {term:?}")));
            };
            fields.push((path.trim().to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Selectors { labels, fields })
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        });
        labels_match
            && self.fields.iter().all(|(path, equal, value)| {
                let mut at = object;
                for part in path.split('.') {
                    at = &at[part];
                }
                let actual = match at {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (actual == *value) == *equal
            })
    }
}

fn in_scope(target: &Target, namespace: &str) -> bool {
    target.namespace.as_deref().is_none_or(|ns| ns == namespace)
}

fn list(shared: &Arc<Shared>, target: &Target, params: &BTreeMap<String, String>) -> Outcome {
    let selectors = Selectors::parse(params)?;
    let store = shared.store();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|(k, v)| {
            k.plural == target.rt.plural && in_scope(target, &k.namespace) && selectors.matches(v)
        })
        .map(|(_, v)| v.clone())
        .collect();
    Ok((
        200,
        json!({
            "apiVersion": target.rt.api_version(),
            "kind": format!("{}List", target.rt.kind),
            "metadata": { "resourceVersion": store.resource_version.to_string() },
            "items": items,
        }),
    ))
}

fn get_one(shared: &Arc<Shared>, target: &Target, name: &str) -> Outcome {
    let store = shared.store();
    match store.objects.get(&key_for(target, name)) {
        Some(object) => Ok((200, object.clone())),
        None => Err(not_found(target, name)),
    }
}

/// Checks a body names the target's kind and name; fills the namespace from the path.
fn check_body(target: &Target, name: Option<&str>, body: Option<Value>) -> Result<Value, Value> {
    let bad = |m: &str| status_value(400, "BadRequest", m);
    let mut body = body.ok_or_else(|| bad("a body is required"))?;
    if !body.is_object() {
        return Err(bad("the body must be an object"));
    }
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    if api_version != target.rt.api_version() || kind != target.rt.kind {
        return Err(bad(&format!(
            "apiVersion/kind {api_version:?}/{kind:?} do not match {}/{}",
            target.rt.api_version(),
            target.rt.kind
        )));
    }
    let body_name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if body_name.is_empty() || name.is_some_and(|n| n != body_name) {
        return Err(bad("metadata.name must be set and match the path"));
    }
    if let Some(ns) = &target.namespace {
        match body["metadata"]["namespace"].as_str() {
            Some(b) if b != ns => return Err(bad("metadata.namespace does not match the path")),
            Some(_) => {}
            None => body["metadata"]["namespace"] = json!(ns),
        }
    } else if target.rt.namespaced {
        return Err(bad("a namespaced object needs a namespace in the path"));
    }
    Ok(body)
}

fn create(shared: &Arc<Shared>, target: &Target, body: Option<Value>) -> Outcome {
    let body = check_body(target, None, body)?;
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = key_for(target, &name);
    let mut store = shared.store();
    if store.objects.contains_key(&key) {
        return Err(status_value(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", target.rt.plural),
        ));
    }
    Ok((
        201,
        commit(shared, &mut store, target.rt, key, body, "ADDED"),
    ))
}

fn replace(shared: &Arc<Shared>, target: &Target, name: &str, body: Option<Value>) -> Outcome {
    let body = check_body(target, Some(name), body)?;
    let key = key_for(target, name);
    let mut store = shared.store();
    let Some(existing) = store.objects.get(&key) else {
        return Err(not_found(target, name));
    };
    if let Some(rv) = body["metadata"]["resourceVersion"].as_str() {
        if Some(rv) != existing["metadata"]["resourceVersion"].as_str() {
            return Err(status_value(
                409,
                "Conflict",
                "the object has been modified; resourceVersion does not match",
            ));
        }
    }
    let body = keep_server_fields(existing, body);
    Ok((
        200,
        commit_if_changed(shared, &mut store, target.rt, key, body),
    ))
}

fn patch(
    shared: &Arc<Shared>,
    target: &Target,
    name: &str,
    params: &BTreeMap<String, String>,
    content_type: Option<&str>,
    body: Option<Value>,
) -> Outcome {
    let content_type = content_type.unwrap_or_default();
    let key = key_for(target, name);
    if content_type.starts_with("application/apply-patch") {
        let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()) else {
            return Err(status_value(
                400,
                "BadRequest",
                "fieldManager is required for apply patch",
            ));
        };
        let body = check_body(target, Some(name), body)?;
        let mut store = shared.store();
        let applied_key = (key.clone(), manager.clone());
        let previous = store.applied.insert(applied_key, body.clone());
        return Ok(match store.objects.get(&key).cloned() {
            None => {
                let object = with_managed_fields(body, manager, target.rt);
                (
                    201,
                    commit(shared, &mut store, target.rt, key, object, "ADDED"),
                )
            }
            Some(existing) => {
                let mut object = existing.clone();
                if let Some(previous) = previous {
                    remove_no_longer_applied(&mut object, &previous, &body);
                }
                merge_applied(&mut object, &body);
                let object = with_managed_fields(object, manager, target.rt);
                (
                    200,
                    commit_if_changed(shared, &mut store, target.rt, key, object),
                )
            }
        });
    }
    if content_type.starts_with("application/merge-patch+json")
        || content_type.starts_with("application/strategic-merge-patch+json")
    {
        let patch = body.ok_or_else(|| status_value(400, "BadRequest", "a body is required"))?;
        let mut store = shared.store();
        let Some(existing) = store.objects.get(&key).cloned() else {
            return Err(not_found(target, name));
        };
        let mut object = existing;
        merge_patch(&mut object, &patch);
        return Ok((
            200,
            commit_if_changed(shared, &mut store, target.rt, key, object),
        ));
    }
    Err(status_value(
        415,
        "UnsupportedMediaType",
        &format!("the fake does not support patch type {content_type:?}"),
    ))
}

/// Records `manager` as an `Apply` manager of the object (other managers kept).
fn with_managed_fields(mut object: Value, manager: &str, rt: &ResourceType) -> Value {
    let mut entries: Vec<Value> = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["manager"].as_str() != Some(manager))
        .collect();
    entries.push(json!({"manager": manager, "operation": "Apply", "apiVersion": rt.api_version(), "fieldsType": "FieldsV1"}));
    object["metadata"]["managedFields"] = Value::Array(entries);
    object
}

/// Removes from `object` the map keys `previous` set and `current` no longer sets.
fn remove_no_longer_applied(object: &mut Value, previous: &Value, current: &Value) {
    let (Some(object), Some(previous)) = (object.as_object_mut(), previous.as_object()) else {
        return;
    };
    for (k, previous_value) in previous {
        match current.get(k) {
            None => {
                object.remove(k);
            }
            Some(current_value) => {
                if let Some(child) = object.get_mut(k) {
                    remove_no_longer_applied(child, previous_value, current_value);
                }
            }
        }
    }
}

/// Maps merged recursively; anything else replaced.
fn merge_applied(object: &mut Value, applied: &Value) {
    match (object.as_object_mut(), applied.as_object()) {
        (Some(object), Some(applied)) => {
            for (k, v) in applied {
                match object.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_applied(existing, v)
                    }
                    _ => {
                        object.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *object = applied.clone(),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(object: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *object = patch.clone();
        return;
    };
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let object = object.as_object_mut().expect("an object");
    for (k, v) in patch {
        if v.is_null() {
            object.remove(k);
        } else {
            merge_patch(object.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Carries the server-owned metadata of `existing` into a replacement.
fn keep_server_fields(existing: &Value, mut body: Value) -> Value {
    for field in ["uid", "creationTimestamp", "generation", "managedFields"] {
        if let Some(v) = existing["metadata"].get(field) {
            body["metadata"][field] = v.clone();
        }
    }
    body
}

/// The object without the fields every write changes, for change detection.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        meta.remove("generation");
    }
    object
}

fn commit_if_changed(
    shared: &Shared,
    store: &mut Store,
    rt: &'static ResourceType,
    key: ObjectKey,
    mut object: Value,
) -> Value {
    let existing = store
        .objects
        .get(&key)
        .cloned()
        .expect("commit_if_changed on an existing object");
    if comparable(&existing) == comparable(&object) {
        // A no-op write keeps the resourceVersion; managed fields may still change.
        if existing["metadata"]["managedFields"] != object["metadata"]["managedFields"] {
            object["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
            store.objects.insert(key, object.clone());
            return object;
        }
        return existing;
    }
    let generation = existing["metadata"]["generation"].as_u64().unwrap_or(1);
    let generation = if existing.get("spec") != object.get("spec") {
        generation + 1
    } else {
        generation
    };
    object["metadata"]["generation"] = json!(generation);
    commit(shared, store, rt, key, object, "MODIFIED")
}

/// Stores an object with a new resourceVersion and emits its event.
fn commit(
    shared: &Shared,
    store: &mut Store,
    rt: &'static ResourceType,
    key: ObjectKey,
    mut object: Value,
    event: &'static str,
) -> Value {
    store.resource_version += 1;
    let rv = store.resource_version;
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    let meta = &mut object["metadata"];
    meta["resourceVersion"] = json!(rv.to_string());
    if meta.get("uid").is_none() {
        meta["uid"] = json!(format!("fake-uid-{}-{rv}", rt.plural));
    }
    if meta.get("generation").is_none() {
        meta["generation"] = json!(1);
    }
    if meta.get("creationTimestamp").is_none() {
        meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    store.objects.insert(key.clone(), object.clone());
    record_event(shared, store, event, &key, object.clone());
    object
}

fn delete_object(shared: &Shared, store: &mut Store, key: ObjectKey) -> Option<Value> {
    let mut object = store.objects.remove(&key)?;
    store.applied.retain(|(k, _), _| *k != key);
    store.resource_version += 1;
    object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
    record_event(shared, store, "DELETED", &key, object.clone());
    Some(object)
}

fn record_event(
    shared: &Shared,
    store: &mut Store,
    kind: &'static str,
    key: &ObjectKey,
    object: Value,
) {
    let event = Event {
        resource_version: store.resource_version,
        kind,
        plural: key.plural,
        namespace: key.namespace.clone(),
        object,
    };
    store.log.push(event.clone());
    let _ = shared.events.send(event);
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn expired_line() -> Bytes {
    event_line(
        "ERROR",
        &status_value(410, "Expired", "too old resource version"),
    )
}

fn watch_response(
    shared: &Arc<Shared>,
    target: &Target,
    params: &BTreeMap<String, String>,
) -> Response<Body> {
    let selectors = match Selectors::parse(params) {
        Ok(s) => s,
        Err(status) => return json_response(StatusCode::BAD_REQUEST, &status),
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let since = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let since: Option<u64> = match since {
        "" | "0" => None,
        rv => match rv.parse() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return status_response(
                    400,
                    "BadRequest",
                    &format!("resourceVersion {rv:?} is not a number"),
                )
            }
        },
    };
    let (mut tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(rx)))
        .expect("valid response");
    let matches = {
        let plural = target.rt.plural;
        let namespace = target.namespace.clone();
        move |e: &Event| {
            e.plural == plural
                && namespace.as_deref().is_none_or(|ns| ns == e.namespace)
                && selectors.matches(&e.object)
        }
    };
    let (initial, mut events, last) = {
        let mut store = shared.store();
        if store.expire_next_watches > 0 {
            store.expire_next_watches -= 1;
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(expired_line()))).await;
            });
            return response;
        }
        let initial: Vec<Bytes> = match since {
            None => store
                .objects
                .iter()
                .filter(|(k, _)| k.plural == target.rt.plural && in_scope(target, &k.namespace))
                .map(|(k, v)| Event {
                    resource_version: 0,
                    kind: "ADDED",
                    plural: k.plural,
                    namespace: k.namespace.clone(),
                    object: v.clone(),
                })
                .filter(&matches)
                .map(|e| event_line(e.kind, &e.object))
                .collect(),
            Some(rv) => store
                .log
                .iter()
                .filter(|e| e.resource_version > rv && matches(e))
                .map(|e| event_line(e.kind, &e.object))
                .collect(),
        };
        (initial, shared.events.subscribe(), store.resource_version)
    };
    let mut availability = shared.availability.subscribe();
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(Frame::data(line))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                changed = availability.changed() => {
                    if changed.is_err() || *availability.borrow() != Availability::Up {
                        return;
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        if event.resource_version > last && matches(&event)
                            && tx.send(Ok(Frame::data(event_line(event.kind, &event.object)))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(Frame::data(expired_line()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    response
}
